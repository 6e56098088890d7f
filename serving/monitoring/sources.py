"""What the monitor compares: the window, the model version and its training reference, the recorded rows."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from features.messages import M_
from serving.monitoring.config import PREDICTION_COLUMN, REFERENCE_ARTIFACT, MonitorError

# ------------------------------------------------------------------------------------------------ window


def as_utc(t: Any) -> pd.Timestamp:
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


_DATE_ONLY = re.compile(r"\d{4}-\d{2}-\d{2}")
_SINCE = re.compile(r"(\d+(?:\.\d+)?)\s*([mhdw])")
_UNIT = {"m": "min", "h": "h", "d": "D", "w": "W"}


def _parse_time(value: str, option: str, end: bool = False) -> pd.Timestamp:
    try:
        ts = as_utc(value)
    except (ValueError, TypeError):
        raise MonitorError(M_(
            "{option} {value!r}: not a date or time (use YYYY-MM-DD or an ISO timestamp)",
            option=option, value=value,
        )) from None
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
    now_ts = as_utc(now) if now is not None else pd.Timestamp.now(tz="UTC")
    if since and (date_from or date_to):
        raise MonitorError(M_("use either --since or --from/--to, not both"))
    if date_from or date_to:
        end = _parse_time(date_to, "--to", end=True) if date_to else now_ts
        start = _parse_time(date_from, "--from") if date_from else end - pd.Timedelta(days=default_days)
    else:
        text = (since or f"{default_days}d").strip().lower()
        m = _SINCE.fullmatch(text)
        if not m or float(m.group(1)) <= 0:
            raise MonitorError(M_(
                "--since {since!r}: use a positive number and a unit m, h, d or w (e.g. 7d, 24h)",
                since=since,
            ))
        start, end = now_ts - pd.Timedelta(float(m.group(1)), unit=_UNIT[m.group(2)]), now_ts
    if start >= end:
        raise MonitorError(M_(
            "empty time range: --from {start} is not before --to {end}",
            start=start.isoformat(), end=end.isoformat(),
        ))
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
            raise MonitorError(M_("model {name!r} has no champion in the registry: pass --version", name=name))
    version = str(version).lstrip("v")
    try:
        mv = MlflowClient().get_model_version(name, version)
    except MlflowException:
        raise MonitorError(M_(
            "model {name!r} has no version {version} in the registry",
            name=name, version=version,
        )) from None
    tags = dict(mv.tags or {})
    run_id = tags.get("crmscore.run_id") or mv.run_id
    if not run_id:
        raise MonitorError(M_(
            "{name} v{version} has no run id (tag crmscore.run_id): cannot find its reference sample",
            name=name, version=version,
        ))
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
                M_(
                    "{model}: run {run_id} has no {artifact} ({error_type}); it was trained by a version of "
                    "crm-scoring that did not log one: retrain it",
                    model=model or "model", run_id=run_id, artifact=REFERENCE_ARTIFACT, error_type=type(e).__name__,
                )
            ) from None
        finally:
            if bar is None:
                os.environ.pop("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", None)
            else:
                os.environ["MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR"] = bar
        ref = pd.read_parquet(path)
    if PREDICTION_COLUMN not in ref.columns:
        raise MonitorError(M_(
            "{artifact} of run {run_id} has no {column!r} column",
            artifact=REFERENCE_ARTIFACT, run_id=run_id, column=PREDICTION_COLUMN,
        ))
    if len(ref) == 0:
        raise MonitorError(M_("{artifact} of run {run_id} is empty", artifact=REFERENCE_ARTIFACT, run_id=run_id))
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

    lo, hi = as_utc(since), as_utc(until)
    root = Path(home) / "records" / model_name
    files: list[str] = []
    if root.is_dir():
        for d in sorted(root.glob("date=*")):
            try:
                day = as_utc(d.name.split("=", 1)[1])
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
        raise MonitorError(M_(
            "records of {model_name} under {root} cannot be read together: {error}",
            model_name=model_name, root=root, error=e,
        )) from None
    missing_base = [c for c in _RECORD_BASE if c not in schema.names]
    if missing_base:
        raise MonitorError(M_(
            "records under {root} have no column(s) {missing_base}",
            root=root, missing_base=', '.join(missing_base),
        ))
    ts_type = schema.field("ts").type
    if not pa.types.is_timestamp(ts_type):
        raise MonitorError(M_(
            "records under {root}: column ts is {ts_type}, not a timestamp",
            root=root, ts_type=ts_type,
        ))
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
