"""Customer segmentation: RFM segments, value tiers, behavioural clusters and expected value.

Per customer as of a cutoff ``T`` (only rows with a timestamp ``<= T`` are used):

* **RFM** — recency, frequency and monetary scores 1–5 from quintile cut points learned on the training
  population (``RFMScorer``), mapped to a named segment by the R × FM grid in ``configs/segment.yaml``.
  Customers with no paid order get scores 0 and the segment "No purchase" (a lead is not a lapsed buyer).
* **Value tier** — important / potential / ordinary (重要客户 / 潜在客户 / 普通客户) from ordered rules on the
  scores and P(alive) (``ValueTierer``).
* **Behavioural cluster** — k-means on standardised, log-transformed engagement, marketing-response and RFM
  features, k chosen by silhouette on a sample, each cluster described in words (``BehaviourClusterer``).
* **Expected value** — BG/NBD expected purchases and P(alive), Gamma-Gamma spend per purchase
  (``training.btyd``), expected value = expected purchases × expected spend per purchase (not discounted).

Everything is computed from one per-customer summary frame (:func:`summarise_customers`, schema in
:data:`INPUT_DOC`), which batch training, batch scoring and the online service all build the same way. The
fitted ``CustomerSegmenter`` holds only small numbers (cut points, scaler, centres, model parameters), so it
is saved as JSON and the logged MLflow model loads without unpickling anything.

This module holds the summary and the estimators. Around it: :mod:`training.segment_config` (the pydantic
configuration), :mod:`training.segment_model` (the logged pyfunc, ``CustomerSegmentsModel``) and
:mod:`training.segment_fit` (the ``crmscore segment fit`` job, ``fit_segments``). Their public names can still
be imported from here: the configuration directly, the model and the job on first use (they import MLflow and
this module). Imports ``features.contract`` and ``training.btyd``; never MLflow.
"""

from __future__ import annotations

import importlib
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from features.contract import empty_frame
from features.messages import M_
from training.btyd import BGNBDModel, GammaGammaModel, summarise_transactions
from training.segment_config import (
    DEFAULT_GRID,
    NO_PURCHASE,
    SEGMENT_ORDER,
    BTYDConfig,
    ClusterConfig,
    RFMConfig,
    SegmentConfig,
    TierRule,
    ValueTierConfig,
)

if TYPE_CHECKING:
    from training.segment_fit import SegmentFitResult, fit_segments, plot_segments, profile_segments
    from training.segment_model import CustomerSegmentsModel

__all__ = [
    "BTYDConfig",
    "BehaviourClusterer",
    "ClusterConfig",
    "CustomerSegmenter",
    "CustomerSegmentsModel",
    "CustomerSummariser",
    "DEFAULT_GRID",
    "FORMAT_VERSION",
    "INPUT_DOC",
    "NO_PURCHASE",
    "RFMConfig",
    "RFMScorer",
    "SEGMENT_ORDER",
    "SegmentConfig",
    "SegmentFitResult",
    "TierRule",
    "ValueTierConfig",
    "ValueTierer",
    "fit_segments",
    "input_columns",
    "output_columns",
    "plot_segments",
    "profile_segments",
    "resolve_as_of",
    "summarise_customers",
    "validate_summary",
]

#: names defined in the modules around this one, importable from here on first use
_ELSEWHERE = {
    "CustomerSegmentsModel": "training.segment_model",
    "_MODEL_CODE": "training.segment_model",
    "SegmentFitResult": "training.segment_fit",
    "fit_segments": "training.segment_fit",
    "plot_segments": "training.segment_fit",
    "profile_segments": "training.segment_fit",
}


def __getattr__(name: str) -> Any:
    """``from training.segment import fit_segments`` (and the other names of :data:`_ELSEWHERE`) as before the
    split: the module that defines the name is imported on first use, so importing this one stays MLflow-free."""
    module = _ELSEWHERE.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)


FORMAT_VERSION = 1

