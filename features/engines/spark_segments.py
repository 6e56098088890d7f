"""The segmenter's per-customer summary (``training.segment.INPUT_DOC``) with the Spark DataFrame API.

:func:`summarise_customers_spark` gives, for the contract tables as Spark DataFrames, the same rows and the same
numbers as ``training.segment.summarise_customers`` (the one the service's ``/segment``, ``crmscore segment
fit`` and the local ``segment apply`` use): same population (customers created on or before T plus anyone with a
paid order on or before it), same cutoff rules, same columns in the same order, sorted by ``customer_id`` when
collected in that order.

The values are equal, not merely close, so the discrete outputs of the segmenter (RFM scores cut at learned
quintiles, clusters, tiers) cannot flip at a boundary:

* times are compared as int64 nanoseconds (Parquet nanoseconds arrive as longs, see
  ``features.engines.spark_session``), calendar days are ``floor(ns / 86400e9)`` in integer arithmetic;
* counts and day differences are whole numbers; rates are the same one IEEE division;
* spend is summed like pandas' ``groupby().sum()``: Kahan-compensated, per (customer, day) in file order, then per
  customer in day order (an ``aggregate`` over the ordered values, a JVM expression: no Python UDF). A plain
  ``sum`` gives other last bits (0.1 + 0.2 + 0.3 + 0.001 left to right is 0.6010000000000001, pandas says 0.601),
  and its order depends on the partitions.

Nothing is collected on the driver but one count (paid orders without an amount, refused as the local engine
refuses them).
"""

from __future__ import annotations

from typing import Any

import pandas as pd

_DAY_NS = 86_400 * 1_000_000_000


def epoch_nanos(df: Any, name: str) -> Any:
    """A time column as int64 epoch nanoseconds (null when missing)."""
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    dtype = df.schema[name].dataType
    col = F.col(name)
    if isinstance(dtype, T.LongType | T.IntegerType):  # Parquet nanoseconds (spark.sql.legacy.parquet.nanosAsLong)
        return col.cast("long")
    ts = col.cast("timestamp") if isinstance(dtype, T.DateType | T.TimestampNTZType) else col
    return F.unix_micros(ts) * F.lit(1000)


def _day(ns_col: str) -> Any:
    """Whole days since the epoch of a nanoseconds column, floored (integer arithmetic, exact)."""
    from pyspark.sql import functions as F

    return F.expr(f"({ns_col} - pmod({ns_col}, {_DAY_NS})) div {_DAY_NS}")


def kahan_sum(values: Any) -> Any:
    """The sum of an array of doubles, in array order, as pandas' ``groupby().sum()`` adds (Kahan compensation,
    reset when it becomes NaN); 0.0 for an empty array."""
    from pyspark.sql import functions as F

    def step(acc: Any, v: Any) -> Any:
        y = v - acc["c"]
        t = acc["s"] + y
        c = (t - acc["s"]) - y
        return F.struct(t.alias("s"), F.when(F.isnan(c), F.lit(0.0)).otherwise(c).alias("c"))

    start = F.struct(F.lit(0.0).alias("s"), F.lit(0.0).alias("c"))
    return F.aggregate(values, start, step, lambda acc: acc["s"])


def _ordered(key: str, value: str) -> Any:
    """The group's ``value`` column as an array ordered by ``key``."""
    from pyspark.sql import functions as F

    pairs = F.array_sort(F.collect_list(F.struct(F.col(key).alias("k"), F.col(value).alias("v"))))
    return F.transform(pairs, lambda p: p["v"])


def _count(cond: Any) -> Any:
    from pyspark.sql import functions as F

    return F.sum(F.when(cond, F.lit(1)).otherwise(F.lit(0))).cast("double")


def summary_columns(window_days: int) -> list[str]:
    """The summary's columns, in order (those of ``training.segment.input_columns``)."""
    w = int(window_days)
    return ["customer_id", "recency_days", "frequency", "monetary", "avg_repeat_value", "tenure_days",
            f"interactions_{w}d", f"touches_{w}d", f"open_rate_{w}d", f"click_rate_{w}d", f"coupon_claims_{w}d"]


def paid_orders_without_amount(orders: Any, as_of: pd.Timestamp | str) -> int:
    """Paid orders on or before ``as_of`` with no amount (null or NaN): the local summary refuses them."""
    from pyspark.sql import functions as F

    t = pd.Timestamp(as_of).value
    amount = F.col("amount").cast("double")
    paid = (F.col("status") == F.lit("paid")) & (epoch_nanos(orders, "ts") <= F.lit(t))
    bad = paid & (amount.isNull() | F.isnan(amount))
    return int(orders.filter(bad).count())


