"""Cross-sell: association rules over order lines and an item-item next-basket model, evaluated out of time.

Inputs are the contract's ``orders`` (customer, time, status) and the optional ``order_items`` (the lines:
sku, product name, quantity). :func:`load_lines` joins them into one row per paid product line.

* :func:`association_rules`: one-antecedent rules ``A → B`` with support, confidence and lift, counted with
  scipy sparse matrices (``Xᵀ X`` over a binary transactions × items matrix). Transactions are baskets
  (orders) or customers (everything a customer bought before T; "34% of its buyers also buy …").
* :class:`ItemItemModel`: TIFU-KNN-style next-basket scores: a customer's time-decayed purchase vector ``u``
  (each basket weighted ``0.5 ** (age / half_life)``) and its neighbourhood ``u · S`` through the cosine
  item-item co-occurrence ``S``. Two ways to score the customer's own products (``own``): ``decayed``,
  ``score = α · u/max(u) + (1 − α) · uS/max(uS)``; or ``repeat``, the chance of buying a product again,
  ``p = 1 − (1 − r)^n`` with ``r`` the product's repeat rate (share of its buyers who bought it in two or more
  baskets, shrunk towards the overall rate) and ``n`` the customer's baskets holding it, so a product people
  rebuy (paper cups) outranks a one-off (a clock) bought as often; products new to the customer then score
  ``β · uS/max(uS)``: ``score = p/max(p) + β · [n = 0] · uS/max(uS)``.
* Baselines: global popularity and personal top-frequency (filled with popularity).
* :func:`evaluate_split`: train on lines up to T, predict what each customer buys in (T, T + horizon];
  recall@k and NDCG@k over all bought products, repeat products (bought before T) and new-to-customer
  products; plus the same with the customer's past products left out of the list ("explore").

Customer names and other PII never enter: the frames here hold ids, times, skus and product names only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd
import scipy.sparse as sp
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.messages import M_

#: Online Retail's non-product stock codes (postage, manual, discount, fees): never recommended
DEFAULT_EXCLUDE = ["POST", "DOT", "M", "m", "D", "C2", "CRUK", "S", "B", "PADS", "BANK CHARGES", "AMAZONFEE"]


class RuleThresholds(BaseModel):
    """Thresholds of the association rules (a rule must meet all of them)."""

    model_config = ConfigDict(extra="forbid")

    level: Literal["customer", "basket"] = Field(
        default="customer", description="transactions: each customer's purchases before T, or each basket"
    )
    min_support: float = Field(default=0.01, gt=0, le=1, description="share of transactions holding A and B")
    min_confidence: float = Field(default=0.2, gt=0, le=1, description="P(B | A)")
    min_lift: float = Field(default=1.5, gt=0, description="confidence / P(B)")
    max_rules: int = Field(default=20000, ge=1, description="the strongest rules by lift kept")


class ModelParams(BaseModel):
    """Grid of the item-item model's parameters; the best on a validation window is refitted at T."""

    model_config = ConfigDict(extra="forbid")

    alpha: list[float] = Field(default=[0.6, 0.8], description="weight of the customer's own history")
    half_life_days: list[float] = Field(default=[180.0], description="age at which a basket counts half")
    cooccurrence: list[Literal["basket", "customer"]] = Field(
        default=["customer"], description="items co-occur in one basket, or with one customer"
    )
    neighbours: int = Field(default=100, ge=1, description="neighbours kept per item in S")
    own: list[Literal["decayed", "repeat"]] = Field(
        default=["decayed", "repeat"],
        description="how the customer's own products score: time-decayed counts (blended with alpha), or the "
        "chance of buying again, 1 − (1 − r)^n, with r the product's repeat rate and n the customer's baskets "
        "holding it (neighbours then fill in with weight beta)",
    )
    beta: list[float] = Field(default=[0.1, 0.3], description="weight of the neighbours for own = repeat")
    repeat_prior: float = Field(
        default=5.0, ge=0, description="pseudo-buyers shrinking a product's repeat rate towards the overall rate"
    )

    @field_validator("alpha")
    @classmethod
    def _unit(cls, v: list[float]) -> list[float]:
        if not v or any(not 0 <= a <= 1 for a in v):
            raise ValueError(M_("alpha values must be between 0 and 1"))
        return v


