"""One customer's recommendations in a fraction of a millisecond: the online path of ``POST /recommend``.

:class:`OnlineRecommender` computes, for a single purchase history, exactly what the batch function
:func:`training.cross_sell_job.recommend` computes for one customer (same scores, same list, same evidence
sentences; ``tests/unit/test_cross_sell_online.py`` holds them equal), with NumPy on the customer's few products
instead of pandas frames over all customers. A request has two steps:

1. :meth:`OnlineRecommender.aggregate`: the history's lines up to ``as_of`` become the customer's products with
   their basket counts, time-decayed weights and days since the last purchase (:class:`Purchased`);
2. :meth:`OnlineRecommender.rank`: the model's scores from those (the customer's vector ``u`` touches only the
   rows of the similarity matrix of its products), the top ``k`` and their evidence.

Everything that does not depend on the request is prepared once per model: the sku lookup, the CSR arrays, the
sku and name strings, the rules grouped by consequent (strongest first) with their sentences already written,
and the popularity sentences. :meth:`OnlineRecommender.aggregate_all` does step 1 for every customer of a
line table at once (each at its own last purchase, the default ``as_of``), with the same arithmetic in the same
order as :meth:`aggregate`, so a service can keep step 1's result per customer and answer with step 2 alone.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.cross_sell import ItemItemModel

_DAY = np.timedelta64(1, "D")


@dataclass
class _RuleIndex:
    """Rules grouped by consequent code: ``ante[start[b]:start[b + 1]]`` etc., strongest (lift, confidence) first;
    ``text`` is each rule's evidence sentence."""

    start: np.ndarray
    ante: np.ndarray
    text: list[str]


@dataclass
class Purchased:
    """One customer's products as of a time: model columns ascending, baskets holding each, the sum of the
    baskets' decay weights ``0.5 ** (age / half_life)``, and ``1 + age`` in days of the latest basket."""

    items: np.ndarray
    counts: np.ndarray
    decayed: np.ndarray
    last: np.ndarray


@dataclass
class PurchasedTable:
    """:class:`Purchased` of many customers in one set of arrays: customer ``c``'s rows are
    ``start[c]:start[c + 1]``."""

    start: np.ndarray
    items: np.ndarray
    counts: np.ndarray
    decayed: np.ndarray
    last: np.ndarray

    def of(self, c: int) -> Purchased:
        """Customer ``c``'s products (views, not copies)."""
        lo, hi = int(self.start[c]), int(self.start[c + 1])
        return Purchased(self.items[lo:hi], self.counts[lo:hi], self.decayed[lo:hi], self.last[lo:hi])


