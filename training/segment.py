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
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from features.contract import drop_pii, empty_frame
from training.btyd import BGNBDModel, GammaGammaModel, count_purchase_days, evaluate_holdout, summarise_transactions

log = logging.getLogger(__name__)

FORMAT_VERSION = 1
NO_PURCHASE = "No purchase"
#: Display order of the standard segments (custom names from a config follow, alphabetically).
SEGMENT_ORDER = (
    "Champions",
    "Loyal",
    "Potential loyalist",
    "New",
    "Promising",
    "Need attention",
    "About to sleep",
    "At risk",
    "Cannot lose them",
    "Hibernating",
    "Lost",
    NO_PURCHASE,
)

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
# configuration


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


DEFAULT_GRID: dict[int, list[str]] = {
    # R score → segment for FM score 1..5, FM = round-half-up((F + M) / 2)
    5: ["New", "Potential loyalist", "Potential loyalist", "Champions", "Champions"],
    4: ["Promising", "Potential loyalist", "Potential loyalist", "Loyal", "Loyal"],
    3: ["About to sleep", "About to sleep", "Need attention", "Loyal", "Loyal"],
    2: ["Hibernating", "Hibernating", "At risk", "At risk", "Cannot lose them"],
    1: ["Lost", "Hibernating", "At risk", "At risk", "Cannot lose them"],
}


class RFMConfig(_Strict):
    """How scores map to named segments."""

    grid: dict[int, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_GRID.items()})
    no_purchase_segment: str = NO_PURCHASE

    @field_validator("grid")
    @classmethod
    def _full_grid(cls, v: dict[int, list[str]]) -> dict[int, list[str]]:
        if sorted(v) != [1, 2, 3, 4, 5] or any(len(row) != 5 for row in v.values()):
            raise ValueError("grid needs rows for R scores 1..5, each with 5 segment names (FM score 1..5)")
        return v


class TierRule(_Strict):
    """One value-tier rule: every condition given must hold (missing P(alive) fails a P(alive) condition)."""

    tier: str
    min_r_score: int | None = Field(default=None, ge=1, le=5)
    min_f_score: int | None = Field(default=None, ge=1, le=5)
    min_m_score: int | None = Field(default=None, ge=1, le=5)
    min_p_alive: float | None = Field(default=None, ge=0, le=1)
    segments: list[str] | None = Field(default=None, description="rfm_segment must be one of these")


class ValueTierConfig(_Strict):
    """Ordered value-tier rules: the first matching rule gives the tier, else ``default``."""

    labels: dict[str, str] = Field(
        default_factory=lambda: {"important": "重要客户", "potential": "潜在客户", "ordinary": "普通客户"}
    )
    default: str = "ordinary"
    rules: list[TierRule] = Field(
        default_factory=lambda: [
            TierRule(tier="important", min_r_score=3, min_f_score=4, min_m_score=4, min_p_alive=0.5),
            TierRule(tier="potential", min_m_score=4),
            TierRule(tier="potential", min_r_score=4, min_p_alive=0.5),
        ]
    )

    @model_validator(mode="after")
    def _known_tiers(self) -> ValueTierConfig:
        unknown = sorted({r.tier for r in self.rules} - set(self.labels) | ({self.default} - set(self.labels)))
        if unknown:
            raise ValueError(f"tier(s) {unknown} have no entry in labels")
        return self


class ClusterConfig(_Strict):
    """Behavioural clustering: k-means with k chosen by silhouette on a sample."""

    k_min: int = Field(default=3, ge=2)
    k_max: int = Field(default=8, ge=2)
    silhouette_sample: int = Field(default=3000, ge=100, description="customers sampled for the silhouette")
    n_init: int = Field(default=4, ge=1)
    random_state: int = 0
    describe_threshold: float = Field(default=0.5, gt=0, description="|z| of a centre that gets a word")
    strong_threshold: float = Field(default=1.5, gt=0, description="|z| from which the stronger word is used")
    max_terms: int = Field(default=3, ge=1)
    n_threads: int | None = Field(default=1, ge=1, description="k-means OpenMP threads; null = all cores")

    @model_validator(mode="after")
    def _range(self) -> ClusterConfig:
        if self.k_max < self.k_min:
            raise ValueError(f"k_max ({self.k_max}) must be >= k_min ({self.k_min})")
        return self


