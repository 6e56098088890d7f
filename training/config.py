"""Typed training configuration (``configs/lead.yaml``, ``configs/churn.yaml``, ``configs/table.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.config import FeatureConfig, LabelConfig
from features.messages import M_

CANDIDATES = ("logreg", "tree", "forest", "xgboost")


class XGBSearch(BaseModel):
    """The small random search over XGBoost's main hyper-parameters."""

    model_config = ConfigDict(extra="forbid")

    n_trials: int = Field(default=4, ge=1)
    n_estimators: list[int] = Field(default=[200, 400])
    max_depth: list[int] = Field(default=[3, 4, 6])
    learning_rate: list[float] = Field(default=[0.03, 0.06, 0.1])
    subsample: list[float] = Field(default=[0.8, 1.0])
    colsample_bytree: list[float] = Field(default=[0.6, 0.8])
    min_child_weight: list[float] = Field(default=[1.0, 5.0])


class TrainConfig(BaseModel):
    """Everything a training job needs besides the data."""

    model_config = ConfigDict(extra="forbid")

    task: Literal["lead", "churn", "table"] = "lead"
    model_name: str | None = Field(default=None, description="registered model; default lead_scoring/churn_risk")
    experiment: str | None = Field(default=None, description="MLflow experiment; default crmscore-<task>")
    as_of: str | None = Field(default=None, description="latest cutoff (test); default last event date − horizon")
    features: FeatureConfig = Field(default_factory=FeatureConfig)
    labels: LabelConfig = Field(default_factory=LabelConfig)
    candidates: list[str] = Field(default=list(CANDIDATES))
    require_reasons: bool = Field(
        default=True, description="only candidates with exact per-row reasons (xgboost, logreg) can be registered"
    )
    xgb_search: XGBSearch = Field(default_factory=XGBSearch)
    calibration: Literal["sigmoid", "isotonic"] = "sigmoid"
    calibration_fraction: float = Field(default=0.2, gt=0, lt=0.5)
    grade_shares: list[float] = Field(default=[0.1, 0.2, 0.3], description="top shares graded A, B, C")
    selection_max_rows: int = Field(
        default=200_000, gt=0, description="candidates compete on a stratified sample this size"
    )
    refit_max_rows: int | None = Field(
        default=300_000, gt=0, description="the winner refits on a stratified sample this size (None: on all rows); "
        "300k is where the lead model's learning curve is flat (docs/learning_curve.md)"
    )
    selection_auc_tolerance: float = Field(
        default=0.003, ge=0, description="candidates this close to the best validation AUC compete on log loss"
    )
    promotion_margin: float = Field(default=0.002, ge=0, description="AUC gain the challenger needs")
    ece_tolerance: float = Field(default=0.005, ge=0, description="allowed ECE increase over the champion")
    reference_rows: int = Field(default=5000, gt=0, description="rows of the reference sample for drift")
    seed: int = 42
    xgb_threads: int = Field(default=2, ge=1)

    @field_validator("candidates")
    @classmethod
    def _known(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in CANDIDATES]
        if bad or not v:
            raise ValueError(M_(
                "unknown candidate(s) {unknown}; choose from {candidates}",
                unknown=bad, candidates=list(CANDIDATES),
            ))
        return v

    def registered_name(self) -> str:
        """The registered model name for this task."""
        return self.model_name or {"lead": "lead_scoring", "churn": "churn_risk"}.get(self.task, "table_model")
