"""Scores people read: probability → score 1–99 → grade A–D, and reasons with readable labels.

Plain functions: batch scoring, the HTTP service and the tests all call these.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd

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


def _jsonable(v: Any) -> Any:
    if v is None or (isinstance(v, float) and not np.isfinite(v)):
        return None
    if isinstance(v, np.generic):
        v = v.item()
        if isinstance(v, float) and not np.isfinite(v):
            return None
    if v is pd.NA or v is pd.NaT:
        return None
    return v


def top_reasons(
    contribs: np.ndarray,
    groups: Sequence[tuple[str, Sequence[int]]],
    X: pd.DataFrame | None,
    top: int = 3,
) -> list[dict[str, list[dict[str, Any]]]]:
    """Top ``top`` positive and negative reasons per row.

    ``contribs`` has one column per preprocessed feature plus the bias last; ``groups`` folds
    preprocessed columns back into input features. Each reason: feature, label, value, contribution.
    """
    names = [g for g, _ in groups]
    folded = np.column_stack([contribs[:, list(idx)].sum(axis=1) for _, idx in groups]) if groups else contribs[:, :0]
    out = []
    order = np.argsort(-folded, axis=1, kind="stable")
    for r in range(folded.shape[0]):
        row = folded[r]
        pos = [j for j in order[r, :top] if row[j] > 0]
        neg = [j for j in order[r, ::-1][:top] if row[j] < 0]

        def reason(j: int, r: int = r, row: np.ndarray = row) -> dict[str, Any]:
            value = _jsonable(X.iloc[r][names[j]]) if X is not None and names[j] in X.columns else None
            return {
                "feature": names[j],
                "label": readable_label(names[j]),
                "value": value,
                "contribution": float(row[j]),
            }

        out.append({"positive": [reason(j) for j in pos], "negative": [reason(j) for j in neg]})
    return out
