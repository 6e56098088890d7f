"""The run: :func:`score_batch` ties model, input, cleaning, scoring, spill, ranking and output together."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import json
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from features.io import atomic_path
from features.messages import M_
from features.progress import ProgressCallback, no_progress
from serving.batch.clean import CleanChunk, NumericBlocks, clean_chunk
from serving.batch.model import id_column_for, load_scorer
from serving.batch.options import _ROW, BatchError, BatchOptions, BatchSummary, FeatureMapping, load_feature_mapping
from serving.batch.rank import _output_schema, _quantiles, _write_results, rank_rows
from serving.batch.score import REASON_METHODS, ScoredChunk, reason_columns, score_frame, set_model_threads
from serving.batch.sinks import (
    _PART_SUFFIX,
    _WORK_SUFFIX,
    _FileSink,
    _records_sink,
    _RejectsSink,
    _Spill,
    _work_name,
    no_space,
    remove_stale_work,
    resolve_output,
    write_failure,
)
from serving.batch.sources import InputSource, _tables_input, open_input, plan_columns
from serving.batch.threads import BackgroundWorker, _Job, prefetch

#: text a CSV may be parsed ahead while the model loads (Arrow bytes; the default 1M-lead benchmark keeps
#: its peak under 2 GB with this)
READ_AHEAD_BYTES = 512 << 20


def _result_table(clean: CleanChunk, scored: ScoredChunk, id_col: str, reasons: int) -> Any:
    import pyarrow as pa

    ids = clean.id_text if clean.id_text is not None else pa.array(clean.ids, type=pa.string())
    cols: dict[str, Any] = {id_col: ids}
    if clean.keep is not None:
        for c in clean.keep.column_names:
            if c != id_col:
                col = clean.keep.column(c)
                cols[c] = col.cast(pa.string()) if pa.types.is_null(col.type) else col
    cols["probability"] = pa.array(scored.probability, type=pa.float64())
    cols["score"] = pa.array(scored.score, type=pa.int64())
    cols["grade"] = pa.array(scored.grade.astype(object), type=pa.string())
    for c in reason_columns(reasons):
        r = scored.reasons[c]
        cols[c] = r if isinstance(r, pa.Array) else pa.array(r, type=pa.string())
    cols[_ROW] = pa.array(clean.row_numbers, type=pa.int64())
    return pa.table(cols)


def score_batch(options: BatchOptions, progress: ProgressCallback | None = None) -> BatchSummary:
    """Score a lead list (see the module docstring); returns the summary also written as JSON.

    ``progress`` is told the stages: loading the model, scoring (rows read of the estimated total), writing.

    Raises :class:`BatchError` (one line) for input, model or output problems found before or while
    scoring; nothing is written in place of the output then.
    """
    with _one_blas_thread():
        return _score_batch(options, progress or no_progress)


@contextlib.contextmanager
def _one_blas_thread() -> Iterator[None]:
    """OpenBLAS (numpy's, scikit-learn's linear models) limited to one thread for the run.

    The pipeline's own threads keep both cores busy; OpenBLAS threads that spin after every call (a linear
    model's product per chunk) took a core from them: ~2.6 CPU-s of a million-lead run here.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:  # pragma: no cover - a scikit-learn dependency
        yield
        return
    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _score_batch(options: BatchOptions, progress: ProgressCallback) -> BatchSummary:
    import pyarrow as pa

    t0 = time.perf_counter()
    if options.reasons < 0 or options.reasons > 20:
        raise BatchError(M_("--reasons must be between 0 and 20"))
    if options.chunk_size < 1:
        raise BatchError(M_("--chunk-size must be at least 1"))
    if options.reason_method not in REASON_METHODS:
        raise BatchError(M_(
            "--reasons-method {reason_method!r}: use {methods}",
            reason_method=options.reason_method, methods=' or '.join(REASON_METHODS),
        ))
    target = resolve_output(options.output, options.output_table, options.rejects)
    check_input(options.input)
    is_dir = not _is_url(options.input) and Path(options.input).is_dir()
    # the model loads (imports, registry, skops: seconds, mostly holding the GIL) while the input is opened and
    # a CSV is parsed ahead (pyarrow, without the GIL); a model error still wins over an input error
    progress("loading the model")
    model_job = _Job(load_scorer, options.model, name="crmscore-model")
    source: InputSource | None = None
    if not is_dir:
        try:
            source = open_input(options.input, options.query)
        except BatchError:
            model_job.result()
            raise
        if source.start is not None:
            source.start(options.chunk_size, READ_AHEAD_BYTES)
    try:
        model = model_job.result()
    except BaseException:
        if source is not None and source.stop is not None:
            source.stop()
        raise
    load_seconds = time.perf_counter() - t0
    id_col, id_origin = id_column_for(options.id_col, model)
    options = dataclasses.replace(options, id_col=id_col)
    threads = options.threads or min(os.cpu_count() or 1, 4)
    set_model_threads(model.scorer, threads)

    work_base = target.path if target.path is not None else target.work_parent / (target.table or "scores")
    for p in (work_base, target.rejects, target.summary):
        remove_stale_work(p)
    work = _work_name(work_base, _WORK_SUFFIX)
    try:
        work.mkdir(exist_ok=False)
    except OSError as e:
        if source is not None and source.stop is not None:
            source.stop()
        raise BatchError(
            M_(
                "cannot write the output {path}: directory {parent} is not writable ({reason})",
                path=work_base, parent=work_base.parent, reason=e.strerror or e,
            )
        ) from None
    sink: Any = None
    rejects: Any = None
    records: Any = None
    writer: BackgroundWorker | None = None
    records_state = "off"
    try:
        sink = target.sink(options.bom)
        rejects = _RejectsSink(target.rejects, id_col)
        sink.policy = rejects.policy = options.export_policy
        records, records_state = _records_sink(options.records)
        info: dict[str, Any] = {}
        if is_dir:
            source, info = _tables_input(options, model, work)
            mapping = FeatureMapping()
        else:
            mapping = load_feature_mapping(options.mapping)
            assert source is not None
        keep = [k for k in options.keep if k]
        plan = plan_columns(source.header, model, id_col, keep, mapping, source.label, source.delimiter, id_origin)
        total = source.estimated_rows
        progress("scoring", 0, total)
        spill = _Spill(work, target.path or target.label)
        folder = None
        if options.reasons > 0:
            from training.explain import ReasonFolder

            if not model.scorer.supports_reasons:
                raise BatchError(M_(
                    "model {uri} has no exact per-row contributions: run without --reasons",
                    uri=model.uri,
                ))
            n_cols = len(model.scorer.preprocessor_.get_feature_names_out())
            folder = ReasonFolder(model.scorer.reason_groups(), n_cols)
        rows_in = 0
        blank = 0
        if "pre_rejects" in info:
            rejects.write(info["pre_rejects"])
        blocks = NumericBlocks()

        def cleaned() -> Iterator[tuple[int, int, CleanChunk]]:
            for raw in source.chunks(plan, options.chunk_size):
                clean = clean_chunk(raw, plan, blocks)
                n_raw, n_bad = raw.table.num_rows, len(raw.bad_rows)
                raw.table = None  # release the raw text before scoring
                yield n_raw, n_bad, clean

        def spill_chunk(table: Any, clean: CleanChunk, scored: ScoredChunk) -> None:
            nonlocal records, records_state
            spill.add(table, table.column(plan.id_col), scored.probability, clean.row_numbers)
            if records is not None:
                try:
                    records.record(model.name or model.uri, model.version or "", list(clean.ids),
                                   scored.probability, scored.score, list(scored.grade), clean.features)
                    records.flush()
                except Exception as e:  # noqa: BLE001 - recording never stops a batch run
                    records_state = f"failed: {type(e).__name__}: {str(e)[:200]}"
                    records = None

        # read + clean chunk n+1 | score chunk n | spill chunk n-1: three threads, the GIL released in the heavy
        # parts (pyarrow's parser and casts, numpy, XGBoost, the Parquet writer). A fourth (parsing apart from
        # cleaning) showed no gain in CPU or wall time within the noise of a shared machine, so it was left out.
        writer = BackgroundWorker()
        for n_raw, n_bad, clean in prefetch(cleaned(), ahead=1):
            rows_in += n_raw - clean.blank + n_bad
            blank += clean.blank
            rejects.write(clean.rejects)
            if len(clean.features):
                scored = score_frame(model.scorer, clean.features, options.reasons, threads, folder,
                                     options.reason_method, clean.codes, clean.numeric)
                table = _result_table(clean, scored, plan.id_col, options.reasons)
                scored.reasons = {}
                if records is None:  # the features are not needed by the writer: reuse their memory
                    blocks.give(clean.numeric)
                    clean.features = clean.numeric = None
                writer.submit(functools.partial(spill_chunk, table, clean, scored))
                del table, scored
            del clean
            progress("scoring", rows_in, max(total, rows_in) if total else None)
        writer.join()
        if is_dir:
            rows_in = info["rows_in"]
        if rows_in == 0 and not spill.files:
            raise BatchError(M_("{source}: no data rows to score", source=source.label))
        scored_total = int(sum(len(p) for p in spill.probs))
        schema = _output_schema(spill, plan, options.reasons)
        if scored_total:
            ids = pa.chunked_array(spill.ids, type=pa.string())
            probs = np.concatenate(spill.probs)
            rows = np.concatenate(spill.rows)
            keep_mask, rank, decile = rank_rows(ids, probs, rows)
        else:
            probs = np.zeros(0)
            keep_mask = rank = decile = np.zeros(0, dtype=np.int64)
        progress("writing")
        _write_results(spill, sink, keep_mask, rank, decile, options.sort, options.chunk_size, schema, work)
        kept_probs = probs[keep_mask.astype(bool)] if scored_total else probs
        from training.scores import GRADES, to_grade, to_score

        s = to_score(kept_probs)
        g = to_grade(s, model.scorer.grade_thresholds_)
        dups = scored_total - int(keep_mask.sum()) + int(info.get("pre_duplicates", 0))
        seconds = time.perf_counter() - t0
        summary = BatchSummary(
            model_uri=model.uri,
            model_name=model.name,
            model_version=model.version,
            input=source.label,
            output=target.label,
            rejects_file=str(target.rejects),
            summary_file=str(target.summary),
            as_of=info.get("as_of", options.as_of),
            rows_in=rows_in,
            scored=int(len(kept_probs)),
            rejected=rejects.count,
            duplicates=dups,
            blank_rows=blank,
            reject_reasons=dict(sorted(rejects.reasons.items(), key=lambda kv: -kv[1])),
            grades={k: int((g == k).sum()) for k in GRADES},
            score_quantiles=_quantiles(s),
            mean_probability=float(kept_probs.mean()) if len(kept_probs) else None,
            ignored_columns=plan.ignored,
            encoding=source.encoding,
            delimiter=source.delimiter,
            reasons=options.reasons,
            reason_method=options.reason_method if options.reasons else None,
            sorted=options.sort,
            seconds=round(seconds, 3),
            model_load_seconds=round(load_seconds, 3),
            rows_per_second=round(rows_in / seconds, 1) if seconds > 0 else 0.0,
            records=records_state,
            ingest_summary=info.get("ingest_summary"),
        )
        written: list[str] = []
        if scored_total:
            kept = np.flatnonzero(keep_mask)
            if options.sort:  # the kept rows' ranks are 1 … len(kept): each row's place, without a sort
                by_rank = np.empty_like(kept)
                by_rank[rank[kept] - 1] = kept
                kept = by_rank
            written = ids.take(pa.array(kept)).to_pylist()
        summary.keep_written_ids(written)
        if summary.rows_in != summary.scored + summary.rejected + summary.duplicates:
            raise BatchError(
                f"internal accounting error: rows in {summary.rows_in} != scored {summary.scored} + rejected "
                f"{summary.rejected} + duplicates {summary.duplicates}; no output written"
            )
        # every file is complete (a full disk shows here) before the first one is moved into place; the
        # summary is written last
        if isinstance(sink, _FileSink):
            sink.finish_with(schema)
        rejects.finish()
        with atomic_path(target.summary, tmp=_work_name(target.summary, _PART_SUFFIX)) as tmp:
            try:
                tmp.write_text(json.dumps(summary.model_dump(), ensure_ascii=False, indent=2), encoding="utf-8")
            except OSError as e:
                raise write_failure(M_("summary file"), target.summary, e) from None
            rejects.commit()
            sink.commit(schema)
        return summary
    except BaseException as e:
        if writer is not None:
            writer.abort()
        for part in (sink, rejects):
            if part is not None:
                part.abort()
        if isinstance(e, OSError) and no_space(e):  # e.g. the rank buckets of --sort in the work directory
            raise write_failure(M_("output"), target.path or target.label, e) from None
        if isinstance(e, OSError) and not isinstance(e, BatchError):
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            raise BatchError(M_("cannot read or write {where}{reason}", where=where, reason=e.strerror or e)) from None
        raise
    finally:
        if source is not None and source.stop is not None:
            source.stop()
        shutil.rmtree(work, ignore_errors=True)
        if records is not None:
            with contextlib.suppress(Exception):
                records.close(timeout=1.0)


def check_input(path: str) -> None:
    """Raise :class:`BatchError` when ``path`` (a file or folder; a database URL is not checked) does not exist.

    ``crmscore score`` calls it before anything else, so a wrong path is refused before the registry is opened
    (which creates an empty MLflow store, and logs that, on a first run)."""
    if not _is_url(path) and not Path(path).exists():
        raise BatchError(M_("file not found: {path}", path=path))


def _is_url(s: str) -> bool:
    from features.readers import is_sql_url

    return is_sql_url(s)
