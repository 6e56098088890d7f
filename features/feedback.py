"""Point-in-time churn features from the optional ``feedback`` table (not yet wired into the feature builder).

For each customer as of a cutoff ``T`` (nothing given after ``T`` is read, and a complaint's ``resolved_at``
after ``T`` is not known at ``T``: the complaint is still open then):

* ``complaints_unresolved`` — complaints given on or before T and not resolved by T;
* ``complaints_90d`` — complaints given in ``(T - 90 days, T]``;
* ``rating_mean_90d`` — mean rating of the feedback given in ``(T - 90 days, T]`` (missing without a rating);
* ``days_to_resolve_mean`` — mean days from complaint to resolution over the complaints resolved by T
  (missing without one).

The free text (PII) is never read.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

FEEDBACK_FEATURES = ("complaints_unresolved", "complaints_90d", "rating_mean_90d", "days_to_resolve_mean")


def feedback_features(
    feedback: pd.DataFrame | None, customer_ids: pd.Index, as_of: pd.Timestamp | str, window_days: int = 90
) -> pd.DataFrame:
    """The four features (index ``customer_ids``, in that order) from ``feedback`` as of ``as_of``."""
    t = pd.Timestamp(as_of)
    ids = pd.Index(customer_ids.astype("string"), name="customer_id")
    out = pd.DataFrame(index=ids)
    if feedback is None or feedback.empty:
        out["complaints_unresolved"] = 0.0
        out["complaints_90d"] = 0.0
        out["rating_mean_90d"] = np.nan
        out["days_to_resolve_mean"] = np.nan
        return out
    fb = feedback.loc[(feedback["ts"] <= t).fillna(False).to_numpy(dtype=bool)]
    cid = fb["customer_id"].astype("string")
    comp = (fb["kind"] == "complaint").fillna(False).to_numpy(dtype=bool)
    resolved = (fb["resolved_at"] <= t).fillna(False).to_numpy(dtype=bool)  # known at T
    recent = (fb["ts"] > t - pd.Timedelta(days=window_days)).to_numpy(dtype=bool)

    def count(mask: np.ndarray) -> pd.Series:
        return cid[mask].value_counts().reindex(ids, fill_value=0).astype("float64")

    out["complaints_unresolved"] = count(comp & ~resolved).to_numpy()
    out["complaints_90d"] = count(comp & recent).to_numpy()
    rated = recent & fb["rating"].notna().to_numpy()
    out["rating_mean_90d"] = (
        fb.loc[rated, "rating"].astype("float64").groupby(cid[rated].to_numpy()).mean().reindex(ids).to_numpy()
    )
    done = comp & resolved
    days = (fb.loc[done, "resolved_at"] - fb.loc[done, "ts"]).dt.total_seconds() / 86400
    out["days_to_resolve_mean"] = days.groupby(cid[done].to_numpy()).mean().reindex(ids).to_numpy()
    return out
