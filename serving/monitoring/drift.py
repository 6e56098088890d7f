"""Drift and performance monitoring of a registered model's production records (Evidently 0.7).

``crmscore monitor drift`` compares the rows the service and batch scoring recorded for one model
version over a time window (``serving.http.records`` layout, read by :func:`read_window_records`) with the
reference sample that training logged with that version (``evaluation/reference.parquet`` of its run):

* per-feature drift with Evidently's ``DataDriftPreset`` and its size-aware defaults (reference
  ≤ 1,000 non-missing values: Kolmogorov–Smirnov / chi-squared / Z-test p-values < 0.05; above:
  normed Wasserstein / Jensen–Shannon distance ≥ 0.1), and the share of drifted features;
* prediction drift: Evidently's test on ``probability`` plus the population stability index (PSI)
  over 10 quantile bins of the reference probabilities, computed here on every recorded row;
* missing-value share per feature and, for categorical features, the share of values never seen
  in the reference — both on every recorded row;
* with late outcomes (``customer_id, outcome_ts, label``): actual ROC-AUC, top-20% capture and
  calibration (mean predicted vs observed, ECE) per ISO week of the scoring time.

Only the per-feature Evidently tests run on a sample: a seeded sample stratified by deciles of the
predicted probability, at most ``max_current_rows`` / ``max_reference_rows`` rows (docs/monitoring.md
states what that costs in sensitivity). Results go to an HTML report, a JSON summary,
``<home>/drift/<model>/latest.json`` (served by ``GET /drift``), an Evidently workspace and an MLflow
run; an alert (drift share, PSI or AUC drop past ``configs/monitor.yaml``) gives exit code 3.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
import warnings as warnings_module
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, model_validator

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
            raise ValueError("retrain_on_alert needs retrain_data_dir (the data dir the training job reads)")
        return self


def load_monitor_config(path: str | Path | None = None) -> MonitorConfig:
    """``configs/monitor.yaml`` (or the embedded defaults when ``path`` is None) as a :class:`MonitorConfig`."""
    from features.config import load_config

    return load_config(path, MonitorConfig)


# ------------------------------------------------------------------------------------------------ window


def _utc(t: Any) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_SINCE = re.compile(r"(\d+(?:\.\d+)?)\s*([mhdw])")
_UNIT = {"m": "min", "h": "h", "d": "D", "w": "W"}


def _parse_time(value: str, option: str, end: bool = False) -> pd.Timestamp:
    try:
        ts = _utc(value)
    except (ValueError, TypeError):
        raise MonitorError(f"{option} {value!r}: not a date or time (use YYYY-MM-DD or an ISO timestamp)") from None
    # a bare date as the end of the window means "through that day"
    return ts + pd.Timedelta(days=1) if end and _DATE_ONLY.fullmatch(value.strip()) else ts


def parse_window(
    since: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    now: Any = None,
    default_days: float = 7,
) -> tuple[pd.Timestamp, pd.Timestamp]:
    """The UTC window ``[start, end)``: ``since`` like ``7d``/``24h``/``2w``/``90m`` back from ``now``, or
    ``date_from``/``date_to`` (a bare ``--to`` date includes that whole day); default the last ``default_days``."""
    now_ts = _utc(now) if now is not None else pd.Timestamp.now(tz="UTC")
    if since and (date_from or date_to):
        raise MonitorError("use either --since or --from/--to, not both")
    if date_from or date_to:
        end = _parse_time(date_to, "--to", end=True) if date_to else now_ts
        start = _parse_time(date_from, "--from") if date_from else end - pd.Timedelta(days=default_days)
    else:
        text = (since or f"{default_days}d").strip().lower()
        m = _SINCE.fullmatch(text)
        if not m or float(m.group(1)) <= 0:
            raise MonitorError(f"--since {since!r}: use a positive number and a unit m, h, d or w (e.g. 7d, 24h)")
        start, end = now_ts - pd.Timedelta(float(m.group(1)), unit=_UNIT[m.group(2)]), now_ts
    if start >= end:
        raise MonitorError(f"empty time range: --from {start.isoformat()} is not before --to {end.isoformat()}")
    return start, end


# ------------------------------------------------------------------------------------------------ registry


@dataclass
class ModelRef:
    """A registered model version and the run that logged its reference sample."""

    name: str
    version: str
    run_id: str
    tags: dict[str, str]

    def training_metric(self, name: str) -> float | None:
        """An out-of-time test metric of training (tag ``crmscore.test_<name>``), if present."""
        raw = self.tags.get(f"crmscore.test_{name}")
        try:
            return float(raw) if raw not in (None, "") else None
        except ValueError:
            return None


def resolve_model_version(name: str, version: str | None = None) -> ModelRef:
    """``version`` of ``name`` (default: the champion) with its run id (tag ``crmscore.run_id``)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    from training.registry import CHAMPION, get_alias_version

    if version is None:
        version = get_alias_version(name, CHAMPION)
        if version is None:
            raise MonitorError(f"model {name!r} has no champion in the registry: pass --version")
    version = str(version).lstrip("v")
    try:
        mv = MlflowClient().get_model_version(name, version)
    except MlflowException:
        raise MonitorError(f"model {name!r} has no version {version} in the registry") from None
    tags = dict(mv.tags or {})
    run_id = tags.get("crmscore.run_id") or mv.run_id
    if not run_id:
        raise MonitorError(f"{name} v{version} has no run id (tag crmscore.run_id): cannot find its reference sample")
    return ModelRef(name, version, run_id, tags)