class CrossSellConfig(BaseModel):
    """`configs/cross_sell.yaml`: item, exclusions, rule thresholds, evaluation window and the gate."""

    model_config = ConfigDict(extra="forbid")

    item: Literal["sku", "category"] = Field(
        default="sku",
        description="what is recommended: a product (order_items.sku) or its category (order_items.category)",
    )
    as_of: str | None = Field(default=None, description="T; default the last paid line minus horizon_days")
    horizon_days: int = Field(default=90, ge=1, description="evaluation window (T, T + horizon]")
    k: int = Field(default=10, ge=1, le=100, description="list length of recall@k and NDCG@k")
    exclude_skus: list[str] = Field(default_factory=lambda: list(DEFAULT_EXCLUDE))
    min_item_buyers: int = Field(default=2, ge=1, description="items bought by fewer customers are dropped")
    rules: RuleThresholds = Field(default_factory=RuleThresholds)
    model: ModelParams = Field(default_factory=ModelParams)
    exclude_recent_days: int = Field(default=30, ge=0, description="recommend: leave out products bought lately")
    promotion_margin: float = Field(default=0.0, ge=0, description="recall@k gain over the champion to promote")
    experiment: str = "crmscore-cross_sell"
    model_name: str = "cross_sell"


class CrossSellDataError(ValueError):
    """The data dir lacks what cross-sell needs; the message names the table or field."""


# --------------------------------------------------------------------------------------------------- data


def load_lines(data_dir: str | Path, exclude_skus: Sequence[str] = (), item: str = "sku") -> pd.DataFrame:
    """Paid product lines: ``customer_id, basket, ts, sku, product_name`` (quantity > 0, excluded skus dropped).

    ``order_items.order_id`` joins ``orders.order_id``; when most do not (a mapping where an orders row is one
    invoice line, like Online Retail's) the line joins the orders row ``"{order_id}-{line}"``. Lines with no
    paid order (no customer, a refund or cancellation) are left out.

    ``item="category"``: the item of each line is its category (``sku`` and ``product_name`` both hold
    ``order_items.category``; lines without one are left out), so everything downstream recommends categories.
    """
    d = Path(data_dir)
    if not d.is_dir():
        raise CrossSellDataError(M_("data dir not found: {d}", d=d))
    for t in ("orders", "order_items"):
        if not (d / f"{t}.parquet").is_file():
            raise CrossSellDataError(
                M_(
                    "{d}: missing table {t} ({t}.parquet); cross-sell needs orders and their lines (order_items): "
                    "ingest them with a mapping (e.g. configs/mapping.online_retail.yaml)",
                    d=d, t=t,
                )
            )
    orders = pd.read_parquet(d / "orders.parquet", columns=["order_id", "customer_id", "ts", "status"])
    items = pd.read_parquet(d / "order_items.parquet")
    for c in ("order_id", "line", "sku"):
        if c not in items.columns:
            raise CrossSellDataError(M_("order_items: field {c!r} is missing", c=c))
    oid = pd.Index(orders["order_id"].astype(str))
    item_oid = items["order_id"].astype(str)
    pos = oid.get_indexer(item_oid)
    if (pos >= 0).mean() < 0.5:
        alt = oid.get_indexer(item_oid + "-" + items["line"].astype("Int64").astype(str))
        if (alt >= 0).sum() > (pos >= 0).sum():
            pos = alt
    qty = pd.to_numeric(items["quantity"], errors="coerce") if "quantity" in items.columns else None
    keep = pos >= 0
    if qty is not None:
        keep &= (qty.fillna(1) > 0).to_numpy()
    sku = items["sku"].astype(str).str.strip()
    keep &= ~sku.isin(set(exclude_skus)).to_numpy()
    names = items["product_name"] if "product_name" in items.columns else pd.Series(pd.NA, index=items.index)
    if item == "category":
        if "category" not in items.columns:
            raise CrossSellDataError(M_(
                "order_items: field 'category' is missing (cross-sell item: category); map it or use item: sku"
            ))
        cat = items["category"].astype("string").str.strip()
        keep &= (cat.notna() & (cat != "")).fillna(False).to_numpy(dtype=bool)
        sku = cat.fillna("").astype(str)
        names = cat
    elif item != "sku":
        raise CrossSellDataError(M_("cross-sell item {item!r}: use sku or category", item=item))
    o = orders.iloc[pos[keep]]
    paid = (o["status"].astype(str) == "paid").to_numpy()
    out = pd.DataFrame(
        {
            "customer_id": o["customer_id"].astype(str).to_numpy()[paid],
            # the basket: the order id of the line (Online Retail: the invoice)
            "basket": item_oid.to_numpy()[keep][paid],
            "ts": pd.to_datetime(o["ts"]).to_numpy()[paid],
            "sku": sku.to_numpy()[keep][paid],
            "product_name": names.astype("string").to_numpy()[keep][paid],
        }
    )
    if out.empty:
        raise CrossSellDataError(M_("{d}: no paid order lines (order_items joined to paid orders)", d=d))
    return out


