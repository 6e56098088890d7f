"""``CRMFeatureBuilder``'s features with the Spark DataFrame API: same names, same values, same cutoff rules.

Each event table is read once and reduced to one row per customer by a single ``groupBy`` of conditional
sums, minima, maxima and bitwise ORs (hash aggregation with partial aggregation before the shuffle; no Python
UDF, no ``countDistinct``): distinct active days go into day bitmasks (bit ``d`` = an event ``d`` whole days
before T) and distinct channels into a channel bitmask, counted with ``bit_count`` afterwards. The three
per-customer results are joined to the customers created at or before T.

The values follow the NumPy core exactly (``features.build``): times are float epoch seconds
(nanoseconds / 1e9), an event counts when ``ts <= T``, a window "N d" holds the events with
``(T - ts) / 86400 < N`` (equivalently ``floor((T - ts) / 86400) < N`` for whole N), unknown event types
and channels count in totals only, a days-since feature is ``max_days`` when nothing happened, rates are
NaN without touches. ``tests/integration/test_spark_features.py`` compares every column of every customer
with the NumPy core at three cutoffs.
"""

from __future__ import annotations

import math
import os
import shutil
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from features.build import CRMFeatureBuilder, _ts_seconds
from features.config import FeatureConfig
from features.contract import FUNNEL_STAGES, TOUCH_CHANNELS

_DAY = 86400.0
_WORD = 63  # bits used per long of a day bitmask (the sign bit stays clear)


def _secs(col: Any, dtype: Any) -> Any:
    """A time column as float epoch seconds, computed as the NumPy core does (int64 ns -> float64, / 1e9)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if isinstance(dtype, T.LongType | T.IntegerType):  # Parquet nanoseconds (spark.sql.legacy.parquet.nanosAsLong)
        ns = col.cast("long")
    else:
        ts = col.cast("timestamp") if isinstance(dtype, T.DateType | T.TimestampNTZType) else col
        ns = F.unix_micros(ts) * F.lit(1000)
    return ns.cast("double") / F.lit(1e9)


def _time(df: Any, name: str) -> Any:
    return _secs(df[name], df.schema[name].dataType)


def _category(df: Any, name: str) -> Any:
    """A profile category as the NumPy core's text: ``str(value)`` (``True`` / ``False`` for flags), null if missing."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    if name not in df.columns:
        return F.lit(None).cast("string")
    if isinstance(df.schema[name].dataType, T.BooleanType):
        return F.when(F.col(name), F.lit("True")).when(~F.col(name), F.lit("False"))
    return F.col(name).cast("string")


def _code(col: Any, vocab: Sequence[str]) -> Any:
    """Position of ``col`` in ``vocab``; -1 for unknown or missing (as ``features.build._codes``)."""
    from pyspark.sql import functions as F

    expr = F.lit(-1)
    for i, v in reversed(list(enumerate(vocab))):
        expr = F.when(col == F.lit(v), F.lit(i)).otherwise(expr)
    return expr


def _n(cond: Any) -> Any:
    """Rows where ``cond`` holds, as a double (0 when none)."""
    from pyspark.sql import functions as F

    return F.sum(F.when(cond, F.lit(1)).otherwise(F.lit(0))).cast("double")


def _minimum(value: Any, cond: Any | None = None) -> Any:
    from pyspark.sql import functions as F

    return F.min(value if cond is None else F.when(cond, value))


def _bit(position: Any) -> Any:
    """``1 << position`` as a long (``position`` a column)."""
    from pyspark.sql import functions as F

    return F.call_function("shiftleft", F.lit(1).cast("long"), position.cast("int"))


def _day_words(max_window: int) -> int:
    return max(1, math.ceil(max_window / _WORD))


