"""Point-in-time churn features from the optional ``feedback`` table (``FeatureConfig.feedback_features``).

For each customer as of a cutoff ``T`` (nothing given after ``T`` is read, and a complaint's ``resolved_at``
after ``T`` is not known at ``T``: the complaint is still open then):

* ``fb_complaints_unresolved`` — complaints given on or before T and not resolved by T;
* ``fb_complaints_90d`` — complaints given in ``(T - 90 days, T]``;
* ``fb_rating_mean_90d`` — mean rating of the feedback given in ``(T - 90 days, T]`` (missing without a rating);
* ``fb_days_to_resolve_mean`` — mean days from complaint to resolution over the complaints resolved by T
  (missing without one).

The names carry the ``fb_`` prefix: the builder already has ``complaints_{w}d`` counted from complaint
interactions. The free text (PII) is never read: only :data:`FEEDBACK_INPUT_COLUMNS` are. ``CRMFeatureBuilder``
adds the four columns to its numeric features when built with ``feedback_features=True`` (batch and online
paths alike).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pandas as pd

FEEDBACK_FEATURES = ("fb_complaints_unresolved", "fb_complaints_90d", "fb_rating_mean_90d", "fb_days_to_resolve_mean")
#: The only columns of the feedback table the features read (never the free text, never the channel or category).
FEEDBACK_INPUT_COLUMNS = ("customer_id", "ts", "kind", "rating", "resolved_at")


def with_feedback(tables: Mapping[str, pd.DataFrame], data_dir: str | Path) -> dict[str, pd.DataFrame]:
    """``tables`` plus ``data_dir/feedback.parquet`` (only :data:`FEEDBACK_INPUT_COLUMNS`) when that file exists.

    The feedback table is optional: without the file the tables come back unchanged, and the features are
    0 complaints and missing ratings / resolution times, the same as for a customer who never gave feedback.
    """
    from features.contract import coerce_types

    out = dict(tables)
    p = Path(data_dir) / "feedback.parquet"
    if "feedback" not in out and p.is_file():
        import pyarrow.parquet as pq

        names = [c for c in pq.read_schema(p).names if c in FEEDBACK_INPUT_COLUMNS]
        out["feedback"] = coerce_types(pq.read_table(p, columns=names).to_pandas(), "feedback")
    return out


def feedback_features(
    feedback: pd.DataFrame | None, customer_ids: pd.Index, as_of: pd.Timestamp | str, window_days: int = 90
) -> pd.DataFrame:
    """The four features (index ``customer_ids``, in that order) from ``feedback`` as of ``as_of``."""
    t = pd.Timestamp(as_of)
    ids = pd.Index(customer_ids.astype("string"), name="customer_id")
    out = pd.DataFrame(index=ids)
    if feedback is None or feedback.empty:
        out["fb_complaints_unresolved"] = 0.0
        out["fb_complaints_90d"] = 0.0
        out["fb_rating_mean_90d"] = np.nan
        out["fb_days_to_resolve_mean"] = np.nan
        return out
    fb = feedback.loc[(feedback["ts"] <= t).fillna(False).to_numpy(dtype=bool)]
    cid = fb["customer_id"].astype("string")
    comp = (fb["kind"] == "complaint").fillna(False).to_numpy(dtype=bool)
    resolved = (fb["resolved_at"] <= t).fillna(False).to_numpy(dtype=bool)  # known at T
    recent = (fb["ts"] > t - pd.Timedelta(days=window_days)).to_numpy(dtype=bool)

    def count(mask: np.ndarray) -> pd.Series:
        return cid[mask].value_counts().reindex(ids, fill_value=0).astype("float64")

    out["fb_complaints_unresolved"] = count(comp & ~resolved).to_numpy()
    out["fb_complaints_90d"] = count(comp & recent).to_numpy()
    rated = recent & fb["rating"].notna().to_numpy()
    out["fb_rating_mean_90d"] = (
        fb.loc[rated, "rating"].astype("float64").groupby(cid[rated].to_numpy()).mean().reindex(ids).to_numpy()
    )
    done = comp & resolved
    days = (fb.loc[done, "resolved_at"] - fb.loc[done, "ts"]).dt.total_seconds() / 86400
    out["fb_days_to_resolve_mean"] = days.groupby(cid[done].to_numpy()).mean().reindex(ids).to_numpy()
    return out
