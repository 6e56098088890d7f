"""BANT answers (budget, authority, need, timeline) for part of the simulated leads, with a planted effect.

Sales reps qualify some leads on a call. A seeded share of customers (:data:`ANSWERED_SHARE`) get answers; each
answer is a noisy reading of the customer's hidden propensity ``z`` (the one that drives conversion in the
simulator), so a larger budget, a decision maker and a near purchase timeline go with more conversions. A reading
is noisy (:data:`NOISE`) and each answer is missing on its own with :data:`SKIP` (a rep does not always ask
everything). Drawn from a generator of its own, so the other tables of a seed do not change.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import BUDGET_RANGES, PURCHASE_TIMELINES, coerce_types, get_table

#: share of customers with BANT answers
ANSWERED_SHARE = 0.4
#: noise of each answer's reading of the hidden propensity (standard deviations)
NOISE = 0.9
#: chance that one answer of an answered lead is missing
SKIP = 0.15
#: product lines a lead may ask about; the last is "not decided yet"
PRODUCT_LINES = ("会员服务", "企业采购", "定制方案", "未明确")


def add_bant_answers(customers: pd.DataFrame, z: np.ndarray, seed: int) -> pd.DataFrame:
    """``customers`` with ``budget_range``, ``decision_maker``, ``product_interest`` and ``purchase_timeline``."""
    n = len(customers)
    rng = np.random.default_rng([int(seed), 0xBA27])
    answered = rng.random(n) < ANSWERED_SHARE

    def reading() -> np.ndarray:
        return z + NOISE * rng.standard_normal(n)

    def asked() -> np.ndarray:
        return answered & (rng.random(n) >= SKIP)

    budget = np.searchsorted(np.array([-0.9, 0.1, 1.0]), reading())
    decides = reading() > 0.3
    need = np.where(reading() > -0.6, rng.integers(0, len(PRODUCT_LINES) - 1, n), len(PRODUCT_LINES) - 1)
    soon = 3 - np.searchsorted(np.array([-0.7, 0.2, 1.0]), reading())  # a higher reading buys sooner
    def kept(values: np.ndarray) -> np.ndarray:
        """``values`` as objects, None where this answer was not asked."""
        out = np.asarray(values, dtype=object).copy()
        out[~asked()] = None
        return out

    out = customers.copy()
    out["budget_range"] = kept(np.array(BUDGET_RANGES, dtype=object)[budget])
    out["decision_maker"] = pd.array(kept(decides), dtype="boolean")
    out["product_interest"] = kept(np.array(PRODUCT_LINES, dtype=object)[need])
    out["purchase_timeline"] = kept(np.array(PURCHASE_TIMELINES, dtype=object)[soon])
    order = [c for c in get_table("customers").column_names if c in out.columns]
    return coerce_types(out[order + [c for c in out.columns if c not in order]], "customers")