class SparkFeatureBuilder:
    """The features of a :class:`~features.build.CRMFeatureBuilder` (same configuration) on Spark DataFrames."""

    def __init__(self, builder: CRMFeatureBuilder) -> None:
        self.builder = builder if hasattr(builder, "numeric_features_") else builder.fit()

    @property
    def columns(self) -> list[str]:
        """Output columns: ``customer_id``, the numeric features, the profile categories (the NumPy order)."""
        return ["customer_id", *self.builder.numeric_features_, *self.builder.categorical_features_]

    def transform(self, tables: dict[str, Any], as_of: pd.Timestamp | str, keep: Sequence[str] = ()) -> Any:
        """One row per customer created at or before ``as_of``: a lazy Spark DataFrame of :attr:`columns`.

        ``keep`` names further ``customers`` columns passed through unchanged (after the features).
        """
        from pyspark.sql import functions as F

        b = self.builder
        if len(b.channels) > 62:
            raise ValueError("the Spark engine counts distinct channels in a 62-bit mask: at most 62 channels")
        t = _ts_seconds(pd.Timestamp(as_of))
        cust = tables["customers"]
        cust = cust.withColumn("__created", _time(cust, "created_at")).filter(F.col("__created") <= F.lit(t))
        cols: list[Any] = [F.col("customer_id").cast("string").alias("customer_id")]
        cols.append(((F.lit(t) - F.col("__created")) / F.lit(_DAY)).alias("tenure_days"))
        for c in ("age", "points_balance"):
            if c in cust.columns:
                v = F.col(c).cast("double")
                finite = v.isNotNull() & ~F.isnan(v) & (F.abs(v) < F.lit(float("inf")))
                cols.append(F.when(finite, v).alias(c))
            else:
                cols.append(F.lit(None).cast("double").alias(c))
        consent = F.col("marketing_consent").cast("boolean").cast("double") if "marketing_consent" in cust.columns \
            else F.lit(None).cast("double")
        cols.append(consent.alias("marketing_consent"))
        for c in b.categorical_features_:
            cols.append(_category(cust, c).alias(c))
        extra = [k for k in keep if k not in self.columns]
        base = cust.select(*cols, *[F.col(k).alias(f"__keep__{k}") for k in extra])

        parts = []
        if "orders" in tables:
            parts.append(self._orders(tables["orders"], t))
        if "interactions" in tables:
            parts.append(self._interactions(tables["interactions"], t))
        if "marketing_touches" in tables:
            parts.append(self._touches(tables["marketing_touches"], t))
        out = base
        for p in parts:
            out = out.join(p, on="customer_id", how="left")
        return out.select(*self._finish(out.columns), *[F.col(f"__keep__{k}").alias(k) for k in extra])

    # ------------------------------------------------------------------ per table, one groupBy each
    def _events(self, df: Any, ts_col: str, t: float) -> Any:
        from pyspark.sql import functions as F

        df = df.withColumn("__ts", _time(df, ts_col)).filter(F.col("__ts") <= F.lit(t))
        return df.withColumn("__age", (F.lit(t) - F.col("__ts")) / F.lit(_DAY)).withColumn(
            "customer_id", F.col("customer_id").cast("string")
        )

    def _orders(self, df: Any, t: float) -> Any:
        from pyspark.sql import functions as F

        b = self.builder
        o = self._events(df, "ts", t)
        amount = F.col("amount").cast("double")
        # NaN sorts above every number in Spark, so finiteness is checked before "> 0"
        good = amount.isNotNull() & ~F.isnan(amount) & (amount < F.lit(float("inf"))) & (amount > F.lit(0.0))
        o = o.withColumn("__amount", F.when(good, amount).otherwise(F.lit(0.0)))
        paid = F.col("status") == F.lit("paid")
        refunded = F.col("status") == F.lit("refunded")
        age = F.col("__age")
        aggs: list[Any] = []
        for w in b.rfm_windows_days:
            m = paid & (age < F.lit(w))
            aggs += [_n(m).alias(f"orders_{w}d"), F.sum(F.when(m, F.col("__amount"))).alias(f"__spend_{w}d")]
        aggs += [
            _n(paid).alias("__n_paid"),
            F.sum(F.when(paid, F.col("__amount"))).alias("__spend"),
            _n(refunded).alias("__n_ref"),
            _minimum(age, paid).alias("__last_order"),
            F.max(F.when(paid, age)).alias("__first_order"),
        ]
        aggs += [_n(refunded & (age < F.lit(w))).alias(f"refunds_{w}d") for w in b.service_windows_days]
        return o.groupBy("customer_id").agg(*aggs)

    def _interactions(self, df: Any, t: float) -> Any:
        from pyspark.sql import functions as F

        b = self.builder
        ev = self._events(df, "ts", t)
        ev = ev.withColumn("__et", _code(F.col("event_type"), b.event_types))
        ev = ev.withColumn("__ch", _code(F.col("channel"), b.channels))
        ev = ev.withColumn("__day", F.floor(F.col("__age")))
        et, ch, age, day = F.col("__et"), F.col("__ch"), F.col("__age"), F.col("__day")
        types, chans = list(b.event_types), list(b.channels)
        aggs: list[Any] = []
        for w in b.engagement_windows_days:
            m = age < F.lit(w)
            aggs += [_n(m & (et == F.lit(j))).alias(f"n_{e}_{w}d") for j, e in enumerate(types)]
            aggs += [_n(m & (ch == F.lit(j))).alias(f"n_ch_{c}_{w}d") for j, c in enumerate(chans)]
            aggs.append(_n(m).alias(f"interactions_{w}d"))
        # distinct days: bit d of word k = an event (63 k + d) whole days before T
        for k in range(_day_words(max(b.engagement_windows_days))):
            inside = (day >= F.lit(_WORD * k)) & (day < F.lit(_WORD * (k + 1)))
            bit = _bit((day - F.lit(_WORD * k)).cast("int"))
            aggs.append(F.bit_or(F.when(inside, bit)).alias(f"__days{k}"))
        for e in b.recency_event_types:
            j = types.index(e) if e in types else None
            aggs.append((_minimum(age, et == F.lit(j)) if j is not None else F.lit(None).cast("double"))
                        .alias(f"__since_{e}"))
        aggs.append(F.count(F.lit(1)).cast("double").alias("interactions_total"))
        td = b.trend_days
        aggs.append(_n(age < F.lit(td)).alias("__recent"))
        aggs.append(_n((age >= F.lit(td)) & (age < F.lit(2 * td))).alias("__before"))
        # distinct channels in 90 days, unknown channels as one more value (bit 0)
        aggs.append(F.bit_or(F.when(age < F.lit(90), _bit(ch + F.lit(1))))
                    .alias("__chmask"))
        stage = F.lit(0)
        for j, e in enumerate(types):
            if e in FUNNEL_STAGES:
                stage = F.when(et == F.lit(j), F.lit(FUNNEL_STAGES.index(e) + 1)).otherwise(stage)
        aggs.append(F.max(stage).cast("double").alias("__depth"))
        for name, e in (("added_to_cart", "add_to_cart"), ("reached_checkout", "checkout_page")):
            cond = et == F.lit(types.index(e)) if e in types else F.lit(False)
            aggs.append((_n(cond) > F.lit(0)).cast("double").alias(name))
        for w in b.service_windows_days:
            for name, e in (("complaints", "complaint"), ("tickets", "support_ticket")):
                cond = (et == F.lit(types.index(e))) if e in types else F.lit(False)
                aggs.append(_n(cond & (age < F.lit(w))).alias(f"{name}_{w}d"))
        coupon = et == F.lit(types.index("coupon_claim")) if "coupon_claim" in types else F.lit(False)
        aggs.append(_n(coupon).alias("__coupon_events"))
        aggs.append(_minimum(age, coupon).alias("__coupon_event_age"))
        return ev.groupBy("customer_id").agg(*aggs)

    def _touches(self, df: Any, t: float) -> Any:
        from pyspark.sql import functions as F

        b = self.builder
        mw = b.marketing_window_days
        tc = self._events(df, "sent_at", t)
        opened_s, clicked_s = _time(tc, "opened_at"), _time(tc, "clicked_at")
        tc = tc.withColumn("__opened", F.coalesce(opened_s <= F.lit(t), F.lit(False)))
        tc = tc.withColumn("__clicked", F.coalesce(clicked_s <= F.lit(t), F.lit(False)))
        last = F.when(F.col("__clicked"), clicked_s).when(F.col("__opened"), opened_s).otherwise(F.col("__ts"))
        tc = tc.withColumn("__last", last)
        known = F.col("__last") <= F.lit(t)
        flag = lambda c: F.coalesce(F.col(c).cast("boolean"), F.lit(False))  # noqa: E731
        tc = tc.withColumn("__coupon", flag("coupon_claimed") & known)
        tc = tc.withColumn("__responded", flag("responded") & known)
        tc = tc.withColumn("__resp_age", (F.lit(t) - F.col("__last")) / F.lit(_DAY))
        tc = tc.withColumn("__tch", _code(F.col("channel"), TOUCH_CHANNELS))
        m = F.col("__age") < F.lit(mw)
        opened, clicked, coupon, responded = (F.col(c) for c in ("__opened", "__clicked", "__coupon", "__responded"))
        aggs: list[Any] = [
            _n(m).alias(f"touches_{mw}d"),
            _n(m & opened).alias("__opened_n"),
            _n(m & clicked).alias("__clicked_n"),
            _n(m & coupon).alias(f"coupons_claimed_{mw}d"),
            _n(m & responded).alias(f"responses_{mw}d"),
            F.count(F.lit(1)).cast("double").alias("touches_total"),
            _n(responded).alias("responses_total"),
            _minimum(F.col("__resp_age"), responded).alias("__last_response"),
            _n(coupon).alias("__coupon_touches"),
            _minimum(F.col("__resp_age"), coupon).alias("__coupon_touch_age"),
        ]
        aggs += [_n(m & clicked & (F.col("__tch") == F.lit(j))).alias(f"clicks_{c}_{mw}d")
                 for j, c in enumerate(TOUCH_CHANNELS)]
        return tc.groupBy("customer_id").agg(*aggs)

    # ------------------------------------------------------------------ defaults and derived columns
    def _finish(self, have: list[str]) -> list[Any]:
        from pyspark.sql import functions as F

        b = self.builder
        max_days = F.lit(float(b.max_days))
        nan = F.lit(float("nan"))

        def col(name: str, default: Any = 0.0) -> Any:
            d = default if not isinstance(default, float | int) else F.lit(float(default))
            return F.coalesce(F.col(name), d) if name in have else d

        def since(name: str) -> Any:
            return col(name, max_days)

        out: dict[str, Any] = {}
        for c in ("tenure_days", "age", "points_balance", "marketing_consent"):
            out[c] = F.col(c)
        for w in b.rfm_windows_days:
            out[f"orders_{w}d"] = col(f"orders_{w}d")
            out[f"spend_{w}d"] = col(f"__spend_{w}d")
        n_paid, spend, n_ref = col("__n_paid"), col("__spend"), col("__n_ref")
        out["orders_total"] = n_paid
        out["spend_total"] = spend
        out["avg_order_value"] = F.when(n_paid > F.lit(0.0), spend / n_paid).otherwise(nan)
        out["refund_share"] = F.when(n_paid + n_ref > F.lit(0.0), n_ref / (n_paid + n_ref)).otherwise(F.lit(0.0))
        out["days_since_last_order"] = since("__last_order")
        out["days_since_first_order"] = since("__first_order")
        words = _day_words(max(b.engagement_windows_days))
        for w in b.engagement_windows_days:
            for e in b.event_types:
                out[f"n_{e}_{w}d"] = col(f"n_{e}_{w}d")
            for c in b.channels:
                out[f"n_ch_{c}_{w}d"] = col(f"n_ch_{c}_{w}d")
            out[f"interactions_{w}d"] = col(f"interactions_{w}d")
            active = F.lit(0)
            for k in range(words):
                lo, hi = _WORD * k, min(_WORD * (k + 1), w)
                if hi <= lo:
                    continue
                mask = F.lit((1 << (hi - lo)) - 1).cast("long")
                active = active + F.bit_count(col(f"__days{k}", F.lit(0).cast("long")).bitwiseAND(mask))
            out[f"active_days_{w}d"] = active.cast("double")
        for e in b.recency_event_types:
            out[f"days_since_{e}"] = since(f"__since_{e}")
        out["interactions_total"] = col("interactions_total")
        td = b.trend_days
        out[f"interaction_trend_{td}d"] = F.log1p(col("__recent")) - F.log1p(col("__before"))
        out["n_distinct_channels_90d"] = F.bit_count(col("__chmask", F.lit(0).cast("long"))).cast("double")
        out["funnel_depth"] = col("__depth")
        out["added_to_cart"] = col("added_to_cart")
        out["reached_checkout"] = col("reached_checkout")
        claimed = col("__coupon_events") + col("__coupon_touches")
        out["claimed_coupon"] = (claimed > F.lit(0.0)).cast("double")
        out["days_since_coupon"] = F.coalesce(
            F.least(F.col("__coupon_event_age") if "__coupon_event_age" in have else F.lit(None).cast("double"),
                    F.col("__coupon_touch_age") if "__coupon_touch_age" in have else F.lit(None).cast("double")),
            max_days,
        )
        mw = b.marketing_window_days
        sent = col(f"touches_{mw}d")
        out[f"touches_{mw}d"] = sent
        out[f"open_rate_{mw}d"] = F.when(sent > F.lit(0.0), col("__opened_n") / sent).otherwise(nan)
        out[f"click_rate_{mw}d"] = F.when(sent > F.lit(0.0), col("__clicked_n") / sent).otherwise(nan)
        for c in (f"coupons_claimed_{mw}d", f"responses_{mw}d", "touches_total", "responses_total"):
            out[c] = col(c)
        out["days_since_last_response"] = since("__last_response")
        for c in TOUCH_CHANNELS:
            out[f"clicks_{c}_{mw}d"] = col(f"clicks_{c}_{mw}d")
        for w in b.service_windows_days:
            for c in (f"complaints_{w}d", f"tickets_{w}d", f"refunds_{w}d"):
                out[c] = col(c)
        missing = [c for c in b.numeric_features_ if c not in out]
        if missing:
            raise RuntimeError(f"the Spark engine has no definition of feature(s) {', '.join(missing)}")
        return [F.col("customer_id"), *[out[c].cast("double").alias(c) for c in b.numeric_features_],
                *[F.col(c) for c in b.categorical_features_]]