def load_reference(run_id: str, model: str = "") -> pd.DataFrame:
    """The reference sample training logged with a version (``evaluation/reference.parquet`` of ``run_id``)."""
    import mlflow
    from mlflow.exceptions import MlflowException

    bar = os.environ.get("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR")
    os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = "false"  # no progress bar in cron mail
    with tempfile.TemporaryDirectory() as tmp:
        try:
            path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=REFERENCE_ARTIFACT, dst_path=tmp)
        except (MlflowException, OSError) as e:
            raise MonitorError(
                f"{model or 'model'}: run {run_id} has no {REFERENCE_ARTIFACT} ({type(e).__name__}); "
                "it was trained by a version of crm-scoring that did not log one: retrain it"
            ) from None
        finally:
            if bar is None:
                os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
            else:
                os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = bar
        ref = pd.read_parquet(path)
    if PREDICTION_COLUMN not in ref.columns:
        raise MonitorError(f"{REFERENCE_ARTIFACT} of run {run_id} has no {PREDICTION_COLUMN!r} column")
    if len(ref) == 0:
        raise MonitorError(f"{REFERENCE_ARTIFACT} of run {run_id} is empty")
    return ref


# ------------------------------------------------------------------------------------------------ records

#: Record columns the monitor reads besides the model's features.
_RECORD_BASE = ("ts", "model_version", "source", PREDICTION_COLUMN)


