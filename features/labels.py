"""Labels at a cutoff T and multi-cutoff training sets for out-of-time validation.

- Lead conversion: a customer with no paid order at or before T converts if it has a paid order in (T, T+H].
- Churn: an active customer (a paid order in (T - lookback, T]) churns if it has no paid order in (T, T+H].
Only customers created at or before T are labelled.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from features.build import CRMFeatureBuilder, CRMSnapshot, _codes, _secs
from features.config import FeatureConfig, LabelConfig
from features.messages import M_

TASKS = ("lead", "churn")


def build_labels(
    tables: Mapping[str, pd.DataFrame], as_of: pd.Timestamp | str, horizon_days: int, lookback_days: int
) -> pd.DataFrame:
    """Per customer: ``is_lead``, ``is_active``, ``converted`` and ``churned`` at cutoff ``as_of``."""
    t = float(pd.Timestamp(as_of).value) / 1e9
    customers = tables["customers"]
    customers = customers[_secs(customers["created_at"]) <= t]
    ids = pd.Index(customers["customer_id"].to_numpy(dtype=object), dtype=object, name="customer_id")
    n = len(ids)
    orders = tables.get("orders")
    if orders is None or len(orders) == 0:
        last_before = np.full(n, -np.inf)
        any_after = np.zeros(n, dtype=bool)
    else:
        paid = orders[(orders["status"] == "paid").fillna(False).to_numpy(dtype=bool)]
        pos = _codes(paid["customer_id"], ids)
        ts = _secs(paid["ts"])
        ok = pos >= 0
        pos, ts = pos[ok], ts[ok]
        before = ts <= t
        last_before = np.full(n, -np.inf)
        np.maximum.at(last_before, pos[before], ts[before])
        after = (ts > t) & (ts <= t + horizon_days * 86400.0)
        any_after = np.bincount(pos[after], minlength=n) > 0
    is_lead = ~np.isfinite(last_before)
    is_active = last_before > t - lookback_days * 86400.0
    return pd.DataFrame(
        {
            "is_lead": is_lead,
            "is_active": is_active,
            "converted": (is_lead & any_after).astype(np.int8),
            "churned": (is_active & ~any_after).astype(np.int8),
        },
        index=ids,
    )


def cutoffs_ending(as_of: pd.Timestamp | str, labels: LabelConfig) -> list[pd.Timestamp]:
    """The cutoffs T1 < ... < Tn = ``as_of``, ``cutoff_step_days`` apart."""
    end = pd.Timestamp(as_of)
    return [end - pd.Timedelta(days=labels.cutoff_step_days * k) for k in range(labels.n_cutoffs - 1, -1, -1)]


def latest_labelable_cutoff(tables: Mapping[str, pd.DataFrame], horizon_days: int) -> pd.Timestamp:
    """The latest T whose outcome window (T, T+H] is fully inside the data (last event date − H)."""
    ends = []
    for name, col in (("orders", "ts"), ("interactions", "ts"), ("marketing_touches", "sent_at")):
        df = tables.get(name)
        if df is not None and len(df):
            ends.append(pd.to_datetime(df[col]).max())
    if not ends:
        raise ValueError(M_("no events in the data: cannot place a cutoff"))
    return (max(ends) - pd.Timedelta(days=horizon_days)).normalize()


def build_training_set(
    tables: Mapping[str, pd.DataFrame],
    task: str,
    as_of: pd.Timestamp | str,
    features: FeatureConfig | None = None,
    labels: LabelConfig | None = None,
) -> pd.DataFrame:
    """Features and label over several cutoffs for ``task`` ('lead' or 'churn').

    Returns one row per (cutoff, eligible customer) with columns ``cutoff``, the features, and ``label``;
    the index is ``customer_id``.
    """
    if task not in TASKS:
        raise ValueError(M_("unknown task {task!r}; expected one of {TASKS}", task=task, TASKS=TASKS))
    labels = labels or LabelConfig()
    builder = CRMFeatureBuilder.from_config(features or FeatureConfig()).fit()
    parts = []
    for cutoff in cutoffs_ending(as_of, labels):
        lab = build_labels(tables, cutoff, labels.horizon_days, labels.churn_lookback_days)
        eligible = lab["is_lead"] if task == "lead" else lab["is_active"]
        keep = lab.index[eligible.to_numpy()]
        if len(keep) == 0:
            continue
        feats = builder.transform(CRMSnapshot(tables, cutoff))
        feats = feats.loc[keep]
        feats.insert(0, "cutoff", cutoff)
        feats["label"] = lab.loc[keep, "converted" if task == "lead" else "churned"].to_numpy()
        parts.append(feats)
    if not parts:
        raise ValueError(M_(
            "no {task} examples at any cutoff ending {value}",
            task=task, value=pd.Timestamp(as_of).date(),
        ))
    return pd.concat(parts)
