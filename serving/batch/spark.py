"""`crmscore score --engine spark`: the same batch scoring on Spark, for lead lists too big for one machine.

Same model, same cleaning, same numbers as the local engine (``serving.batch.run``):

* the file is read by Spark (CSV with the encoding and delimiter the local engine detects, or Parquet);
* each partition is cleaned by ``serving.batch.clean.clean_chunk`` in a ``mapInPandas`` (same parsing, same
  rejects and reasons for them);
* probabilities come from ``mlflow.pyfunc.spark_udf`` on the registered model (``env_manager="local"``);
* duplicates keep the last occurrence of an id in input order; rank orders by probability, ties by input
  order; decile 1 is the top tenth (window functions over the whole set);
* score, grade and, with ``--reasons K``, the reason texts are computed in a second ``mapInPandas`` by
  ``training.scores`` and ``serving.batch.score`` with the same scorer: its one encoder
  (``feature_matrix``) and ``training.explain``'s contributions and reason selection;
* the result is written by Spark as one part file into a hidden directory beside the output and moved
  into place with ``os.replace``; rejects the same way; the summary last.

Differences from the local engine, by design: Spark's CSV reader skips blank lines, so row numbers in
the rejects file count data lines (they equal the local ones when the file has no blank lines); a line
with the wrong number of fields is rejected as "malformed line" (its row number is the data line's).
SQL input and output and .xlsx are local-engine only.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.engines.spark_session import SparkUnavailable
from features.engines.spark_session import check_spark as _check_spark
from features.engines.spark_session import spark_session as _spark_session
from features.export import neutralise_spark
from features.io import DataDirError, atomic_path, write_text_atomic
from features.messages import M_, message_of
from serving.batch.clean import clean_chunk
from serving.batch.model import id_column_for, load_scorer
from serving.batch.options import _ROW, BatchError, BatchOptions, BatchSummary, FeatureMapping, load_feature_mapping
from serving.batch.rank import _quantiles
from serving.batch.score import REASON_METHODS, feature_matrix, format_reasons, reason_columns
from serving.batch.sinks import _work_name, remove_stale_work, resolve_output
from serving.batch.sources import ColumnPlan, InputSource, RawChunk, plan_columns

_REASON = "__reject_reason"
_RCOL = "__reject_column"
_RVAL = "__reject_value"
_CORRUPT = "__corrupt_line"
_MONO = "__mono"
_P = "probability"


def check_spark() -> None:
    """Raise :class:`BatchError` when pyspark or a Java runtime is missing."""
    try:
        _check_spark()
    except SparkUnavailable as e:
        raise BatchError(message_of(e) or str(e)) from None


def spark_session(master: str = "local[*]", app_name: str = "crmscore-score") -> Any:
    """A Spark session for batch scoring (``features.engines.spark_session``: reused when one is active)."""
    check_spark()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    return _spark_session(master, app_name)


def _keep_names(plan: ColumnPlan) -> dict[str, str]:
    """Pass-through column → its name inside the Spark plan (prefixed when it is also a feature)."""
    return {k: (f"__keep__{k}" if k in plan.features else k) for k in plan.keep if k != plan.id_col}


def _spark_schema(plan: ColumnPlan) -> Any:
    from pyspark.sql import types as T

    fields = [T.StructField(plan.id_col, T.StringType()), T.StructField(_ROW, T.LongType())]
    fields += [T.StructField(c, T.DoubleType()) for c in plan.numeric]
    fields += [T.StructField(c, T.StringType()) for c in plan.categorical]
    fields += [T.StructField(k, T.StringType()) for k in _keep_names(plan).values()]
    fields += [T.StructField(c, T.StringType()) for c in (_RCOL, _RVAL, _REASON)]
    return T.StructType(fields)


def _cleaner(plan: ColumnPlan, source_names: dict[str, str]):
    """The mapInPandas function: raw partition rows → cleaned feature rows and reject rows."""

    def run(batches):
        import pyarrow as pa

        for pdf in batches:
            if len(pdf) == 0:
                continue
            rows = pdf[_ROW].to_numpy(dtype=np.int64)
            corrupt = pdf[_CORRUPT].notna().to_numpy() if _CORRUPT in pdf else np.zeros(len(pdf), dtype=bool)
            good = pdf[~corrupt]
            table = pa.table(
                {t: pa.Array.from_pandas(good[s], type=None if good[s].dtype != object else pa.string())
                 for t, s in source_names.items()}
            )
            clean = clean_chunk(RawChunk(table, rows[~corrupt]), plan)
            cols: dict[str, Any] = {plan.id_col: clean.ids, _ROW: clean.row_numbers}
            for c in plan.features:
                cols[c] = clean.features[c].to_numpy()
            if clean.keep is not None:
                kept = clean.keep.to_pandas()
                for k, internal in _keep_names(plan).items():
                    v = kept[k].astype(object)
                    cols[internal] = v.where(v.notna(), None).map(lambda x: x if x is None else str(x)).to_numpy()
            for c in (_RCOL, _RVAL, _REASON):
                cols[c] = np.full(len(clean.ids), None, dtype=object)
            out = pd.DataFrame(cols)
            if clean.blank:
                out = pd.concat([out, pd.DataFrame({_ROW: [0], _RCOL: ["__blank__"], _RVAL: [str(clean.blank)],
                                                    _REASON: ["__blank__"]})], ignore_index=True)
            rej = clean.rejects
            if corrupt.any():
                bad = pd.DataFrame({"row": rows[corrupt], "id": "", "column": "(row)", "value": "",
                                    "reason": "malformed line (wrong number of fields)"})
                rej = pd.concat([rej, bad], ignore_index=True) if len(rej) else bad
            if len(rej):
                r = pd.DataFrame({plan.id_col: rej["id"].astype(object).to_numpy(),
                                  _ROW: rej["row"].to_numpy(dtype=np.int64),
                                  _RCOL: rej["column"].astype(str).to_numpy(),
                                  _RVAL: rej["value"].astype(str).to_numpy(),
                                  _REASON: rej["reason"].astype(str).to_numpy()})
                out = pd.concat([out, r], ignore_index=True)
            yield out

    return run


def _finisher(scorer: Any, plan: ColumnPlan, reasons: int, out_cols: list[str], method: str = "exact"):
    """The mapInPandas function: probabilities → score, grade and reason texts (as the local engine)."""

    def run(batches):
        from training.scores import to_grade, to_score

        for pdf in batches:
            if len(pdf) == 0:
                continue
            p = pdf[_P].to_numpy(dtype="float64")
            s = to_score(p)
            pdf["score"] = s
            pdf["grade"] = to_grade(s, scorer.grade_thresholds_)
            if reasons > 0:
                X = pd.DataFrame({c: pdf[c].to_numpy() for c in plan.features})
                for c in plan.numeric:
                    X[c] = X[c].astype("float64")
                for c in plan.categorical:
                    X[c] = X[c].astype(object).where(X[c].notna(), None)
                Z = feature_matrix(scorer.preprocessor_, X)
                why = format_reasons(scorer, X, Z, reasons, method=method)
                for c in reason_columns(reasons):
                    pdf[c] = why[c]
            yield pdf[out_cols]

    return run


def _move_single_part(directory: Path, suffix: str, target: Path) -> None:
    parts = sorted(p for p in directory.iterdir() if p.name.startswith("part-") and p.name.endswith(suffix))
    if len(parts) != 1:
        raise BatchError(f"Spark wrote {len(parts)} part files for {target}; expected one")
    with atomic_path(target, tmp=parts[0]):  # the file is complete: synced and moved into place
        pass


def score_batch_spark(options: BatchOptions, master: str = "local[*]") -> BatchSummary:
    """Score a CSV or Parquet lead list, or the customers of a data dir as of ``--as-of``, on Spark.

    See the module docstring; returns the summary.
    """
    from serving.batch.sources import open_input

    t0 = time.perf_counter()
    check_spark()
    if options.reasons < 0 or options.reasons > 20:
        raise BatchError(M_("--reasons must be between 0 and 20"))
    if options.reason_method not in REASON_METHODS:
        raise BatchError(M_(
            "--reasons-method {reason_method!r}: use {methods}",
            reason_method=options.reason_method, methods=' or '.join(REASON_METHODS),
        ))
    target = resolve_output(options.output, options.output_table, options.rejects)
    if target.kind == "sql":
        raise BatchError(M_("the Spark engine writes CSV or Parquet; use --engine local for a SQL --output"))
    assert target.path is not None  # resolve_output gives every file output a path
    src = Path(options.input)
    is_dir = src.is_dir()
    if is_dir:
        as_of = _tables_as_of(options)
    elif not src.is_file():
        raise BatchError(
            M_("file not found: {path}", path=src) if not src.exists()
            else M_("{path}: the Spark engine reads one CSV or Parquet file", path=src)
        )
    elif src.suffix.lower() not in (".csv", ".tsv", ".txt", ".parquet", ".pq"):
        raise BatchError(M_(
            "{source}: the Spark engine reads CSV or Parquet; use --engine local for {suffix}",
            source=src, suffix=src.suffix,
        ))
    model = load_scorer(options.model)
    keep = [k for k in options.keep if k]
    if options.export_policy.mask & set(keep):
        raise BatchError(M_(
            "--keep {pii_columns}: PII columns are masked for this role, which the Spark engine does not do; use "
            "--engine local",
            pii_columns=','.join(sorted(options.export_policy.mask & set(keep))),
        ))
    id_col, id_origin = id_column_for(options.id_col, model)
    options = dataclasses.replace(options, id_col=id_col)
    from pyspark.sql import SparkSession

    owned = SparkSession.getActiveSession() is None
    spark = spark_session(master)
    work: Path | None = None
    try:
        if is_dir:
            raw, source, info = _tables_features(spark, options, model, as_of, keep)
            mapping = FeatureMapping()
        else:
            source = open_input(str(src))  # encoding, delimiter, header and the empty-file checks of the local engine
            mapping = load_feature_mapping(options.mapping)
            info = {}
        plan = plan_columns(source.header, model, id_col, keep, mapping, source.label, source.delimiter, id_origin)
        if not is_dir:
            raw = _read_file(spark, src, source, plan)
        for p in (target.path, target.rejects, target.summary):
            remove_stale_work(p)
        work = _work_name(target.path, "tmp")
        work.mkdir(parents=True)
        return _run(spark, options, model, plan, source, target, work, t0, raw, info)
    except BatchError:
        raise
    except DataDirError as e:
        raise BatchError(message_of(e) or str(e)) from None
    except Exception as e:  # noqa: BLE001 - Py4J / Spark errors: one line, no Java stack
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise BatchError(M_("Spark failed: {reason}", reason=first[:300])) from None
    finally:
        if work is not None:
            shutil.rmtree(work, ignore_errors=True)
        if owned:
            with contextlib.suppress(Exception):
                spark.stop()


def _tables_as_of(options: BatchOptions) -> pd.Timestamp:
    """``--as-of`` for a directory of CRM tables, checked as the local engine checks it."""
    from features.readers import parse_dates

    d = Path(options.input)
    if not options.as_of:
        raise BatchError(M_(
            "{data_dir} is a directory: give --as-of DATE to build features from its CRM tables",
            data_dir=d,
        ))
    as_of = parse_dates(pd.Series([options.as_of])).iloc[0]
    if pd.isna(as_of):
        raise BatchError(M_("--as-of {as_of!r} is not a date (use YYYY-MM-DD)", as_of=options.as_of))
    if not (d / "customers.parquet").exists():
        raise BatchError(
            M_(
                "{data_dir}: no customers.parquet: the Spark engine reads a data dir of contract tables; turn raw "
                "exports into one with `crmscore ingest` first",
                data_dir=d,
            )
        )
    if options.mapping:
        raise BatchError(M_(
            "{data_dir} is a data dir of validated tables: --mapping is for raw exports only",
            data_dir=d,
        ))
    return pd.Timestamp(as_of)


def _tables_features(
    spark: Any, options: BatchOptions, model: Any, as_of: pd.Timestamp, keep: list[str]
) -> tuple[Any, InputSource, dict[str, Any]]:
    """Features of the data dir's customers as of ``as_of`` (Spark), numbered as the local engine numbers them.

    Returns the feature rows (with ``_ROW``: position among the customers created by ``as_of``), an input
    description and ``info``: the row count and the customers created after ``as_of`` as rejects
    (``row``: position in the customers table).
    """
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    from features.build import CRMFeatureBuilder, _ts_seconds
    from features.engines.spark_features import SparkFeatureBuilder, _time
    from features.engines.spark_tables import read_tables

    d = Path(options.input)
    id_col = str(options.id_col)
    cutoff = str(as_of.date()) if as_of == as_of.normalize() else str(as_of)
    label = f"{d} (CRM tables as of {cutoff})"
    builder = getattr(model.scorer, "builder", None) or CRMFeatureBuilder().fit()
    sb = SparkFeatureBuilder(builder)
    extra = [k for k in keep if k not in sb.columns]
    tables = read_tables(spark, d, extra={"customers": extra})
    missing = [k for k in extra if k not in tables["customers"].columns]
    if missing:
        raise BatchError(M_(
            "{data_dir}: --keep column(s) {missing} not in the customers table",
            data_dir=d, missing=', '.join(missing),
        ))
    # the customers' file order: Spark's ids follow partitions and the positions within them
    customers = tables["customers"].withColumn("__pos", F.monotonically_increasing_id())
    tables = {**tables, "customers": customers}
    feats = sb.transform(tables, as_of, keep=[*extra, "__pos"])
    feats = feats.withColumn(_ROW, F.row_number().over(Window.orderBy("__pos")).cast("long")).drop("__pos")
    if id_col != "customer_id":
        feats = feats.withColumnRenamed("customer_id", id_col)
    t = _ts_seconds(as_of)
    created = _time(customers, "created_at")
    numbered = customers.withColumn("__row", F.row_number().over(Window.orderBy("__pos")).cast("long"))
    late = numbered.filter(~F.coalesce(created <= F.lit(t), F.lit(False)))
    when = F.date_format(F.timestamp_micros(F.floor(created * F.lit(1e6)).cast("long")), "yyyy-MM-dd HH:mm:ss")
    pre = late.select(
        F.col("__row").alias(_ROW),
        F.coalesce(F.col("customer_id").cast("string"), F.lit("")).alias(id_col),
        F.lit("created_at").alias(_RCOL),
        F.coalesce(when, F.lit("NaT")).alias(_RVAL),
        F.lit(f"created after --as-of {cutoff}").alias(_REASON),
    )
    header = [c for c in feats.columns if c != _ROW]
    return feats, InputSource(label, header, lambda plan, size: iter(())), {"pre_rejects": pre, "as_of": cutoff}


def _read_file(spark: Any, src: Path, source: InputSource, plan: ColumnPlan) -> Any:
    """The lead list as a Spark DataFrame of the planned source columns, numbered in file order (``_ROW``)."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    used = list(dict.fromkeys(plan.source.values()))
    if src.suffix.lower() in (".parquet", ".pq"):
        raw = spark.read.parquet(str(src)).select(*[F.col(f"`{c}`") for c in used])
    else:
        schema = T.StructType(
            [T.StructField(h, T.StringType()) for h in source.header] + [T.StructField(_CORRUPT, T.StringType())]
        )
        raw = (
            spark.read.option("header", True)
            .option("sep", source.delimiter)
            .option("encoding", "UTF-8" if source.encoding in ("utf-8", "utf-8-sig") else source.encoding)
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", _CORRUPT)
            .option("multiLine", False)
            .schema(schema)
            .csv(str(src))
        )
        raw = raw.select(*[F.col(f"`{c}`") for c in used], F.col(_CORRUPT))
    # row numbers in file order: the id Spark gives follows partitions and positions within them
    raw = raw.withColumn(_MONO, F.monotonically_increasing_id())
    first = 2 if src.suffix.lower() not in (".parquet", ".pq") else 1
    return raw.withColumn(_ROW, F.row_number().over(Window.orderBy(_MONO)).cast("long") + (first - 1)).drop(_MONO)