class OnlineRecommender:
    """The fitted model prepared for one-customer requests (sku lookup, CSR rows, rule index, sentences)."""

    def __init__(self, model: ItemItemModel) -> None:
        self.model = model
        self.code = {str(s): i for i, s in enumerate(model.vocab.skus)}
        self.S = model.similarity.tocsr()
        self.n = len(model.vocab.skus)
        self.pop_term = 1e-6 * np.asarray(model.popularity, dtype=np.float64)
        self.sku_text = [str(s) for s in model.vocab.skus]
        self.name_text = [str(s) for s in model.vocab.names]
        pop = model.popularity
        self.popular_text = [f"popular: {p:.1%} of customers bought it (no purchase history)" for p in pop]
        self.similar_text = [f"bought by customers with similar purchases; {p:.1%} of all customers bought it"
                             for p in pop]
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
        word = "of its buyers also buy" if model.rules_level == "customer" else "of orders with it also hold"
        ante_name = r["antecedent_name"].to_numpy(dtype=object)[order]
        cons_name = r["consequent_name"].to_numpy(dtype=object)[order]
        confidence = r["confidence"].to_numpy(dtype=np.float64)[order]
        lift = r["lift"].to_numpy(dtype=np.float64)[order]
        text = [
            f"bought {an}; {c:.0%} {word} {cn}, {li:.1f}× the base rate"
            for an, c, cn, li in zip(ante_name, confidence, cons_name, lift, strict=True)
        ]
        return _RuleIndex(start=np.searchsorted(b, np.arange(self.n + 1)), ante=a[order], text=text)

    def codes(self, skus: Sequence[str] | np.ndarray) -> np.ndarray:
        """Model column of each sku, -1 when the model does not know it."""
        return np.fromiter((self.code.get(str(x), -1) for x in skus), dtype=np.int64, count=len(skus))

    # ------------------------------------------------------------------------------------------- step 1
    def aggregate(self, col: np.ndarray, ts: np.ndarray, basket_ids: np.ndarray, as_of: pd.Timestamp) -> Purchased:
        """The customer's products as of ``as_of`` from its lines (model columns ``col``, -1 unknown; ``ts``;
        integer ``basket_ids``): lines after ``as_of`` and unknown products are not read, and one
        (basket, product) counts once, at its first line."""
        t = np.datetime64(pd.Timestamp(as_of).to_datetime64(), "ns")
        ts = np.asarray(ts, dtype="datetime64[ns]")
        keep = np.flatnonzero((col >= 0) & (ts <= t))
        _, first = np.unique(basket_ids[keep] * np.int64(self.n) + col[keep], return_index=True)
        rows = keep[np.sort(first)]
        c = col[rows]
        age = np.asarray((t - ts[rows]) / _DAY, dtype=np.float64)
        items, inv = np.unique(c, return_inverse=True)
        counts = np.bincount(inv, minlength=len(items)).astype(np.float64)
        decayed = np.bincount(inv, weights=0.5 ** (age / self.model.half_life_days), minlength=len(items))
        last = np.full(len(items), np.inf)
        np.minimum.at(last, inv, 1.0 + age)
        return Purchased(items, counts, decayed, last)

    def aggregate_all(
        self, customer: np.ndarray, col: np.ndarray, ts: np.ndarray, basket_ids: np.ndarray, n_customers: int
    ) -> PurchasedTable:
        """:meth:`aggregate` of every customer at once, each as of its own last line (known product or not).

        ``customer`` is each line's customer number (0 … ``n_customers`` − 1) and the lines are sorted by
        customer, then time (stable), as a customer's own lines are. Sums and minima run over the same values
        in the same line order as :meth:`aggregate`, so the arrays are bit-for-bit what it gives per customer.
        """
        ts = np.asarray(ts, dtype="datetime64[ns]")
        customer = np.asarray(customer, dtype=np.int64)
        n_lines = np.bincount(customer, minlength=n_customers)
        ends = np.cumsum(n_lines)
        last_ts = ts[np.maximum(ends - 1, 0)]  # sorted by time within a customer: its last line is its as_of
        keep = np.flatnonzero(col >= 0)  # every line is at or before its customer's last one
        # a (customer, basket, product) counts once, at its first line; lines sorted by time within a customer,
        # so the first of a pair is the first one before any as_of that reads the pair at all
        pairs = pd.DataFrame({"c": customer[keep], "b": basket_ids[keep], "i": col[keep]})
        rows = keep[~pairs.duplicated().to_numpy()]
        cust = customer[rows]
        age = np.asarray((last_ts[cust] - ts[rows]) / _DAY, dtype=np.float64)
        keys, inv = np.unique(cust * np.int64(self.n) + col[rows], return_inverse=True)
        counts = np.bincount(inv, minlength=len(keys)).astype(np.float64)
        decayed = np.bincount(inv, weights=0.5 ** (age / self.model.half_life_days), minlength=len(keys))
        last = np.full(len(keys), np.inf)
        np.minimum.at(last, inv, 1.0 + age)
        start = np.searchsorted(keys // self.n, np.arange(n_customers + 1))
        return PurchasedTable(start, keys % self.n, counts, decayed, last)

    # ------------------------------------------------------------------------------------------- step 2
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
        return self.rank(self.aggregate(col, ts, basket_ids, as_of), k, exclude_recent_days)

    def rank(self, p: Purchased, k: int = 10, exclude_recent_days: int = 30) -> list[dict[str, object]]:
        """Top ``k`` for the customer's products ``p``, leaving out those bought in the last N days."""
        score = self._scores(p.items, p.counts, p.decayed)
        score[p.items[p.last <= exclude_recent_days]] = -np.inf
        kk = min(k, self.n)
        part = np.argpartition(-score, kk - 1)[:kk]
        top = part[np.argsort(-score[part], kind="stable")]
        top = top[np.isfinite(score[top])]
        codes = top.tolist()
        return [
            {"rank": r + 1, "sku": self.sku_text[b], "product_name": self.name_text[b], "score": s, "evidence": e}
            for r, (b, s, e) in enumerate(zip(codes, score[top].tolist(), self._evidence(top, p), strict=True))
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
        if top > 0:
            nb /= top
        else:
            nb = np.zeros(self.n)
        if m.own == "repeat":
            # own + β·nb + pop, with nb = 0 at the customer's products and own = 0 elsewhere; adding an exact
            # zero changes nothing, so: β·nb + pop everywhere, then own + pop at the customer's products
            again = 1.0 - (1.0 - m.repeat_rate[items]) ** counts
            mx = again.max() if len(again) else 0.0
            own = again / mx if mx > 0 else again
            nb *= m.beta
            nb += self.pop_term
            nb[items] = own + self.pop_term[items]
            return nb
        own_dense = np.zeros(self.n)
        if len(items):
            own_dense[items] = decayed / decayed.max() if decayed.max() > 0 else 0.0
        return m.alpha * own_dense + (1 - m.alpha) * nb + self.pop_term

    def _evidence(self, top: np.ndarray, p: Purchased) -> list[str]:
        """The batch path's sentence (:func:`training.cross_sell_job._evidence`) for each product of ``top``."""
        items = p.items
        if not len(items):
            return [self.popular_text[b] for b in top.tolist()]
        j = np.minimum(np.searchsorted(items, top), len(items) - 1)
        own = items[j] == top
        owned: np.ndarray | None = None
        out = []
        ri = self.rules
        for b, jj, is_own in zip(top.tolist(), j.tolist(), own.tolist(), strict=True):
            if is_own:
                out.append(f"bought it {int(p.counts[jj])}× before, last {int(p.last[jj]) - 1} days ago")
                continue
            if ri is not None:
                lo, hi = int(ri.start[b]), int(ri.start[b + 1])
                if hi > lo:
                    if owned is None:
                        owned = np.zeros(self.n, dtype=bool)
                        owned[items] = True
                    hit = owned[ri.ante[lo:hi]]
                    i = int(hit.argmax())
                    if hit[i]:
                        out.append(ri.text[lo + i])
                        continue
            out.append(self.similar_text[b])
        return out