def default_as_of(lines: pd.DataFrame, horizon_days: int) -> pd.Timestamp:
    """The last line's day minus the horizon: the latest T whose window (T, T + horizon] is complete."""
    return (pd.Timestamp(lines["ts"].max()) - pd.Timedelta(days=horizon_days)).normalize()


def split_at(lines: pd.DataFrame, t: pd.Timestamp, horizon_days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Lines up to and including T (training) and lines in (T, T + horizon] (what is predicted)."""
    ts = lines["ts"]
    end = t + pd.Timedelta(days=horizon_days)
    return lines[ts <= t], lines[(ts > t) & (ts <= end)]


# --------------------------------------------------------------------------------------------------- rules


@dataclass
class Vocabulary:
    """Item codes: sku → column, with a product name per sku (the most frequent one)."""

    skus: np.ndarray
    names: np.ndarray

    @classmethod
    def of(cls, lines: pd.DataFrame, min_buyers: int = 1) -> Vocabulary:
        """The skus of ``lines`` bought by at least ``min_buyers`` customers, most bought first."""
        buyers = lines.drop_duplicates(["customer_id", "sku"])["sku"].value_counts()
        skus = buyers.index[buyers.to_numpy() >= min_buyers].to_numpy(dtype=object)
        named = lines.dropna(subset=["product_name"])
        # the most frequent name of each sku (the first seen on a tie), counted in one pass
        pairs = named.groupby(["sku", "product_name"], sort=False).size().reset_index(name="n")
        pairs = pairs.sort_values("n", ascending=False, kind="stable").drop_duplicates("sku")
        names = pairs.set_index("sku")["product_name"].reindex(skus).astype(object).to_numpy()
        names = np.where(pd.isna(names), skus, names)
        return cls(skus=skus, names=names)

    def codes(self, sku: pd.Series) -> np.ndarray:
        """Column of each sku, -1 when unknown."""
        return pd.Index(self.skus).get_indexer(sku)


def transactions(lines: pd.DataFrame, vocab: Vocabulary, by: str) -> sp.csr_matrix:
    """Binary transactions × items matrix; a transaction is a basket or a customer (``by``)."""
    col = vocab.codes(lines["sku"])
    ok = col >= 0
    row, _ = pd.factorize(lines[by].to_numpy()[ok])
    n_rows = int(row.max()) + 1 if len(row) else 0
    m = sp.csr_matrix((np.ones(len(row), dtype=np.float32), (row, col[ok])), shape=(n_rows, len(vocab.skus)))
    m.sum_duplicates()
    m.data[:] = 1.0
    return m


def association_rules(lines: pd.DataFrame, vocab: Vocabulary, thresholds: RuleThresholds) -> pd.DataFrame:
    """Rules ``A → B`` meeting the thresholds: support, confidence, lift, counts, sorted by lift.

    ``support = n(A∧B)/N``, ``confidence = n(A∧B)/n(A)``, ``lift = confidence / (n(B)/N)``, with N the number of
    transactions (customers or baskets, per ``thresholds.level``).
    """
    X = transactions(lines, vocab, "customer_id" if thresholds.level == "customer" else "basket")
    n = X.shape[0]
    cols = [
        "antecedent", "consequent", "antecedent_name", "consequent_name", "support", "confidence", "lift",
        "n_both", "n_antecedent", "n_consequent", "n_transactions",
    ]  # fmt: skip
    if n == 0:
        return pd.DataFrame(columns=cols)
    counts = np.asarray(X.sum(axis=0)).ravel()
    min_count = thresholds.min_support * n
    frequent = np.flatnonzero(counts >= min_count)
    Xf = X[:, frequent]
    C = (Xf.T @ Xf).tocoo()
    keep = (C.row != C.col) & (C.data >= min_count)
    a, b, nab = frequent[C.row[keep]], frequent[C.col[keep]], C.data[keep].astype(np.float64)
    na, nb = counts[a].astype(np.float64), counts[b].astype(np.float64)
    conf = nab / na
    lift = conf / (nb / n)
    ok = (conf >= thresholds.min_confidence) & (lift >= thresholds.min_lift)
    r = pd.DataFrame(
        {
            "antecedent": vocab.skus[a[ok]],
            "consequent": vocab.skus[b[ok]],
            "antecedent_name": vocab.names[a[ok]],
            "consequent_name": vocab.names[b[ok]],
            "support": nab[ok] / n,
            "confidence": conf[ok],
            "lift": lift[ok],
            "n_both": nab[ok].astype(np.int64),
            "n_antecedent": na[ok].astype(np.int64),
            "n_consequent": nb[ok].astype(np.int64),
            "n_transactions": n,
        }
    )
    r = r.sort_values(["lift", "support", "antecedent", "consequent"], ascending=[False, False, True, True])
    return r.head(thresholds.max_rules).reset_index(drop=True)


# --------------------------------------------------------------------------------------------------- models


@dataclass
class History:
    """A set of customers' purchases before T as sparse customers × items matrices."""

    customers: pd.Index
    counts: sp.csr_matrix  # distinct baskets holding the item
    decayed: sp.csr_matrix  # the same, each basket weighted 0.5 ** (age / half_life)
    last_days: sp.csr_matrix  # 1 + days between T and the last purchase of the item (0 = never)

    @classmethod
    def of(
        cls,
        lines: pd.DataFrame,
        vocab: Vocabulary,
        t: pd.Timestamp,
        half_life_days: float,
        customers: pd.Index | None = None,
    ) -> History:
        """History of ``customers`` (default: every customer in ``lines``) from lines up to T."""
        past = lines[lines["ts"] <= t].drop_duplicates(["customer_id", "basket", "sku"])
        col = vocab.codes(past["sku"])
        ids = pd.Index(pd.unique(past["customer_id"])) if customers is None else pd.Index(customers)
        row = ids.get_indexer(past["customer_id"])
        ok = (col >= 0) & (row >= 0)
        row, col = row[ok], col[ok]
        ts = past["ts"].to_numpy(dtype="datetime64[ns]")[ok]
        age = ((np.datetime64(t, "ns") - ts) / np.timedelta64(1, "D")).astype(np.float64)
        shape = (len(ids), len(vocab.skus))
        counts = sp.csr_matrix((np.ones(len(row)), (row, col)), shape=shape)
        decayed = sp.csr_matrix((0.5 ** (age / half_life_days), (row, col)), shape=shape)
        # 1 + days since the most recent purchase of each (customer, item)
        keyed = pd.DataFrame({"r": row, "c": col, "v": 1.0 + age}).groupby(["r", "c"], sort=False)["v"].min()
        rr, cc = keyed.index.get_level_values(0), keyed.index.get_level_values(1)
        last_days = sp.csr_matrix((keyed.to_numpy(), (rr, cc)), shape=shape)
        return cls(ids, counts.tocsr(), decayed.tocsr(), last_days)


def _row_max_normalise(m: sp.csr_matrix | np.ndarray) -> np.ndarray:
    d = np.asarray(m) if isinstance(m, np.ndarray) else m.toarray()
    mx = d.max(axis=1, keepdims=True)
    return np.divide(d, mx, out=np.zeros_like(d), where=mx > 0)


def cosine_neighbours(X: sp.csr_matrix, neighbours: int) -> sp.csr_matrix:
    """Item × item cosine similarity of the columns of binary ``X`` (diagonal 0), top ``neighbours`` per row."""
    C = (X.T @ X).astype(np.float32).tocsr()
    n = np.sqrt(np.asarray(X.sum(axis=0)).ravel().astype(np.float32))
    C = (
        sp.diags(np.divide(1, n, out=np.zeros_like(n), where=n > 0))
        @ C
        @ sp.diags(np.divide(1, n, out=np.zeros_like(n), where=n > 0))
    )
    C = C.tocsr()
    C.setdiag(0)
    C.eliminate_zeros()
    if neighbours < C.shape[1]:
        D = C.toarray()
        drop = np.argpartition(-D, neighbours, axis=1)[:, neighbours:]
        np.put_along_axis(D, drop, 0, axis=1)
        C = sp.csr_matrix(D)
    return C


@dataclass
class ItemItemModel:
    """The fitted next-basket model: vocabulary, popularity, similarity and its parameters."""

    vocab: Vocabulary
    popularity: np.ndarray  # customers who bought each item before T, as a share
    similarity: sp.csr_matrix
    alpha: float
    half_life_days: float
    cooccurrence: str
    as_of: pd.Timestamp
    rules: pd.DataFrame = field(default_factory=pd.DataFrame)
    rules_level: str = "customer"
    repeat_rate: np.ndarray = field(default_factory=lambda: np.zeros(0))
    beta: float = 0.1
    own: str = "decayed"
    #: what an item is: a product ("sku") or a category (:func:`load_lines`' ``item``)
    item: str = "sku"

    @classmethod
    def fit(
        cls,
        train: pd.DataFrame,
        t: pd.Timestamp,
        alpha: float,
        half_life_days: float,
        cooccurrence: str,
        neighbours: int,
        min_buyers: int = 1,
        vocab: Vocabulary | None = None,
        own: str = "decayed",
        beta: float = 0.1,
        repeat_prior: float = 5.0,
        similarity: sp.csr_matrix | None = None,
    ) -> ItemItemModel:
        """Fit on the lines up to T (``similarity``: ``S`` already computed for this vocabulary and co-occurrence)."""
        train = train[train["ts"] <= t]
        vocab = vocab or Vocabulary.of(train, min_buyers)
        X = transactions(train, vocab, "basket" if cooccurrence == "basket" else "customer_id")
        per_customer = transactions(train, vocab, "customer_id")
        pop = np.asarray(per_customer.sum(axis=0)).ravel() / max(per_customer.shape[0], 1)
        rate = repeat_rates(train, vocab, repeat_prior)
        S = cosine_neighbours(X, neighbours) if similarity is None else similarity
        return cls(vocab, pop, S, alpha, half_life_days, cooccurrence, t, repeat_rate=rate, beta=beta, own=own)

    def scores(self, hist: History, rows: slice | np.ndarray) -> np.ndarray:
        """Dense scores of the history rows ``rows`` (customers × items), popularity as the last tie-break."""
        u = hist.decayed[rows]
        nb = _row_max_normalise(u @ self.similarity)
        if self.own == "repeat":
            n = hist.counts[rows].toarray()
            again = np.where(n > 0, 1.0 - (1.0 - self.repeat_rate[None, :]) ** n, 0.0)
            return _row_max_normalise(again) + self.beta * nb * (n == 0) + 1e-6 * self.popularity[None, :]
        own = _row_max_normalise(u)
        return self.alpha * own + (1 - self.alpha) * nb + 1e-6 * self.popularity[None, :]


def repeat_rates(lines: pd.DataFrame, vocab: Vocabulary, prior: float) -> np.ndarray:
    """Per item: the share of its buyers who bought it in two or more baskets, shrunk towards the overall share
    with ``prior`` pseudo-buyers: ``(repeaters + prior · overall) / (buyers + prior)``."""
    past = lines.drop_duplicates(["customer_id", "basket", "sku"])
    col = vocab.codes(past["sku"])
    ok = col >= 0
    per = pd.DataFrame({"c": past["customer_id"].to_numpy()[ok], "i": col[ok]}).value_counts()
    item = per.index.get_level_values("i").to_numpy()
    buyers = np.bincount(item, minlength=len(vocab.skus)).astype(np.float64)
    repeaters = np.bincount(item, weights=(per.to_numpy() >= 2).astype(np.float64), minlength=len(vocab.skus))
    overall = repeaters.sum() / buyers.sum() if buyers.sum() > 0 else 0.0
    return (repeaters + prior * overall) / np.maximum(buyers + prior, 1e-12)


def popularity_scores(popularity: np.ndarray, hist: History, rows: slice | np.ndarray) -> np.ndarray:
    """Global popularity: the same list for everyone."""
    n = len(np.arange(hist.counts.shape[0])[rows])
    return np.broadcast_to(popularity[None, :], (n, len(popularity))).copy()


def personal_scores(popularity: np.ndarray, hist: History, rows: slice | np.ndarray) -> np.ndarray:
    """Personal top-frequency: the customer's most often bought items (latest first on ties), then popularity."""
    c = hist.counts[rows].toarray()
    last = hist.last_days[rows].toarray()
    recency = np.divide(1.0, last, out=np.zeros_like(last), where=last > 0)  # in (0, 1]
    return c + 0.5 * recency + 1e-6 * popularity[None, :]


def top_k(score_fn, hist: History, k: int, exclude_past: bool = False, chunk: int = 4000) -> np.ndarray:
    """Item codes of the ``k`` best items per history row (rows × k), best first, -1 where there are fewer than
    ``k`` items; chunked to bound memory."""
    n = hist.counts.shape[0]
    out = np.full((n, k), -1, dtype=np.int64)
    for s in range(0, n, chunk):
        rows = slice(s, min(n, s + chunk))
        sc = np.array(score_fn(hist, rows), dtype=np.float64)
        if exclude_past:
            sc[hist.counts[rows].toarray() > 0] = -np.inf
        kk = min(k, sc.shape[1])
        part = np.argpartition(-sc, kk - 1, axis=1)[:, :kk]
        order = np.argsort(-np.take_along_axis(sc, part, axis=1), axis=1, kind="stable")
        out[rows, :kk] = np.take_along_axis(part, order, axis=1)
    return out


# --------------------------------------------------------------------------------------------------- evaluation


def ranking_metrics(
    recs: np.ndarray, hist: History, future: pd.DataFrame, vocab: Vocabulary, k: int
) -> dict[str, float]:
    """recall@k and NDCG@k over all, repeat and new-to-customer products bought in the window.

    ``recs`` are item codes (customers of ``hist`` × k). recall = hits / products bought (a product unknown at T
    counts in the denominator and can never be hit); NDCG uses binary relevance, ideal = min(bought, k).
    Averages are over customers with at least one product of the kind.
    """
    n_items = len(vocab.skus)
    fut = future.drop_duplicates(["customer_id", "sku"])
    row = hist.customers.get_indexer(fut["customer_id"])
    fut, row = fut[row >= 0], row[row >= 0]
    col = vocab.codes(fut["sku"])
    past = hist.counts.tocoo()
    past_keys = past.row.astype(np.int64) * n_items + past.col
    known = col >= 0
    truth_keys = row[known].astype(np.int64) * n_items + col[known]
    repeat_truth = np.isin(truth_keys, past_keys)
    n_cust = recs.shape[0]
    n_all = np.bincount(row, minlength=n_cust)
    n_rep = np.bincount(row[known][repeat_truth], minlength=n_cust)
    n_new = n_all - n_rep
    rec_keys = np.arange(n_cust, dtype=np.int64)[:, None] * n_items + recs
    valid = recs >= 0
    hit = np.isin(rec_keys, truth_keys) & valid
    rec_past = np.isin(rec_keys, past_keys) & valid
    disc = 1.0 / np.log2(np.arange(k) + 2.0)
    out: dict[str, float] = {}
    for kind, h, nt in (("all", hit, n_all), ("repeat", hit & rec_past, n_rep), ("new", hit & ~rec_past, n_new)):
        m = nt > 0
        ideal = np.cumsum(disc)[np.minimum(nt[m], k) - 1]
        out[f"recall_at_{k}_{kind}"] = float(np.mean(h[m].sum(axis=1) / nt[m])) if m.any() else float("nan")
        out[f"ndcg_at_{k}_{kind}"] = float(np.mean((h[m] * disc).sum(axis=1) / ideal)) if m.any() else float("nan")
        out[f"customers_{kind}"] = float(m.sum())
    return out


@dataclass
class Evaluation:
    """Out-of-time figures: per method a metrics dict; the chosen parameters and the split."""

    metrics: dict[str, dict[str, float]]
    params: dict[str, object]
    split: dict[str, object]


def candidates(cfg: CrossSellConfig) -> list[dict[str, object]]:
    """The parameter combinations tried on the validation window: ``decayed`` with each alpha, ``repeat`` with
    each beta, each with every half-life and co-occurrence."""
    out: list[dict[str, object]] = []
    m = cfg.model
    for own in m.own:
        for w in m.alpha if own == "decayed" else m.beta:
            for hl in m.half_life_days:
                for co in m.cooccurrence:
                    weight = {"alpha": w, "beta": 0.0} if own == "decayed" else {"alpha": 0.0, "beta": w}
                    out.append({"own": own, **weight, "half_life_days": hl, "cooccurrence": co})
    return out


def evaluate_at(
    train: pd.DataFrame,
    future: pd.DataFrame,
    t: pd.Timestamp,
    cfg: CrossSellConfig,
    params: dict[str, object],
    baselines: bool = True,
    vocab: Vocabulary | None = None,
    similarity: dict[str, sp.csr_matrix] | None = None,
) -> tuple[dict[str, dict[str, float]], ItemItemModel]:
    """Fit on ``train`` (lines up to T) with ``params`` (one of :func:`candidates`), predict for customers with
    history who buy in ``future``; the figures.

    ``future`` must hold only lines after T; customers with no purchase before T are not scored (no history).
    """
    if len(future) and future["ts"].min() <= t:
        raise ValueError(M_("evaluation window holds lines at or before T"))
    if len(train) and train["ts"].max() > t:
        raise ValueError(M_("training lines after T would leak"))
    model = ItemItemModel.fit(
        train, t, float(params["alpha"]), float(params["half_life_days"]), str(params["cooccurrence"]),  # type: ignore[arg-type]
        cfg.model.neighbours, cfg.min_item_buyers, vocab, own=str(params["own"]), beta=float(params["beta"]),  # type: ignore[arg-type]
        repeat_prior=cfg.model.repeat_prior,
        similarity=None if similarity is None else similarity.get(str(params["cooccurrence"])),
    )
    if similarity is not None:  # the same S serves every candidate with this vocabulary and co-occurrence
        similarity[model.cooccurrence] = model.similarity
    who = pd.Index(pd.unique(future["customer_id"]))
    who = who[who.isin(pd.unique(train["customer_id"]))]
    hist = History.of(train, model.vocab, t, model.half_life_days, who)
    k = cfg.k
    out = {"item_item": ranking_metrics(top_k(model.scores, hist, k), hist, future, model.vocab, k)}
    out["item_item_explore"] = ranking_metrics(
        top_k(model.scores, hist, k, exclude_past=True), hist, future, model.vocab, k
    )
    if baselines:
        pop = lambda h, r: popularity_scores(model.popularity, h, r)  # noqa: E731
        per = lambda h, r: personal_scores(model.popularity, h, r)  # noqa: E731
        out["popularity"] = ranking_metrics(top_k(pop, hist, k), hist, future, model.vocab, k)
        out["popularity_explore"] = ranking_metrics(top_k(pop, hist, k, True), hist, future, model.vocab, k)
        out["personal_top_frequency"] = ranking_metrics(top_k(per, hist, k), hist, future, model.vocab, k)
    return out, model


def evaluate_split(lines: pd.DataFrame, cfg: CrossSellConfig) -> tuple[Evaluation, ItemItemModel]:
    """Choose the parameters on (T − h, T] trained up to T − h, then train up to T and test on (T, T + h].

    Returns the test figures of the model and both baselines, and the model fitted on every line up to T.
    """
    h = cfg.horizon_days
    t = pd.Timestamp(cfg.as_of) if cfg.as_of else default_as_of(lines, h)
    t_val = t - pd.Timedelta(days=h)
    tr_val, val = split_at(lines, t_val, h)
    if tr_val.empty or val.empty:
        raise CrossSellDataError(M_(
            "not enough history for a validation window ending {value} (horizon {h} d)",
            value=t.date(), h=h,
        ))
    grid: list[tuple[float, dict[str, object]]] = []
    vocab_val = Vocabulary.of(tr_val, cfg.min_item_buyers)
    shared: dict[str, sp.csr_matrix] = {}
    for cand in candidates(cfg):
        m, _ = evaluate_at(tr_val, val, t_val, cfg, cand, baselines=False, vocab=vocab_val, similarity=shared)
        grid.append((m["item_item"][f"recall_at_{cfg.k}_all"], cand))
    _, best = max(grid, key=lambda g: g[0])  # the first best on a tie (the config's order)
    train, test = split_at(lines, t, h)
    if test.empty:
        raise CrossSellDataError(M_(
            "no purchases in ({value}, {value} + {h} d]: choose an earlier as_of",
            value=t.date(), h=h,
        ))
    metrics, model = evaluate_at(train, test, t, cfg, best)
    model.rules = association_rules(train, model.vocab, cfg.rules)
    model.rules_level = cfg.rules.level
    model.item = cfg.item
    split = {
        "as_of": str(t.date()),
        "validation_as_of": str(t_val.date()),
        "horizon_days": h,
        "train_lines": len(train),
        "test_lines": len(test),
        "train_customers": int(train["customer_id"].nunique()),
        "test_customers": int(test["customer_id"].nunique()),
        "items": len(model.vocab.skus),
        "last_train_ts": str(train["ts"].max()),
        "first_test_ts": str(test["ts"].min()),
    }
    params: dict[str, object] = {**best, "validation_grid": [{**c, "recall": r} for r, c in grid]}
    return Evaluation(metrics, params, split), model


# --------------------------------------------------------------------------------------------------- storage

#: artifact folder of a `train cross_sell` run holding the model as plain data (:func:`save_model`)
MODEL_ARTIFACT = "cross_sell_model"
#: file names of a saved model (a folder): arrays without pickled objects, parameters as JSON, rules as Parquet
MODEL_FILES = ("arrays.npz", "params.json", "rules.parquet")


def save_model(model: ItemItemModel, folder: str | Path) -> Path:
    """Write ``model`` as plain data into ``folder``: NumPy arrays (no objects), JSON parameters, Parquet rules.

    Read back with :func:`read_model`, which never unpickles anything (so a registry artifact cannot run code).
    """
    import json

    d = Path(folder)
    d.mkdir(parents=True, exist_ok=True)
    S = model.similarity.tocsr()
    np.savez(
        d / "arrays.npz",
        skus=model.vocab.skus.astype(str),
        names=np.asarray([str(x) for x in model.vocab.names], dtype=str),
        popularity=model.popularity.astype(np.float64),
        repeat_rate=model.repeat_rate.astype(np.float64),
        s_data=S.data.astype(np.float32),
        s_indices=S.indices.astype(np.int64),
        s_indptr=S.indptr.astype(np.int64),
    )
    params = {
        "alpha": model.alpha,
        "beta": model.beta,
        "half_life_days": model.half_life_days,
        "cooccurrence": model.cooccurrence,
        "own": model.own,
        "as_of": model.as_of.isoformat(),
        "rules_level": model.rules_level,
        "item": model.item,
        "n_items": len(model.vocab.skus),
    }
    (d / "params.json").write_text(json.dumps(params, indent=2), encoding="utf-8")
    rules = model.rules if model.rules is not None and len(model.rules.columns) else pd.DataFrame()
    rules.to_parquet(d / "rules.parquet", index=False)
    return d


def read_model(folder: str | Path) -> ItemItemModel:
    """The model :func:`save_model` wrote (``allow_pickle=False``); a :class:`CrossSellDataError` names the file
    that is missing or does not fit."""
    import json

    d = Path(folder)
    missing = [f for f in MODEL_FILES if not (d / f).is_file()]
    if missing:
        raise CrossSellDataError(M_(
            "{d}: not a saved cross-sell model (missing {value})",
            d=d, value=", ".join(missing),
        ))
    try:
        p = json.loads((d / "params.json").read_text(encoding="utf-8"))
        with np.load(d / "arrays.npz", allow_pickle=False) as z:
            a = {k: z[k] for k in z.files}
        n = int(p["n_items"])
        S = sp.csr_matrix((a["s_data"], a["s_indices"], a["s_indptr"]), shape=(n, n))
        vocab = Vocabulary(skus=a["skus"].astype(object), names=a["names"].astype(object))
        if len(vocab.skus) != n or len(a["popularity"]) != n or len(a["repeat_rate"]) != n:
            raise ValueError(M_("array lengths differ from n_items {n}", n=n))
        return ItemItemModel(
            vocab, a["popularity"], S, float(p["alpha"]), float(p["half_life_days"]), str(p["cooccurrence"]),
            pd.Timestamp(p["as_of"]), pd.read_parquet(d / "rules.parquet"), str(p["rules_level"]),
            repeat_rate=a["repeat_rate"], beta=float(p["beta"]), own=str(p["own"]),
            item=str(p.get("item", "sku")),  # models saved before the item choice are product models
        )
    except (KeyError, ValueError, OSError) as e:
        raise CrossSellDataError(M_(
            "{d}: saved cross-sell model does not load: {kind}: {e}",
            d=d, kind=type(e).__name__, e=e,
        )) from None
