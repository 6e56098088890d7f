"""`crmscore segment apply --engine spark`: the segments of every customer computed in one Spark job.

* the contract tables are read by ``features.engines.spark_tables.read_tables`` (a data dir or a tables YAML;
  the same input check as the local engine) and summarised by ``features.engines.spark_segments`` (the values
  of ``training.segment.summarise_customers``, exactly);
* the registered model's fitted segmenter (its JSON state, a few kilobytes) is rebuilt once per partition and
  applied in a ``mapInPandas``: the same ``CustomerSegmenter.predict`` the pyfunc runs;
* the customers table is numbered in file order for the rejects, as ``score --engine spark`` numbers it;
* output and rejects are written by Spark as one part file each into a hidden directory beside the output and
  moved into place (``features.io``); the summary last.
"""

from __future__ import annotations

import contextlib
import json
import re
import shutil
import time
from pathlib import Path
from typing import Any

import pandas as pd

from features.io import DataDirError, write_text_atomic
from features.messages import M_, message_of
from serving.batch.options import BatchError
from serving.batch.segment_apply import (
    LoadedSegments,
    SegmentApplySummary,
    SegmentTarget,
    check_accounting,
    check_orders,
    cutoff_text,
)


def _output_schema(horizon_days: int) -> Any:
    from pyspark.sql import types as T

    n = int(horizon_days)
    s, i, d = T.StringType(), T.LongType(), T.DoubleType()
    return T.StructType([T.StructField(c, k) for c, k in (
        ("customer_id", s), ("r_score", i), ("f_score", i), ("m_score", i), ("rfm_segment", s), ("value_tier", s),
        ("value_tier_zh", s), ("cluster", i), ("cluster_description", s), (f"expected_purchases_{n}d", d),
        ("p_alive", d), (f"expected_value_{n}d", d),
    )])


def _predictor(state: dict[str, Any], columns: list[str]):
    """The mapInPandas function: summary rows → the segmenter's output rows (built once per partition)."""

    def run(batches):
        from training.segment import CustomerSegmenter

        seg = CustomerSegmenter.from_dict(state)
        for pdf in batches:
            if len(pdf) == 0:
                continue
            out = seg.predict(pdf[columns])
            for c in ("r_score", "f_score", "m_score", "cluster"):
                out[c] = out[c].astype("int64")
            yield out

    return run


def _spark_error(e: Exception) -> str:
    """One line for a Spark failure: the Python error raised in a worker when there is one, no Java stack."""
    text = str(e)
    m = re.search(r"(?:ValueError|BatchError): (.+)", text)
    if m:
        return m.group(1).strip()
    first = text.strip().splitlines()[0] if text.strip() else type(e).__name__
    return f"Spark failed: {first[:300]}"


def apply_segments_spark(
    data: str | Path, t: pd.Timestamp, target: SegmentTarget, seg: LoadedSegments, master: str, neutralise: bool,
    t0: float,
) -> SegmentApplySummary:
    """Segment every customer of ``data`` as of ``t`` on Spark (see the module docstring)."""
    from pyspark.sql import SparkSession

    from features.engines.spark_session import SparkUnavailable, check_spark, spark_session

    try:
        check_spark()
    except SparkUnavailable as e:
        raise BatchError(message_of(e) or str(e)) from None
    owned = SparkSession.getActiveSession() is None
    spark = spark_session(master, "crmscore-segments")
    work = target.path.with_name(f".{target.path.name}.segments-work")
    try:
        shutil.rmtree(work, ignore_errors=True)
        work.mkdir(parents=True)
        return _run(spark, data, t, target, seg, neutralise, t0, work)
    except (BatchError, DataDirError):
        raise
    except ValueError as e:
        raise BatchError(M_("{data}: {error}", data=data, error=e)) from None
    except Exception as e:  # noqa: BLE001 - Py4J / Spark errors: one line, no Java stack
        raise BatchError(_spark_error(e)) from None
    finally:
        shutil.rmtree(work, ignore_errors=True)
        if owned:
            with contextlib.suppress(Exception):
                spark.stop()


