"""Point-in-time intent and churn features: one implementation for training, batch and online scoring.

``CRMFeatureBuilder.transform(CRMSnapshot(tables, as_of))`` turns the four contract tables into one
row per customer as of the cutoff ``as_of``; nothing with a timestamp after ``as_of`` is used. The
online path (``transform_one`` / `build_online_features`) turns one lead's profile and recent events
into the same arrays and runs the same core (``_compute``), so both paths give identical features.

Everything is vectorised over integer customer codes (``np.bincount`` / ``np.maximum.at``), which
keeps a million customers and tens of millions of events within the benchmark's budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from features.config import FeatureConfig
from features.contract import (
    BANT_COLUMNS,
    CHANNELS,
    EVENT_TYPES,
    FUNNEL_STAGES,
    TOUCH_CHANNELS,
    coerce_types,
    empty_frame,
)
from features.feedback import FEEDBACK_FEATURES, FEEDBACK_INPUT_COLUMNS, feedback_features
from features.timestamps import record_seconds, to_seconds
from features.timestamps import ts_seconds as _ts_seconds  # the engines read the cutoff with it too

#: Profile columns kept as categories (never PII).
CATEGORICAL_FEATURES = (
    "source_channel",
    "province",
    "industry",
    "company_size",
    "job_title",
    "gender",
    "member_level",
    *BANT_COLUMNS,  # optional lead qualification answers (missing for most rows); FeatureConfig.bant_features
)
_DAY = np.float64(86400.0)

#: The only columns the builder reads, per contract table (``features.io.load_feature_tables`` reads just these).
FEATURE_INPUT_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "created_at", "age", "points_balance", "marketing_consent", *CATEGORICAL_FEATURES),
    "interactions": ("customer_id", "ts", "channel", "event_type"),
    "orders": ("customer_id", "ts", "amount", "status"),
    "marketing_touches": (
        "customer_id",
        "channel",
        "sent_at",
        "opened_at",
        "clicked_at",
        "coupon_claimed",
        "responded",
    ),
}


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
    """Datetimes as float seconds since the epoch; NaT becomes NaN.

    A ``datetime64[ns]`` column (what loaded contract tables hold) is read in place: one float64
    array is the only allocation.
    """
    ns = values.to_numpy() if isinstance(values, pd.Series) else np.asarray(values)
    if ns.dtype != np.dtype("datetime64[ns]"):
        ns = pd.to_datetime(pd.Series(values), errors="coerce").astype("datetime64[ns]").to_numpy()
    ints = ns.view(np.int64)
    out = ints.astype(np.float64)
    out /= 1e9
    out[ints == np.iinfo(np.int64).min] = np.nan  # NaT
    return out


def _code_dtype(size: int) -> type[np.signedinteger]:
    """The narrowest signed integer type holding codes ``-1 .. size - 1``."""
    return np.int8 if size < 127 else np.int16 if size < 32_767 else np.int32 if size < 2**31 - 1 else np.int64


def _codes(values: pd.Series, vocab: Sequence[str] | pd.Index) -> np.ndarray:
    """Positions of ``values`` in ``vocab``; unknown or missing values get -1 (categoricals mapped per category).

    Codes come in the narrowest integer type for ``len(vocab)`` (int8 for event types, int32 for customers).
    """
    index = vocab if isinstance(vocab, pd.Index) else pd.Index(list(vocab), dtype=object)
    dtype = _code_dtype(len(index))
    if isinstance(values.dtype, pd.CategoricalDtype):
        per_category = np.append(index.get_indexer(values.cat.categories.to_numpy(dtype=object)), -1).astype(dtype)
        return per_category[values.cat.codes.to_numpy()]  # code -1 (missing) picks the trailing -1
    return index.get_indexer(values.to_numpy(dtype=object)).astype(dtype, copy=False)


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
        bant_features: bool = True,
        feedback_features: bool = False,
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
        self.bant_features = bant_features
        self.feedback_features = feedback_features

    @classmethod
    def from_config(cls, config: FeatureConfig) -> CRMFeatureBuilder:
        """A builder with the windows and vocabularies of ``config``."""
        kwargs: dict[str, Any] = {k: (tuple(v) if isinstance(v, list) else v) for k, v in config.model_dump().items()}
        return cls(**kwargs)

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
        if getattr(self, "feedback_features", False):  # FeatureConfig.feedback_features (counts/ratings/days only)
            num += list(FEEDBACK_FEATURES)
        # a builder pickled before BANT existed has no attribute: it keeps its fitted names anyway
        bant = getattr(self, "bant_features", True)
        return num, [c for c in CATEGORICAL_FEATURES if bant or c not in BANT_COLUMNS]

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
        """Features per customer as of ``X.as_of``, indexed by ``customer_id`` (batch path)."""
        if not hasattr(self, "feature_names_out_"):
            self.fit()
        t = _ts_seconds(pd.Timestamp(X.as_of))
        customers = X.table("customers")
        if len(customers):
            customers = customers[_secs(customers["created_at"]) <= t]
        if X.customer_ids is not None:
            customers = customers[customers["customer_id"].isin(list(X.customer_ids))]
        ids = pd.Index(customers["customer_id"].to_numpy(dtype=object), dtype=object, name="customer_id")
        cust = _customer_arrays(customers)
        del customers
        # each event table becomes arrays only when its features are computed, and is freed right after
        tabs: dict[str, Any] = {
            "orders": lambda: _order_arrays(X.table("orders"), ids),
            "interactions": lambda: _interaction_arrays(X.table("interactions"), ids, self.event_types, self.channels),
            "marketing_touches": lambda: _touch_arrays(X.table("marketing_touches"), ids),
        }
        # the numeric features go straight into one float64 block (no per-column dict, no concat, no cast)
        sink = _ColumnSink(self.numeric_features_, len(ids))
        self._compute(len(ids), cust, tabs, t, sink)
        if getattr(self, "feedback_features", False):
            fb = feedback_features(X.tables.get("feedback"), ids, X.as_of)
            for c in FEEDBACK_FEATURES:
                sink[c] = fb[c].to_numpy(dtype=np.float64)
        out = pd.DataFrame(sink.matrix.T, index=ids, columns=list(self.numeric_features_), copy=False)
        for c in self.categorical_features_:
            out[c] = pd.Series(cust["cat"][c], index=ids, dtype="object")
        return out

    def transform_one(
        self,
        profile: Mapping[str, Any],
        events: Mapping[str, Sequence[Mapping[str, Any]]] | None,
        as_of: pd.Timestamp | str | datetime,
    ) -> dict[str, Any]:
        """Features of one lead from its raw profile and events (online path: plain Python, no DataFrames).

        Shares ``_compute`` with ``transform``; a lead sent without a creation time, or with one after
        ``as_of``, is taken as created at ``as_of``.
        """
        numeric, categorical = self._transform_one_values(profile, events, as_of)
        out: dict[str, Any] = dict(zip(self.numeric_features_, numeric.tolist(), strict=True))
        out.update(zip(self.categorical_features_, categorical, strict=True))
        return out

    def _transform_one_values(
        self,
        profile: Mapping[str, Any],
        events: Mapping[str, Sequence[Mapping[str, Any]]] | None,
        as_of: pd.Timestamp | str | datetime,
    ) -> tuple[np.ndarray, list[Any]]:
        """One lead's numeric features (float64, in ``numeric_features_`` order) and categorical values."""
        if not hasattr(self, "feature_names_out_"):
            self.fit()
        t = _ts_seconds(as_of)
        events = events or {}
        created = to_seconds(profile.get("created_at"))
        cust: dict[str, Any] = {
            "created": np.array([t if np.isnan(created) or created > t else created]),
            "age": np.array([_to_float(profile.get("age"))]),
            "points_balance": np.array([_to_float(profile.get("points_balance"))]),
            "marketing_consent": np.array([_to_bool_float(profile.get("marketing_consent"))]),
        }
        tabs = {
            "orders": _order_records(events.get("orders", ())),
            "interactions": _interaction_records(events.get("interactions", ()), self.event_types, self.channels),
            "marketing_touches": _touch_records(events.get("marketing_touches", ())),
        }
        sink = _ColumnSink(self.numeric_features_, 1)
        self._compute(1, cust, tabs, t, sink)
        if getattr(self, "feedback_features", False):
            fb = feedback_features(
                _feedback_records(events.get("feedback", ()), str(profile.get("customer_id"))),
                pd.Index([str(profile.get("customer_id"))]),
                as_of,
            )
            for c in FEEDBACK_FEATURES:
                sink[c] = fb[c].to_numpy(dtype=np.float64)
        return sink.matrix[:, 0], [_to_cat(profile.get(c)) for c in self.categorical_features_]

    def _compute(self, n: int, cust: dict, tabs: dict, t: float, cols: _ColumnSink) -> None:
        """The shared array core of the batch and online paths.

        ``tabs`` maps each event table to its arrays, or to a function returning them; the entries are
        taken out of ``tabs`` one table at a time so the caller's arrays can be freed as soon as used.
        ``cols`` receives the feature columns; counts are handed over as integers and become float64
        in the sink's rows (no float copy of each count first).
        """
        cols["tenure_days"] = (t - cust["created"]) / _DAY
        for c in ("age", "points_balance", "marketing_consent"):
            cols[c] = cust[c]
        self._orders(_take(tabs, "orders"), t, n, cols)
        coupon = self._interactions(_take(tabs, "interactions"), t, n, cols)
        self._touches(_take(tabs, "marketing_touches"), t, n, cols, coupon)

    @staticmethod
    def _window(a: dict[str, np.ndarray], ts_key: str, t: float) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Rows of known customers at or before ``t``, and their ages in days.

        Filters ``a`` in place (each full column is dropped as soon as its filtered copy exists; nothing
        is copied when every row is kept).
        """
        keep = (a["pos"] >= 0) & (a[ts_key] <= t)
        if not keep.all():
            for k in list(a):
                a[k] = a[k][keep]
        del keep
        age = a[ts_key] - t  # (t - ts) / day, computed without a second temporary
        np.negative(age, out=age)
        age /= _DAY
        return a, age

    def _min_age(self, pos: np.ndarray, age: np.ndarray, n: int, fill: float | None = None) -> np.ndarray:
        out = np.full(n, np.inf)
        if len(pos):
            np.minimum.at(out, pos, age)
        out[np.isinf(out)] = self.max_days if fill is None else fill
        return out

    def _orders(self, a: dict[str, np.ndarray], t: float, n: int, cols: _ColumnSink) -> None:
        o, age = self._window(a, "ts", t)
        pos, amount = o["pos"], np.where(np.isfinite(o["amount"]) & (o["amount"] > 0), o["amount"], 0.0)
        paid, refunded = o["status"] == 0, o["status"] == 1
        pp, pa, pm = pos[paid], age[paid], amount[paid]
        for w in self.rfm_windows_days:
            m = pa < w
            cols[f"orders_{w}d"] = np.bincount(pp[m], minlength=n)
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
            cols[f"refunds_{w}d"] = np.bincount(pos[refunded & (age < w)], minlength=n)

    def _interactions(
        self, a: dict[str, np.ndarray], t: float, n: int, cols: _ColumnSink
    ) -> tuple[np.ndarray, np.ndarray]:
        ev, age = self._window(a, "ts", t)
        pos, et, ch = ev["pos"], ev["et"], ev["ch"]
        n_et, n_ch = len(self.event_types), len(self.channels)
        code = _index_of(self.event_types)  # an event type outside the vocabulary gets -2: it matches no event
        windows = list(self.engagement_windows_days)
        # the events of the widest window, keyed once: (customer, code + 1) pairs, unknown codes (-1) in
        # slot 0 (they count in the totals only), and the distinct (customer, day) pairs
        inside = age < max(windows)
        w_pos, w_age = pos[inside], age[inside]
        by_type_key = _pair_codes(w_pos, n_et + 1, et[inside] + 1)
        by_ch_key = _pair_codes(w_pos, n_ch + 1, ch[inside] + 1)
        day = np.floor(w_age).astype(np.int64)  # ages are >= 0 after the window
        width = int(day.max()) + 1 if len(day) else 1
        day_pos, day_of = np.divmod(np.unique(_pair_codes(w_pos, width, day)), width)
        del inside, day
        for w in windows:
            m = w_age < w
            by_type = np.bincount(by_type_key[m], minlength=n * (n_et + 1)).reshape(n, n_et + 1)
            cols.put_block([f"n_{e}_{w}d" for e in self.event_types], by_type[:, 1:])
            del by_type
            by_ch = np.bincount(by_ch_key[m], minlength=n * (n_ch + 1)).reshape(n, n_ch + 1)
            cols.put_block([f"n_ch_{c}_{w}d" for c in self.channels], by_ch[:, 1:])
            del by_ch
            cols[f"interactions_{w}d"] = np.bincount(w_pos[m], minlength=n)
            if float(w).is_integer():  # a day d < w has all its events at ages < w
                cols[f"active_days_{w}d"] = np.bincount(day_pos[day_of < w], minlength=n)
            else:
                cols[f"active_days_{w}d"] = _distinct_count(w_pos[m], np.floor(w_age[m]).astype(np.int32), n)
        del by_type_key, by_ch_key, w_pos, w_age, day_pos, day_of
        for e in self.recency_event_types:
            m = et == code.get(e, -2)
            cols[f"days_since_{e}"] = self._min_age(pos[m], age[m], n)
        cols["interactions_total"] = np.bincount(pos, minlength=n)
        td = self.trend_days
        recent = np.bincount(pos[age < td], minlength=n).astype(float)
        before = np.bincount(pos[(age >= td) & (age < 2 * td)], minlength=n).astype(float)
        cols[f"interaction_trend_{td}d"] = np.log1p(recent) - np.log1p(before)
        cols["n_distinct_channels_90d"] = _distinct_count(pos[age < 90], ch[age < 90], n)
        stage_of_type = np.array(
            [FUNNEL_STAGES.index(e) + 1 if e in FUNNEL_STAGES else 0 for e in self.event_types] + [0], dtype=np.int64
        )
        depth = np.zeros(n, dtype=np.int64)
        if len(pos):
            np.maximum.at(depth, pos, stage_of_type[et])  # code -1 picks the trailing 0
        cols["funnel_depth"] = depth
        for name, e in (("added_to_cart", "add_to_cart"), ("reached_checkout", "checkout_page")):
            cols[name] = np.bincount(pos[et == code.get(e, -2)], minlength=n) > 0
        for w in self.service_windows_days:
            for name, e in (("complaints", "complaint"), ("tickets", "support_ticket")):
                m = (et == code.get(e, -2)) & (age < w)
                cols[f"{name}_{w}d"] = np.bincount(pos[m], minlength=n)
        m = et == code.get("coupon_claim", -2)
        return pos[m], age[m]

    def _touches(self, a: dict[str, np.ndarray], t: float, n: int, cols: _ColumnSink, coupon_events) -> None:
        mw = self.marketing_window_days
        tc, age = self._window(a, "sent", t)
        pos = tc["pos"]
        opened = tc["opened"] <= t
        clicked = tc["clicked"] <= t
        # boolean outcomes carry no time: they count once the touch's last known event is at or before T
        last_known = np.where(clicked, tc["clicked"], np.where(opened, tc["opened"], tc["sent"]))
        coupon = tc["coupon"] & (last_known <= t)
        responded = tc["responded"] & (last_known <= t)
        resp_age = (t - last_known) / _DAY
        m = age < mw
        sent = np.bincount(pos[m], minlength=n).astype(float)
        cols[f"touches_{mw}d"] = sent
        with np.errstate(invalid="ignore", divide="ignore"):
            cols[f"open_rate_{mw}d"] = np.where(sent > 0, np.bincount(pos[m & opened], minlength=n) / sent, np.nan)
            cols[f"click_rate_{mw}d"] = np.where(sent > 0, np.bincount(pos[m & clicked], minlength=n) / sent, np.nan)
        cols[f"coupons_claimed_{mw}d"] = np.bincount(pos[m & coupon], minlength=n)
        cols[f"responses_{mw}d"] = np.bincount(pos[m & responded], minlength=n)
        cols["touches_total"] = np.bincount(pos, minlength=n)
        cols["responses_total"] = np.bincount(pos[responded], minlength=n)
        cols["days_since_last_response"] = self._min_age(pos[responded], resp_age[responded], n)
        # clicks per (customer, touch channel + 1) in one count; unknown channels (-1) fall in slot 0
        k = len(TOUCH_CHANNELS) + 1
        mc = m & clicked
        by_ch = np.bincount(_pair_codes(pos[mc], k, tc["tch"][mc] + 1), minlength=n * k).reshape(n, k)
        cols.put_block([f"clicks_{c}_{mw}d" for c in TOUCH_CHANNELS], by_ch[:, 1:])
        # a coupon counts whether claimed in an interaction event or on a marketing touch
        cp = np.concatenate([coupon_events[0], pos[coupon]])
        ca = np.concatenate([coupon_events[1], resp_age[coupon]])
        cols["claimed_coupon"] = np.bincount(cp, minlength=n) > 0
        cols["days_since_coupon"] = self._min_age(cp, ca, n)


# ---------------------------------------------------------------- array builders
# Batch (DataFrame) and online (records) inputs become the same arrays; `_compute` never sees which.
_STATUS = {"paid": 0, "refunded": 1, "cancelled": 2}


def _to_float(v: Any) -> float:
    if v is None or v is pd.NA:
        return np.nan
    try:
        f = float(v)
    except (TypeError, ValueError):
        return np.nan
    return f if np.isfinite(f) else np.nan


def _to_bool_float(v: Any) -> float:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return np.nan
    if isinstance(v, str):
        return {"true": 1.0, "1": 1.0, "yes": 1.0, "false": 0.0, "0": 0.0, "no": 0.0}.get(v.strip().lower(), np.nan)
    return 1.0 if bool(v) else 0.0


def _to_bool(v: Any) -> bool:
    return _to_bool_float(v) == 1.0


def _to_cat(v: Any) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    return str(v)


def _index_of(vocab: Sequence[str]) -> dict[str, int]:
    return {v: i for i, v in enumerate(vocab)}


def _customer_arrays(customers: pd.DataFrame) -> dict:
    n = len(customers)

    def num(c: str) -> np.ndarray:
        if c not in customers.columns:
            return np.full(n, np.nan)
        arr = pd.to_numeric(customers[c], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
        arr[~np.isfinite(arr)] = np.nan
        return arr

    consent = (
        customers["marketing_consent"].astype("boolean").astype("Float64").to_numpy(na_value=np.nan)
        if "marketing_consent" in customers.columns
        else np.full(n, np.nan)
    )
    cat = {}
    for c in CATEGORICAL_FEATURES:
        if c in customers.columns:
            # one str object per distinct value, shared by all rows that have it; missing is None
            codes, uniques = pd.factorize(customers[c], use_na_sentinel=True)
            values = np.array([str(v) for v in uniques] + [None], dtype=object)
            cat[c] = values[codes]  # code -1 (missing) picks the trailing None
        else:
            cat[c] = np.full(n, None, dtype=object)
    return {
        "created": _secs(customers["created_at"]) if n else np.zeros(0),
        "age": num("age"),
        "points_balance": num("points_balance"),
        "marketing_consent": consent,
        "cat": cat,
    }


# Array dtypes, the same on both paths: positions int32 (int64 past 2^31 customers), event codes int8,
# timestamps float64 epoch seconds (exact to the microsecond), amounts float64, flags bool.


def _positions(df: pd.DataFrame, ids: pd.Index) -> np.ndarray:
    return _codes(df["customer_id"], ids)


def _order_arrays(df: pd.DataFrame, ids: pd.Index) -> dict[str, np.ndarray]:
    amount = pd.to_numeric(df["amount"], errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return {"pos": _positions(df, ids), "ts": _secs(df["ts"]), "amount": amount, "status": _status_codes(df["status"])}


def _status_codes(status: pd.Series) -> np.ndarray:
    """Order statuses as ``_STATUS`` codes (int8); unknown or missing is -1."""
    return _codes(status, pd.Index(list(_STATUS), dtype=object))


def _interaction_arrays(df: pd.DataFrame, ids: pd.Index, event_types, channels) -> dict[str, np.ndarray]:
    return {
        "pos": _positions(df, ids),
        "ts": _secs(df["ts"]),
        "et": _codes(df["event_type"], event_types),
        "ch": _codes(df["channel"], channels),
    }


def _touch_arrays(df: pd.DataFrame, ids: pd.Index) -> dict[str, np.ndarray]:
    def flag(c: str) -> np.ndarray:
        return df[c].astype("boolean").fillna(False).to_numpy(dtype=bool)

    return {
        "pos": _positions(df, ids),
        "sent": _secs(df["sent_at"]),
        "opened": _secs(df["opened_at"]),
        "clicked": _secs(df["clicked_at"]),
        "coupon": flag("coupon_claimed"),
        "responded": flag("responded"),
        "tch": _codes(df["channel"], TOUCH_CHANNELS),
    }


def _order_records(rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    return {
        "pos": np.zeros(len(rows), dtype=np.int32),
        "ts": record_seconds([r.get("ts") for r in rows]),
        "amount": np.array([_to_float(r.get("amount")) for r in rows], dtype=float),
        "status": np.array([_STATUS.get(str(r.get("status")), -1) for r in rows], dtype=np.int8),
    }


def _interaction_records(rows: Sequence[Mapping[str, Any]], event_types, channels) -> dict[str, np.ndarray]:
    et, ch = _index_of(event_types), _index_of(channels)
    return {
        "pos": np.zeros(len(rows), dtype=np.int32),
        "ts": record_seconds([r.get("ts") for r in rows]),
        "et": np.array([et.get(str(r.get("event_type")), -1) for r in rows], dtype=_code_dtype(len(et))),
        "ch": np.array([ch.get(str(r.get("channel")), -1) for r in rows], dtype=_code_dtype(len(ch))),
    }


def _touch_records(rows: Sequence[Mapping[str, Any]]) -> dict[str, np.ndarray]:
    tch = _index_of(TOUCH_CHANNELS)
    return {
        "pos": np.zeros(len(rows), dtype=np.int32),
        "sent": record_seconds([r.get("sent_at") for r in rows]),
        "opened": record_seconds([r.get("opened_at") for r in rows]),
        "clicked": record_seconds([r.get("clicked_at") for r in rows]),
        "coupon": np.array([_to_bool(r.get("coupon_claimed")) for r in rows], dtype=bool),
        "responded": np.array([_to_bool(r.get("responded")) for r in rows], dtype=bool),
        "tch": np.array([tch.get(str(r.get("channel")), -1) for r in rows], dtype=_code_dtype(len(tch))),
    }


def _pair_codes(pos: np.ndarray, width: int, key: np.ndarray) -> np.ndarray:
    """``pos * width + key`` in int64 (customer positions are int32; the product may not fit)."""
    out = pos.astype(np.int64)
    out *= width
    out += key
    return out


def _feedback_records(rows: Sequence[Mapping[str, Any]], customer_id: str) -> pd.DataFrame | None:
    """One customer's feedback records (online path) as a contract-typed frame; the free text is not kept."""
    if not rows:
        return None
    frame = pd.DataFrame([{**r, "customer_id": customer_id} for r in rows])
    return coerce_types(frame.reindex(columns=FEEDBACK_INPUT_COLUMNS), "feedback")


