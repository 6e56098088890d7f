"""Typed settings of the scoring service (``configs/serving.yaml``) and their environment overrides.

Nothing is read at import time: the service calls :func:`load_settings` when a worker starts.
Precedence: embedded defaults < YAML file (``$CRMSCORE_SERVING_CONFIG`` or the ``path`` argument) <
environment variables (``CRMSCORE_*``, listed in :data:`ENV_OVERRIDES`, read by pydantic-settings into
:class:`ServingEnv`).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from features.messages import M_

#: Environment variable → settings field it overrides.
ENV_OVERRIDES = {
    "CRMSCORE_PIN_MODELS": "pin_models",
    "CRMSCORE_POLL_SECONDS": "poll_interval_seconds",
    "CRMSCORE_MAX_BATCH": "max_batch",
    "CRMSCORE_MAX_BODY_MB": "max_body_mb",
    "CRMSCORE_MODEL_SOURCE": "model_source",
    "CRMSCORE_XGB_THREADS": "xgb_threads",
    "CRMSCORE_RECORDS": "records_enabled",
    "CRMSCORE_RECORDS_FLUSH_SECONDS": "records_flush_seconds",
    "CRMSCORE_INLINE_MAX_LEADS": "inline_max_leads",
    "CRMSCORE_MAX_CONCURRENCY": "max_concurrency",
    "CRMSCORE_MAX_QUEUE": "max_queue",
    "CRMSCORE_QUEUE_TIMEOUT_SECONDS": "queue_timeout_seconds",
    "CRMSCORE_MAX_LOOP_LAG_SECONDS": "max_loop_lag_seconds",
    "CRMSCORE_RATE_LIMIT_PER_KEY": "rate_limit_per_key",
    "CRMSCORE_WORKERS": "workers",
    "CRMSCORE_DATA_DIR": "data_dir",
    "CRMSCORE_AS_OF": "as_of",
}
#: values of a nullable variable that mean "no limit" (null in the YAML)
_NULL = {"none", "null", "off"}


class ServingEnv(BaseSettings):
    """The ``CRMSCORE_*`` environment overrides of :class:`ServingSettings`, read by pydantic-settings.

    One field per variable of :data:`ENV_OVERRIDES` (field = the variable without ``CRMSCORE_``, lower case); an
    unset or empty variable leaves the field out of ``model_fields_set``. Types are checked here, limits by
    :class:`ServingSettings`.
    """

    model_config = SettingsConfigDict(env_prefix="CRMSCORE_", env_ignore_empty=True, extra="ignore")

    pin_models: bool | None = None
    poll_seconds: float | None = None
    max_batch: int | None = None
    max_body_mb: float | None = None
    model_source: Literal["auto", "registry", "bento"] | None = None
    xgb_threads: int | None = None
    records: bool | None = None
    records_flush_seconds: float | None = None
    inline_max_leads: int | None = None
    max_concurrency: int | None = None
    max_queue: int | None = None
    queue_timeout_seconds: float | None = None
    max_loop_lag_seconds: float | None = None
    rate_limit_per_key: float | None = None
    workers: int | None = None
    data_dir: str | None = None
    as_of: str | None = None

    @field_validator("max_concurrency", "rate_limit_per_key", "max_loop_lag_seconds", mode="before")
    @classmethod
    def _none_means_no_limit(cls, v: object) -> object:
        return None if isinstance(v, str) and v.strip().lower() in _NULL else v

    @field_validator("*", mode="before")
    @classmethod
    def _strip(cls, v: object) -> object:
        return v.strip() if isinstance(v, str) else v

    def overrides(self) -> dict[str, object]:
        """The variables that are set, as ``ServingSettings`` field → value."""
        return {ENV_OVERRIDES[f"CRMSCORE_{name.upper()}"]: getattr(self, name) for name in self.model_fields_set}


class ModelNames(BaseModel):
    """Registered model names the service loads (each at ``alias``)."""

    model_config = ConfigDict(extra="forbid")

    lead: str = "lead_scoring"
    churn: str = "churn_risk"
    segments: str = "customer_segments"
    uplift: str = "coupon_uplift"


class ServingSettings(BaseModel):
    """Everything the scoring service needs besides the models themselves."""

    model_config = ConfigDict(extra="forbid")

    models: ModelNames = Field(default_factory=ModelNames)
    alias: str = Field(default="champion", description="registry alias served (and watched for hot swap)")
    model_source: Literal["auto", "registry", "bento"] = Field(
        default="auto",
        description="auto: the models packed in the Bento when serving a built Bento, else the MLflow registry",
    )
    registry_uri: str | None = Field(
        default=None, description="MLflow tracking/registry URI; default $MLFLOW_TRACKING_URI or ./mlflow.db"
    )
    data_dir: str | None = Field(
        default=None, description="data dir of `crmscore serve --data` (contract tables, for pages that read them)"
    )
    as_of: str | None = Field(
        default=None, description="time the profile page /ui scores at; default the latest event time in data_dir"
    )
    pin_models: bool = Field(default=False, description="keep the versions loaded at start-up (no hot swap)")
    poll_interval_seconds: float = Field(default=30.0, gt=0, description="how often the champion alias is checked")
    max_batch: int = Field(default=10_000, ge=1, description="most leads / customers in one request")
    max_body_mb: float = Field(default=128.0, gt=0, description="largest accepted request body")
    top_reasons: int = Field(default=3, ge=0, le=20, description="positive and negative reasons per lead")
    xgb_threads: int = Field(default=1, ge=1, description="XGBoost threads per worker process")
    workers: int = Field(default=1, ge=1, description="worker processes (crmscore serve --workers)")
    inline_max_leads: int = Field(
        default=16, ge=0, description="requests with at most this many precomputed leads are scored on the event "
        "loop; larger ones (and raw profiles) in a worker thread",
    )
    max_concurrency: int | None = Field(
        default=32, ge=1, description="scoring requests in progress at once per worker; null = no limit"
    )
    max_queue: int = Field(
        default=64, ge=0, description="scoring requests waiting for a turn per worker; beyond: 503 + Retry-After"
    )
    queue_timeout_seconds: float = Field(
        default=5.0, gt=0, description="a request that waited this long for a turn gets 503 + Retry-After"
    )
    max_loop_lag_seconds: float | None = Field(
        default=0.5, gt=0, description="while the worker's event loop runs this far behind, new scoring requests "
        "get 503 + Retry-After (small requests are scored on the loop); null = off",
    )
    retry_after_seconds: float = Field(default=1.0, gt=0, description="Retry-After of a 503 (overload)")
    rate_limit_per_key: float | None = Field(
        default=None, gt=0, description="scoring requests per second per API key (whole service); beyond: 429"
    )
    rate_limit_burst: int | None = Field(
        default=None, ge=1, description="requests a key may send at once above its rate (default: one second's)"
    )
    access_log: bool = Field(default=False, description="BentoML per-request access log (costs ~5% at 1 lead)")
    records_enabled: bool = Field(default=True, description="record every scored request for drift monitoring")
    records_flush_seconds: float = Field(default=10.0, gt=0, description="how often the record queue is flushed")
    records_max_queue: int = Field(default=200_000, ge=1, description="rows held in memory before dropping")

    def resolved_registry_uri(self) -> str | None:
        """The registry URI to use (None lets `training.registry.configure_tracking` pick its default)."""
        return self.registry_uri or os.environ.get("MLFLOW_TRACKING_URI") or None


def redact_uri(uri: str) -> str:
    """``uri`` without a password (``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db``)."""
    import re

    return re.sub(r"(://[^/:@]+):[^/@]*@", r"\1:***@", uri)


def crmscore_home() -> Path:
    """``$CRMSCORE_HOME``, default ``./.crmscore`` (records, drift summaries). Not created here."""
    return Path(os.environ.get("CRMSCORE_HOME") or ".crmscore")


def load_settings(path: str | Path | None = None) -> ServingSettings:
    """Settings from ``path`` (or ``$CRMSCORE_SERVING_CONFIG``, or the embedded defaults) plus env overrides.

    Raises ``features.config.ConfigError`` naming the file or variable and the field when a value is invalid.
    """
    from features.config import ConfigError, load_config

    path = path or os.environ.get("CRMSCORE_SERVING_CONFIG") or None
    base = load_config(path, ServingSettings)
    try:
        overrides = ServingEnv().overrides()
    except ValidationError as e:
        first = e.errors()[0]
        raise ConfigError(M_(
            "environment variable CRMSCORE_{setting}: {msg}",
            setting=str(first['loc'][0]).upper(), msg=first['msg'],
        )) from None
    if not overrides:
        return base
    try:
        return ServingSettings.model_validate({**base.model_dump(), **overrides})
    except ValidationError as e:
        first = e.errors()[0]
        field = str(first["loc"][0])
        var = next(v for v, f in ENV_OVERRIDES.items() if f == field)
        raise ConfigError(M_("environment variable {var}: {msg}", var=var, msg=first['msg'])) from None


def load_api_keys() -> frozenset[str]:
    """API keys from ``$CRMSCORE_API_KEYS`` (comma-separated) and the file ``$CRMSCORE_API_KEYS_FILE``
    (one per line, ``#`` comments). Empty when neither is set: every scoring call is then refused."""
    keys = {k.strip() for k in os.environ.get("CRMSCORE_API_KEYS", "").split(",")}
    f = os.environ.get("CRMSCORE_API_KEYS_FILE")
    if f:
        p = Path(f)
        if not p.is_file():
            raise FileNotFoundError(M_("CRMSCORE_API_KEYS_FILE: file not found: {path}", path=p))
        for line in p.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            keys.add(line)
    return frozenset(k for k in keys if k)
