"""Point-in-time intent and churn features: one implementation for training, batch and online scoring.

``CRMFeatureBuilder.transform(CRMSnapshot(tables, as_of))`` turns the four contract tables into one
row per customer as of the cutoff ``as_of``; nothing with a timestamp after ``as_of`` is used. The
online path (`build_online_features`) puts one lead's profile and recent events into the same
tables and calls the same transform, so both paths give identical features by construction.

Everything is vectorised over integer customer codes (``np.bincount`` / ``np.maximum.at``), which
keeps a million customers and tens of millions of events within the benchmark's budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from features.config import FeatureConfig
from features.contract import (
    CHANNELS,
    EVENT_TYPES,
    FUNNEL_STAGES,
    TOUCH_CHANNELS,
    coerce_types,
    empty_frame,
)

#: Profile columns kept as categories (never PII).
CATEGORICAL_FEATURES = (
    "source_channel",
    "province",
    "industry",
    "company_size",
    "job_title",
    "gender",
    "member_level",
)
_DAY = np.float64(86400.0)


@dataclass
class CRMSnapshot:
    """The four contract tables and the cutoff at which features are computed."""

    tables: Mapping[str, pd.DataFrame]
    as_of: pd.Timestamp
    customer_ids: Sequence[str] | None = field(default=None)  # restrict output to these customers

    def table(self, name: str) -> pd.DataFrame:
        """A table, or an empty one with the contract's columns when absent."""
        df = self.tables.get(name)
        return empty_frame(name) if df is None else df


def _secs(values: pd.Series | np.ndarray) -> np.ndarray:
    """Datetimes as float seconds since the epoch; NaT becomes NaN."""
    arr = pd.to_datetime(pd.Series(values), errors="coerce").astype("datetime64[ns]")
    out = arr.to_numpy().astype("int64").astype("float64") / 1e9
    out[arr.isna().to_numpy()] = np.nan
    return out


def _codes(values: pd.Series, vocab: Sequence[str]) -> np.ndarray:
    """Positions of ``values`` in ``vocab``; unknown or missing values get -1."""
    return pd.Index(list(vocab)).get_indexer(pd.Series(values, dtype="object").to_numpy())


