"""A randomised coupon campaign with a planted, segment-dependent effect (for `crmscore train uplift`).

The campaign is sent ``SEND_DAYS_BEFORE`` days before the as-of cut-off T, at 10:00, to every customer with a
paid order in (T − 180 d, send]: each is assigned at random (a fair coin) to the coupon arm (an ``sms`` touch of
campaign ``CMP-RCT-COUPON``) or the control arm (a row of campaign ``CMP-RCT-COUPON-HOLDOUT``: the customer was
in the test and was sent nothing, so it is never opened or clicked). A campaign's control arm is the campaign id
with the suffix :data:`HOLDOUT_SUFFIX`; `crmscore train uplift` reads the arms that way.

A treated customer places one extra paid order within ``WINDOW_DAYS`` days of the send with probability τ(x), the
planted effect, by days since the last paid order at the send (member levels none and silver): ≤ 30 days 0 (they
would buy anyway), 31–90 days 0.3, over 90 days 0.6; gold and platinum members get half of that (loyal customers
need the coupon less). τ is the probability of the order the coupon causes; the uplift in the outcome "any paid
order in the window" is τ·(1 − p), with p the customer's own chance of buying in the window.
``truth/coupon_uplift.parquet`` keeps each customer's arm and τ.

Only customers who are already active (a paid order in (T − 180 d, T]) are in the test and the extra orders fall
before T, so who is a lead or an active customer at T — and the lead and churn truth — does not change.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date
from typing import Any

import numpy as np
import pandas as pd

from features.contract import coerce_types

CAMPAIGN_ID = "CMP-RCT-COUPON"
#: a campaign's control (holdout) arm is recorded under the campaign id with this suffix
HOLDOUT_SUFFIX = "-HOLDOUT"
SEND_DAYS_BEFORE = 15
WINDOW_DAYS = 14
LOOKBACK_DAYS = 180
#: (upper bound of days since the last paid order, τ) — the planted effect for member levels none / silver
TAU_BY_RECENCY = ((30, 0.0), (90, 0.3), (np.inf, 0.6))
#: member levels whose τ is halved
LOYAL_LEVELS = ("gold", "platinum")


@dataclass
class CouponCampaign:
    """The tables with the campaign added, the per-customer truth (arm, τ) and a summary for the run's meta."""

    orders: pd.DataFrame
    touches: pd.DataFrame
    truth: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)


def planted_tau(days_since_last_order: np.ndarray, member_level: np.ndarray) -> np.ndarray:
    """The planted effect τ (probability of the order the coupon causes) per customer."""
    d = np.asarray(days_since_last_order, dtype=float)
    tau = np.select([d <= b for b, _ in TAU_BY_RECENCY], [v for _, v in TAU_BY_RECENCY], 0.0)
    loyal = pd.Series(member_level, dtype="string").str.lower().isin(LOYAL_LEVELS).to_numpy()
    return np.where(loyal, tau / 2.0, tau)


def add_coupon_campaign(
    customers: pd.DataFrame, orders: pd.DataFrame, touches: pd.DataFrame, as_of: date, seed: int
) -> CouponCampaign:
    """Add the randomised coupon campaign to ``touches`` (both arms) and the orders it causes to ``orders``.

    Deterministic for ``seed`` (its own random stream: the other tables are not redrawn)."""
    rng = np.random.default_rng([seed, 23])
    t_cut = pd.Timestamp(as_of)
    send = t_cut.normalize() - pd.Timedelta(days=SEND_DAYS_BEFORE) + pd.Timedelta(hours=10)
    paid = orders.loc[(orders["status"] == "paid") & (orders["ts"] <= send), ["customer_id", "ts"]]
    last = paid.groupby("customer_id", observed=True)["ts"].max()
    last = last[last > t_cut - pd.Timedelta(days=LOOKBACK_DAYS)].sort_index()
    ids = last.index.to_numpy(dtype=object)
    n = len(ids)
    if n == 0:
        empty = pd.DataFrame({"customer_id": pd.array([], dtype="string"), "arm": [], "tau": []})
        return CouponCampaign(orders, touches, empty, {"campaign_id": CAMPAIGN_ID, "customers": 0})
    level = customers.set_index("customer_id")["member_level"].reindex(ids).to_numpy(dtype=object)
    days = ((send - last).dt.total_seconds() / 86400.0).to_numpy()
    tau = planted_tau(days, level)
    treated = rng.random(n) < 0.5
    caused = treated & (rng.random(n) < tau)
    # the caused order: 1–29 days after the send, during the day
    offset = pd.to_timedelta(rng.integers(1, WINDOW_DAYS, n) * 86400 + rng.integers(0, 12 * 3600, n), unit="s")
    order_ts = (send + offset)[caused]
    k = int(caused.sum())
    new_orders = pd.DataFrame(
        {
            "order_id": [f"OC{i:08d}" for i in range(1, k + 1)],
            "customer_id": ids[caused],
            "ts": order_ts,
            "amount": np.round(rng.gamma(2.0, 60.0, n)[caused] + 9.9, 2),
            "status": "paid",
            "items": rng.integers(1, 4, n)[caused],
            "category": orders["category"].dropna().iloc[0] if orders["category"].notna().any() else None,
        }
    )
    opened = treated & ((rng.random(n) < 0.45) | caused)
    clicked = opened & ((rng.random(n) < 0.4) | caused)
    open_ts = send + pd.to_timedelta(rng.integers(60, 6 * 3600, n), unit="s")
    click_ts = open_ts + pd.to_timedelta(rng.integers(5, 600, n), unit="s")
    new_touches = pd.DataFrame(
        {
            "touch_id": [f"TC{i:08d}" for i in range(1, n + 1)],
            "customer_id": ids,
            "campaign_id": np.where(treated, CAMPAIGN_ID, CAMPAIGN_ID + HOLDOUT_SUFFIX),
            "channel": "sms",
            "sent_at": send,
            "opened_at": pd.Series(open_ts).where(opened),
            "clicked_at": pd.Series(click_ts).where(clicked),
            "coupon_claimed": caused,
            "responded": caused,
        }
    )
    orders = pd.concat([orders, coerce_types(new_orders, "orders")], ignore_index=True)
    orders = orders.sort_values("ts", kind="stable", ignore_index=True)
    touches = pd.concat([touches, coerce_types(new_touches, "marketing_touches")], ignore_index=True)
    touches = touches.sort_values("sent_at", kind="stable", ignore_index=True)
    truth = pd.DataFrame(
        {"customer_id": pd.array(ids, dtype="string"), "arm": np.where(treated, "coupon", "holdout"), "tau": tau}
    )
    meta = {
        "campaign_id": CAMPAIGN_ID,
        "sent_at": send.isoformat(),
        "window_days": WINDOW_DAYS,
        "customers": n,
        "treated": int(treated.sum()),
        "control": int((~treated).sum()),
        "caused_orders": k,
        "mean_tau_treated": float(tau[treated].mean()) if treated.any() else None,
    }
    return CouponCampaign(orders, touches, truth, meta)
