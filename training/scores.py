"""Scores people read: probability → score 1–99 → grade A–D, and readable labels for reasons.

Plain functions: batch scoring, the HTTP service and the tests all call these. Reasons themselves (exact
contributions, folding, top-k selection) live in :mod:`training.explain`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

GRADES = ("A", "B", "C", "D")


def to_score(prob: np.ndarray | Sequence[float]) -> np.ndarray:
    """Calibrated probability → integer score 1–99 (the percentage, clipped)."""
    p = np.asarray(prob, dtype="float64")
    return np.clip(np.rint(p * 100.0), 1, 99).astype(np.int64)


def fit_grade_thresholds(scores: np.ndarray, shares: Sequence[float] = (0.1, 0.2, 0.3)) -> list[int]:
    """Minimum scores for grades A, B, C so that roughly the top ``shares`` of the training
    population get A, the next B, the next C; the rest D. Thresholds never decrease A→C."""
    s = np.asarray(scores)
    if len(s) == 0:
        return [75, 50, 25]
    cum = np.cumsum(shares)
    cuts = [int(np.ceil(np.quantile(s, 1 - min(c, 1.0)))) for c in cum]
    out: list[int] = []
    for c in cuts:
        c = max(1, min(99, c))
        out.append(min(c, out[-1]) if out else c)
    return out


def to_grade(scores: np.ndarray | Sequence[int], thresholds: Sequence[int]) -> np.ndarray:
    """Score → grade A/B/C/D with the model's thresholds [A_min, B_min, C_min]."""
    s = np.asarray(scores)
    a, b, c = thresholds
    return np.where(s >= a, "A", np.where(s >= b, "B", np.where(s >= c, "C", "D")))


_LABELS = {
    "tenure_days": "days since the lead was created",
    "age": "age",
    "points_balance": "loyalty points",
    "marketing_consent": "consents to marketing",
    "orders_total": "paid orders so far",
    "spend_total": "total spend",
    "avg_order_value": "average order value",
    "refund_share": "share of orders refunded",
    "days_since_last_order": "days since last paid order",
    "days_since_first_order": "days since first paid order",
    "funnel_depth": "deepest funnel stage reached",
    "added_to_cart": "added to cart",
    "reached_checkout": "reached the checkout page",
    "claimed_coupon": "claimed a coupon",
    "days_since_coupon": "days since coupon claimed",
    "n_distinct_channels_90d": "channels used in 90 days",
    "touches_total": "marketing messages received",
    "responses_total": "marketing responses",
    "days_since_last_response": "days since last marketing response",
    "source_channel": "lead source",
    "province": "province",
    "industry": "industry",
    "company_size": "company size",
    "job_title": "job title",
    "gender": "gender",
    "member_level": "member level",
}


def readable_label(feature: str) -> str:
    """A sales-readable label for a feature name (falls back to a cleaned-up name)."""
    if feature in _LABELS:
        return _LABELS[feature]
    m = re.fullmatch(r"n_ch_(\w+?)_(\d+)d", feature)
    if m:
        return f"interactions on {m.group(1)} in {m.group(2)} days"
    m = re.fullmatch(r"n_(\w+?)_(\d+)d", feature)
    if m:
        return f"{m.group(1).replace('_', ' ')} events in {m.group(2)} days"
    m = re.fullmatch(r"days_since_(\w+)", feature)
    if m:
        return f"days since last {m.group(1).replace('_', ' ')}"
    m = re.fullmatch(r"(\w+?)_(\d+)d", feature)
    if m:
        return f"{m.group(1).replace('_', ' ')} in {m.group(2)} days"
    return feature.replace("_", " ")
