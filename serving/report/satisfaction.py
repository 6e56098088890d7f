"""The report's Satisfaction section (满意度) from the optional ``feedback`` table, as of T.

Nothing after T is read: feedback given after T is left out, and a complaint resolved after T counts as open at
T (``resolved_at`` after T is not known at T). The free-text column is PII and never read.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

DEFINITION = (
    "From the feedback table (complaints, suggestions, praise, reviews, surveys) up to T. CSAT by month = share of "
    "rated feedback with rating 4 or 5; mean rating = mean of the ratings given that month. Complaints by category "
    "and channel = complaints given up to T. Time to resolve = days from a complaint to its resolved_at, for "
    "complaints resolved by T (median and mean). Unresolved backlog = complaints given up to T and not resolved by "
    "T (resolved_at empty or after T), by how long they have been open."
)


def read_feedback(data_dir: str | Path | None) -> pd.DataFrame | None:
    """``feedback.parquet`` of a data dir (contract dtypes, without the PII text), or None when absent."""
    from features.contract import coerce_types, drop_pii

    if data_dir is None:
        return None
    p = Path(data_dir) / "feedback.parquet"
    if not p.is_file():
        return None
    return coerce_types(drop_pii(pd.read_parquet(p)), "feedback")


def satisfaction_tables(feedback: pd.DataFrame, as_of: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """``satisfaction_monthly``, ``complaints_by``, ``complaint_resolution`` and ``complaint_backlog``."""
    t = pd.Timestamp(as_of)
    fb = feedback.loc[(feedback["ts"] <= t).fillna(False).to_numpy(dtype=bool)]
    rated = fb.loc[fb["rating"].notna()]
    month = rated["ts"].dt.to_period("M").astype(str)
    r = rated["rating"].astype("float64")
    monthly = (
        pd.DataFrame({"month": month, "rating": r, "satisfied": (r >= 4).astype("float64")})
        .groupby("month", sort=True)
        .agg(rated=("rating", "size"), mean_rating=("rating", "mean"), csat=("satisfied", "mean"))
        .reset_index()
    )
    comp = fb.loc[(fb["kind"] == "complaint").fillna(False).to_numpy(dtype=bool)]
    by = (
        comp.assign(category=comp["category"].fillna("unknown"), channel=comp["channel"].fillna("unknown"))
        .groupby(["category", "channel"], sort=True)
        .size()
        .rename("complaints")
        .reset_index()
        .sort_values("complaints", ascending=False, kind="stable")
        .reset_index(drop=True)
    )
    known = comp["resolved_at"].notna() & (comp["resolved_at"] <= t)
    days = (comp.loc[known, "resolved_at"] - comp.loc[known, "ts"]).dt.total_seconds() / 86400
    resolution = pd.DataFrame(
        {
            "complaints": [len(comp)],
            "resolved_by_T": [int(known.sum())],
            "median_days_to_resolve": [float(days.median()) if len(days) else np.nan],
            "mean_days_to_resolve": [float(days.mean()) if len(days) else np.nan],
        }
    )
    open_ = comp.loc[~known.to_numpy()]
    age = (t - open_["ts"]).dt.total_seconds() / 86400
    bins = [-np.inf, 7, 30, 90, np.inf]
    labels = ["≤ 7 days", "8–30 days", "31–90 days", "> 90 days"]
    backlog = (
        pd.cut(age, bins=bins, labels=labels).value_counts().reindex(labels, fill_value=0).rename("open_complaints")
    )
    backlog = backlog.rename_axis("open_for").reset_index()
    return {
        "satisfaction_monthly": monthly,
        "complaints_by": by,
        "complaint_resolution": resolution,
        "complaint_backlog": backlog,
    }
