"""Late labels: reading an outcomes file, joining it to scored rows, performance per ISO week."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.messages import M_
from serving.monitoring.compare import as_numeric
from serving.monitoring.config import OUTCOME_COLUMNS, PREDICTION_COLUMN, MonitorError

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
        raise MonitorError(M_("outcomes file not found: {path}", path=p))
    try:
        if p.suffix.lower() in (".parquet", ".pq"):
            df = pd.read_parquet(p)
        elif p.suffix.lower() in (".csv", ".txt"):
            df = pd.read_csv(p, dtype={"customer_id": "string"}, encoding="utf-8-sig")
        else:
            raise MonitorError(M_("{path}: outcomes must be .csv or .parquet", path=p))
    except MonitorError:
        raise
    except Exception as e:  # noqa: BLE001 - pandas/pyarrow raise many types for unreadable files
        raise MonitorError(M_(
            "{path}: cannot read outcomes ({error_type}: {error})",
            path=p, error_type=type(e).__name__, error=str(e)[:200],
        )) from None
    missing = [c for c in OUTCOME_COLUMNS if c not in df.columns]
    if missing:
        raise MonitorError(M_(
            "{path}: missing column(s) {missing} (need {required})",
            path=p, missing=', '.join(missing), required=', '.join(OUTCOME_COLUMNS),
        ))
    out = pd.DataFrame({"customer_id": df["customer_id"].astype("string")})
    bad_id = out["customer_id"].isna() | (out["customer_id"].str.strip() == "")
    if bad_id.any():
        raise MonitorError(M_(
            "{path}: row {row}: empty customer_id",
            path=p, row=int(np.flatnonzero(bad_id.to_numpy())[0]) + 1,
        ))
    ts = _to_utc_times(df["outcome_ts"])
    if ts.isna().any():
        i = int(np.flatnonzero(ts.isna().to_numpy())[0])
        raise MonitorError(M_(
            "{path}: row {row}: outcome_ts {value!r} is not a date/time",
            path=p, row=i + 1, value=df['outcome_ts'].iloc[i],
        ))
    out["outcome_ts"] = ts
    lab = df["label"]
    if pd.api.types.is_bool_dtype(lab):
        lab = lab.astype("Int64")
    labels = pd.to_numeric(lab, errors="coerce")
    bad = ~labels.isin([0, 1])
    if bad.any():
        i = int(np.flatnonzero(bad.to_numpy())[0])
        raise MonitorError(M_(
            "{path}: row {row}: label {value!r} is not 0 or 1",
            path=p, row=i + 1, value=df['label'].iloc[i],
        ))
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
            "probability": as_numeric(records[PREDICTION_COLUMN]).to_numpy(),
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
