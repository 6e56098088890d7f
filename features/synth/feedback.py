"""Customer feedback (the optional ``feedback`` contract table) consistent with the simulated customers.

Complaints are the simulator's own ``complaint`` interactions (driven by each customer's hidden grumpiness and
their refunds; in the simulator recent complaints lower the purchase rate, so unhappy customers churn more: on
5,000 demo customers, active customers with a complaint in the 90 days before T have a true churn probability of
0.74 against 0.56 for those without, both with one paid order in those 90 days), each
becoming a complaint row with a low rating, a category, a channel and its handling (resolved after a few days,
or still open). Reviews follow a seeded share of paid orders, their rating lower for customers who complained.
Free text is a short made-up sentence (flagged PII in the contract: never a feature, never logged). Drawn from a
generator of its own, so the other tables of a seed do not change.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import coerce_types, empty_frame

FEEDBACK_FILE = "feedback.parquet"
CATEGORIES = ("物流", "质量", "服务", "价格", "退款")
#: share of paid orders followed by a review; chance a complaint is still open at the end of the data
REVIEW_SHARE = 0.15
OPEN_SHARE = 0.2


def make_feedback(interactions: pd.DataFrame, orders: pd.DataFrame, seed: int) -> pd.DataFrame:
    """The feedback table (contract dtypes) from the complaint interactions and the paid orders."""
    rng = np.random.default_rng([int(seed), 0xFEED])
    comp = interactions.loc[(interactions["event_type"] == "complaint").fillna(False).to_numpy(dtype=bool)]
    n_c = len(comp)
    ts_c = pd.to_datetime(comp["ts"]).to_numpy(dtype="datetime64[ns]")
    still_open = rng.random(n_c) < OPEN_SHARE
    days = rng.gamma(2.0, 2.0, n_c)  # about 4 days to resolve on average
    resolved = ts_c + (days * 86400e9).astype("timedelta64[ns]")
    complaints = pd.DataFrame(
        {
            "customer_id": comp["customer_id"].astype(str).to_numpy(),
            "ts": ts_c,
            "kind": "complaint",
            "rating": rng.choice([1, 2, 3], n_c, p=[0.55, 0.35, 0.10]),
            "channel": comp["channel"].astype(str).to_numpy(),
            "category": rng.choice(CATEGORIES, n_c),
            "status": np.where(still_open, "open", "resolved"),
            "resolved_at": np.where(still_open, np.datetime64("NaT"), resolved),
            "text": "对这次购物不满意",
        }
    )
    paid = orders.loc[(orders["status"] == "paid").fillna(False).to_numpy(dtype=bool)]
    pick = rng.random(len(paid)) < REVIEW_SHARE
    rev = paid.loc[pick]
    unhappy = rev["customer_id"].astype(str).isin(set(complaints["customer_id"])).to_numpy()
    stars = np.where(unhappy, rng.choice([1, 2, 3, 4, 5], len(rev), p=[0.2, 0.25, 0.25, 0.2, 0.1]),
                     rng.choice([1, 2, 3, 4, 5], len(rev), p=[0.03, 0.05, 0.12, 0.35, 0.45]))
    ts_r = pd.to_datetime(rev["ts"]).to_numpy(dtype="datetime64[ns]") + (
        rng.uniform(1, 10, len(rev)) * 86400e9
    ).astype("timedelta64[ns]")
    reviews = pd.DataFrame(
        {
            "customer_id": rev["customer_id"].astype(str).to_numpy(),
            "ts": ts_r,
            "kind": "review",
            "rating": stars,
            "channel": "app",
            "category": rev["category"].astype(str).to_numpy() if "category" in rev.columns else None,
            "status": "closed",
            "resolved_at": np.datetime64("NaT"),
            "text": np.where(stars >= 4, "很满意", "一般"),
        }
    )
    out = pd.concat([complaints, reviews], ignore_index=True).sort_values(["ts", "customer_id"], kind="stable")
    out.insert(0, "feedback_id", [f"F{i:08d}" for i in range(len(out))])
    return coerce_types(out.reset_index(drop=True).reindex(columns=empty_frame("feedback").columns), "feedback")


def write_feedback(interactions: pd.DataFrame, orders: pd.DataFrame, seed: int, out: Path) -> str:
    """Write :func:`make_feedback` to ``out/feedback.parquet``; returns the file name."""
    make_feedback(interactions, orders, seed).to_parquet(Path(out) / FEEDBACK_FILE, index=False)
    return FEEDBACK_FILE