def write_partitioned(df: Any, out: str | Path, partitions: int | None = None) -> int:
    """Write ``df`` as a Parquet directory of ``partitions`` part files, rows spread by ``customer_id`` hash.

    A local ``out`` appears in one rename: the parts go to a hidden directory beside it, which replaces
    ``out`` only once Spark has committed every part (an existing ``out`` is moved aside first and removed
    after). Other URIs (``s3a://``, ``hdfs://``, ``dbfs:/``) are written by Spark's own committer, which
    marks a complete output with ``_SUCCESS``. Returns the number of rows written.
    """
    if partitions is not None:
        df = df.repartition(partitions, "customer_id")
    target = str(out)
    if "://" in target or target.startswith("dbfs:"):
        df.write.mode("overwrite").parquet(target)
        return int(df.sparkSession.read.parquet(target).count())
    final = Path(target)
    final.parent.mkdir(parents=True, exist_ok=True)
    tag = uuid.uuid4().hex[:12]
    work = final.with_name(f".{final.name}.{tag}.tmp")
    old = final.with_name(f".{final.name}.{tag}.old")
    try:
        df.write.mode("overwrite").parquet(str(work))
        rows = int(df.sparkSession.read.parquet(str(work)).count())
        if final.exists():
            os.replace(final, old)
        os.replace(work, final)
    finally:
        shutil.rmtree(work, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return rows


def build_features_spark(
    spark: Any,
    data: str | Path,
    as_of: pd.Timestamp | str,
    config: FeatureConfig | None = None,
) -> Any:
    """The features of every customer in ``data`` (a data dir or a tables YAML) as of ``as_of``, on Spark.

    Raises ``DataDirError`` / ``ConfigError`` for a missing table, a missing or mistyped column, a bad config.
    """
    from features.engines.spark_tables import read_tables

    builder = CRMFeatureBuilder.from_config(config or FeatureConfig()).fit()
    return SparkFeatureBuilder(builder).transform(read_tables(spark, data), as_of)
