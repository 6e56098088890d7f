"""One customer's recommendations in well under a millisecond: the online path of ``POST /recommend``.

:class:`OnlineRecommender` computes, for a single purchase history, exactly what the batch function
:func:`training.cross_sell_job.recommend` computes for one customer (same scores, same list, same evidence
sentences; ``tests/unit/test_cross_sell_online.py`` holds them equal), with NumPy on the customer's few products
instead of pandas frames over all customers: the customer's vector ``u`` touches only the rows of the similarity
matrix of the products it bought, and the evidence rules are looked up per recommended product in an index
built once (consequent → its rules by lift).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.cross_sell import ItemItemModel


@dataclass
class _RuleIndex:
    """Rules grouped by consequent code: ``ante[start[b]:start[b + 1]]`` etc., strongest (lift, confidence) first."""

    start: np.ndarray
    ante: np.ndarray
    ante_name: np.ndarray
    cons_name: np.ndarray
    confidence: np.ndarray
    lift: np.ndarray


class OnlineRecommender:
    """The fitted model prepared for one-customer requests (sku lookup, CSR rows, rule index)."""

    def __init__(self, model: ItemItemModel) -> None:
        self.model = model
        self.code = {str(s): i for i, s in enumerate(model.vocab.skus)}
        self.S = model.similarity.tocsr()
        self.n = len(model.vocab.skus)
        self.pop_term = 1e-6 * np.asarray(model.popularity, dtype=np.float64)
        self.rules = self._index_rules(model)

    def _index_rules(self, model: ItemItemModel) -> _RuleIndex | None:
        r = model.rules
        if r is None or not len(r):
            return None
        a = pd.Index(model.vocab.skus).get_indexer(r["antecedent"])
        b = pd.Index(model.vocab.skus).get_indexer(r["consequent"])
        ok = (a >= 0) & (b >= 0)
        r, a, b = r[ok], a[ok], b[ok]
        # by consequent, then strongest first (the batch path's "sort by lift, confidence; first per product")
        order = np.lexsort((-r["confidence"].to_numpy(), -r["lift"].to_numpy(), b))
        b = b[order]
        return _RuleIndex(
            start=np.searchsorted(b, np.arange(self.n + 1)),
            ante=a[order],
            ante_name=r["antecedent_name"].to_numpy(dtype=object)[order],
            cons_name=r["consequent_name"].to_numpy(dtype=object)[order],
            confidence=r["confidence"].to_numpy(dtype=np.float64)[order],
            lift=r["lift"].to_numpy(dtype=np.float64)[order],
        )

    def codes(self, skus: Sequence[str] | np.ndarray) -> np.ndarray:
        """Model column of each sku, -1 when the model does not know it."""
        return np.fromiter((self.code.get(str(x), -1) for x in skus), dtype=np.int64, count=len(skus))

    def recommend(
        self,
        skus: Sequence[str] | np.ndarray,
        ts: np.ndarray,
        baskets: Sequence[str] | np.ndarray,
        as_of: pd.Timestamp,
        k: int = 10,
        exclude_recent_days: int = 30,
    ) -> list[dict[str, object]]:
        """Top ``k`` of one customer from its purchase lines (``skus``, ``ts`` as datetime64, ``baskets``): dicts
        ``rank, sku, product_name, score, evidence``; lines after ``as_of`` and unknown skus are not read."""
        basket_ids = np.zeros(0, dtype=np.int64)
        if len(baskets):
            basket_ids = np.unique(np.asarray(baskets, dtype=str), return_inverse=True)[1].astype(np.int64)
        return self.recommend_codes(self.codes(skus), ts, basket_ids, as_of, k, exclude_recent_days)

    def recommend_codes(
        self,
        col: np.ndarray,
        ts: np.ndarray,
        basket_ids: np.ndarray,
        as_of: pd.Timestamp,
        k: int = 10,
        exclude_recent_days: int = 30,
    ) -> list[dict[str, object]]:
        """:meth:`recommend` with the lines already as model columns (:meth:`codes`) and integer basket ids."""
        m = self.model
        t = np.datetime64(pd.Timestamp(as_of).to_datetime64(), "ns")
        ts = np.asarray(ts, dtype="datetime64[ns]")
        keep = np.flatnonzero((col >= 0) & (ts <= t))
        # one (basket, product) counts once, the first line of it, as in History.of
        _, first = np.unique(basket_ids[keep] * np.int64(self.n) + col[keep], return_index=True)
        rows = keep[np.sort(first)]
        c = col[rows]
        age = np.asarray((t - ts[rows]) / np.timedelta64(1, "D"), dtype=np.float64)
        items, inv = np.unique(c, return_inverse=True)
        counts = np.bincount(inv, minlength=len(items)).astype(np.float64)
        decayed = np.bincount(inv, weights=0.5 ** (age / m.half_life_days), minlength=len(items))
        last = np.full(len(items), np.inf)
        np.minimum.at(last, inv, 1.0 + age)
        score = self._scores(items, counts, decayed)
        recent = items[last <= exclude_recent_days]
        score[recent] = -np.inf
        kk = min(k, self.n)
        part = np.argpartition(-score, kk - 1)[:kk]
        top = part[np.argsort(-score[part], kind="stable")]
        top = top[np.isfinite(score[top])]
        pos = {int(x): j for j, x in enumerate(items.tolist())}
        return [
            {
                "rank": r + 1,
                "sku": str(m.vocab.skus[b]),
                "product_name": str(m.vocab.names[b]),
                "score": float(score[b]),
                "evidence": self._evidence(int(b), pos, items, counts, last),
            }
            for r, b in enumerate(top.tolist())
        ]

    def _neighbours(self, items: np.ndarray, weights: np.ndarray) -> np.ndarray:
        """``u · S`` for the sparse vector ``u`` (``weights`` at ``items``), from the CSR arrays of ``S``."""
        S = self.S
        starts, ends = S.indptr[items], S.indptr[items + 1]
        lens = ends - starts
        total = int(lens.sum())
        if total == 0:
            return np.zeros(self.n)
        offsets = np.repeat(starts - (np.cumsum(lens) - lens), lens) + np.arange(total)
        return np.bincount(S.indices[offsets], weights=S.data[offsets] * np.repeat(weights, lens), minlength=self.n)

    def _scores(self, items: np.ndarray, counts: np.ndarray, decayed: np.ndarray) -> np.ndarray:
        m = self.model
        nb = self._neighbours(items, decayed)
        top = nb.max() if len(nb) else 0.0
        nb = nb / top if top > 0 else np.zeros(self.n)
        if m.own == "repeat":
            again = np.zeros(self.n)
            again[items] = 1.0 - (1.0 - m.repeat_rate[items]) ** counts
            mx = again.max()
            own = again / mx if mx > 0 else again
            nb[items] = 0.0
            return own + m.beta * nb + self.pop_term
        own = np.zeros(self.n)
        if len(items):
            own[items] = decayed / decayed.max() if decayed.max() > 0 else 0.0
        return m.alpha * own + (1 - m.alpha) * nb + self.pop_term

    def _evidence(self, b: int, pos: dict[int, int], items: np.ndarray, counts: np.ndarray, last: np.ndarray) -> str:
        """The batch path's sentence (:func:`training.cross_sell_job._evidence`) for product ``b``."""
        pop = self.model.popularity[b]
        j = pos.get(b)
        if j is not None:
            return f"bought it {int(counts[j])}× before, last {int(last[j]) - 1} days ago"
        if not len(items):
            return f"popular: {pop:.1%} of customers bought it (no purchase history)"
        ri = self.rules
        if ri is not None:
            lo, hi = int(ri.start[b]), int(ri.start[b + 1])
            hit = np.flatnonzero(np.isin(ri.ante[lo:hi], items))
            if len(hit):
                i = lo + int(hit[0])
                word = (
                    "of its buyers also buy" if self.model.rules_level == "customer" else "of orders with it also hold"
                )
                return (
                    f"bought {ri.ante_name[i]}; {ri.confidence[i]:.0%} {word} {ri.cons_name[i]}, "
                    f"{ri.lift[i]:.1f}× the base rate"
                )
        return f"bought by customers with similar purchases; {pop:.1%} of all customers bought it"
