"""Settings, exit codes and errors of drift monitoring (``configs/monitor.yaml``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.messages import M_

EXIT_OK = 0
EXIT_BAD_INPUT = 2
EXIT_ALERT = 3

PREDICTION_COLUMN = "probability"
REFERENCE_ARTIFACT = "evaluation/reference.parquet"
OUTCOME_COLUMNS = ("customer_id", "outcome_ts", "label")
#: Training task of a registered model name, for retraining on an alert without a training config file.
TASK_OF_MODEL = {"lead_scoring": "lead", "churn_risk": "churn"}


class MonitorError(ValueError):
    """Bad input to the monitor (window, version, reference, outcomes file); the message says what and why."""


class EmptyWindowError(MonitorError):
    """No recorded rows (or too few) for the model version in the window."""


class MonitorConfig(BaseModel):
    """Thresholds, sampling and outputs of drift monitoring (``configs/monitor.yaml``)."""

    model_config = ConfigDict(extra="forbid")

    default_window_days: float = Field(default=7, gt=0, description="window when neither --since nor --from is given")
    min_rows: int = Field(default=30, ge=1, description="fewer recorded rows in the window is an error (exit 2)")
    alert_drift_share: float = Field(
        default=0.3, gt=0, le=1, description="alert when at least this share of the features drifted"
    )
    alert_psi: float = Field(default=0.2, gt=0, description="alert when the PSI of the probabilities reaches this")
    alert_auc_drop: float | None = Field(
        default=0.05, gt=0, description="alert when the actual ROC-AUC is this far below training's (null: never)"
    )
    top_features: int = Field(
        default=10, ge=0, description="the top-feature rule watches this many most important features (0: off)"
    )
    top_feature_distance: float = Field(
        default=0.5, gt=0, description="a top feature drifting this far alerts on its own (normed Wasserstein "
        "for numeric, Jensen-Shannon for categorical features)",
    )
    psi_bins: int = Field(default=10, ge=2, le=100, description="quantile bins of the reference probabilities")
    stattest: str | None = Field(default=None, description="Evidently drift method for every column; null: defaults")
    stattest_threshold: float | None = Field(default=None, gt=0, description="threshold of that method")
    max_current_rows: int = Field(default=20_000, ge=100, description="sample cap of recorded rows for Evidently")
    max_reference_rows: int = Field(default=20_000, ge=100, description="sample cap of reference rows for Evidently")
    sample_seed: int = Field(default=0, description="seed of the stratified samples")
    warn_missing_increase: float = Field(
        default=0.05, ge=0, le=1, description="warn when a feature's missing share grows by more than this"
    )
    warn_new_category_share: float = Field(
        default=0.01, ge=0, le=1, description="warn when more than this share of a categorical's values is new"
    )
    outcome_horizon_days: float = Field(default=30, gt=0, description="an outcome counts within (ts, ts + horizon]")
    unmatched_outcome_as_negative: bool = Field(
        default=True,
        description="a scored row with no outcome within a horizon that has fully passed (by the latest outcome_ts "
        "in the file) is a negative; false: such rows are left out",
    )
    min_labelled_rows: int = Field(default=200, ge=1, description="labelled rows needed before the AUC alert applies")
    records_retention_days: float | None = Field(
        default=90, gt=0, description="record partitions (days) older than this are deleted by each run; null: keep"
    )
    reports_retention_days: float | None = Field(
        default=365, gt=0, description="per-run report folders older than this are deleted by each run; null: keep"
    )
    experiment: str = Field(default="crmscore-monitoring", description="MLflow experiment of the monitoring runs")
    workspace: str | None = Field(default=None, description="Evidently workspace folder; null: <home>/evidently")
    log_to_mlflow: bool = Field(default=True, description="log the report and summary as an MLflow run")
    webhook_timeout_seconds: float = Field(default=5.0, gt=0, description="timeout of the webhook POST")
    retrain_on_alert: bool = Field(default=False, description="start the training job when an alert fires")
    retrain_data_dir: str | None = Field(default=None, description="data dir the retraining job reads")
    retrain_config: str | None = Field(default=None, description="training config (configs/lead.yaml); null: default")

    @model_validator(mode="after")
    def _retrain_needs_data(self) -> MonitorConfig:
        if self.retrain_on_alert and not self.retrain_data_dir:
            raise ValueError(M_("retrain_on_alert needs retrain_data_dir (the data dir the training job reads)"))
        return self


def load_monitor_config(path: str | Path | None = None) -> MonitorConfig:
    """``configs/monitor.yaml`` (or the embedded defaults when ``path`` is None) as a :class:`MonitorConfig`."""
    from features.config import load_config

    return load_config(path, MonitorConfig)