class CRMFeatureBuilder(TransformerMixin, BaseEstimator):
    """Computes RFM, engagement, funnel, marketing-response, service and profile features at a cutoff.

    Stateless apart from the output column list; ``fit`` only fixes ``feature_names_out_``.
    """

    def __init__(
        self,
        engagement_windows_days: Sequence[int] = (7, 30, 90),
        rfm_windows_days: Sequence[int] = (30, 90, 365),
        trend_days: int = 30,
        service_windows_days: Sequence[int] = (30, 90),
        marketing_window_days: int = 90,
        event_types: Sequence[str] = EVENT_TYPES,
        channels: Sequence[str] = CHANNELS,
        recency_event_types: Sequence[str] = (
            "visit",
            "browse",
            "consult",
            "add_to_cart",
            "checkout_page",
            "login",
            "complaint",
        ),
        max_days: float = 3650.0,
    ) -> None:
        self.engagement_windows_days = engagement_windows_days
        self.rfm_windows_days = rfm_windows_days
        self.trend_days = trend_days
        self.service_windows_days = service_windows_days
        self.marketing_window_days = marketing_window_days
        self.event_types = event_types
        self.channels = channels
        self.recency_event_types = recency_event_types
        self.max_days = max_days

    @classmethod
    def from_config(cls, config: FeatureConfig) -> CRMFeatureBuilder:
        """A builder with the windows and vocabularies of ``config``."""
        return cls(**{k: (tuple(v) if isinstance(v, list) else v) for k, v in config.model_dump().items()})

    # ------------------------------------------------------------------ names
    def _names(self) -> tuple[list[str], list[str]]:
        num: list[str] = ["tenure_days", "age", "points_balance", "marketing_consent"]
        for w in self.rfm_windows_days:
            num += [f"orders_{w}d", f"spend_{w}d"]
        num += [
            "orders_total",
            "spend_total",
            "avg_order_value",
            "refund_share",
            "days_since_last_order",
            "days_since_first_order",
        ]
        for w in self.engagement_windows_days:
            num += [f"n_{e}_{w}d" for e in self.event_types]
            num += [f"n_ch_{c}_{w}d" for c in self.channels]
            num += [f"interactions_{w}d", f"active_days_{w}d"]
        num += [f"days_since_{e}" for e in self.recency_event_types]
        num += [
            "interactions_total",
            f"interaction_trend_{self.trend_days}d",
            "n_distinct_channels_90d",
            "funnel_depth",
            "added_to_cart",
            "reached_checkout",
            "claimed_coupon",
            "days_since_coupon",
        ]
        mw = self.marketing_window_days
        num += [
            f"touches_{mw}d",
            f"open_rate_{mw}d",
            f"click_rate_{mw}d",
            f"coupons_claimed_{mw}d",
            f"responses_{mw}d",
            "touches_total",
            "responses_total",
            "days_since_last_response",
        ]
        num += [f"clicks_{c}_{mw}d" for c in TOUCH_CHANNELS]
        for w in self.service_windows_days:
            num += [f"complaints_{w}d", f"tickets_{w}d", f"refunds_{w}d"]
        return num, list(CATEGORICAL_FEATURES)

    def fit(self, X: CRMSnapshot | None = None, y: Any = None) -> CRMFeatureBuilder:
        """Fix the output columns (the builder learns nothing from data)."""
        num, cat = self._names()
        self.numeric_features_ = num
        self.categorical_features_ = cat
        self.feature_names_out_ = np.asarray(num + cat, dtype=object)
        return self

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the feature columns (``customer_id`` is the index, not a feature)."""
        if not hasattr(self, "feature_names_out_"):
            self.fit()
        return self.feature_names_out_

    # -------------------------------------------------------------- transform
    def transform(self, X: CRMSnapshot) -> pd.DataFrame:
        """Features per customer as of ``X.as_of``, indexed by ``customer_id``."""
        if not hasattr(self, "feature_names_out_"):
            self.fit()
        as_of = pd.Timestamp(X.as_of)
        t = float(as_of.value) / 1e9
        customers = X.table("customers")
        customers = customers[_secs(customers["created_at"]) <= t] if len(customers) else customers
        if X.customer_ids is not None:
            customers = customers[customers["customer_id"].isin(list(X.customer_ids))]
        ids = pd.Index(customers["customer_id"].astype("string").to_numpy(), name="customer_id")
        n = len(ids)
        cols: dict[str, np.ndarray] = {}

        self._profile(customers, t, cols)
        self._orders(X.table("orders"), ids, t, n, cols)
        self._interactions(X.table("interactions"), ids, t, n, cols)
        self._touches(X.table("marketing_touches"), ids, t, n, cols)

        num, cat = self.numeric_features_, self.categorical_features_
        out = pd.DataFrame({k: cols[k] for k in num}, index=ids)
        out = out.astype("float64")
        for c in cat:
            values = customers[c] if c in customers.columns else pd.Series([pd.NA] * n)
            out[c] = pd.Series(values.to_numpy(), index=ids, dtype="object").where(lambda s: s.notna(), None)
        return out

    def _profile(self, customers: pd.DataFrame, t: float, cols: dict[str, np.ndarray]) -> None:
        created = _secs(customers["created_at"]) if len(customers) else np.zeros(0)
        cols["tenure_days"] = (t - created) / _DAY
        for c in ("age", "points_balance"):
            cols[c] = (
                pd.to_numeric(customers[c], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
                if c in customers.columns
                else np.full(len(customers), np.nan)
            )
        if "marketing_consent" in customers.columns:
            cols["marketing_consent"] = (
                customers["marketing_consent"].astype("boolean").astype("Float64").to_numpy(na_value=np.nan)
            )
        else:
            cols["marketing_consent"] = np.full(len(customers), np.nan)

    def _locate(self, df: pd.DataFrame, ts_col: str, ids: pd.Index, t: float):
        """Customer positions and ages in days of the rows at or before ``t`` for known customers."""
        if len(df) == 0:
            return np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0, dtype=bool)
        pos = ids.get_indexer(df["customer_id"].astype("string").to_numpy())
        ts = _secs(df[ts_col])
        keep = (pos >= 0) & (ts <= t)
        return pos[keep], (t - ts[keep]) / _DAY, keep

    def _orders(self, orders: pd.DataFrame, ids: pd.Index, t: float, n: int, cols: dict) -> None:
        pos, age, keep = self._locate(orders, "ts", ids, t)
        status = (
            orders["status"].astype("string").to_numpy()[keep] if len(orders) else np.zeros(0, dtype=object)
        )
        amount = (
            pd.to_numeric(orders["amount"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)[keep]
            if len(orders)
            else np.zeros(0)
        )
        amount = np.where(np.isfinite(amount) & (amount > 0), amount, 0.0)
        paid = status == "paid"
        refunded = status == "refunded"
        pp, pa, pm = pos[paid], age[paid], amount[paid]
        for w in self.rfm_windows_days:
            m = pa < w
            cols[f"orders_{w}d"] = np.bincount(pp[m], minlength=n).astype(float)
            cols[f"spend_{w}d"] = np.bincount(pp[m], weights=pm[m], minlength=n)
        n_paid = np.bincount(pp, minlength=n).astype(float)
        spend = np.bincount(pp, weights=pm, minlength=n)
        n_ref = np.bincount(pos[refunded], minlength=n).astype(float)
        cols["orders_total"] = n_paid
        cols["spend_total"] = spend
        with np.errstate(invalid="ignore", divide="ignore"):
            cols["avg_order_value"] = np.where(n_paid > 0, spend / n_paid, np.nan)
            cols["refund_share"] = np.where(n_paid + n_ref > 0, n_ref / (n_paid + n_ref), 0.0)
        cols["days_since_last_order"] = self._min_age(pp, pa, n)
        cols["days_since_first_order"] = -self._min_age(pp, -pa, n, fill=-self.max_days)
        for w in self.service_windows_days:
            cols[f"refunds_{w}d"] = np.bincount(pos[refunded & (age < w)], minlength=n).astype(float)

    def _min_age(self, pos: np.ndarray, age: np.ndarray, n: int, fill: float | None = None) -> np.ndarray:
        out = np.full(n, np.inf)
        if len(pos):
            np.minimum.at(out, pos, age)
        out[np.isinf(out)] = self.max_days if fill is None else fill
        return out

    def _interactions(self, events: pd.DataFrame, ids: pd.Index, t: float, n: int, cols: dict) -> None:
        pos, age, keep = self._locate(events, "ts", ids, t)
        et = _codes(events["event_type"], self.event_types)[keep] if len(events) else np.zeros(0, dtype=int)
        ch = _codes(events["channel"], self.channels)[keep] if len(events) else np.zeros(0, dtype=int)
        n_et, n_ch = len(self.event_types), len(self.channels)
        day = np.floor(age).astype(np.int64)
        for w in self.engagement_windows_days:
            m = age < w
            by_type = np.bincount(pos[m] * n_et + np.where(et[m] >= 0, et[m], 0), minlength=n * n_et)
            by_type = by_type.reshape(n, n_et).astype(float)
            # unknown event types are counted in the totals only
            unknown = np.bincount(pos[m & (et < 0)], minlength=n)
            if unknown.any():
                by_type[:, 0] -= unknown
            for j, e in enumerate(self.event_types):
                cols[f"n_{e}_{w}d"] = by_type[:, j]
            by_ch = np.bincount(pos[m] * n_ch + np.where(ch[m] >= 0, ch[m], 0), minlength=n * n_ch)
            by_ch = by_ch.reshape(n, n_ch).astype(float)
            unknown_ch = np.bincount(pos[m & (ch < 0)], minlength=n)
            if unknown_ch.any():
                by_ch[:, 0] -= unknown_ch
            for j, c in enumerate(self.channels):
                cols[f"n_ch_{c}_{w}d"] = by_ch[:, j]
            cols[f"interactions_{w}d"] = np.bincount(pos[m], minlength=n).astype(float)
            cols[f"active_days_{w}d"] = self._distinct_count(pos[m], day[m], n)
        for e in self.recency_event_types:
            j = list(self.event_types).index(e) if e in self.event_types else -2
            m = et == j
            cols[f"days_since_{e}"] = self._min_age(pos[m], age[m], n)
        cols["interactions_total"] = np.bincount(pos, minlength=n).astype(float)
        td = self.trend_days
        recent = np.bincount(pos[age < td], minlength=n).astype(float)
        before = np.bincount(pos[(age >= td) & (age < 2 * td)], minlength=n).astype(float)
        cols[f"interaction_trend_{td}d"] = np.log1p(recent) - np.log1p(before)
        cols["n_distinct_channels_90d"] = self._distinct_count(pos[age < 90], ch[age < 90], n)
        # funnel: deepest stage ever reached as of T
        stage_of_type = np.array(
            [FUNNEL_STAGES.index(e) + 1 if e in FUNNEL_STAGES else 0 for e in self.event_types],
            dtype=np.int64,
        )
        depth = np.zeros(n, dtype=np.int64)
        if len(pos):
            st = np.where(et >= 0, stage_of_type[np.where(et >= 0, et, 0)], 0)
            np.maximum.at(depth, pos, st)
        cols["funnel_depth"] = depth.astype(float)
        for name, e in (("added_to_cart", "add_to_cart"), ("reached_checkout", "checkout_page")):
            j = list(self.event_types).index(e) if e in self.event_types else -2
            cols[name] = (np.bincount(pos[et == j], minlength=n) > 0).astype(float)
        jc = list(self.event_types).index("coupon_claim") if "coupon_claim" in self.event_types else -2
        self._coupon_pos, self._coupon_age = pos[et == jc], age[et == jc]
        for w in self.service_windows_days:
            for name, e in (("complaints", "complaint"), ("tickets", "support_ticket")):
                j = list(self.event_types).index(e) if e in self.event_types else -2
                cols[f"{name}_{w}d"] = np.bincount(pos[(et == j) & (age < w)], minlength=n).astype(float)

    @staticmethod
    def _distinct_count(pos: np.ndarray, key: np.ndarray, n: int) -> np.ndarray:
        if len(pos) == 0:
            return np.zeros(n)
        pairs = np.unique(pos.astype(np.int64) * (int(key.max()) + 2) + (key.astype(np.int64) + 1))
        return np.bincount(pairs // (int(key.max()) + 2), minlength=n).astype(float)

    def _touches(self, touches: pd.DataFrame, ids: pd.Index, t: float, n: int, cols: dict) -> None:
        mw = self.marketing_window_days
        pos, age, keep = self._locate(touches, "sent_at", ids, t)
        if len(touches):
            sub = touches.loc[keep]
            opened = _secs(sub["opened_at"]) <= t
            clicked_s = _secs(sub["clicked_at"])
            clicked = clicked_s <= t
            # boolean outcomes carry no time: they count once the touch's last known event is at or before T
            last_known = np.where(
                clicked, clicked_s, np.where(opened, _secs(sub["opened_at"]), t - age * _DAY)
            )
            known = last_known <= t
            coupon = sub["coupon_claimed"].astype("boolean").fillna(False).to_numpy(dtype=bool) & known
            responded = sub["responded"].astype("boolean").fillna(False).to_numpy(dtype=bool) & known
            resp_age = (t - last_known) / _DAY
            tch = _codes(sub["channel"], TOUCH_CHANNELS)
        else:
            opened = clicked = coupon = responded = np.zeros(0, dtype=bool)
            resp_age = np.zeros(0)
            tch = np.zeros(0, dtype=int)
        m = age < mw
        sent = np.bincount(pos[m], minlength=n).astype(float)
        cols[f"touches_{mw}d"] = sent
        with np.errstate(invalid="ignore", divide="ignore"):
            cols[f"open_rate_{mw}d"] = np.where(
                sent > 0, np.bincount(pos[m & opened], minlength=n) / np.maximum(sent, 1), np.nan
            )
            cols[f"click_rate_{mw}d"] = np.where(
                sent > 0, np.bincount(pos[m & clicked], minlength=n) / np.maximum(sent, 1), np.nan
            )
        cols[f"coupons_claimed_{mw}d"] = np.bincount(pos[m & coupon], minlength=n).astype(float)
        cols[f"responses_{mw}d"] = np.bincount(pos[m & responded], minlength=n).astype(float)
        cols["touches_total"] = np.bincount(pos, minlength=n).astype(float)
        cols["responses_total"] = np.bincount(pos[responded], minlength=n).astype(float)
        cols["days_since_last_response"] = self._min_age(pos[responded], resp_age[responded], n)
        for j, c in enumerate(TOUCH_CHANNELS):
            cols[f"clicks_{c}_{mw}d"] = np.bincount(pos[m & clicked & (tch == j)], minlength=n).astype(float)
        # a coupon counts whether claimed in an interaction event or on a marketing touch
        cp = np.concatenate([self._coupon_pos, pos[coupon]])
        ca = np.concatenate([self._coupon_age, resp_age[coupon]])
        cols["claimed_coupon"] = (np.bincount(cp, minlength=n) > 0).astype(float)
        cols["days_since_coupon"] = self._min_age(cp, ca, n)
        del self._coupon_pos, self._coupon_age


def build_features(
    tables: Mapping[str, pd.DataFrame],
    as_of: pd.Timestamp | str,
    config: FeatureConfig | None = None,
    customer_ids: Sequence[str] | None = None,
) -> pd.DataFrame:
    """Features of every customer created at or before ``as_of`` (batch path)."""
    builder = CRMFeatureBuilder.from_config(config or FeatureConfig()).fit()
    return builder.transform(CRMSnapshot(tables, pd.Timestamp(as_of), customer_ids))


def tables_from_records(
    profile: Mapping[str, Any],
    events: Mapping[str, Sequence[Mapping[str, Any]]] | None,
    as_of: pd.Timestamp | str,
) -> dict[str, pd.DataFrame]:
    """One lead's profile and recent events (as a CRM sends them) as contract tables."""
    cid = str(profile["customer_id"])
    tables: dict[str, pd.DataFrame] = {}
    cust = dict(profile)
    # a lead sent without a creation time (or with one in the future) is new as of the scoring time
    if cust.get("created_at") in (None, "") or pd.Timestamp(cust["created_at"]) > pd.Timestamp(as_of):
        cust["created_at"] = pd.Timestamp(as_of)
    tables["customers"] = coerce_types(
        pd.DataFrame([cust]).reindex(columns=empty_frame("customers").columns), "customers"
    )
    for name in ("interactions", "orders", "marketing_touches"):
        rows = [{**r, "customer_id": cid} for r in (events or {}).get(name, [])]
        frame = pd.DataFrame(rows).reindex(columns=empty_frame(name).columns) if rows else empty_frame(name)
        tables[name] = coerce_types(frame, name)
    return tables


def build_online_features(
    builder: CRMFeatureBuilder,
    profile: Mapping[str, Any],
    events: Mapping[str, Sequence[Mapping[str, Any]]] | None,
    as_of: pd.Timestamp | str,
) -> pd.DataFrame:
    """Features of one lead from its raw profile and recent events (online path, same transform as batch)."""
    return builder.transform(CRMSnapshot(tables_from_records(profile, events, as_of), pd.Timestamp(as_of)))