class BTYDConfig(_Strict):
    """BG/NBD and Gamma-Gamma settings."""

    time_unit_days: float = Field(default=7.0, gt=0, description="model time unit (7 = weeks)")
    penalizer: float = Field(default=0.0, ge=0)
    min_holdout_buyers: int = Field(default=20, ge=2, description="fewer buyers → no holdout metric")


class SegmentConfig(_Strict):
    """Everything ``crmscore segment fit`` needs besides the data (``configs/segment.yaml``)."""

    horizon_days: int = Field(default=90, gt=0, description="N of expected_purchases_{N}d / expected_value_{N}d")
    window_days: int = Field(default=90, gt=0, description="W of the engagement and marketing features")
    rfm: RFMConfig = Field(default_factory=RFMConfig)
    value_tiers: ValueTierConfig = Field(default_factory=ValueTierConfig)
    clustering: ClusterConfig = Field(default_factory=ClusterConfig)
    btyd: BTYDConfig = Field(default_factory=BTYDConfig)
    experiment: str = "crmscore-segments"
    model_name: str = "customer_segments"


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
            raise ValueError(f"table {name}: missing column(s) {', '.join(missing)}")

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
        raise ValueError("orders: no paid order, so there is no default cutoff; pass --as-of")
    return pd.Timestamp(paid.max())


