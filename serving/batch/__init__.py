"""Batch scoring of lead lists: a CSV / Excel / Parquet file, a SQL query or a directory of CRM tables in,
a scored file (or SQL table) out, with ranks, deciles, readable reasons, a rejects file and a summary
(``crmscore score``; the user's guide is docs/batch.md).

What lives where, in the order a run uses it (:func:`score_batch`):

* ``options`` — :class:`BatchOptions`, :class:`BatchSummary`, :class:`BatchError`, the flat-rows
  :class:`FeatureMapping` (``--mapping``) and the column-name constants.
* ``model`` — the ``--model`` value as a registry URI (``NAME@alias``, ``NAME/version``, ``models:/``,
  ``runs:/``) and :func:`load_scorer`, which loads the ``CRMScorer`` with the service's loader (skops, the
  model's trusted types).
* ``sources`` — the column plan (header → id, features, pass-through columns) and the inputs, read in
  chunks of ``chunk_size`` rows: CSV (encoding and delimiter detected, streamed by pyarrow, plain-number
  columns parsed by the reader), Parquet, .xlsx, SQL, and a directory of CRM tables run through the model's
  feature builder.
* ``clean`` — :func:`clean_chunk`: typed features, ids and pass-through columns of a chunk; rows that cannot
  be scored (blank id, not a number, infinite, wrong number of fields) become rejects with the reason.
* ``score`` — :func:`feature_matrix`, :func:`score_frame`, :func:`contributions`, the ``reason_*`` functions
  and :func:`select_reasons`: the model matrix, probabilities, scores, grades and reason texts of a chunk.
* ``threads`` — :class:`ReadAhead`, :func:`prefetch`, :class:`BackgroundWorker` and ``_Job``: parsing,
  cleaning, scoring and spilling overlap in four threads.
* ``sinks`` — the output target and its atomic file / SQL sinks, the rejects file, drift records, the
  per-chunk spill in the run's hidden work directory, and the removal of what killed runs left.
* ``rank`` — pass 2: the last occurrence of each id is kept, ranks order by probability (ties by input
  order), deciles; the spilled chunks are written back in input or rank order.
* ``run`` — :func:`score_batch`: the pipeline itself (telling an optional progress callback its stages) and the summary.
* ``spark`` — ``score_batch_spark`` (``--engine spark``): the same cleaning and reasons on Spark. Not
  re-exported here (importing it needs pyspark): ``from serving.batch.spark import score_batch_spark``.

Invariant of every run: rows in = scored + rejected + duplicates dropped, checked before anything is
written.

Imports: ``features``, ``training``, ``serving.http`` (the model loader, reason folding and labels, drift
records) and ``serving.settings``; modules import each other in the order listed above (``run`` and
``spark`` last); nothing outside ``serving.cli`` imports from here.
"""

from serving.batch.clean import CleanChunk, clean_chunk
from serving.batch.model import LoadedScorer, load_scorer, resolve_model_uri
from serving.batch.options import (
    REJECT_COLUMNS,
    RESULT_COLUMNS,
    BatchError,
    BatchOptions,
    BatchSummary,
    FeatureMapping,
    load_feature_mapping,
)
from serving.batch.rank import rank_rows
from serving.batch.run import score_batch
from serving.batch.score import (
    REASON_METHODS,
    ScoredChunk,
    contributions,
    feature_matrix,
    format_reasons,
    reason_arrays,
    reason_columns,
    reason_texts,
    score_frame,
    select_reasons,
)
from serving.batch.sinks import OutputTarget, remove_stale_work, resolve_output
from serving.batch.sources import ColumnPlan, InputSource, RawChunk, open_csv_input, open_input, plan_columns
from serving.batch.threads import BackgroundWorker, ReadAhead, prefetch

__all__ = [
    "REASON_METHODS",
    "REJECT_COLUMNS",
    "RESULT_COLUMNS",
    "BackgroundWorker",
    "BatchError",
    "BatchOptions",
    "BatchSummary",
    "CleanChunk",
    "ColumnPlan",
    "FeatureMapping",
    "InputSource",
    "LoadedScorer",
    "OutputTarget",
    "RawChunk",
    "ReadAhead",
    "ScoredChunk",
    "clean_chunk",
    "contributions",
    "feature_matrix",
    "format_reasons",
    "load_feature_mapping",
    "load_scorer",
    "open_csv_input",
    "open_input",
    "plan_columns",
    "prefetch",
    "rank_rows",
    "reason_arrays",
    "reason_columns",
    "reason_texts",
    "remove_stale_work",
    "resolve_model_uri",
    "resolve_output",
    "score_batch",
    "score_frame",
    "select_reasons",
]