def _run(
    spark: Any, data: str | Path, t: pd.Timestamp, target: SegmentTarget, seg: LoadedSegments, neutralise: bool,
    t0: float, work: Path,
) -> SegmentApplySummary:
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from features.engines.spark_segments import (
        epoch_nanos,
        paid_orders_without_amount,
        summarise_customers_spark,
        summary_columns,
    )
    from features.engines.spark_tables import read_tables
    from features.export import neutralise_spark
    from serving.batch.segment_apply import ordered_sizes
    from serving.batch.spark import _move_single_part
    from training.segment_config import SEGMENT_ORDER

    cutoff = cutoff_text(t)
    tables = read_tables(spark, data)
    check_orders(tables, data)
    bad = paid_orders_without_amount(tables["orders"], t)
    if bad:
        raise ValueError(M_("transactions: {n_rows} row(s) have no amount", n_rows=bad))  # the local summary's words
    w, n = seg.window_days, seg.horizon_days
    summary = summarise_customers_spark(tables, t, w)
    scored = summary.mapInPandas(_predictor(seg.segmenter.to_dict(), summary_columns(w)), _output_schema(n))
    scored = scored.persist(StorageLevel.MEMORY_AND_DISK)

    # every customers row: segmented (first of its id), duplicate, or rejected (numbered in file order)
    customers = tables["customers"].withColumn("__pos", F.monotonically_increasing_id())
    customers = customers.withColumn("__row", F.row_number().over(Window.orderBy("__pos")).cast("long"))
    customers = customers.withColumn("__id", F.col("customer_id").cast("string"))
    first = F.row_number().over(Window.partitionBy("__id").orderBy("__pos")) == F.lit(1)
    pop = scored.select(F.col("customer_id").alias("__id"), F.lit(True).alias("__in"))
    rows = customers.join(pop, on="__id", how="left").withColumn("__first", first)
    inside = F.coalesce(F.col("__in"), F.lit(False))
    rows = rows.persist(StorageLevel.MEMORY_AND_DISK)
    c = rows.agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(inside & F.col("__first"), 1).otherwise(0)).alias("ids"),
        F.sum(F.when(inside & ~F.col("__first"), 1).otherwise(0)).alias("dups"),
    ).collect()[0]
    customer_rows, ids_in, dups = int(c["rows"]), int(c["ids"] or 0), int(c["dups"] or 0)

    created = epoch_nanos(rows, "created_at")
    micros = F.expr("(__ns - pmod(__ns, 1000)) div 1000")
    when = F.date_format(F.timestamp_micros(micros), "yyyy-MM-dd HH:mm:ss")
    rows = rows.withColumn("__ns", created)
    no_id = F.col("__id").isNull()
    rejects = rows.filter(~inside).select(
        F.col("__row").alias("row"),
        F.coalesce(F.col("__id"), F.lit("")).alias("customer_id"),
        F.when(no_id, F.lit("customer_id")).otherwise(F.lit("created_at")).alias("column"),
        F.when(no_id, F.lit("")).otherwise(F.coalesce(when, F.lit(""))).alias("value"),
        F.when(no_id, F.lit("customer_id is missing"))
        .when(F.col("__ns").isNull(), F.lit("created_at is missing"))
        .otherwise(F.lit(f"created after --as-of {cutoff}")).alias("reason"),
    ).orderBy("row")

    # sizes and the summary figures (a few rows to the driver)
    segmented = int(scored.count())
    stats = scored.agg(
        F.sum(F.when(F.col("p_alive").isNotNull() & ~F.isnan("p_alive"), 1).otherwise(0)).alias("buyers"),
        F.mean(F.when(~F.isnan("p_alive"), F.col("p_alive"))).alias("p"),
        F.sum(F.when(~F.isnan(f"expected_value_{n}d"), F.col(f"expected_value_{n}d"))).alias("ev"),
    ).collect()[0]

    def sizes(col: str) -> dict[str, int]:
        return {str(r[col]): int(r["count"]) for r in scored.groupBy(col).count().collect()}

    seg_sizes, tiers = sizes("rfm_segment"), sizes("value_tier")
    clusters = {k: v for k, v in sorted(sizes("cluster").items(), key=lambda kv: int(kv[0]))}
    reasons = {str(r["reason"]): int(r["count"]) for r in rejects.groupBy("reason").count().collect()}
    buyers = int(stats["buyers"] or 0)
    order_only = segmented - ids_in
    result = SegmentApplySummary(
        model_uri=seg.uri,
        model_name=seg.name,
        model_version=seg.version,
        engine=f"spark ({spark.sparkContext.master})",
        input=f"{data} (CRM tables as of {cutoff})",
        output=str(target.path),
        rejects_file=str(target.rejects),
        summary_file=str(target.summary),
        as_of=cutoff,
        window_days=w,
        horizon_days=n,
        rows_in=customer_rows + order_only,
        customer_rows=customer_rows,
        buyers_without_customer_row=order_only,
        segmented=segmented,
        rejected=sum(reasons.values()),
        duplicates=dups,
        reject_reasons=ordered_sizes(reasons),
        buyers=buyers,
        rfm_segments=ordered_sizes(seg_sizes, list(SEGMENT_ORDER)),
        value_tiers=ordered_sizes(tiers),
        clusters=clusters,
        mean_p_alive=float(stats["p"]) if buyers else None,
        total_expected_value=float(stats["ev"]) if buyers else None,
    )
    check_accounting(result)

    ordered = scored.orderBy("customer_id")
    out_dir, rej_dir = work / "out", work / "rejects"
    if target.kind == "parquet":
        ordered.coalesce(1).write.mode("overwrite").parquet(str(out_dir))
    else:
        ordered = neutralise_spark(ordered) if neutralise else ordered
        (ordered.coalesce(1).write.mode("overwrite").option("header", True).option("emptyValue", "")
         .option("encoding", "UTF-8").csv(str(out_dir)))
    rejects = neutralise_spark(rejects) if neutralise else rejects
    rejects.coalesce(1).write.mode("overwrite").option("header", True).option("emptyValue", "").csv(str(rej_dir))
    result.seconds = round(time.perf_counter() - t0, 3)
    _move_single_part(rej_dir, ".csv", target.rejects)
    _move_single_part(out_dir, ".parquet" if target.kind == "parquet" else ".csv", target.path)
    write_text_atomic(target.summary, json.dumps(result.model_dump(), ensure_ascii=False, indent=2))
    with contextlib.suppress(Exception):
        rows.unpersist()
        scored.unpersist()
    return result