def _take(tabs: dict, name: str) -> dict[str, np.ndarray]:
    """Remove one table's arrays from ``tabs`` (building them first when given as a function)."""
    a = tabs.pop(name)
    return a() if callable(a) else a


class _ColumnSink:
    """Feature columns written straight into rows of one ``(n_features, n)`` float64 matrix.

    ``_compute`` assigns columns to it like to a dict; each lands in its row at once, so the batch
    path holds one copy of the numeric features instead of a dict of arrays plus the frame built
    from it. Names outside ``names`` are ignored.
    """

    def __init__(self, names: Sequence[str], n: int) -> None:
        self._row = {name: i for i, name in enumerate(names)}
        self.matrix = np.empty((len(self._row), n), dtype=np.float64)

    def __setitem__(self, name: str, values: np.ndarray) -> None:
        i = self._row.get(name)
        if i is not None:
            self.matrix[i] = values

    def put_block(self, names: Sequence[str], block: np.ndarray) -> None:
        """Columns ``names`` from the columns of ``block`` (shape ``(n, len(names))``), in one copy when
        their rows are consecutive (the builder's own names are) and one by one otherwise."""
        rows = [self._row.get(name) for name in names]
        first = rows[0]
        if first is not None and rows == list(range(first, first + len(rows))):
            self.matrix[first : first + len(rows)] = block.T
        else:
            for name, j in zip(names, range(block.shape[1]), strict=True):
                self[name] = block[:, j]


def _distinct_count(pos: np.ndarray, key: np.ndarray, n: int) -> np.ndarray:
    """Number of distinct ``key`` values per customer position (integer counts)."""
    if len(pos) == 0:
        return np.zeros(n, dtype=np.int64)
    width = int(key.max()) + 2
    pairs = np.unique(pos.astype(np.int64) * width + (key.astype(np.int64) + 1))
    return np.bincount(pairs // width, minlength=n)


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
    """Features of one lead from its raw profile and recent events, as a one-row frame (online path).

    The frame is made of one float64 block and one object block (the columns and dtypes of
    ``pd.DataFrame([builder.transform_one(...)])``, without inferring a type per column).
    """
    numeric, categorical = builder._transform_one_values(profile, events, as_of)
    index = pd.Index([str(profile["customer_id"])], name="customer_id")
    return pd.concat(
        [
            pd.DataFrame(numeric[None, :], index=index, columns=list(builder.numeric_features_), copy=False),
            pd.DataFrame(
                np.array([categorical], dtype=object), index=index, columns=list(builder.categorical_features_)
            ),
        ],
        axis=1,
    )