def _buyers(orders: Any, t: int) -> Any:
    """Per buyer: frequency, recency_days, tenure_days, monetary, avg_repeat_value (``training.btyd``'s
    ``summarise_transactions`` of the paid orders with ``ts <= T``)."""
    from pyspark.sql import functions as F

    o = orders.withColumn("__pos", F.monotonically_increasing_id())  # file order, for pandas' summation order
    o = o.withColumn("__ns", epoch_nanos(o, "ts"))
    o = o.filter((F.col("status") == F.lit("paid")) & (F.col("__ns") <= F.lit(t)) & F.col("customer_id").isNotNull())
    o = o.select(F.col("customer_id").cast("string").alias("customer_id"), F.col("__pos"),
                 _day("__ns").alias("__day"), F.col("amount").cast("double").alias("__amt"))
    daily = o.groupBy("customer_id", "__day").agg(kahan_sum(_ordered("__pos", "__amt")).alias("__amt"))
    per = daily.groupBy("customer_id").agg(
        F.min("__day").alias("__first"),
        F.max("__day").alias("__last"),
        F.count(F.lit(1)).alias("__days"),
        _ordered("__day", "__amt").alias("__amts"),
    )
    cutoff_day = t // _DAY_NS
    freq = (F.col("__days") - F.lit(1)).cast("double")
    total = kahan_sum(F.col("__amts"))
    first_amt = F.element_at(F.col("__amts"), 1)
    return per.select(
        "customer_id",
        freq.alias("frequency"),
        (F.lit(cutoff_day) - F.col("__last")).cast("double").alias("recency_days"),
        (F.lit(cutoff_day) - F.col("__first")).cast("double").alias("tenure_days"),
        total.alias("monetary"),
        F.when(freq > F.lit(0.0), (total - first_amt) / freq).otherwise(F.lit(0.0)).alias("avg_repeat_value"),
    )


def summarise_customers_spark(tables: dict[str, Any], as_of: pd.Timestamp | str, window_days: int = 90) -> Any:
    """The segmenter's input as of ``as_of``: a lazy Spark DataFrame of :func:`summary_columns`.

    ``tables`` are the contract tables (``features.engines.spark_tables.read_tables``); ``customers`` and
    ``orders`` are required, a missing event table means no events. Missing values: ``recency_days`` /
    ``tenure_days`` null without a paid order, the rates null when no touch was sent in the window.
    """
    from pyspark.sql import functions as F

    w = int(window_days)
    t = pd.Timestamp(as_of).value
    start = (pd.Timestamp(as_of) - pd.Timedelta(days=w)).value
    cust = tables["customers"]
    created = cust.filter(epoch_nanos(cust, "created_at") <= F.lit(t)).select(
        F.col("customer_id").cast("string").alias("customer_id"))
    buyers = _buyers(tables["orders"], t)
    ids = created.unionByName(buyers.select("customer_id")).filter(F.col("customer_id").isNotNull()).distinct()
    out = ids.join(buyers, on="customer_id", how="left")

    counts: dict[str, Any] = {}
    if "interactions" in tables:
        ev = tables["interactions"]
        ev = ev.withColumn("__ns", epoch_nanos(ev, "ts"))
        ev = ev.filter((F.col("__ns") > F.lit(start)) & (F.col("__ns") <= F.lit(t)))
        counts["interactions"] = ev.groupBy(F.col("customer_id").cast("string").alias("customer_id")).agg(
            _count(F.lit(True)).alias("__inter"),
            _count(F.coalesce(F.col("event_type") == F.lit("coupon_claim"), F.lit(False))).alias("__coupon_ev"),
        )
    if "marketing_touches" in tables:
        tc = tables["marketing_touches"]
        tc = tc.withColumn("__ns", epoch_nanos(tc, "sent_at")).filter(
            (F.col("__ns") > F.lit(start)) & (F.col("__ns") <= F.lit(t)))
        opened = F.coalesce(epoch_nanos(tc, "opened_at") <= F.lit(t), F.lit(False))
        clicked = F.coalesce(epoch_nanos(tc, "clicked_at") <= F.lit(t), F.lit(False))
        claimed = F.coalesce(F.col("coupon_claimed").cast("boolean"), F.lit(False))
        counts["touches"] = tc.groupBy(F.col("customer_id").cast("string").alias("customer_id")).agg(
            _count(F.lit(True)).alias("__sent"),
            _count(opened).alias("__opened"),
            _count(clicked).alias("__clicked"),
            _count(claimed).alias("__coupon_tc"),
        )
    for part in counts.values():
        out = out.join(part, on="customer_id", how="left")

    def col(name: str) -> Any:
        return F.coalesce(F.col(name), F.lit(0.0)) if name in out.columns else F.lit(0.0)

    sent = col("__sent")
    return out.select(
        F.col("customer_id"),
        F.col("recency_days"),
        F.coalesce(F.col("frequency"), F.lit(0.0)).alias("frequency"),
        F.coalesce(F.col("monetary"), F.lit(0.0)).alias("monetary"),
        F.coalesce(F.col("avg_repeat_value"), F.lit(0.0)).alias("avg_repeat_value"),
        F.col("tenure_days"),
        col("__inter").alias(f"interactions_{w}d"),
        sent.alias(f"touches_{w}d"),
        F.when(sent > F.lit(0.0), col("__opened") / sent).alias(f"open_rate_{w}d"),
        F.when(sent > F.lit(0.0), col("__clicked") / sent).alias(f"click_rate_{w}d"),
        (col("__coupon_ev") + col("__coupon_tc")).alias(f"coupon_claims_{w}d"),
    )
