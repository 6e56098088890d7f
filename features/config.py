"""Typed configuration: YAML files in ``configs/`` validated with pydantic.

Every model here has embedded defaults equal to the shipped YAML, so the commands run with no
file at all; a YAML file overrides any subset of fields. Nothing is read at import time.
"""

from __future__ import annotations

from pathlib import Path
from typing import TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from features.contract import CHANNELS, EVENT_TYPES
from features.messages import M_

M = TypeVar("M", bound=BaseModel)


class ConfigError(ValueError):
    """A configuration file is missing or invalid; the message names the file and field."""


def read_yaml_mapping(path: Path, section: str | None = None) -> dict:
    """The top-level mapping of a YAML config file (or of its ``section``), with clear errors naming the file."""
    if not path.is_file():
        raise ConfigError(M_("config file not found: {path}", path=path))
    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as e:
        raise ConfigError(M_("{path}: not valid YAML: {e}", path=path, e=e)) from e
    if section is not None and isinstance(raw, dict):
        raw = raw.get(section, {}) or {}
    if not isinstance(raw, dict):
        raise ConfigError(M_("{path}: expected a mapping at the top level", path=path))
    return raw


def load_config(path: str | Path | None, model: type[M], section: str | None = None) -> M:
    """Load ``path`` (YAML) into ``model``; ``None`` gives the embedded defaults.

    ``section`` picks one top-level key of the file when several configs share it.
    """
    if path is None:
        return model()
    p = Path(path)
    raw = read_yaml_mapping(p, section)
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        loc = ".".join(str(x) for x in first["loc"])
        raise ConfigError(M_("{p}: field {loc!r}: {value}", p=p, loc=loc, value=first['msg'])) from e


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class FeatureConfig(_Strict):
    """Windows and vocabularies of the intent and churn features."""

    engagement_windows_days: list[int] = Field(default=[7, 30, 90], description="interaction count windows")
    rfm_windows_days: list[int] = Field(default=[30, 90, 365], description="paid order windows")
    trend_days: int = Field(default=30, description="last N days vs the N days before")
    service_windows_days: list[int] = Field(default=[30, 90], description="complaint/ticket/refund windows")
    marketing_window_days: int = Field(default=90, description="window for marketing response rates")
    event_types: list[str] = Field(default=list(EVENT_TYPES))
    channels: list[str] = Field(default=list(CHANNELS))
    recency_event_types: list[str] = Field(
        default=["visit", "browse", "consult", "add_to_cart", "checkout_page", "login", "complaint"],
        description="event types that get a days-since-last feature",
    )
    max_days: float = Field(default=3650.0, description="value of a days-since feature when never seen")
    bant_features: bool = Field(
        default=True, description="use the BANT answers (budget_range, decision_maker, ...) as categorical features"
    )
    feedback_features: bool = Field(
        default=False,
        description="add the point-in-time features of the optional feedback table (features.feedback; never its text)",
    )

    @field_validator("engagement_windows_days", "rfm_windows_days", "service_windows_days")
    @classmethod
    def _positive_sorted(cls, v: list[int]) -> list[int]:
        if not v or any(d <= 0 for d in v):
            raise ValueError(M_("windows must be a non-empty list of positive day counts"))
        return sorted(set(v))


class LabelConfig(_Strict):
    """Label horizons and the cutoffs a training set is built from."""

    horizon_days: int = Field(default=30, gt=0, description="H: outcome window (T, T+H]")
    churn_lookback_days: int = Field(default=180, gt=0, description="active = a paid order in this window")
    n_cutoffs: int = Field(default=4, ge=2, description="number of cutoffs T1 < ... < Tn")
    cutoff_step_days: int = Field(default=30, gt=0, description="days between consecutive cutoffs")