INPUT_DOC = """Input of the segmenter / the `customer_segments` model: one row per customer as of a cutoff T.

customer_id          string  CRM id (passed through, never logged)
recency_days         float   days from the last paid-order day to T's day; empty (NaN) = no paid order yet
frequency            float   repeat purchase days: distinct days with a paid order, minus 1 (0 if none)
monetary             float   total paid spend up to T (0 if none)
avg_repeat_value     float   mean spend per repeat purchase day (first purchase day excluded; 0 if none)
tenure_days          float   days from the first paid-order day to T's day; NaN when recency_days is NaN
interactions_{W}d    float   interaction events in (T - W days, T]
touches_{W}d         float   marketing touches sent in (T - W days, T]
open_rate_{W}d       float   share of those touches opened by T; NaN when none was sent
click_rate_{W}d      float   share of those touches clicked by T; NaN when none was sent
coupon_claims_{W}d   float   coupon claims in (T - W days, T]: coupon_claim interaction events plus touches
                             sent in the window with coupon_claimed (a claim logged in both places counts twice)
W = window_days of configs/segment.yaml (default 90).
"""


# ----------------------------------------------------------------------------------------------------------
# the per-customer summary (shared by batch and online)


def input_columns(window_days: int = 90) -> list[str]:
    """Columns of the summary frame, in order (see :data:`INPUT_DOC`)."""
    w = int(window_days)
    return [
        "customer_id",
        "recency_days",
        "frequency",
        "monetary",
        "avg_repeat_value",
        "tenure_days",
        f"interactions_{w}d",
        f"touches_{w}d",
        f"open_rate_{w}d",
        f"click_rate_{w}d",
        f"coupon_claims_{w}d",
    ]


def _table(tables: dict[str, pd.DataFrame], name: str) -> pd.DataFrame:
    df = tables.get(name)
    return empty_frame(name) if df is None else df


def _count_in(ids: pd.Index, keys: pd.Series) -> np.ndarray:
    return keys.value_counts().reindex(ids, fill_value=0).to_numpy(dtype="float64")


def summarise_customers(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp | str, window_days: int = 90
) -> pd.DataFrame:
    """The segmenter's input (:data:`INPUT_DOC`) from the four contract tables as of ``as_of``.

    Population: customers created on or before ``as_of`` plus anyone with a paid order on or before it.
    Only paid orders count; refunded and cancelled ones are ignored. Nothing after ``as_of`` is read
    (an open or click after ``as_of`` does not count). Sorted by ``customer_id``.
    """
    t = pd.Timestamp(as_of)
    w = int(window_days)
    start = t - pd.Timedelta(days=w)
    customers = _table(tables, "customers")
    orders = _table(tables, "orders")
    interactions = _table(tables, "interactions")
    touches = _table(tables, "marketing_touches")
    for name, df, cols in (
        ("customers", customers, ("customer_id", "created_at")),
        ("orders", orders, ("customer_id", "ts", "amount", "status")),
        ("interactions", interactions, ("customer_id", "ts", "event_type")),
        ("marketing_touches", touches, ("customer_id", "sent_at", "opened_at", "clicked_at", "coupon_claimed")),
    ):
        missing = [c for c in cols if c not in df.columns]
        if missing:
            raise ValueError(M_("table {name}: missing column(s) {value}", name=name, value=", ".join(missing)))

    paid = orders.loc[(orders["status"] == "paid").fillna(False).to_numpy(dtype=bool) & (orders["ts"] <= t)]
    buyers = summarise_transactions(paid, t)
    created = customers.loc[(customers["created_at"] <= t).fillna(False).to_numpy(dtype=bool), "customer_id"]
    ids = pd.Index(pd.unique(pd.concat([created.astype("string"), buyers.index.to_series().astype("string")])))
    ids = ids.dropna().sort_values()
    ids.name = "customer_id"

    out = buyers.reindex(ids)
    out["frequency"] = out["frequency"].fillna(0.0)
    out["monetary"] = out["monetary"].fillna(0.0)
    out["avg_repeat_value"] = out["avg_repeat_value"].fillna(0.0)

    inter = interactions.loc[(interactions["ts"] > start) & (interactions["ts"] <= t)]
    out[f"interactions_{w}d"] = _count_in(ids, inter["customer_id"])
    tch = touches.loc[(touches["sent_at"] > start) & (touches["sent_at"] <= t)]
    sent = _count_in(ids, tch["customer_id"])
    opened = _count_in(ids, tch.loc[(tch["opened_at"] <= t).fillna(False).to_numpy(dtype=bool), "customer_id"])
    clicked = _count_in(ids, tch.loc[(tch["clicked_at"] <= t).fillna(False).to_numpy(dtype=bool), "customer_id"])
    claimed = tch["coupon_claimed"].astype("boolean").fillna(False).to_numpy(dtype=bool)
    out[f"touches_{w}d"] = sent
    with np.errstate(invalid="ignore", divide="ignore"):
        out[f"open_rate_{w}d"] = np.where(sent > 0, opened / np.maximum(sent, 1), np.nan)
        out[f"click_rate_{w}d"] = np.where(sent > 0, clicked / np.maximum(sent, 1), np.nan)
    coupon_events = inter.loc[(inter["event_type"] == "coupon_claim").fillna(False).to_numpy(dtype=bool)]
    out[f"coupon_claims_{w}d"] = _count_in(ids, coupon_events["customer_id"]) + _count_in(
        ids, tch.loc[claimed, "customer_id"]
    )
    out = out.reset_index()
    out["customer_id"] = out["customer_id"].astype("string")
    return out[input_columns(w)]