def validate_summary(X: pd.DataFrame, window_days: int) -> pd.DataFrame:
    """Check the summary frame (columns present, values in range) and return it with float columns.

    Errors name the column and the first offending customer.
    """
    cols = input_columns(window_days)
    missing = [c for c in cols if c not in X.columns]
    if missing:
        raise ValueError(f"segment input: missing column(s) {', '.join(missing)} (schema: see INPUT_DOC)")
    out = X[cols].copy()
    out["customer_id"] = out["customer_id"].astype("string")
    for c in cols[1:]:
        try:
            out[c] = pd.to_numeric(out[c], errors="raise").astype("float64")
        except (ValueError, TypeError) as e:
            raise ValueError(f"segment input: column {c} is not numeric ({e})") from None

    def fail(mask: np.ndarray, what: str) -> None:
        if mask.any():
            i = int(np.flatnonzero(mask)[0])
            raise ValueError(
                f"segment input: {int(mask.sum())} row(s) {what}; first: customer_id={out['customer_id'].iloc[i]}"
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
            raise ValueError(f"RFM: need at least 5 customers with a paid order to learn quintiles, got {len(buyers)}")
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
            raise ValueError(f"clustering: need more than k_min={self.k_min} customers, got {n}")
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
                raise ValueError("clustering: the features do not separate into clusters (customers too alike)")
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
            raise ValueError(f"segmenter state: format_version {d.get('format_version')!r}, expected {FORMAT_VERSION}")
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


class CustomerSegmentsModel(mlflow.pyfunc.PythonModel):
    """The logged ``customer_segments`` model: loads the segmenter JSON artifact, predicts per customer.

    Input: the summary frame (:data:`INPUT_DOC`, build it with :func:`summarise_customers`); output: the
    columns of :func:`output_columns`.
    """

    def load_context(self, context) -> None:
        """Read the fitted segmenter from the ``segmenter`` artifact."""
        self.segmenter = CustomerSegmenter.load_json(context.artifacts["segmenter"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Score a DataFrame of customer summaries."""
        return self.segmenter.predict(pd.DataFrame(model_input))


_MODEL_CODE = """\
# models-from-code entry of the customer_segments pyfunc: no pickled object, the state is segmenter.json
from mlflow.models import set_model

from training.segment import CustomerSegmentsModel

set_model(CustomerSegmentsModel())
"""


# ----------------------------------------------------------------------------------------------------------
# fit + log + register


@dataclass
class SegmentFitResult:
    """What ``crmscore segment fit`` did."""

    run_id: str
    model_uri: str
    version: str
    champion_set: bool
    as_of: str
    n_customers: int
    n_buyers: int
    k: int
    silhouette: float
    bgnbd_params: dict[str, float]
    gamma_gamma_params: dict[str, float]
    holdout: dict[str, float] | None
    segment_sizes: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _slug(s: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", s.lower()).strip("_")


def _ordered_segments(names: list[str]) -> list[str]:
    known = [s for s in SEGMENT_ORDER if s in names]
    return known + sorted(set(names) - set(known))


def profile_segments(summary: pd.DataFrame, scored: pd.DataFrame, by: str, horizon_days: int) -> pd.DataFrame:
    """Per-group size, share and mean behaviour (no customer ids): the table a marketer reads."""
    n = int(horizon_days)
    df = pd.concat(
        [
            summary.drop(columns="customer_id").reset_index(drop=True),
            scored.drop(columns="customer_id").reset_index(drop=True),
        ],
        axis=1,
    )
    df = df.loc[:, ~df.columns.duplicated()]
    agg = df.groupby(by, dropna=False).agg(
        customers=("monetary", "size"),
        mean_recency_days=("recency_days", "mean"),
        mean_frequency=("frequency", "mean"),
        mean_spend=("monetary", "mean"),
        mean_p_alive=("p_alive", "mean"),
        **{
            f"mean_expected_purchases_{n}d": (f"expected_purchases_{n}d", "mean"),
            f"mean_expected_value_{n}d": (f"expected_value_{n}d", "mean"),
            f"total_expected_value_{n}d": (f"expected_value_{n}d", "sum"),
        },
    )
    agg.insert(1, "share", agg["customers"] / agg["customers"].sum())
    if by == "rfm_segment":
        agg = agg.reindex(_ordered_segments(list(agg.index)))
    return agg.reset_index()


def plot_segments(profile: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Bar chart of segment sizes with mean spend per customer beside it (PNG, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prof = profile.iloc[::-1]  # first segment on top
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(11, 0.45 * len(prof) + 1.8), sharey=True, gridspec_kw={"width_ratios": [3, 2]}
    )
    y = np.arange(len(prof))
    ax1.barh(y, prof["customers"], color="#4C72B0")
    for yi, (c, s) in enumerate(zip(prof["customers"], prof["share"], strict=True)):
        ax1.text(c, yi, f" {int(c):,} ({s:.0%})", va="center", fontsize=8)
    ax1.set_yticks(y, prof["rfm_segment"])
    ax1.set_xlabel("customers")
    ax1.set_xlim(0, prof["customers"].max() * 1.3)
    ax1.set_title("Customers per segment")
    spend = prof["mean_spend"].fillna(0)
    ax2.barh(y, spend, color="#DD8452")
    for yi, v in enumerate(spend):
        ax2.text(v, yi, f" {v:,.0f}", va="center", fontsize=8)
    ax2.set_xlabel("mean spend per customer (to date)")
    ax2.set_xlim(0, max(float(spend.max()), 1.0) * 1.3)
    ax2.set_title("Mean spend")
    fig.suptitle(title)
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


def _example_input(window_days: int) -> pd.DataFrame:
    """Made-up rows for the model signature and input example (no real customer)."""
    w = int(window_days)
    return pd.DataFrame(
        {
            "customer_id": pd.Series(
                ["example-repeat-buyer", "example-one-time-buyer", "example-lead"], dtype="string"
            ),
            "recency_days": [12.0, 80.0, np.nan],
            "frequency": [4.0, 0.0, 0.0],
            "monetary": [520.0, 60.0, 0.0],
            "avg_repeat_value": [105.0, 0.0, 0.0],
            "tenure_days": [300.0, 80.0, np.nan],
            f"interactions_{w}d": [25.0, 3.0, 7.0],
            f"touches_{w}d": [6.0, 2.0, 0.0],
            f"open_rate_{w}d": [0.5, 0.0, np.nan],
            f"click_rate_{w}d": [0.17, 0.0, np.nan],
            f"coupon_claims_{w}d": [1.0, 0.0, 0.0],
        }
    )


def _holdout_metric(
    paid: pd.DataFrame, as_of: pd.Timestamp, cfg: SegmentConfig
) -> tuple[dict[str, float] | None, str | None]:
    """Backtest of the BG/NBD fit: calibrate at ``as_of - N`` days, compare with (as_of - N, as_of]."""
    n = cfg.horizon_days
    cal_end = as_of - pd.Timedelta(days=n)
    calib = summarise_transactions(paid, cal_end)
    if len(calib) < cfg.btyd.min_holdout_buyers or not (calib["frequency"] > 0).any():
        return None, (
            f"BG/NBD holdout skipped: {len(calib)} buyer(s) before {cal_end.date()} "
            f"(need {cfg.btyd.min_holdout_buyers} with some repeat purchases)"
        )
    model = BGNBDModel(time_unit_days=cfg.btyd.time_unit_days, horizon_days=n, penalizer=cfg.btyd.penalizer)
    model.fit(calib)
    actual = count_purchase_days(paid, cal_end, as_of)
    return evaluate_holdout(model, calib, actual, n), None


def _register(name: str, model_uri: str, tags: dict[str, str], reason: str) -> tuple[str, bool]:
    """Register a challenger version; make it champion when the model has none yet."""
    from training.registry import CHAMPION, get_alias_version, register_challenger, set_champion

    version = register_challenger(name, model_uri, tags)
    if get_alias_version(name, CHAMPION) is None:
        set_champion(name, version, reason)
        return version, True
    return version, False


def fit_segments(
    data_dir: str | Path,
    as_of: str | pd.Timestamp | None = None,
    config_path: str | Path | None = None,
) -> SegmentFitResult:
    """Fit the segmenter on a data dir at a cutoff, log it to MLflow and register ``customer_segments``.

    Tracking URI: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working directory; the run is a
    new one in ``cfg.experiment``, or inside ``mlflow run`` the run MLflow opened. Logged:
    parameters, metrics (silhouette, segment / tier / cluster sizes, BG/NBD and Gamma-Gamma parameters,
    ``bgnbd_holdout_mae``), segment / cluster / tier profile CSVs, a PNG chart and the pyfunc model. No
    customer id or PII column is logged.
    """
    import mlflow

    from features.config import load_config
    from features.io import load_tables
    from training.registry import configure_tracking, start_job_run

    cfg = load_config(config_path, SegmentConfig)
    tables = load_tables(data_dir, required=("orders",))
    notes = [
        f"table {t} absent from {data_dir}: treated as empty"
        for t in ("customers", "interactions", "marketing_touches")
        if t not in tables
    ]
    tables = {k: drop_pii(v) for k, v in tables.items()}
    t = resolve_as_of(tables, as_of)
    orders = tables["orders"]
    paid = orders.loc[(orders["status"] == "paid").fillna(False).to_numpy(dtype=bool) & (orders["ts"] <= t)]
    if paid.empty:
        raise ValueError(f"orders: no paid order on or before {t}")

    summary = summarise_customers(tables, t, cfg.window_days)
    seg = CustomerSegmenter(cfg).fit(summary, as_of=t)
    scored = seg.predict(summary)
    holdout, why = _holdout_metric(paid, t, cfg)
    if why:
        notes.append(why)
    for name, model in (("BG/NBD", seg.bgnbd_), ("Gamma-Gamma", seg.gg_)):
        if model.params_at_bound_:
            notes.append(
                f"{name} parameter(s) {', '.join(model.params_at_bound_)} ended at the optimiser bound: the data "
                "shows almost no sign of what they measure (for BG/NBD a or b, of customers dropping out, "
                "so P(alive) is near 1 for everyone)"
            )
    for w in notes:
        log.warning(w)

    n = cfg.horizon_days
    seg_prof = profile_segments(summary, scored, "rfm_segment", n)
    clu_prof = profile_segments(summary, scored, "cluster", n)
    clu_prof.insert(1, "description", [seg.clusterer_.descriptions_[int(c)] for c in clu_prof["cluster"]])
    engagement = input_columns(cfg.window_days)[6:]  # the window counts and rates
    feat_means = summary[engagement].groupby(scored["cluster"].to_numpy()).mean()
    clu_prof = clu_prof.merge(feat_means.add_prefix("mean_").reset_index(names="cluster"), on="cluster")
    tier_prof = profile_segments(summary, scored, "value_tier", n)
    tier_prof.insert(1, "label_zh", [cfg.value_tiers.labels[x] for x in tier_prof["value_tier"]])
    sizes = {str(k): int(v) for k, v in zip(seg_prof["rfm_segment"], seg_prof["customers"], strict=True)}

    configure_tracking()
    with start_job_run(cfg.experiment, f"segments-{t.date()}") as run, tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        mlflow.log_params(
            {
                "as_of": str(t),
                "horizon_days": n,
                "window_days": cfg.window_days,
                "k": seg.clusterer_.k_,
                "k_range": f"{cfg.clustering.k_min}-{cfg.clustering.k_max}",
                "time_unit_days": cfg.btyd.time_unit_days,
                "n_customers": seg.n_customers_,
                "n_buyers": seg.n_buyers_,
            }
        )
        metrics: dict[str, float] = {"silhouette": seg.clusterer_.silhouette_}
        metrics |= {f"silhouette_k{k}": v for k, v in seg.clusterer_.silhouette_by_k_.items()}
        metrics |= {f"segment_size_{_slug(k)}": v for k, v in sizes.items()}
        metrics |= {
            f"cluster_size_{c}": int(v) for c, v in zip(clu_prof["cluster"], clu_prof["customers"], strict=True)
        }
        metrics |= {
            f"value_tier_size_{k}": int(v) for k, v in zip(tier_prof["value_tier"], tier_prof["customers"], strict=True)
        }
        metrics |= {f"bgnbd_{k}": v for k, v in seg.bgnbd_.params_.items()}
        metrics["bgnbd_log_likelihood"] = seg.bgnbd_.log_likelihood_
        metrics |= {f"gg_{k}": v for k, v in seg.gg_.params_.items()}
        if not np.isnan(seg.gg_.freq_value_corr_):
            metrics["gg_freq_value_corr"] = seg.gg_.freq_value_corr_
        if holdout is not None:
            metrics |= {f"bgnbd_holdout_{k}": v for k, v in holdout.items() if np.isfinite(v)}
        metrics[f"total_expected_value_{n}d"] = float(np.nansum(scored[f"expected_value_{n}d"]))
        mlflow.log_metrics({k: float(v) for k, v in metrics.items()})

        seg_prof.to_csv(tmpd / "segment_profiles.csv", index=False)
        clu_prof.to_csv(tmpd / "cluster_profiles.csv", index=False)
        tier_prof.to_csv(tmpd / "value_tier_profiles.csv", index=False)
        plot_segments(
            seg_prof, tmpd / "segment_sizes.png", f"RFM segments as of {t.date()} ({seg.n_customers_:,} customers)"
        )
        (tmpd / "segment_config.json").write_text(
            json.dumps(cfg.model_dump(mode="json"), ensure_ascii=False, indent=1), encoding="utf-8"
        )
        for f in (
            "segment_profiles.csv",
            "cluster_profiles.csv",
            "value_tier_profiles.csv",
            "segment_sizes.png",
            "segment_config.json",
        ):
            mlflow.log_artifact(str(tmpd / f), artifact_path="segments")

        state = seg.save_json(tmpd / "segmenter.json")
        code = tmpd / "customer_segments_model.py"
        code.write_text(_MODEL_CODE, encoding="utf-8")
        example = _example_input(cfg.window_days)
        with warnings.catch_warnings():
            # the integer outputs (scores, cluster) are never missing, so mlflow's hint does not apply
            warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
            signature = mlflow.models.infer_signature(example, seg.predict(example))
        from training.train import model_requirements

        info = mlflow.pyfunc.log_model(
            name=cfg.model_name,
            python_model=str(code),
            artifacts={"segmenter": str(state)},
            signature=signature,
            input_example=example,
            pip_requirements=model_requirements(),
        )
        version, champion = _register(
            cfg.model_name,
            info.model_uri,
            {
                "as_of": str(t),
                "silhouette": f"{seg.clusterer_.silhouette_:.4f}",
                "k": seg.clusterer_.k_,
                "run_id": run.info.run_id,
            },
            reason="first customer_segments model",
        )
    return SegmentFitResult(
        run_id=run.info.run_id,
        model_uri=info.model_uri,
        version=version,
        champion_set=champion,
        as_of=str(t),
        n_customers=seg.n_customers_,
        n_buyers=seg.n_buyers_,
        k=seg.clusterer_.k_,
        silhouette=seg.clusterer_.silhouette_,
        bgnbd_params=dict(seg.bgnbd_.params_),
        gamma_gamma_params=dict(seg.gg_.params_),
        holdout=holdout,
        segment_sizes=sizes,
        warnings=notes,
    )