def read_window_records(
    home: str | Path,
    model_name: str,
    since: Any,
    until: Any,
    features: list[str] | None = None,
    version: str | None = None,
    with_customer_id: bool = False,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Recorded rows of ``model_name`` with ``since <= ts < until`` (of ``version`` when given), only the
    columns needed, and the number of rows per version in the window.

    Same layout and filters as ``serving.http.records.read_records`` (day partitions pruned first), read as one
    Arrow dataset with the time filter pushed down and string columns dictionary-encoded (pandas
    categoricals), so a million rows take seconds and one copy in memory. Absent feature columns are absent.
    """
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as pads
    import pyarrow.parquet as pq

    lo, hi = _utc(since), _utc(until)
    root = Path(home) / "records" / model_name
    files: list[str] = []
    if root.is_dir():
        for d in sorted(root.glob("date=*")):
            try:
                day = _utc(d.name.split("=", 1)[1])
            except ValueError:
                continue
            if day + pd.Timedelta(days=1) <= lo or day >= hi:
                continue
            files += [str(f) for f in sorted(d.glob("part-*.parquet"))]
    wanted = [*_RECORD_BASE, *(["customer_id"] if with_customer_id else []), *(features or [])]
    if not files:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in wanted[:4]}), {}
    try:
        schema = pa.unify_schemas([pq.read_schema(f) for f in files], promote_options="permissive")
    except (pa.ArrowInvalid, OSError) as e:
        raise MonitorError(f"records of {model_name} under {root} cannot be read together: {e}") from None
    missing_base = [c for c in _RECORD_BASE if c not in schema.names]
    if missing_base:
        raise MonitorError(f"records under {root} have no column(s) {', '.join(missing_base)}")
    ts_type = schema.field("ts").type
    if not pa.types.is_timestamp(ts_type):
        raise MonitorError(f"records under {root}: column ts is {ts_type}, not a timestamp")
    bound = (lambda t: t.to_pydatetime()) if ts_type.tz else (lambda t: t.tz_convert(None).to_pydatetime())
    cond = (pc.field("ts") >= pa.scalar(bound(lo), type=ts_type)) & (
        pc.field("ts") < pa.scalar(bound(hi), type=ts_type)
    )
    cols = [c for c in dict.fromkeys(wanted) if c in schema.names]
    dataset = pads.dataset(files, schema=schema, format="parquet")
    versions = pc.cast(dataset.to_table(columns=["model_version"], filter=cond).column(0), pa.string())
    counts = {str(r["values"]): int(r["counts"]) for r in pc.value_counts(versions).to_pylist()}
    if version is not None:
        cond = cond & (pc.field("model_version").cast(pa.string()) == str(version))
    table = dataset.to_table(columns=cols, filter=cond)
    for i, name in enumerate(table.column_names):
        col = table.column(i)
        if name != "customer_id" and (pa.types.is_string(col.type) or pa.types.is_large_string(col.type)):
            table = table.set_column(i, name, pc.dictionary_encode(col))
    df = table.to_pandas(self_destruct=True, split_blocks=True)
    if ts_type.tz is None:
        df["ts"] = df["ts"].dt.tz_localize("UTC")
    return df, counts


# ------------------------------------------------------------------------------------------------ statistics


def population_stability_index(
    reference: np.ndarray | pd.Series, current: np.ndarray | pd.Series, bins: int = 10, eps: float = 1e-4
) -> tuple[float, pd.DataFrame]:
    """PSI of ``current`` against ``reference`` over ``bins`` quantile bins of the reference.

    Σ (c − r) · ln(c / r) over bins, shares floored at ``eps``; missing values are ignored. Ties in the
    reference merge bins (fewer than ``bins``). Returns the PSI and the per-bin table.
    """
    ref = np.asarray(reference, dtype="float64")
    cur = np.asarray(current, dtype="float64")
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan"), pd.DataFrame(columns=["lower", "upper", "reference_share", "current_share"])
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    k = len(edges) + 1
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=k) / len(cur)
    rr, cc = np.maximum(r, eps), np.maximum(c, eps)
    psi = float(np.sum((cc - rr) * np.log(cc / rr)))
    lower = np.concatenate([[-np.inf], edges])
    upper = np.concatenate([edges, [np.inf]])
    table = pd.DataFrame({"lower": lower, "upper": upper, "reference_share": r, "current_share": c})
    return psi, table


def sample_positions(values: Any, n: int, seed: int = 0, strata: int = 10) -> np.ndarray | None:
    """Sorted positions of at most ``n`` rows, stratified by deciles (``strata``) of ``values``, seeded.

    Each stratum keeps its share of the rows (largest-remainder rounding), so the sample's score
    distribution matches the full data's; missing values form their own stratum. None when there
    are at most ``n`` rows (no sampling).
    """
    p = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    if len(p) <= n:
        return None
    finite = np.isfinite(p)
    edges = np.unique(np.quantile(p[finite], np.linspace(0, 1, strata + 1)[1:-1])) if finite.any() else np.array([])
    stratum = np.where(finite, np.searchsorted(edges, np.where(finite, p, 0.0), side="right"), len(edges) + 1)
    counts = np.bincount(stratum, minlength=len(edges) + 2)
    raw = counts * (n / len(p))
    quota = np.floor(raw).astype(int)
    short = n - quota.sum()
    if short > 0:
        quota[np.argsort(-(raw - quota), kind="stable")[:short]] += 1
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(p)), stratum))  # grouped by stratum, random within it
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    keep = np.concatenate([order[s : s + q] for s, q in zip(starts, quota, strict=True)])
    return np.sort(keep)


def stratified_sample(
    df: pd.DataFrame, n: int, seed: int = 0, column: str = PREDICTION_COLUMN, strata: int = 10
) -> pd.DataFrame:
    """At most ``n`` rows of ``df`` stratified by deciles of ``column`` (see :func:`sample_positions`).

    Row order is preserved; returns ``df`` itself when it has at most ``n`` rows.
    """
    pos = sample_positions(df[column], n, seed, strata)
    return df if pos is None else df.iloc[pos]


def _is_categorical(s: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


def _as_numeric(s: pd.Series) -> pd.Series:
    out = pd.to_numeric(s, errors="coerce").astype("float64")
    return out.where(np.isfinite(out.to_numpy()), np.nan)


@dataclass
class _Codes:
    """A categorical column as integer codes (−1 = missing) into string categories."""

    codes: np.ndarray
    categories: np.ndarray

    @classmethod
    def of(cls, s: pd.Series) -> _Codes:
        if not isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype("category")
        cats = np.asarray(s.cat.categories.astype(str), dtype=object)
        return cls(s.cat.codes.to_numpy(dtype=np.int64), cats)

    def values(self, pos: np.ndarray | None = None) -> pd.Series:
        """The (sampled) values as Python strings, missing as None."""
        c = self.codes if pos is None else self.codes[pos]
        return pd.Series(np.where(c >= 0, self.categories[np.maximum(c, 0)], None), dtype=object)


def _take(s: pd.Series, pos: np.ndarray | None) -> pd.Series:
    return (s if pos is None else s.iloc[pos]).reset_index(drop=True)


def _score_kind(method: str) -> str:
    return "p_value" if "p_value" in method.lower() else "distance"


# ------------------------------------------------------------------------------------------------ comparison


@dataclass
class DriftComparison:
    """What :func:`compare` found: the JSON-ready summary parts and the Evidently snapshot."""

    rows: dict[str, Any]
    sampling: dict[str, Any]
    data_drift: dict[str, Any]
    prediction_drift: dict[str, Any]
    warnings: list[str]
    snapshot: Any = None


def compare(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    config: MonitorConfig | None = None,
    *,
    timestamp: Any = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> DriftComparison:
    """Compare recorded rows (features + ``probability``) with the training reference sample.

    The model's features are the reference's columns other than ``probability``. Missing shares,
    new categories and the PSI use every current row; Evidently's per-column tests use seeded
    samples stratified by probability decile (``max_current_rows`` / ``max_reference_rows``).
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    from features.contract import PII_COLUMNS

    cfg = config or MonitorConfig()
    if PREDICTION_COLUMN not in current.columns:
        raise MonitorError(f"the recorded rows have no {PREDICTION_COLUMN!r} column")
    features = [str(c) for c in reference.columns if c != PREDICTION_COLUMN and c not in PII_COLUMNS]
    categorical = [c for c in features if _is_categorical(reference[c])]
    absent = [c for c in features if c not in current.columns]
    warnings: list[str] = []
    if absent:
        warnings.append(
            f"{len(absent)} model feature(s) absent from the records (counted as drifted): {', '.join(absent[:10])}"
        )

    cur_prob = _as_numeric(current[PREDICTION_COLUMN])
    ref_prob = _as_numeric(reference[PREDICTION_COLUMN])
    cur_pos = sample_positions(cur_prob, cfg.max_current_rows, cfg.sample_seed)
    ref_pos = sample_positions(ref_prob, cfg.max_reference_rows, cfg.sample_seed)
    # every current row: missing shares, new categories, coercion losses; only the samples are kept
    profiles: dict[str, dict[str, Any]] = {}
    cur_s: dict[str, pd.Series] = {}
    ref_s: dict[str, pd.Series] = {}
    evid_num, evid_cat = [], []
    for c in features:
        is_cat = c in categorical
        prof: dict[str, Any] = {"type": "categorical" if is_cat else "numeric"}
        profiles[c] = prof
        if is_cat:
            ref_codes = _Codes.of(reference[c])
            prof["missing_share_reference"] = float((ref_codes.codes < 0).mean())
            sr = ref_codes.values(ref_pos)
        else:
            ref_col = _as_numeric(reference[c])
            prof["missing_share_reference"] = float(ref_col.isna().mean())
            sr = _take(ref_col, ref_pos)
        if c in absent:
            prof.update(missing_share_current=1.0, drifted=True, method="absent from the records")
            continue
        raw = current[c]
        if is_cat:
            cur_codes = _Codes.of(raw)
            missing = cur_codes.codes < 0
            sc = cur_codes.values(cur_pos)
        else:
            arr = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            missing = ~np.isfinite(arr)
            clean = np.where(missing, np.nan, arr)
            sc = pd.Series(clean if cur_pos is None else clean[cur_pos])
        lost = int(missing.sum() - raw.isna().sum())
        if lost > 0:
            warnings.append(f"{c}: {lost:,} recorded value(s) are not numbers or not finite (counted as missing)")
        prof["missing_share_current"] = float(missing.mean()) if len(missing) else 0.0
        if prof["missing_share_current"] - prof["missing_share_reference"] > cfg.warn_missing_increase:
            warnings.append(
                f"{c}: missing share {prof['missing_share_reference']:.1%} → {prof['missing_share_current']:.1%}"
            )
        if is_cat:
            counts = np.bincount(cur_codes.codes[~missing], minlength=len(cur_codes.categories))
            is_new = ~np.isin(
                cur_codes.categories, ref_codes.categories[np.unique(ref_codes.codes[ref_codes.codes >= 0])]
            )
            n_values = int(counts.sum())
            share = float(counts[is_new].sum() / n_values) if n_values else 0.0
            top = [j for j in np.argsort(-counts, kind="stable") if is_new[j] and counts[j] > 0][:5]
            prof["new_category_share"] = share
            prof["new_categories"] = {str(cur_codes.categories[j]): int(counts[j]) for j in top}
            if share > cfg.warn_new_category_share:
                shown = ", ".join(repr(k) for k in prof["new_categories"])
                warnings.append(f"{c}: {share:.1%} of values are categories the reference never had ({shown})")
        # Evidently needs values on both sides; otherwise the verdict is decided here
        ref_empty, cur_empty = bool(sr.isna().all()), bool(sc.isna().all())
        if ref_empty or cur_empty:
            side = "in both" if ref_empty and cur_empty else "in the reference" if ref_empty else "in the records"
            prof.update(method=f"no values {side}", drifted=bool(ref_empty != cur_empty))
            continue
        cur_s[c], ref_s[c] = sc, sr
        (evid_cat if is_cat else evid_num).append(c)
    cur_s[PREDICTION_COLUMN] = _take(cur_prob, cur_pos)
    ref_s[PREDICTION_COLUMN] = _take(ref_prob, ref_pos)
    cur_frame, ref_frame = pd.DataFrame(cur_s), pd.DataFrame(ref_s)

    definition = DataDefinition(numerical_columns=evid_num + [PREDICTION_COLUMN], categorical_columns=evid_cat)
    # the preset covers the features (its drifted share is the features' share); the prediction is tested apart
    metrics: list[Any] = [ValueDrift(column=PREDICTION_COLUMN, method=cfg.stattest, threshold=cfg.stattest_threshold)]
    if evid_num or evid_cat:
        preset = DataDriftPreset(
            columns=evid_num + evid_cat,
            drift_share=cfg.alert_drift_share,
            method=cfg.stattest,
            threshold=cfg.stattest_threshold,
        )
        metrics.insert(0, preset)
    report = Report(metrics, include_tests=True)
    run_kw: dict[str, Any] = {"tags": tags or [], "metadata": metadata or {}}
    if timestamp is not None:
        run_kw["timestamp"] = _utc(timestamp).tz_convert(None).to_pydatetime()
    with warnings_module.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # Evidently correlates every numeric column; constant ones give harmless divide-by-zero warnings
        warnings_module.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(
            Dataset.from_pandas(cur_frame, data_definition=definition),
            Dataset.from_pandas(ref_frame, data_definition=definition),
            **run_kw,
        )
    evidently = _read_value_drift(snapshot.dict())
    for c in evid_num + evid_cat:
        r = evidently.get(c)
        if r is None:
            raise RuntimeError(f"Evidently returned no drift result for column {c!r}")
        profiles[c].update(r)

    drifted = [c for c in features if profiles[c].get("drifted")]
    n = len(features)
    data_drift = {
        "n_features": n,
        "n_drifted": len(drifted),
        "share_drifted": (len(drifted) / n) if n else 0.0,
        "drifted_features": _by_severity(drifted, profiles),
        "features": profiles,
    }
    psi, bins = population_stability_index(ref_prob, cur_prob, cfg.psi_bins)
    ev_pred = evidently[PREDICTION_COLUMN]
    prediction_drift = {
        "psi": psi,
        "psi_bins": bins.replace([np.inf, -np.inf], None).to_dict(orient="records"),
        "evidently": ev_pred,
        "mean_probability_reference": float(ref_prob.mean()),
        "mean_probability_current": float(cur_prob.mean()),
        "score_quantiles_reference": _score_quantiles(ref_prob),
        "score_quantiles_current": _score_quantiles(cur_prob),
        "missing_probability_rows": int(cur_prob.isna().sum()),
    }
    rows = {"current": int(len(current)), "reference": int(len(reference))}
    sampling = {
        "method": "stratified by probability decile, seeded, order kept",
        "seed": cfg.sample_seed,
        "current_rows_tested": int(len(cur_frame)),
        "reference_rows_tested": int(len(ref_frame)),
        "full_data": ["psi", "missing shares", "new categories", "performance"],
    }
    return DriftComparison(rows, sampling, data_drift, prediction_drift, warnings, snapshot)


def _read_value_drift(snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per column: Evidently's method, score, threshold and verdict (its own drift test) from ``snapshot.dict()``."""
    out: dict[str, dict[str, Any]] = {}
    for m in snap.get("metrics", []):
        conf = m.get("config", {})
        if not str(conf.get("type", "")).endswith(":ValueDrift"):
            continue
        method = str(conf.get("method"))
        score = m.get("value")
        out[str(conf["column"])] = {
            "method": method,
            "score_kind": _score_kind(method),
            "score": None if score is None else float(score),
            "threshold": conf.get("threshold"),
        }
    for t in snap.get("tests", []):
        params = (t.get("metric_config") or {}).get("params") or {}
        col = params.get("column")
        if str(params.get("type", "")).endswith(":ValueDrift") and col in out:
            out[col]["drifted"] = t.get("status") == "FAIL"
    for r in out.values():
        if "drifted" not in r:  # no test result: decide as Evidently does
            s, thr = r["score"], r["threshold"]
            r["drifted"] = bool(
                s is not None and thr is not None and (s < thr if r["score_kind"] == "p_value" else s >= thr)
            )
    return out


def _by_severity(names: list[str], profiles: dict[str, dict[str, Any]]) -> list[str]:
    def severity(c: str) -> float:
        p = profiles[c]
        s, thr = p.get("score"), p.get("threshold")
        if s is None or not thr:
            return math.inf  # absent or all missing
        return thr / max(s, 1e-300) if p.get("score_kind") == "p_value" else s / thr

    return sorted(names, key=lambda c: (-severity(c), c))


def _score_quantiles(p: pd.Series) -> dict[str, float | None]:
    from training.scores import to_score

    v = p.dropna().to_numpy()
    if len(v) == 0:
        return {"p10": None, "p50": None, "p90": None}
    s = to_score(v)
    return {f"p{q}": float(np.percentile(s, q)) for q in (10, 50, 90)}


# ------------------------------------------------------------------------------------------------ performance


def _to_utc_times(values: pd.Series) -> pd.Series:
    """Times as UTC (naive = UTC): ISO 8601 fast path, then per-value parsing of the rest; NaT where unreadable."""
    ts = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    retry = ts.isna() & values.notna()
    if retry.any():
        ts[retry] = pd.to_datetime(values[retry].astype(str), errors="coerce", utc=True, format="mixed")
    return ts


def read_outcomes(path: str | Path) -> pd.DataFrame:
    """Late outcomes (CSV or Parquet): ``customer_id``, ``outcome_ts`` (times; naive = UTC), ``label`` (0/1).

    Raises :class:`MonitorError` naming the file, column and first bad row.
    """
    p = Path(path)
    if not p.is_file():
        raise MonitorError(f"outcomes file not found: {p}")
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        elif p.suffix.lower() in (".csv", ".txt"):
            df = pd.read_csv(p, dtype={"customer_id": "string"}, encoding="utf-8-sig")
        else:
            raise MonitorError(f"{p}: outcomes must be .csv or .parquet")
    except MonitorError:
        raise
    except Exception as e:  # noqa: BLE001 - pandas/pyarrow raise many types for unreadable files
        raise MonitorError(f"{p}: cannot read outcomes ({type(e).__name__}: {str(e)[:200]})") from None
    missing = [c for c in OUTCOME_COLUMNS if c not in df.columns]
    if missing:
        raise MonitorError(f"{p}: missing column(s) {', '.join(missing)} (need {', '.join(OUTCOME_COLUMNS)})")
    out = pd.DataFrame({"customer_id": df["customer_id"].astype("string")})
    bad_id = out["customer_id"].isna() | (out["customer_id"].str.strip() == "")
    if bad_id.any():
        raise MonitorError(f"{p}: row {int(np.flatnonzero(bad_id.to_numpy())[0]) + 1}: empty customer_id")
    ts = _to_utc_times(df["outcome_ts"])
    if ts.isna().any():
        i = int(np.flatnonzero(ts.isna().to_numpy())[0])
        raise MonitorError(f"{p}: row {i + 1}: outcome_ts {df['outcome_ts'].iloc[i]!r} is not a date/time")
    out["outcome_ts"] = ts
    lab = df["label"]
    if pd.api.types.is_bool_dtype(lab):
        lab = lab.astype("Int64")
    labels = pd.to_numeric(lab, errors="coerce")
    bad = ~labels.isin([0, 1])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise MonitorError(f"{p}: row {i + 1}: label {df['label'].iloc[i]!r} is not 0 or 1")
    out["label"] = labels.astype("int64")
    return out


def join_outcomes(
    records: pd.DataFrame,
    outcomes: pd.DataFrame,
    horizon_days: float = 30,
    unmatched_as_negative: bool = True,
) -> tuple[pd.DataFrame, dict[str, int]]:
    """Label each scored row by its customer's outcomes within ``(ts, ts + horizon]`` (any 1 → 1, else 0).

    A row with no outcome in that window is a negative when the window has fully passed by the
    latest ``outcome_ts`` in the file (and ``unmatched_as_negative``), else it is pending and left out.
    Returns the labelled rows (``ts``, ``probability``, ``label``) and counts.
    """
    horizon = pd.Timedelta(days=horizon_days)
    rec = pd.DataFrame(
        {
            "row": np.arange(len(records)),
            "customer_id": records["customer_id"].astype("string").to_numpy(),
            "ts": pd.to_datetime(records["ts"], utc=True).reset_index(drop=True),
            "probability": _as_numeric(records[PREDICTION_COLUMN]).to_numpy(),
        }
    )
    m = rec[["row", "customer_id", "ts"]].merge(outcomes, on="customer_id", how="inner")
    m = m[(m["outcome_ts"] > m["ts"]) & (m["outcome_ts"] <= m["ts"] + horizon)]
    matched = m.groupby("row")["label"].max()
    label = pd.Series(np.nan, index=rec.index)
    label.iloc[matched.index.to_numpy()] = matched.to_numpy()
    as_of = outcomes["outcome_ts"].max() if len(outcomes) else None
    matured = (rec["ts"] + horizon <= as_of) if as_of is not None else pd.Series(False, index=rec.index)
    unmatched = label.isna()
    if unmatched_as_negative:
        label[unmatched & matured] = 0
    counts = {
        "scored_rows": int(len(rec)),
        "matched": int(len(matched)),
        "unmatched_matured": int((unmatched & matured).sum()),
        "pending": int((unmatched & ~matured).sum()),
        "no_probability": int(rec["probability"].isna().sum()),
    }
    keep = label.notna() & rec["probability"].notna()
    out = rec.loc[keep, ["ts", "probability"]].assign(label=label[keep].astype(int).to_numpy())
    counts["labelled"] = int(len(out))
    return out.reset_index(drop=True), counts


def _performance_row(y: np.ndarray, p: np.ndarray) -> dict[str, Any]:
    from sklearn.metrics import roc_auc_score

    from training.metrics import capture_at, expected_calibration_error

    both = len(y) > 0 and y.min() != y.max()
    return {
        "rows": int(len(y)),
        "positives": int(y.sum()),
        "roc_auc": float(roc_auc_score(y, p)) if both else None,
        "capture_top20": capture_at(y, p, 0.20) if y.sum() > 0 else None,
        "mean_predicted": float(p.mean()) if len(p) else None,
        "observed_rate": float(y.mean()) if len(y) else None,
        "ece": expected_calibration_error(y, p) if len(y) else None,
    }


def performance_by_week(labelled: pd.DataFrame) -> dict[str, Any]:
    """ROC-AUC, top-20% capture and calibration (mean predicted, observed rate, ECE): overall and per ISO week."""
    y = labelled["label"].to_numpy().astype(int)
    p = labelled["probability"].to_numpy(dtype="float64")
    iso = pd.to_datetime(labelled["ts"], utc=True).dt.isocalendar()
    week = iso["year"].astype(str) + "-W" + iso["week"].astype(int).map("{:02d}".format)
    weeks = []
    for w in sorted(week.unique()):
        mask = (week == w).to_numpy()
        weeks.append({"week": w, **_performance_row(y[mask], p[mask])})
    return {"overall": _performance_row(y, p), "weeks": weeks}


# ------------------------------------------------------------------------------------------------ outputs


def _jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def _write_json_atomic(obj: Any, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(obj, f, indent=2, ensure_ascii=False, allow_nan=False)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def add_to_workspace(snapshot: Any, path: str | Path, model_name: str) -> str:
    """Add the snapshot to the local Evidently workspace (project ``crmscore <model>``, created with a dashboard
    of drift share and prediction drift over time on first use); returns the snapshot id."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import counter_panel, line_plot_panel
    from evidently.ui.workspace import Workspace

    Path(path).mkdir(parents=True, exist_ok=True)
    ws = Workspace(str(path))
    name = f"crmscore {model_name}"
    found = ws.search_project(name)
    if found:
        project = found[0]
    else:
        project = ws.create_project(name, description=f"Drift of {model_name}: crmscore monitor drift")
        share = PanelMetric(
            legend="share of drifted columns", metric="DriftedColumnsCount", metric_labels={"value_type": "share"}
        )
        project.dashboard.add_panel(
            counter_panel(title="Share of drifted columns (last run)", values=[share], size="half")
        )
        project.dashboard.add_panel(
            line_plot_panel(
                title="Prediction drift (probability)",
                values=[
                    PanelMetric(legend="drift score", metric="ValueDrift", metric_labels={"column": PREDICTION_COLUMN})
                ],
                size="half",
            )
        )
        project.dashboard.add_panel(line_plot_panel(title="Share of drifted columns", values=[share]))
    return str(ws.add_run(project.id, snapshot, include_data=False).id)


def post_webhook(url: str, payload: dict[str, Any], timeout: float = 5.0) -> str:
    """POST the summary as JSON; returns ``sent (HTTP n)`` or ``failed: …`` (never raises)."""
    import httpx

    try:
        r = httpx.post(url, json=payload, timeout=timeout)
    except httpx.HTTPError as e:
        return f"failed: {type(e).__name__}: {str(e)[:200]}"
    if r.status_code >= 400:
        return f"failed: HTTP {r.status_code}"
    return f"sent (HTTP {r.status_code})"


def retrain(model_name: str, cfg: MonitorConfig) -> dict[str, Any]:
    """Start the training job for ``model_name`` on ``retrain_data_dir``; the promotion gate decides. Never raises."""
    try:
        from features.config import load_config
        from training.config import TrainConfig
        from training.train import train_crm

        tc = load_config(cfg.retrain_config, TrainConfig)
        if cfg.retrain_config is None:
            task = TASK_OF_MODEL.get(model_name)
            if task is None:
                return {"status": f"skipped: set retrain_config for model {model_name!r}"}
            tc = tc.model_copy(update={"task": task})
        tc = tc.model_copy(update={"model_name": model_name})
        res = train_crm(cfg.retrain_data_dir, tc)
    except Exception as e:  # noqa: BLE001 - a failed retrain is reported; the alert stands
        return {"status": f"failed: {type(e).__name__}: {str(e)[:300]}"}
    return {
        "status": "trained",
        "version": res.version,
        "promoted": res.promoted,
        "decision": res.decision,
        "run_id": res.run_id,
    }


# ------------------------------------------------------------------------------------------------ the job


@dataclass
class MonitorResult:
    """Everything one monitoring run produced."""

    summary: dict[str, Any]
    exit_code: int
    out_dir: Path
    html_path: Path
    json_path: Path
    latest_path: Path
    mlflow_run_id: str | None = None
    workspace_snapshot_id: str | None = None
    webhook: str | None = None
    retrain: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def evaluate_alerts(summary: dict[str, Any], cfg: MonitorConfig) -> list[str]:
    """Alert messages for a summary (``data_drift``, ``prediction_drift``, optional ``performance``); empty = ok."""
    out = []
    dd, pdr = summary["data_drift"], summary["prediction_drift"]
    if dd["n_features"] and dd["share_drifted"] >= cfg.alert_drift_share:
        out.append(
            f"{dd['n_drifted']} of {dd['n_features']} features drifted ({dd['share_drifted']:.0%} ≥ "
            f"{cfg.alert_drift_share:.0%})"
        )
    psi = pdr["psi"]
    if psi is not None and math.isfinite(psi) and psi >= cfg.alert_psi:
        out.append(f"prediction drift: PSI {psi:.3f} ≥ {cfg.alert_psi}")
    perf = summary.get("performance")
    if perf and cfg.alert_auc_drop is not None:
        actual, expected = perf["overall"]["roc_auc"], perf.get("training_roc_auc")
        if (
            actual is not None
            and expected is not None
            and perf["overall"]["rows"] >= cfg.min_labelled_rows
            and expected - actual > cfg.alert_auc_drop
        ):
            out.append(
                f"ROC-AUC {actual:.3f} on late labels vs {expected:.3f} in training (drop > {cfg.alert_auc_drop})"
            )
    return out


def run_drift_monitor(
    model_name: str,
    version: str | None = None,
    since: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    outcomes: str | Path | None = None,
    out_dir: str | Path | None = None,
    webhook: str | None = None,
    config: MonitorConfig | None = None,
    home: str | Path | None = None,
    now: Any = None,
) -> MonitorResult:
    """`crmscore monitor drift`: compare a version's recorded rows in a window with its training reference.

    Writes the HTML report and JSON summary to ``out_dir`` (default ``<home>/drift/<model>/reports/<time>``) and
    ``<home>/drift/<model>/latest.json``, adds the snapshot to the Evidently workspace, logs an MLflow
    run, POSTs the summary to ``webhook``, and retrains when configured. ``exit_code`` is 3 on an alert.
    Raises :class:`MonitorError` (exit 2) on bad input and :class:`EmptyWindowError` on an empty window.
    """
    from serving.settings import crmscore_home
    from training.registry import configure_tracking

    cfg = config or MonitorConfig()
    home_path = Path(home) if home is not None else crmscore_home()
    if webhook and not re.match(r"https?://", webhook):
        raise MonitorError(f"--webhook {webhook!r}: must be an http:// or https:// URL")
    start, end = parse_window(since, date_from, date_to, now, cfg.default_window_days)
    outcome_rows = read_outcomes(outcomes) if outcomes is not None else None
    configure_tracking()
    ref_model = resolve_model_version(model_name, version)
    reference = load_reference(ref_model.run_id, f"{model_name} v{ref_model.version}")
    features = [str(c) for c in reference.columns if c != PREDICTION_COLUMN]
    current, by_version = read_window_records(
        home_path, model_name, start, end, features, ref_model.version, with_customer_id=outcomes is not None
    )
    window = f"{start.isoformat()} → {end.isoformat()}"
    if len(current) == 0:
        others = ", ".join(f"v{k}: {v:,}" for k, v in by_version.items())
        raise EmptyWindowError(
            f"no recorded rows for {model_name} v{ref_model.version} in {window} "
            f"(records folder {home_path / 'records' / model_name}"
            + (f"; other versions in the window: {others}" if others else "")
            + "): rows are recorded by `crmscore serve` and `crmscore score`; widen --since or pick --version"
        )
    if len(current) < cfg.min_rows:
        raise EmptyWindowError(
            f"only {len(current)} recorded row(s) for {model_name} v{ref_model.version} in {window}; "
            f"need at least {cfg.min_rows} (min_rows in the monitor config) for a drift test"
        )
    generated = pd.Timestamp.now(tz="UTC")
    cmp = compare(
        current,
        reference,
        cfg,
        timestamp=end,
        tags=[model_name, f"v{ref_model.version}"],
        metadata={
            "model_name": model_name,
            "model_version": ref_model.version,
            "window_from": start.isoformat(),
            "window_to": end.isoformat(),
        },
    )
    summary: dict[str, Any] = {
        "model_name": model_name,
        "model_version": ref_model.version,
        "reference_run_id": ref_model.run_id,
        "generated_at": generated.isoformat(),
        "window": {"from": start.isoformat(), "to": end.isoformat()},
        "rows": {
            **cmp.rows,
            "by_source": {str(k): int(v) for k, v in current["source"].value_counts().items() if v > 0},
            "other_versions_in_window": {str(k): int(v) for k, v in by_version.items() if str(k) != ref_model.version},
        },
        "sampling": cmp.sampling,
        "thresholds": {
            "alert_drift_share": cfg.alert_drift_share,
            "alert_psi": cfg.alert_psi,
            "alert_auc_drop": cfg.alert_auc_drop,
        },
        "data_drift": cmp.data_drift,
        "prediction_drift": cmp.prediction_drift,
        "performance": None,
        "warnings": list(cmp.warnings),
    }
    if outcome_rows is not None:
        labelled, counts = join_outcomes(
            current, outcome_rows, cfg.outcome_horizon_days, cfg.unmatched_outcome_as_negative
        )
        perf = performance_by_week(labelled)
        summary["performance"] = {
            "horizon_days": cfg.outcome_horizon_days,
            "join": counts,
            **perf,
            "training_roc_auc": ref_model.training_metric("roc_auc"),
            "training_capture_top20": ref_model.training_metric("capture_top20"),
            "training_ece": ref_model.training_metric("ece"),
        }
        if counts["labelled"] < cfg.min_labelled_rows:
            summary["warnings"].append(
                f"only {counts['labelled']} labelled row(s) (< min_labelled_rows {cfg.min_labelled_rows}): "
                "performance figures are indicative, no AUC alert"
            )
    alerts = evaluate_alerts(summary, cfg)
    summary["alerts"] = alerts
    summary["status"] = "drift" if alerts else "ok"
    summary = _jsonable(summary)

    stamp = generated.strftime("%Y%m%dT%H%M%SZ")
    drift_root = home_path / "drift" / model_name
    out = Path(out_dir) if out_dir is not None else drift_root / "reports" / stamp
    out.mkdir(parents=True, exist_ok=True)
    html_path = out / "drift_report.html"
    cmp.snapshot.save_html(str(html_path))
    notes: list[str] = []
    snap_id = None
    ws_path = Path(cfg.workspace) if cfg.workspace else home_path / "evidently"
    try:
        snap_id = add_to_workspace(cmp.snapshot, ws_path, model_name)
        summary["evidently_workspace"] = {"path": str(ws_path), "snapshot_id": snap_id}
    except Exception as e:  # noqa: BLE001 - the report stands without the dashboard
        notes.append(f"Evidently workspace not updated: {type(e).__name__}: {str(e)[:200]}")
    json_path = out / "drift_summary.json"
    run_id = None
    if cfg.log_to_mlflow:
        try:
            run_id = _log_mlflow(summary, html_path, json_path, cfg)
        except Exception as e:  # noqa: BLE001 - tracking down must not hide the drift verdict
            summary.pop("mlflow_run_id", None)
            notes.append(f"MLflow run not logged: {type(e).__name__}: {str(e)[:200]}")
    if run_id is None:
        _write_json_atomic(summary, json_path)
    latest = _write_json_atomic(summary, drift_root / "latest.json")
    code = EXIT_ALERT if alerts else EXIT_OK
    result = MonitorResult(summary, code, out, html_path, json_path, latest, run_id, snap_id, notes=notes)
    if webhook:
        result.webhook = post_webhook(webhook, summary, cfg.webhook_timeout_seconds)
    if alerts and cfg.retrain_on_alert:
        result.retrain = retrain(model_name, cfg)
    return result


def _log_mlflow(summary: dict[str, Any], html_path: Path, json_path: Path, cfg: MonitorConfig) -> str:
    """One run in ``cfg.experiment``: tags, window params, drift metrics, the HTML report and the JSON summary."""
    import mlflow

    dd, pdr = summary["data_drift"], summary["prediction_drift"]
    mlflow.set_experiment(cfg.experiment)
    name = f"drift-{summary['model_name']}-v{summary['model_version']}-{summary['window']['to'][:10]}"
    with mlflow.start_run(run_name=name) as run:
        summary["mlflow_run_id"] = run.info.run_id
        mlflow.set_tags(
            {
                "crmscore.model_name": summary["model_name"],
                "crmscore.model_version": summary["model_version"],
                "crmscore.reference_run_id": summary["reference_run_id"],
                "crmscore.monitor.status": summary["status"],
            }
        )
        mlflow.log_params(
            {
                "window_from": summary["window"]["from"],
                "window_to": summary["window"]["to"],
                "rows_current": summary["rows"]["current"],
                "rows_reference": summary["rows"]["reference"],
                "current_rows_tested": summary["sampling"]["current_rows_tested"],
                "reference_rows_tested": summary["sampling"]["reference_rows_tested"],
                **{f"threshold.{k}": v for k, v in summary["thresholds"].items()},
            }
        )
        metrics: dict[str, float] = {
            "share_drifted": dd["share_drifted"],
            "n_drifted": dd["n_drifted"],
            "psi": pdr["psi"],
            "prediction_drift_score": pdr["evidently"]["score"],
            "mean_probability_current": pdr["mean_probability_current"],
            "alert": float(bool(summary["alerts"])),
        }
        for c, f in dd["features"].items():
            metrics[f"feature_drift.{c}"] = f.get("score")
            metrics[f"missing_share.{c}"] = f.get("missing_share_current")
        perf = summary.get("performance")
        if perf:
            for k in ("roc_auc", "capture_top20", "ece", "rows"):
                metrics[f"actual_{k}"] = perf["overall"][k]
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))})
        mlflow.log_artifact(str(html_path), artifact_path="monitoring")
        _write_json_atomic(summary, json_path)
        mlflow.log_artifact(str(json_path), artifact_path="monitoring")
    return run.info.run_id