class CustomerSummariser(TransformerMixin, BaseEstimator):
    """Transformer form of :func:`summarise_customers`: four tables (a dict) → per-customer summary.

    ``as_of`` None means the latest paid-order timestamp in the tables given to ``transform``.
    """

    def __init__(self, as_of: str | None = None, window_days: int = 90):
        self.as_of = as_of
        self.window_days = window_days

    def fit(self, tables: dict[str, pd.DataFrame], y=None) -> CustomerSummariser:
        """Nothing to learn; kept for the estimator contract."""
        return self

    def transform(self, tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
        """The summary as of ``as_of``."""
        return summarise_customers(tables, resolve_as_of(tables, self.as_of), self.window_days)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Summary column names."""
        return np.array(input_columns(self.window_days), dtype=object)


def resolve_as_of(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp | str | None) -> pd.Timestamp:
    """``as_of`` as a Timestamp; None → the latest paid order's timestamp."""
    if as_of is not None:
        return pd.Timestamp(as_of)
    orders = _table(tables, "orders")
    paid = orders.loc[(orders["status"] == "paid").fillna(False).to_numpy(dtype=bool), "ts"]
    if paid.dropna().empty:
        raise ValueError(M_("orders: no paid order, so there is no default cutoff; pass --as-of"))
    return pd.Timestamp(paid.max())


def validate_summary(X: pd.DataFrame, window_days: int) -> pd.DataFrame:
    """Check the summary frame (columns present, values in range) and return it with float columns.

    Errors name the column and the first offending customer.
    """
    cols = input_columns(window_days)
    missing = [c for c in cols if c not in X.columns]
    if missing:
        raise ValueError(M_(
            "segment input: missing column(s) {value} (schema: see INPUT_DOC)",
            value=", ".join(missing),
        ))
    out = X[cols].copy()
    out["customer_id"] = out["customer_id"].astype("string")
    for c in cols[1:]:
        try:
            out[c] = pd.to_numeric(out[c], errors="raise").astype("float64")
        except (ValueError, TypeError) as e:
            raise ValueError(M_("segment input: column {c} is not numeric ({e})", c=c, e=e)) from None

    def fail(mask: np.ndarray, what: str) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise ValueError(
                M_(
                    "segment input: {value} row(s) {what}; first: customer_id={value2}",
                    value=int(mask.sum()), what=what, value2=out['customer_id'].iloc[i],
                )
            )

    rec, ten = out["recency_days"].to_numpy(), out["tenure_days"].to_numpy()
    fail(np.isnan(rec) != np.isnan(ten), "have only one of recency_days / tenure_days")
    for c in cols[1:]:
        fail(out[c].to_numpy() < 0, f"have negative {c}")
    fail(~np.isnan(rec) & (rec > ten), "have recency_days > tenure_days")
    fail(np.isnan(rec) & (out["frequency"].to_numpy() > 0), "have frequency > 0 but no recency_days")
    for c in ("frequency", "monetary", "avg_repeat_value"):
        fail(np.isnan(out[c].to_numpy()), f"have no {c}")
    fail(out["customer_id"].isna().to_numpy(), "have no customer_id")
    return out


# ----------------------------------------------------------------------------------------------------------
# RFM


def _round_half_up(x: np.ndarray) -> np.ndarray:
    return np.floor(x + 0.5).astype(int)


class RFMScorer(TransformerMixin, BaseEstimator):
    """RFM scores 1–5 from quintile cut points learned on the buyers of the training population.

    A value equal to a cut point goes to the lower bin, so ties always share a score and a customer scored
    later with the same values gets the same scores. When cut points coincide (most customers bought once)
    some scores are skipped: a score still means "above this share of the training buyers". Customers with
    no paid order (``recency_days`` NaN) get scores 0 and ``no_purchase_segment``.
    """

    QUANTILES = (0.2, 0.4, 0.6, 0.8)

    def __init__(self, grid: dict[int, list[str]] | None = None, no_purchase_segment: str = NO_PURCHASE):
        self.grid = grid
        self.no_purchase_segment = no_purchase_segment

    def fit(self, X: pd.DataFrame, y=None) -> RFMScorer:
        """Learn the cut points of recency_days, frequency and monetary on customers with a purchase."""
        buyers = X.loc[X["recency_days"].notna()]
        if len(buyers) < 5:
            raise ValueError(M_(
                "RFM: need at least 5 customers with a paid order to learn quintiles, got {value}",
                value=len(buyers),
            ))
        self.cuts_ = {
            c: [float(v) for v in np.quantile(buyers[c].to_numpy(dtype="float64"), self.QUANTILES)]
            for c in ("recency_days", "frequency", "monetary")
        }
        self.n_features_in_ = 3
        return self

    def score(self, X: pd.DataFrame) -> pd.DataFrame:
        """``r_score``, ``f_score``, ``m_score`` (0 for no purchase)."""
        check_is_fitted(self, "cuts_")
        has = X["recency_days"].notna().to_numpy()
        rec = X["recency_days"].to_numpy(dtype="float64")
        out = {}
        # fewer days since the last purchase is better: R counts the cut points the value is below
        out["r_score"] = 1 + (rec[:, None] < np.array(self.cuts_["recency_days"])[None, :]).sum(axis=1)
        for c, name in (("frequency", "f_score"), ("monetary", "m_score")):
            v = X[c].to_numpy(dtype="float64")
            out[name] = 1 + (v[:, None] > np.array(self.cuts_[c])[None, :]).sum(axis=1)
        return pd.DataFrame({k: np.where(has, v, 0).astype("int64") for k, v in out.items()}, index=X.index)

    def segment(self, scores: pd.DataFrame) -> np.ndarray:
        """Named segment from the R × FM grid."""
        grid = {int(k): v for k, v in (self.grid or DEFAULT_GRID).items()}
        r = scores["r_score"].to_numpy()
        fm = _round_half_up((scores["f_score"].to_numpy() + scores["m_score"].to_numpy()) / 2.0)
        table = np.array([[grid[ri][j] for j in range(5)] for ri in range(1, 6)], dtype=object)
        out = np.full(len(r), self.no_purchase_segment, dtype=object)
        ok = r > 0
        out[ok] = table[r[ok] - 1, np.clip(fm[ok], 1, 5) - 1]
        return out

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Scores and ``rfm_segment``."""
        s = self.score(X)
        s["rfm_segment"] = self.segment(s)
        return s

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output column names."""
        return np.array(["r_score", "f_score", "m_score", "rfm_segment"], dtype=object)


# ----------------------------------------------------------------------------------------------------------
# value tiers


class ValueTierer(TransformerMixin, BaseEstimator):
    """Important / potential / ordinary from ordered rules on RFM scores, segment and P(alive).

    ``rules`` is a list of :class:`TierRule` dicts; the first rule whose conditions all hold wins.
    """

    def __init__(
        self, rules: list[dict] | None = None, labels: dict[str, str] | None = None, default: str = "ordinary"
    ):
        self.rules = rules
        self.labels = labels
        self.default = default

    def _config(self) -> ValueTierConfig:
        base = ValueTierConfig()
        return ValueTierConfig(
            rules=base.rules if self.rules is None else [TierRule.model_validate(r) for r in self.rules],
            labels=base.labels if self.labels is None else self.labels,
            default=self.default,
        )

    def fit(self, X: pd.DataFrame | None = None, y=None) -> ValueTierer:
        """Validate the rules (nothing is learned from data)."""
        self.config_ = self._config()
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """``value_tier`` and ``value_tier_zh`` from ``r_score, f_score, m_score, rfm_segment, p_alive``."""
        check_is_fitted(self, "config_")
        cfg = self.config_
        conds, choices = [], []
        p_alive = X["p_alive"].to_numpy(dtype="float64")
        for rule in cfg.rules:
            ok = np.ones(len(X), dtype=bool)
            for field_name, col in (("min_r_score", "r_score"), ("min_f_score", "f_score"), ("min_m_score", "m_score")):
                lim = getattr(rule, field_name)
                if lim is not None:
                    ok &= X[col].to_numpy() >= lim
            if rule.min_p_alive is not None:
                ok &= np.nan_to_num(p_alive, nan=-1.0) >= rule.min_p_alive
            if rule.segments is not None:
                ok &= X["rfm_segment"].isin(rule.segments).to_numpy()
            conds.append(ok)
            choices.append(rule.tier)
        tier = np.select(conds, choices, default=cfg.default) if conds else np.full(len(X), cfg.default)
        tier = np.asarray(tier, dtype=object)
        zh = pd.Series(tier).map(cfg.labels).to_numpy(dtype=object)
        return pd.DataFrame({"value_tier": tier, "value_tier_zh": zh}, index=X.index)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output column names."""
        return np.array(["value_tier", "value_tier_zh"], dtype=object)


# ----------------------------------------------------------------------------------------------------------
# behavioural clusters

#: summary column template, log1p?, and the words for a centre that is (high, very high, low, very low)
_CLUSTER_FEATURES = (
    ("recency_days", True, ("lapsed", "long lapsed", "recent buyers", "very recent buyers")),
    ("frequency", True, ("frequent", "very frequent", "rare", "very rare")),
    ("monetary", True, ("high spend", "very high spend", "low spend", "very low spend")),
    ("interactions_{w}d", True, ("engaged", "very engaged", "little activity", "almost no activity")),
    ("open_rate_{w}d", False, ("opens messages", "opens most messages", "seldom opens", "ignores messages")),
    ("click_rate_{w}d", False, ("clicks campaigns", "clicks most campaigns", "seldom clicks", "never clicks")),
    ("coupon_claims_{w}d", True, ("coupon-driven", "very coupon-driven", "few coupons", "no coupons")),
)


class BehaviourClusterer(TransformerMixin, BaseEstimator):
    """k-means on standardised engagement, marketing-response and RFM features; k by silhouette.

    Features (log1p for counts and amounts, whose tails are heavy): recency, frequency, monetary,
    interactions in the window, open and click rates, coupon claims. Missing values are filled with a
    value learned at fit: recency of a customer who never bought → the largest training recency (the
    most lapsed), a rate with no touch sent → the training median. For each k in ``k_min..k_max`` k-means is
    fitted on a fixed random sample of ``silhouette_sample`` customers and scored by its silhouette there;
    the k with the highest silhouette is refitted on all customers. Clusters are numbered by size
    (0 = largest). ``n_threads`` caps k-means' OpenMP threads (1 by default: on a small or shared machine
    more threads spin and run many times slower; None = all cores). Each cluster's description lists
    the features whose centre is at least ``describe_threshold`` standard deviations from the population
    mean, strongest first (at most ``max_terms``; stronger words from ``strong_threshold``).
    """

    def __init__(
        self,
        window_days: int = 90,
        k_min: int = 3,
        k_max: int = 8,
        silhouette_sample: int = 3000,
        n_init: int = 4,
        random_state: int = 0,
        describe_threshold: float = 0.5,
        strong_threshold: float = 1.5,
        max_terms: int = 3,
        n_threads: int | None = 1,
    ):
        self.window_days = window_days
        self.k_min = k_min
        self.k_max = k_max
        self.silhouette_sample = silhouette_sample
        self.n_init = n_init
        self.random_state = random_state
        self.describe_threshold = describe_threshold
        self.strong_threshold = strong_threshold
        self.max_terms = max_terms
        self.n_threads = n_threads

    def _names(self) -> list[str]:
        return [f[0].format(w=int(self.window_days)) for f in _CLUSTER_FEATURES]

    def _raw(self, X: pd.DataFrame) -> np.ndarray:
        """Feature matrix before filling and scaling (log1p applied)."""
        cols = []
        for (_, logged, _), name in zip(_CLUSTER_FEATURES, self._names(), strict=True):
            v = X[name].to_numpy(dtype="float64")
            cols.append(np.log1p(v) if logged else v)
        return np.column_stack(cols)

    def _matrix(self, X: pd.DataFrame) -> np.ndarray:
        raw = self._raw(X)
        raw = np.where(np.isnan(raw), np.array(self.fill_)[None, :], raw)
        return (raw - np.array(self.mean_)) / np.array(self.scale_)

    def fit(self, X: pd.DataFrame, y=None) -> BehaviourClusterer:
        """Choose k, fit the centres and describe each cluster."""
        from sklearn.cluster import KMeans
        from sklearn.metrics import silhouette_score
        from threadpoolctl import threadpool_limits

        raw = self._raw(X)
        n = len(raw)
        if n < self.k_min + 1:
            raise ValueError(M_("clustering: need more than k_min={k_min} customers, got {n}", k_min=self.k_min, n=n))
        fill = []
        for j in range(raw.shape[1]):
            col = raw[:, j]
            if np.isnan(col).all():
                fill.append(0.0)
            elif j == 0:
                fill.append(float(np.nanmax(col)))
            else:
                fill.append(float(np.nanmedian(col)))
        self.fill_ = fill
        filled = np.where(np.isnan(raw), np.array(fill)[None, :], raw)
        mean = filled.mean(axis=0)
        scale = filled.std(axis=0)
        scale = np.where(scale > 1e-12, scale, 1.0)  # constant feature: centred to 0, not divided by 0
        self.mean_, self.scale_ = mean.tolist(), scale.tolist()
        Z = (filled - mean) / scale

        rng = np.random.default_rng(self.random_state)
        sample = Z[rng.choice(n, size=min(n, int(self.silhouette_sample)), replace=False)]
        k_hi = min(int(self.k_max), len(np.unique(sample, axis=0)) - 1)
        scores: dict[int, float] = {}
        with threadpool_limits(limits=self.n_threads, user_api="openmp"):
            for k in range(int(self.k_min), k_hi + 1):
                labels = KMeans(n_clusters=k, n_init=int(self.n_init), random_state=self.random_state).fit_predict(
                    sample
                )
                if len(np.unique(labels)) > 1:
                    scores[k] = float(silhouette_score(sample, labels))
            if not scores:
                raise ValueError(M_("clustering: the features do not separate into clusters (customers too alike)"))
            best = max(scores, key=lambda k: (scores[k], -k))
            km = KMeans(n_clusters=best, n_init=int(self.n_init), random_state=self.random_state).fit(Z)
        sizes = np.bincount(km.labels_, minlength=best)
        order = np.argsort(-sizes, kind="stable")  # cluster 0 = largest
        self.k_ = int(best)
        self.silhouette_by_k_ = {int(k): v for k, v in scores.items()}
        self.silhouette_ = scores[best]
        self.centers_ = km.cluster_centers_[order].tolist()
        self.sizes_ = sizes[order].astype(int).tolist()
        self.descriptions_ = [self._describe(np.array(c)) for c in self.centers_]
        self.n_features_in_ = raw.shape[1]
        self.feature_names_in_ = np.array(self._names(), dtype=object)
        return self

    def _describe(self, center: np.ndarray) -> str:
        idx = [j for j in np.argsort(-np.abs(center), kind="stable") if abs(center[j]) >= self.describe_threshold]
        words = []
        for j in idx[: int(self.max_terms)]:
            phrases = _CLUSTER_FEATURES[j][2]
            words.append(phrases[(0 if center[j] > 0 else 2) + int(abs(center[j]) >= self.strong_threshold)])
        return ", ".join(words) if words else "close to the average customer"

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Nearest centre (``cluster``) and its description."""
        check_is_fitted(self, "centers_")
        Z = self._matrix(X)
        C = np.array(self.centers_)
        d = ((Z[:, None, :] - C[None, :, :]) ** 2).sum(axis=2)
        lab = d.argmin(axis=1)
        return pd.DataFrame(
            {"cluster": lab.astype("int64"), "cluster_description": np.array(self.descriptions_, dtype=object)[lab]},
            index=X.index,
        )

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output column names."""
        return np.array(["cluster", "cluster_description"], dtype=object)


# ----------------------------------------------------------------------------------------------------------
# the whole segmenter


class CustomerSegmenter(TransformerMixin, BaseEstimator):
    """RFM segments, value tiers, behavioural clusters and BG/NBD + Gamma-Gamma expected value in one.

    ``fit`` and ``predict`` take the per-customer summary (:data:`INPUT_DOC`); :meth:`fit_tables` builds it
    from the four tables at a cutoff. ``predict`` returns one row per input row with ``customer_id``,
    ``r_score, f_score, m_score, rfm_segment, value_tier, value_tier_zh, cluster, cluster_description,
    expected_purchases_{N}d, p_alive, expected_value_{N}d``. The three expected-value columns are NaN for
    customers with no paid order (the BTYD models start at the first purchase); a one-time buyer has
    P(alive) = 1 by the BG/NBD construction (nobody can drop out before a repeat purchase is possible).
    """

    def __init__(self, config: SegmentConfig | None = None):
        self.config = config

    @property
    def cfg(self) -> SegmentConfig:
        """The configuration in use (embedded defaults when None)."""
        return self.config if self.config is not None else SegmentConfig()

    def _build(self) -> None:
        c = self.cfg
        self.rfm_ = RFMScorer(grid=c.rfm.grid, no_purchase_segment=c.rfm.no_purchase_segment)
        self.tierer_ = ValueTierer(
            rules=[r.model_dump(exclude_none=True) for r in c.value_tiers.rules],
            labels=c.value_tiers.labels,
            default=c.value_tiers.default,
        )
        cc = c.clustering
        self.clusterer_ = BehaviourClusterer(
            window_days=c.window_days,
            k_min=cc.k_min,
            k_max=cc.k_max,
            silhouette_sample=cc.silhouette_sample,
            n_init=cc.n_init,
            random_state=cc.random_state,
            describe_threshold=cc.describe_threshold,
            strong_threshold=cc.strong_threshold,
            max_terms=cc.max_terms,
            n_threads=cc.n_threads,
        )
        self.bgnbd_ = BGNBDModel(
            time_unit_days=c.btyd.time_unit_days, horizon_days=c.horizon_days, penalizer=c.btyd.penalizer
        )
        self.gg_ = GammaGammaModel(penalizer=c.btyd.penalizer)

    def fit(self, X: pd.DataFrame, y=None, as_of: pd.Timestamp | str | None = None) -> CustomerSegmenter:
        """Fit every part on the summary of the training population (``as_of``: its cutoff, recorded)."""
        X = validate_summary(X, self.cfg.window_days)
        self._build()
        buyers = X.loc[X["recency_days"].notna()]
        self.rfm_.fit(X)
        self.bgnbd_.fit(buyers)
        self.gg_.fit(buyers)
        self.clusterer_.fit(X)
        self.tierer_.fit()
        self.n_customers_ = len(X)
        self.n_buyers_ = len(buyers)
        self.as_of_ = None if as_of is None else str(pd.Timestamp(as_of))
        return self

    def fit_tables(self, tables: dict[str, pd.DataFrame], as_of: pd.Timestamp | str | None = None) -> CustomerSegmenter:
        """Summarise the tables at ``as_of`` (default: latest paid order) and fit."""
        t = resolve_as_of(tables, as_of)
        return self.fit(summarise_customers(tables, t, self.cfg.window_days), as_of=t)

    def predict(self, X: pd.DataFrame) -> pd.DataFrame:
        """Segments, tiers, clusters and expected value per customer (see the class docstring)."""
        check_is_fitted(self, "bgnbd_")
        X = validate_summary(X, self.cfg.window_days).reset_index(drop=True)
        n = self.cfg.horizon_days
        out = pd.DataFrame({"customer_id": X["customer_id"]})
        out = out.join(self.rfm_.transform(X))
        has = X["recency_days"].notna().to_numpy()
        exp_p = np.full(len(X), np.nan)
        p_alive = np.full(len(X), np.nan)
        value = np.full(len(X), np.nan)
        if has.any():
            b = X.loc[has]
            exp_p[has] = self.bgnbd_.predict_expected_purchases(b)
            p_alive[has] = self.bgnbd_.predict_p_alive(b)
            value[has] = exp_p[has] * self.gg_.predict_expected_value(b)
        out["p_alive"] = p_alive
        out = out.join(self.tierer_.transform(out))
        out = out.join(self.clusterer_.transform(X))
        out[f"expected_purchases_{n}d"] = exp_p
        out[f"expected_value_{n}d"] = value
        return out[output_columns(n)]

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Same as :meth:`predict`."""
        return self.predict(X)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output column names."""
        return np.array(output_columns(self.cfg.horizon_days), dtype=object)

    # --- plain-JSON persistence ----------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """All learned state as JSON-able numbers and strings."""
        check_is_fitted(self, "bgnbd_")
        cl = self.clusterer_
        return {
            "format_version": FORMAT_VERSION,
            "config": self.cfg.model_dump(mode="json"),
            "as_of": self.as_of_,
            "n_customers": self.n_customers_,
            "n_buyers": self.n_buyers_,
            "rfm": {"cuts": self.rfm_.cuts_},
            "clusterer": {
                "fill": cl.fill_,
                "mean": cl.mean_,
                "scale": cl.scale_,
                "centers": cl.centers_,
                "sizes": cl.sizes_,
                "descriptions": cl.descriptions_,
                "k": cl.k_,
                "silhouette": cl.silhouette_,
                "silhouette_by_k": {str(k): v for k, v in cl.silhouette_by_k_.items()},
            },
            "bgnbd": self.bgnbd_.to_dict(),
            "gamma_gamma": self.gg_.to_dict()
            | {"freq_value_corr": None if np.isnan(self.gg_.freq_value_corr_) else self.gg_.freq_value_corr_},
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CustomerSegmenter:
        """Rebuild a fitted segmenter from :meth:`to_dict` output."""
        if d.get("format_version") != FORMAT_VERSION:
            raise ValueError(M_(
                "segmenter state: format_version {value!r}, expected {FORMAT_VERSION}",
                value=d.get('format_version'), FORMAT_VERSION=FORMAT_VERSION,
            ))
        seg = cls(SegmentConfig.model_validate(d["config"]))
        seg._build()
        seg.as_of_ = d["as_of"]
        seg.n_customers_ = int(d["n_customers"])
        seg.n_buyers_ = int(d["n_buyers"])
        seg.rfm_.cuts_ = {k: [float(x) for x in v] for k, v in d["rfm"]["cuts"].items()}
        seg.rfm_.n_features_in_ = 3
        c = d["clusterer"]
        cl = seg.clusterer_
        cl.fill_, cl.mean_, cl.scale_ = c["fill"], c["mean"], c["scale"]
        cl.centers_, cl.sizes_, cl.descriptions_ = c["centers"], c["sizes"], c["descriptions"]
        cl.k_, cl.silhouette_ = int(c["k"]), float(c["silhouette"])
        cl.silhouette_by_k_ = {int(k): float(v) for k, v in c["silhouette_by_k"].items()}
        cl.n_features_in_ = len(cl.fill_)
        seg.bgnbd_ = BGNBDModel.from_dict(d["bgnbd"])
        seg.gg_ = GammaGammaModel.from_dict(d["gamma_gamma"])
        seg.tierer_.fit()
        return seg

    def save_json(self, path: str | Path) -> Path:
        """Write :meth:`to_dict` to ``path``."""
        p = Path(path)
        p.write_text(json.dumps(self.to_dict(), ensure_ascii=False, indent=1, allow_nan=False), encoding="utf-8")
        return p

    @classmethod
    def load_json(cls, path: str | Path) -> CustomerSegmenter:
        """Read a segmenter written by :meth:`save_json`."""
        return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))


def output_columns(horizon_days: int = 90) -> list[str]:
    """Columns of the segmenter's output, in order."""
    n = int(horizon_days)
    return [
        "customer_id",
        "r_score",
        "f_score",
        "m_score",
        "rfm_segment",
        "value_tier",
        "value_tier_zh",
        "cluster",
        "cluster_description",
        f"expected_purchases_{n}d",
        "p_alive",
        f"expected_value_{n}d",
    ]