def _run(
    spark, options, model, plan: ColumnPlan, source, target, work: Path, t0: float, raw: Any, info: dict[str, Any]
) -> BatchSummary:
    import mlflow
    from pyspark import StorageLevel
    from pyspark.sql import Window
    from pyspark.sql import functions as F
    from pyspark.sql import types as T

    keep_names = _keep_names(plan)
    keep_out = list(keep_names.values())
    cleaned = raw.mapInPandas(_cleaner(plan, dict(plan.source)), _spark_schema(plan))
    if "pre_rejects" in info:  # customers created after --as-of (directory input)
        cleaned = cleaned.unionByName(info["pre_rejects"], allowMissingColumns=True)
    cleaned = cleaned.persist(StorageLevel.MEMORY_AND_DISK)
    marker = F.coalesce(F.col(_RCOL) == "__blank__", F.lit(False))
    counts = cleaned.agg(
        F.sum(F.when(marker, F.col(_RVAL).cast("long")).otherwise(0)).alias("blank"),
        F.sum(F.when(~marker & F.col(_REASON).isNull(), 1).otherwise(0)).alias("ok"),
        F.sum(F.when(~marker & F.col(_REASON).isNotNull(), 1).otherwise(0)).alias("rejected"),
    ).collect()[0]
    blank_rows, n_ok, n_rej = (int(counts[k] or 0) for k in ("blank", "ok", "rejected"))
    rows_in = n_ok + n_rej
    cleaned = cleaned.filter(~marker)
    rejects = cleaned.filter(F.col(_REASON).isNotNull())
    ok = cleaned.filter(F.col(_REASON).isNull())

    # probabilities through the registered model's pyfunc UDF
    udf = mlflow.pyfunc.spark_udf(spark, model.uri, result_type=T.ArrayType(T.DoubleType()), env_manager="local")
    scored = ok.withColumn(_P, udf(*[F.col(f"`{c}`") for c in plan.features]).getItem(1))
    last = Window.partitionBy(plan.id_col).orderBy(F.col(_ROW).desc())
    scored = scored.withColumn("__k", F.row_number().over(last))
    kept = scored.filter(F.col("__k") == 1).drop("__k").persist(StorageLevel.MEMORY_AND_DISK)
    n_kept = kept.count()
    order = Window.orderBy(F.col(_P).desc(), F.col(_ROW).asc())
    ranked = kept.withColumn("rank", F.row_number().over(order).cast("long"))
    ranked = ranked.withColumn("decile", (F.floor((F.col("rank") - 1) * 10 / F.lit(max(n_kept, 1))) + 1).cast("long"))

    out_cols = [plan.id_col, *keep_out, _P, "score", "grade", "rank", "decile", *reason_columns(options.reasons), _ROW]
    fields = [ranked.schema[plan.id_col], *[ranked.schema[k] for k in keep_out],
              T.StructField(_P, T.DoubleType()), T.StructField("score", T.LongType()),
              T.StructField("grade", T.StringType()), T.StructField("rank", T.LongType()),
              T.StructField("decile", T.LongType()),
              *[T.StructField(c, T.StringType()) for c in reason_columns(options.reasons)],
              T.StructField(_ROW, T.LongType())]
    finish = _finisher(model.scorer, plan, options.reasons, out_cols, options.reason_method)
    finished = ranked.mapInPandas(finish, T.StructType(fields))
    finished = finished.persist(StorageLevel.MEMORY_AND_DISK)
    # grade counts and score quantiles from the score histogram (same numpy quantiles as the local engine)
    hist = finished.groupBy("score", "grade").agg(F.count(F.lit(1)).alias("n"), F.sum(_P).alias("p")).collect()
    grades = {g: 0 for g in ("A", "B", "C", "D")}
    for r in hist:
        grades[r["grade"]] += int(r["n"])
    scores = np.repeat(np.array([r["score"] for r in hist], dtype=np.int64),
                       np.array([r["n"] for r in hist], dtype=np.int64))
    mean_p = sum(float(r["p"]) for r in hist) / n_kept if n_kept else None
    ordered = finished.orderBy("rank") if options.sort else finished.orderBy(_ROW)
    ordered = ordered.select(
        F.col(plan.id_col), *[F.col(i).alias(k) for k, i in keep_names.items()],
        *[c for c in out_cols if c not in (plan.id_col, _ROW, *keep_out)],
    )

    out_dir = work / "out"
    if target.kind != "parquet" and options.export_policy.neutralise:
        ordered = neutralise_spark(ordered)  # spreadsheet formulas (features.export)
    if target.kind == "parquet":
        ordered.coalesce(1).write.mode("overwrite").parquet(str(out_dir))
    else:
        (ordered.coalesce(1).write.mode("overwrite").option("header", True).option("emptyValue", "")
         .option("encoding", "UTF-8").csv(str(out_dir)))
    rej_dir = work / "rejects"
    rejects_out = rejects.select(
        F.col(_ROW).alias("row"), F.coalesce(F.col(plan.id_col), F.lit("")).alias(plan.id_col),
        F.col(_RCOL).alias("column"), F.col(_RVAL).alias("value"), F.col(_REASON).alias("reason"),
    ).orderBy("row")
    if options.export_policy.neutralise:
        rejects_out = neutralise_spark(rejects_out)
    rejects_out.coalesce(1).write.mode("overwrite").option("header", True).option("emptyValue", "").csv(str(rej_dir))
    reasons_count: dict[str, int] = {}
    if n_rej:
        for r in rejects.groupBy(F.col(_REASON).alias("reason")).count().collect():
            for part in str(r["reason"]).split("; "):
                reasons_count[part] = reasons_count.get(part, 0) + int(r["count"])
        reasons_count = dict(sorted(reasons_count.items(), key=lambda kv: -kv[1]))

    seconds = time.perf_counter() - t0
    summary = BatchSummary(
        model_uri=model.uri,
        model_name=model.name,
        model_version=model.version,
        engine=f"spark ({spark.sparkContext.master})",
        input=source.label,
        output=target.label,
        rejects_file=str(target.rejects),
        summary_file=str(target.summary),
        as_of=info.get("as_of", options.as_of),
        rows_in=int(rows_in),
        scored=int(n_kept),
        rejected=int(n_rej),
        duplicates=int(n_ok - n_kept),
        blank_rows=blank_rows,
        reject_reasons=reasons_count,
        grades=grades,
        score_quantiles=_quantiles(scores) if len(scores) else {},
        mean_probability=None if mean_p is None else float(mean_p),
        ignored_columns=plan.ignored,
        encoding=source.encoding,
        delimiter=source.delimiter,
        reasons=options.reasons,
        reason_method=options.reason_method if options.reasons else None,
        sorted=options.sort,
        seconds=round(seconds, 3),
        rows_per_second=round(rows_in / seconds, 1) if seconds > 0 else 0.0,
        records="off (the Spark engine does not record rows for drift monitoring)",
    )
    if summary.rows_in != summary.scored + summary.rejected + summary.duplicates:
        raise BatchError(
            f"internal accounting error: rows in {summary.rows_in} != scored {summary.scored} + rejected "
            f"{summary.rejected} + duplicates {summary.duplicates}; no output written"
        )
    _move_single_part(rej_dir, ".csv", target.rejects)
    _move_single_part(out_dir, ".parquet" if target.kind == "parquet" else ".csv", target.path)
    write_text_atomic(target.summary, json.dumps(summary.model_dump(), ensure_ascii=False, indent=2))
    with contextlib.suppress(Exception):
        finished.unpersist()
        kept.unpersist()
        cleaned.unpersist()
    return summary
