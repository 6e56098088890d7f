"""The report's Members section (会员): level distribution, movements between levels, each level's share of revenue.

Levels come from :func:`features.members.levels.compute_levels` with the members config (``configs/members.yaml``
embedded defaults unless given): the level at T, carried from the level one month before T (upgrade only), so a
movement is what ``crmscore members apply`` run monthly would record. No customer id leaves these functions.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.members.config import MembersConfig
from features.members.levels import compute_levels

DEFINITION = (
    "Member levels at T from configs/members.yaml: the highest level whose paid spend or paid order threshold the "
    "customer reaches in the window (12 months by default), upgrade only. Distribution = customers per level at T "
    "and their share. Movements = customers by their level one month before T (computed the same way) and at T: "
    "the diagonal stayed, above it moved up (levels never go down automatically). Revenue share = each level's "
    "customers' paid revenue in the window ending at T, over all paid revenue in that window."
)


def member_tables(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, cfg: MembersConfig | None = None
) -> dict[str, pd.DataFrame]:
    """``members_levels`` (level, customers, share, revenue, revenue share) and ``members_movements`` (from × to)."""
    from features.members.levels import PreviousLevels, window_start

    cfg = cfg or MembersConfig()
    t = pd.Timestamp(as_of)
    before = compute_levels(tables, t - pd.DateOffset(months=1), cfg)
    now = compute_levels(
        tables, t, cfg, previous=PreviousLevels(t - pd.DateOffset(months=1), before.levels, before.history)
    )
    lv = now.levels
    order = list(cfg.order)
    names = {x.id: x.zh for x in cfg.levels}
    counts = lv["member_level"].value_counts().reindex(order, fill_value=0)
    orders = tables["orders"]
    start = window_start(cfg, t)
    paid = (orders["status"] == "paid").fillna(False).to_numpy(dtype=bool) & (orders["ts"] <= t).fillna(False).to_numpy(
        dtype=bool
    )
    if start is not None:
        paid &= (orders["ts"] > start).fillna(False).to_numpy(dtype=bool)
    sub = orders.loc[paid, ["customer_id", "amount"]]
    level_of = pd.Series(lv["member_level"].to_numpy(), index=lv["customer_id"].astype("string"))
    rev = sub.groupby(sub["customer_id"].astype("string").map(level_of), observed=True)["amount"].sum()
    rev = rev.reindex(order, fill_value=0.0)
    total = float(rev.sum())
    levels = pd.DataFrame(
        {
            "level": order,
            "level_zh": [names[x] for x in order],
            "customers": counts.to_numpy(dtype=np.int64),
            "share_of_customers": (counts / max(int(counts.sum()), 1)).to_numpy(),
            "revenue": rev.to_numpy(dtype="float64").round(2),
            "share_of_revenue": (rev / total).to_numpy() if total > 0 else np.full(len(order), np.nan),
        }
    )
    prev = before.levels.set_index(before.levels["customer_id"].astype("string"))["member_level"]
    cur = lv.set_index(lv["customer_id"].astype("string"))["member_level"]
    frm = prev.reindex(cur.index).fillna("(new)")
    mv = pd.crosstab(frm, cur).reindex(index=["(new)", *order], columns=order, fill_value=0)
    movements = mv.reset_index().rename(columns={"member_level": "level_before", "row_0": "level_before"})
    movements.columns = ["level_before", *[f"to_{x}" for x in order]]
    movements = movements.loc[movements[[f"to_{x}" for x in order]].sum(axis=1) > 0].reset_index(drop=True)
    return {"members_levels": levels, "members_movements": movements}
