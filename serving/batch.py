"""Batch scoring of lead lists: a CSV / Excel / Parquet file, a SQL query or a directory of CRM tables in,
a scored file (or SQL table) out, with ranks, deciles, readable reasons, a rejects file and a summary.

How a run goes (``crmscore score``, :func:`score_batch`):

1. **Model**: ``NAME@alias``, ``NAME/version`` or a ``models:/`` / ``runs:/`` URI is loaded with
   ``mlflow.sklearn.load_model`` (skops, the model's trusted types) to get the ``CRMScorer``; a version in a
   local SQLite registry is found by a read-only query and loaded with the same checks and the same skops call
   without importing MLflow (``training.registry.locate_sqlite_version``, ``serving.http.loader.load_local_scorer``).
2. **Input**, read in chunks of ``chunk_size`` rows so memory does not grow with the file: CSV with the
   encoding found by ``features.readers.detect_encoding`` and the delimiter by ``sniff_delimiter``, streamed
   by pyarrow (plain-number columns parsed as float64 by the reader, the rest as text: :func:`open_csv_input`);
   Parquet by row groups; SQL with ``pandas.read_sql_query(chunksize=…)``; .xlsx through
   ``features.readers.read_excel_file``. Headers map to the model's feature names through ``--mapping``
   (``columns: {source header: feature}``) or by name (case, spaces and hyphens ignored). With a directory
   and ``--as-of``, the four CRM tables (a data dir of Parquet, or raw exports run through
   ``features.ingest.ingest``) go through the model's own feature builder first.
3. **Cleaning** per chunk: text is normalised with ``features.readers.normalize_text``; numbers are parsed
   with a fast pyarrow cast, falling back to ``features.readers.parse_amounts`` (``¥1,234.50``). A row that
   cannot be scored (blank id, a value that is not a number in a numeric feature, an infinite value, a line
   with the wrong number of fields) goes to the rejects file with its row number and the reason.
4. **Scoring** per chunk with the scorer's own preprocessing (:func:`feature_matrix`, element for element the
   preprocessor's ``transform``) and ``predict_proba_matrix``, scores and grades with ``training.scores``,
   reasons from the exact contributions (``contributions_matrix``) folded and selected as
   ``training.scores.top_reasons`` does (``serving.http.postprocess.ReasonFolder``), texts built as Arrow arrays.
   Each chunk's results are spilled to an Arrow IPC file in a hidden work directory beside the output.
   Parsing (a CSV is parsed ahead while the model loads: :class:`ReadAhead`), cleaning, scoring and spilling
   run in four threads (:class:`ReadAhead`, :func:`prefetch`, :class:`BackgroundWorker`).
5. **Ranking** needs the global order, so it happens after the last chunk: only the ids, row numbers and
   probabilities (about 30 bytes a row) stay in memory; duplicates of an id keep the **last** occurrence
   in input order (the most recent export line wins, as in ingestion); ranks order by probability, ties by
   input order; decile 1 is the top tenth. The spilled chunks are then read back one at a time and written
   out in input order, or, with ``sort``, distributed into rank buckets and written bucket by bucket.
6. **Output** is written to a temporary file in the output's directory and moved into place with
   ``os.replace`` (a SQL table is written under a temporary name and renamed in one transaction), so a
   killed run never leaves a half file that looks complete. The rejects file and ``<output>.summary.json``
   follow the same rule. Invariant: rows in = scored + rejected + duplicates dropped.
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import queue
import re
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

#: output columns added to the caller's id and pass-through columns, in order
RESULT_COLUMNS = ("probability", "score", "grade", "rank", "decile")
#: suffixes of a hidden work directory / temporary output of a run (``.<name>.crmscore-<pid>.<suffix>``)
_WORK_SUFFIX = "tmp"
_PART_SUFFIX = "part"
_ROW = "__row"
_NUMERIC_TYPES = ("int", "uint", "float", "double", "decimal", "bool", "halffloat")


_T = TypeVar("_T")


class BatchError(ValueError):
    """Input, model or output a batch run cannot use; the one-line message names the file, column or model."""


# ------------------------------------------------------------------------------------------------ options


@dataclass
class BatchOptions:
    """Everything one batch run needs (the ``crmscore score`` options)."""

    model: str
    input: str
    output: str
    mapping: str | None = None
    reasons: int = 0
    reason_method: str = "exact"
    as_of: str | None = None
    id_col: str = "customer_id"
    keep: Sequence[str] = ()
    sort: bool = False
    rejects: str | None = None
    chunk_size: int = 100_000
    query: str | None = None
    output_table: str | None = None
    bom: bool = False
    threads: int | None = None
    records: bool = True
    progress: bool | None = None  # None: only when stderr is a terminal


class BatchSummary(BaseModel):
    """What one run read, scored, rejected and wrote; ``rows_in == scored + rejected + duplicates``."""

    model_uri: str
    model_name: str | None
    model_version: str | None
    engine: str = "local"
    input: str
    output: str
    rejects_file: str
    summary_file: str
    as_of: str | None = None
    rows_in: int
    scored: int
    rejected: int
    duplicates: int
    blank_rows: int = Field(default=0, description="entirely blank lines, skipped (not counted in rows_in)")
    reject_reasons: dict[str, int] = Field(default_factory=dict)
    grades: dict[str, int] = Field(default_factory=dict)
    score_quantiles: dict[str, float] = Field(default_factory=dict)
    mean_probability: float | None = None
    ignored_columns: list[str] = Field(default_factory=list)
    encoding: str | None = None
    delimiter: str | None = None
    reasons: int = 0
    reason_method: str | None = None
    sorted: bool = False
    seconds: float = Field(description="wall time of the whole run, model loading included")
    model_load_seconds: float | None = None
    rows_per_second: float
    records: str = Field(default="off", description="drift records: written / off / unavailable / failed: …")
    ingest_summary: str | None = Field(default=None, description="ingestion summary of raw CRM exports")


class FeatureMapping(BaseModel):
    """``--mapping`` for flat feature rows: source header → feature, id or pass-through column name."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str] = Field(default_factory=dict, description="source column → target column")


def load_feature_mapping(path: str | Path | None) -> FeatureMapping:
    """Load and validate a flat-rows mapping YAML (``columns: {客户编号: customer_id, …}``)."""
    if path is None:
        return FeatureMapping()
    from features.config import ConfigError, load_config

    try:
        return load_config(path, FeatureMapping)
    except ConfigError as e:
        raise BatchError(f"{' '.join(str(e).split())} (a mapping for flat rows has one key, columns)") from None


# ------------------------------------------------------------------------------------------------- model


@dataclass
class LoadedScorer:
    """A loaded ``CRMScorer`` and where it came from."""

    uri: str
    scorer: Any
    name: str | None = None
    version: str | None = None

    @property
    def numeric(self) -> list[str]:
        """Numeric input features, in the model's order."""
        return list(self.scorer.preprocessor_.numeric_features_)

    @property
    def categorical(self) -> list[str]:
        """Categorical input features, in the model's order."""
        return list(self.scorer.preprocessor_.categorical_features_)

    @property
    def features(self) -> list[str]:
        """All input features, in the model's order."""
        return [str(c) for c in self.scorer.feature_names_in_]


def resolve_model_uri(spec: str) -> str:
    """``NAME@alias`` → ``models:/NAME@alias``, ``NAME/3`` → ``models:/NAME/3``, a bare ``NAME`` → its champion;
    URIs (``models:/…``, ``runs:/…``, ``file://…``) and local model directories pass through."""
    s = spec.strip()
    if not s:
        raise BatchError("--model is empty; give NAME@alias, NAME/version or a models:/ or runs:/ URI")
    if s.startswith(("models:/", "runs:/")) or "://" in s or (Path(s) / "MLmodel").is_file():
        return s
    if "@" in s:
        name, alias = s.rsplit("@", 1)
        return f"models:/{name}@{alias}"
    if "/" in s:
        name, version = s.rsplit("/", 1)
        if version.isdigit():
            return f"models:/{name}/{version}"
        raise BatchError(f"--model {s!r}: the part after '/' must be a version number (or use NAME@alias)")
    return f"models:/{s}@champion"


def _registry_version(uri: str) -> tuple[str | None, str | None]:
    from training.registry import split_models_uri

    parts = split_models_uri(uri)
    if parts is None:
        run = re.fullmatch(r"runs:/([0-9a-f]+)/.*", uri)
        return None, (f"run {run.group(1)}" if run else None)
    name, alias, version = parts
    if version is not None:
        return name, version
    from training.registry import get_alias_version

    return name, get_alias_version(name, alias)


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def load_scorer(spec: str) -> LoadedScorer:
    """Load the ``CRMScorer`` a ``--model`` value names from the MLflow registry (or a run / local path).

    Raises :class:`BatchError` with one line when the model, version or alias does not exist or is not a
    crmscore scoring model.
    """
    from serving.http.loader import load_local_scorer, load_scorer_artifact
    from training.registry import configure_tracking, locate_sqlite_version, tracking_uris

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = resolve_model_uri(spec)
    scorer: Any = None
    # a model in a local SQLite registry is found and loaded without importing MLflow (same checks, same
    # skops load); everything else, and every error message, goes through MLflow
    local = locate_sqlite_version(uri, tracking_uris()[1])
    if local is not None:
        name, version, model_dir = local
        try:
            scorer = load_local_scorer(model_dir)  # None: a model with code paths, left to MLflow
        except Exception as e:  # noqa: BLE001 - skops and the checks raise several types
            raise BatchError(f"cannot load model {uri} ({name} version {version}): {_first_line(e)}") from None
    if scorer is None:
        configure_tracking()
        try:  # the service's loader: skops with training.model.TRUSTED_TYPES only, no pickle
            scorer = load_scorer_artifact(uri)
        except Exception as e:  # noqa: BLE001 - MLflow raises many types for a missing model
            try:  # name the version too (an alias alone does not say which artifact is broken)
                name, version = _registry_version(uri)
            except Exception:  # noqa: BLE001 - the registry itself may be what failed
                name, version = None, None
            which = f" ({name} version {version})" if name and version else ""
            raise BatchError(f"cannot load model {uri}{which}: {_first_line(e)}") from None
        local = None
    if not (hasattr(scorer, "preprocessor_") and hasattr(scorer, "predict_proba_matrix")):
        raise BatchError(f"model {uri} is a {type(scorer).__name__}, not a crmscore scoring model (CRMScorer)")
    name, version = local[:2] if local is not None else _registry_version(uri)
    return LoadedScorer(uri=uri, scorer=scorer, name=name, version=version)


# ------------------------------------------------------------------------------------------------ columns


def _norm_header(name: str) -> str:
    # the same rule as ingestion's header matching: case, surrounding spaces, inner spaces/hyphens ignored
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


@dataclass
class ColumnPlan:
    """Which source column feeds the id, each feature and each pass-through column."""

    id_col: str
    keep: list[str]
    numeric: list[str]
    categorical: list[str]
    source: dict[str, str]
    ignored: list[str] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        """Numeric then categorical feature names."""
        return self.numeric + self.categorical

    @property
    def targets(self) -> list[str]:
        """Every column the run reads, id first."""
        out = [self.id_col, *self.features, *self.keep]
        return list(dict.fromkeys(out))


def plan_columns(
    header: Sequence[str],
    model: LoadedScorer,
    id_col: str,
    keep: Sequence[str],
    mapping: FeatureMapping,
    source: str,
    delimiter: str | None = None,
) -> ColumnPlan:
    """Match the input's header to the id, the model's features and the pass-through columns.

    Raises :class:`BatchError` naming every missing column (and hinting at the delimiter when the header
    was read as a single column).
    """
    header = [str(h) for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise BatchError(f"{source}: duplicate column name(s) {', '.join(dupes[:10])}")
    by_norm: dict[str, str] = {}
    for h in header:
        by_norm.setdefault(_norm_header(h), h)
    src: dict[str, str] = {}
    for s, target in mapping.columns.items():
        col = s if s in header else by_norm.get(_norm_header(s))
        if col is None:
            raise BatchError(f"{source}: the mapping names column {s!r} (for {target}), which is not in the input")
        src[target] = col
    wanted = list(dict.fromkeys([id_col, *model.features, *keep]))
    used = set(src.values())
    missing = []
    for t in wanted:
        if t in src:
            continue
        col = t if t in header and t not in used else by_norm.get(_norm_header(t))
        if col is None or col in used:
            missing.append(t)
        else:
            src[t] = col
            used.add(col)
    if missing:
        shown = ", ".join(missing[:12]) + (f", … ({len(missing)} in all)" if len(missing) > 12 else "")
        hint = ""
        if len(header) == 1:
            hint = (
                f"; the header was read as one column {header[0][:60]!r}"
                f" (delimiter {delimiter!r}): is the file delimited by , ; tab or |?"
            )
        kinds = "the id column and model feature(s)" if id_col in missing else "column(s)"
        raise BatchError(f"{source}: missing required {kinds}: {shown}{hint}")
    return ColumnPlan(
        id_col=id_col,
        keep=list(keep),
        numeric=model.numeric,
        categorical=model.categorical,
        source={t: src[t] for t in wanted},
        ignored=[h for h in header if h not in used],
    )


# ------------------------------------------------------------------------------------------------- input


@dataclass
class RawChunk:
    """One chunk as read: an Arrow table with target column names, and the user-visible row numbers."""

    table: Any  # pyarrow.Table
    row_numbers: np.ndarray
    bad_rows: list[tuple[int, str]] = field(default_factory=list)  # (row number, reason) the reader dropped
    #: columns a text reader parsed as numbers: NaN there was written out ("NaN"), so it is not a blank cell
    text_numbers: frozenset[str] = frozenset()


@dataclass
class InputSource:
    """An opened input: its header, how it was read, and a chunk iterator factory."""

    label: str
    header: list[str]
    chunks: Callable[[ColumnPlan, int], Iterator[RawChunk]]
    encoding: str | None = None
    delimiter: str | None = None
    estimated_rows: int | None = None
    #: optional: begin reading ``(chunk_size, memory budget in bytes)`` before the plan is known (CSV)
    start: Callable[[int, int], None] | None = None
    #: optional: stop a reading begun with ``start`` that ``chunks`` will not consume
    stop: Callable[[], None] | None = None


def _arrow_from_pandas(frame: pd.DataFrame) -> Any:
    """A pandas chunk (SQL, Excel) as an Arrow table: numbers stay numbers, everything else normalised text."""
    import pyarrow as pa

    from features.readers import normalize_text

    cols = {}
    for c in frame.columns:
        s = frame[c]
        if pd.api.types.is_bool_dtype(s.dtype):
            cols[c] = pa.array(s.astype("boolean").astype("Float64").to_numpy(dtype="float64", na_value=np.nan))
        elif pd.api.types.is_numeric_dtype(s.dtype):
            cols[c] = pa.array(s.to_numpy(dtype="float64", na_value=np.nan), from_pandas=True)
        else:
            cols[c] = pa.array(normalize_text(s).to_numpy(dtype=object, na_value=None), type=pa.string())
    return pa.table(cols) if cols else pa.table({})


def _rechunk(batches: Iterator[Any], size: int) -> Iterator[Any]:
    """Arrow record batches regrouped into tables of exactly ``size`` rows (the last one shorter)."""
    import pyarrow as pa

    pending: list[Any] = []
    n = 0
    for b in batches:
        if b.num_rows == 0:
            continue
        pending.append(b)
        n += b.num_rows
        while n >= size:
            t = pa.Table.from_batches(pending)
            yield t.slice(0, size)
            rest = t.slice(size)
            pending = rest.to_batches() if rest.num_rows else []
            n = rest.num_rows
    if n:
        yield pa.Table.from_batches(pending)


#: a cell the sampler counts as a plain number (no leading zero: "007" is a code, not a number)
_PLAIN_NUMBER = re.compile(r"[+-]?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?|[+-]?0?\.[0-9]+")
#: parse plain-number columns as numbers (set False to read every column as text; tests compare the two)
TYPED_CSV = True
#: bytes of CSV the reader parses at a time (1 MiB: the parse alone took 2.2 CPU-s per million leads against
#: 2.5–2.7 with 4 MiB blocks, cache-sized blocks; a whole run −0.3 s median in alternating runs)
CSV_BLOCK_BYTES = 1 << 20


def _number_columns(sample: str, delim: str, n_cols: int, nulls: Sequence[str]) -> list[int]:
    """Positions of the columns whose every non-null cell in ``sample`` (whole lines only) is a plain number."""
    lines = sample.splitlines()[1:]
    if len(sample) >= (1 << 16) and lines:
        lines = lines[:-1]  # the sample may end inside a line
    null = set(nulls)
    seen = [0] * n_cols
    ok = [True] * n_cols
    for row in csv.reader(lines, delimiter=delim):
        if len(row) != n_cols:
            continue
        for i, v in enumerate(row):
            if ok[i] and v not in null:
                if _PLAIN_NUMBER.fullmatch(v):
                    seen[i] += 1
                else:
                    ok[i] = False
    return [i for i in range(n_cols) if ok[i] and seen[i]]


def open_csv_input(path: Path) -> InputSource:
    """A delimited text file: encoding and delimiter detected with ``features.readers``, streamed by pyarrow.

    Columns whose sampled cells are all plain numbers are parsed as float64 by the CSV reader itself (the
    same conversion as a string cast, without building the text first: about 2.5 CPU-s less per million
    rows of 130 columns). When a later cell is not a plain number, the file is read again as text from the
    start and the rows already delivered are skipped, and when the model turns out to need such a column as
    text (the id, a category, a pass-through column) the text reading is used from the start: the result is
    the same as reading all text (a unit test compares the two).
    """
    import pyarrow as pa
    import pyarrow.csv as pcsv

    from features.readers import NULL_TOKENS, IngestError, detect_encoding, sniff_delimiter

    try:
        enc = detect_encoding(path)
    except IngestError as e:
        raise BatchError(str(e)) from None
    with path.open("r", encoding=enc, newline="") as fh:
        sample = fh.read(1 << 16)
    if not sample.strip():
        raise BatchError(f"{path}: the file is empty")
    delim = sniff_delimiter(sample)
    header = next(csv.reader(sample.splitlines()[:1], delimiter=delim), [])
    header = [h.strip() for h in header]
    lines = sample.splitlines()
    data_lines = [ln for ln in lines[1:] if ln.strip()]
    if not data_lines and len(sample) < (1 << 16):
        raise BatchError(f"{path}: the file has a header but no data rows")
    size = path.stat().st_size
    per_row = max(1.0, len(sample.encode(enc, errors="replace")) / max(1, len(lines)))
    estimated = int(size / per_row)
    nulls = sorted({v for t in NULL_TOKENS for v in (t, t.upper(), t.capitalize())})

    # arrow names the columns by position: our header (stripped, parsed by the csv module) maps to them
    names = [f"c{i}" for i in range(len(header))]
    position = {h: i for i, h in enumerate(header)}
    numbers = {names[i] for i in _number_columns(sample, delim, len(names), nulls)} if TYPED_CSV else set()
    started: dict[str, Any] = {}

    def reader(typed: bool) -> tuple[Any, list[tuple[int, int, int]]]:
        bad: list[tuple[int, int, int]] = []  # (row number, fields, expected)

        def on_invalid(row: Any) -> str:
            bad.append((int(row.number) if row.number is not None else -1, row.actual_columns, row.expected_columns))
            return "skip"

        types = {c: pa.float64() if typed and c in numbers else pa.string() for c in names}
        # blank lines must come through as rows so row numbers stay the ones a spreadsheet shows
        return pcsv.open_csv(
            path,
            read_options=pcsv.ReadOptions(
                encoding="utf8" if enc in ("utf-8", "utf-8-sig") else enc,
                block_size=CSV_BLOCK_BYTES,
                use_threads=False,
                skip_rows=1,
                column_names=names,
            ),
            parse_options=pcsv.ParseOptions(delimiter=delim, ignore_empty_lines=False, invalid_row_handler=on_invalid),
            convert_options=pcsv.ConvertOptions(
                column_types=types,
                null_values=nulls,
                strings_can_be_null=True,
                quoted_strings_can_be_null=True,
            ),
        ), bad

    def tables(chunk_size: int, typed: bool) -> Iterator[tuple[Any, np.ndarray, list[tuple[int, str]]]]:
        """``chunk_size`` rows at a time (plain-number columns as float64 when ``typed``, the rest text):
        (table, row numbers, rows the parser dropped)."""
        emitted = 0  # rows delivered so far: a text re-read after a failed typed one skips them
        reported: set[int] = set()
        typed = typed and bool(numbers)
        while True:
            done = 0
            bad: list[tuple[int, int, int]] = []
            try:
                rd, bad = reader(typed)  # opening reads (and converts) the first block already
                for t in _rechunk(rd, chunk_size):
                    if done + t.num_rows <= emitted:
                        done += t.num_rows
                        continue
                    if done < emitted:
                        t = t.slice(emitted - done)
                        done = emitted
                    # record index of each emitted row: skip over the invalid records before it
                    b = np.array(sorted(r - 2 for r, _, _ in bad if r > 0), dtype=np.int64)
                    v = np.arange(done, done + t.num_rows, dtype=np.int64)
                    idx = v + np.searchsorted(b - np.arange(len(b)), v, side="right")
                    done += t.num_rows
                    emitted = done
                    rows = [(r, f"row has {a} fields, the header has {e}") for r, a, e in bad if r not in reported]
                    reported.update(r for r, _, _ in bad)
                    yield t, idx + 2, rows
                    del t  # the consumer drops its chunk once cleaned; no other reference may keep it alive
                break
            except pa.ArrowInvalid as e:
                if typed:  # a cell that is not a plain number: read the rest as text (the slow, exact path)
                    typed = False
                    continue
                raise BatchError(f"{path}: cannot read the file: {str(e).splitlines()[0]}") from None
        rest = [(r, a, e) for r, a, e in bad if r not in reported]
        if rest:
            empty = pa.table({c: pa.array([], type=pa.string()) for c in names})
            why = [(r, f"row has {a} fields, the header has {e}") for r, a, e in rest]
            yield empty, np.zeros(0, dtype=np.int64), why

    def start(chunk_size: int, budget_bytes: int) -> None:
        # parse ahead while the model loads: about budget_bytes of data (a chunk costs its bytes plus 4 bytes
        # of offsets per cell in Arrow)
        per_chunk = int(chunk_size * (per_row + 5 * len(names)))
        started["size"] = chunk_size
        started["it"] = ReadAhead(tables(chunk_size, True), ahead=max(1, min(16, budget_bytes // max(1, per_chunk))))

    def stop() -> None:
        it = started.pop("it", None)
        if it is not None:
            it.close()

    def chunks(plan: ColumnPlan, chunk_size: int) -> Iterator[RawChunk]:
        targets = list(plan.source)
        select = [names[position[s]] for s in plan.source.values()]
        # a column the model needs as text (id, category, pass-through) must not have been read as a number
        as_text = {names[position[plan.source[t]]] for t in plan.targets if t not in plan.numeric}
        typed = not (as_text & numbers)
        it = started.pop("it", None) if started.get("size") == chunk_size and typed else None
        if it is None:
            stop()
        try:
            for t, rows, bad_rows in it if it is not None else tables(chunk_size, typed):
                chunk = RawChunk(t.select(select).rename_columns(targets), rows, bad_rows)
                chunk.text_numbers = frozenset(f.name for f in chunk.table.schema if pa.types.is_floating(f.type))
                del t
                yield chunk
                if it is not None:
                    it.ahead = 1  # scoring has started: from now on read one chunk ahead only
        finally:
            if it is not None:
                it.close()

    return InputSource(
        str(path), header, chunks, encoding=enc, delimiter=delim, estimated_rows=estimated, start=start, stop=stop
    )


def open_parquet_input(path: Path) -> InputSource:
    """A Parquet file, read by row batches of the columns needed."""
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(path)
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for corrupt files
        raise BatchError(f"{path}: not a readable Parquet file ({type(e).__name__})") from None
    header = [str(c).strip() for c in pf.schema_arrow.names]
    if pf.metadata.num_rows == 0:
        raise BatchError(f"{path}: the file has no rows")

    def chunks(plan: ColumnPlan, chunk_size: int) -> Iterator[RawChunk]:
        inverse = {s: t for t, s in plan.source.items()}
        stored = {str(c).strip(): c for c in pf.schema_arrow.names}
        start = 0
        import pyarrow as pa

        for b in _rechunk(pf.iter_batches(batch_size=chunk_size, columns=[stored[s] for s in inverse]), chunk_size):
            t = pa.table({inverse[str(c).strip()]: b.column(c) for c in b.column_names})
            yield RawChunk(t, np.arange(start, start + t.num_rows, dtype=np.int64) + 1)
            start += t.num_rows

    return InputSource(str(path), header, chunks, estimated_rows=pf.metadata.num_rows)


def open_excel_input(path: Path) -> InputSource:
    """An .xlsx workbook's first sheet (read whole: a sheet holds at most about a million rows)."""
    from features.readers import IngestError, read_excel_file

    try:
        raw = read_excel_file(path)
    except IngestError as e:
        raise BatchError(str(e)) from None
    frame = raw.frame
    if len(frame) == 0:
        raise BatchError(f"{path}: the file has a header but no data rows")

    def chunks(plan: ColumnPlan, chunk_size: int) -> Iterator[RawChunk]:
        for start in range(0, len(frame), chunk_size):
            part = frame.iloc[start : start + chunk_size]
            sub = pd.DataFrame({t: part[s].to_numpy() for t, s in plan.source.items()})
            yield RawChunk(_arrow_from_pandas(sub), np.arange(start, start + len(part)) + raw.first_row_number)

    return InputSource(raw.source, list(frame.columns), chunks, estimated_rows=len(frame))


def open_sql_input(url: str, query: str | None) -> InputSource:
    """The result of ``query`` on the database at ``url`` (SQLAlchemy), read ``chunksize`` rows at a time."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.exc import SQLAlchemyError

    from features.readers import IngestError, list_sql_tables, mask_url

    label = mask_url(url)
    if not query:
        raise BatchError(f"{label}: give the rows to score with --query 'SELECT … FROM …'")
    try:
        list_sql_tables(url)  # a missing SQLite file is an error, not a new empty database
    except IngestError as e:
        raise BatchError(str(e)) from None
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            head = pd.read_sql_query(text(f"SELECT * FROM ({query}) AS q LIMIT 0"), conn)
    except SQLAlchemyError as e:
        first = str(getattr(e, "orig", None) or e).splitlines()[0]
        raise BatchError(f"{label}: the query failed: {first}") from None
    header = [str(c).strip() for c in head.columns]

    def chunks(plan: ColumnPlan, chunk_size: int) -> Iterator[RawChunk]:
        start = 0
        try:
            with engine.connect() as conn:
                for part in pd.read_sql_query(text(query), conn, chunksize=chunk_size):
                    part.columns = [str(c).strip() for c in part.columns]
                    sub = pd.DataFrame({t: part[s].to_numpy() for t, s in plan.source.items()})
                    yield RawChunk(_arrow_from_pandas(sub), np.arange(start, start + len(part)) + 1)
                    start += len(part)
        except SQLAlchemyError as e:
            first = str(getattr(e, "orig", None) or e).splitlines()[0]
            raise BatchError(f"{label}: the query failed: {first}") from None
        finally:
            engine.dispose()

    return InputSource(f"{label} (query)", header, chunks)


def open_input(source: str, query: str | None = None) -> InputSource:
    """Open a flat input by its kind: SQLAlchemy URL, .csv/.tsv/.txt, .parquet/.pq or .xlsx."""
    from features.readers import CSV_SUFFIXES, EXCEL_SUFFIXES, PARQUET_SUFFIXES, is_sql_url

    if is_sql_url(source):
        return open_sql_input(source, query)
    if query:
        raise BatchError("--query needs a SQL --input (a SQLAlchemy URL such as sqlite:///crm.db)")
    p = Path(source)
    if not p.exists():
        raise BatchError(f"file not found: {p}")
    suffix = p.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return open_csv_input(p)
    if suffix in PARQUET_SUFFIXES:
        return open_parquet_input(p)
    if suffix in EXCEL_SUFFIXES:
        return open_excel_input(p)
    raise BatchError(f"{p}: unsupported input type {suffix or '(none)'}; use CSV, Parquet, .xlsx or a SQL URL")


# ---------------------------------------------------------------------------------------------- cleaning


@dataclass
class CleanChunk:
    """The scorable rows of a chunk and the rejected ones."""

    features: pd.DataFrame  # the model's feature columns, in order (numeric float64, categorical object)
    ids: np.ndarray  # object array of str
    keep: Any  # pyarrow.Table of the pass-through columns
    row_numbers: np.ndarray
    rejects: pd.DataFrame  # row, id, column, value, reason
    blank: int = 0
    #: the categorical features' text as codes (rows aligned with ``features``), for :func:`feature_matrix`
    codes: dict[str, CategoryCodes] = field(default_factory=dict)


REJECT_COLUMNS = ("row", "id", "column", "value", "reason")


def _is_numeric_type(t: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def _text_codes_of(col: Any) -> tuple[np.ndarray, CategoryCodes | None]:
    """An Arrow column as normalised text (``features.readers.normalize_text``, applied to distinct values only):
    an object array, and its :class:`CategoryCodes` when the column was text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from features.readers import normalize_text

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        enc = pc.dictionary_encode(arr)
        if _normal_already(enc.dictionary):
            values = enc.dictionary.to_numpy(zero_copy_only=False)
        else:
            values = normalize_text(pd.Series(enc.dictionary.to_pandas(), dtype=object)).to_numpy(
                dtype=object, na_value=None
            )
        idx = enc.indices.to_numpy(zero_copy_only=False)
        if enc.indices.null_count == 0:
            codes = idx.astype(np.int64)
            return values[codes], CategoryCodes(codes, values)
        valid = ~np.asarray(enc.indices.is_null())
        codes = np.where(valid, idx, -1).astype(np.int64)
        out = np.empty(len(arr), dtype=object)
        out[valid] = values[codes[valid]]
        out[~valid] = None
        return out, CategoryCodes(codes, values)
    return normalize_text(arr.to_pandas()).to_numpy(dtype=object, na_value=None), None


#: characters str.strip() removes in the ASCII range (RE2's \s lacks \v and the separators \x1c-\x1f)
_ASCII_EDGE_SPACE = r"^[\t\n\x0b\x0c\r\x1c-\x1f ]|[\t\n\x0b\x0c\r\x1c-\x1f ]$"


def _normal_already(values: Any) -> bool:
    """Whether ``features.readers.normalize_text`` would leave these distinct values (an Arrow string array
    without nulls) unchanged: all ASCII (no full-width forms), no space at either end, no null token. Checked by
    pyarrow without the GIL, so clean ids skip the Python pass."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from features.readers import null_variants

    if len(values) == 0:
        return True
    if values.null_count or not pc.all(pc.string_is_ascii(values)).as_py():
        return False
    if pc.any(pc.match_substring_regex(values, _ASCII_EDGE_SPACE)).as_py():
        return False
    return not pc.any(pc.is_in(values, value_set=pa.array(null_variants(), pa.string()))).as_py()


@dataclass
class CategoryCodes:
    """A text column as codes into its distinct values: ``values[codes[i]]`` is row i's text, -1 is null.

    :func:`feature_matrix` maps the few distinct values to the model's categories once instead of looking up
    every row's text."""

    codes: np.ndarray
    values: np.ndarray  # object: str or None

    def take(self, mask: np.ndarray) -> CategoryCodes:
        """The codes of the rows ``mask`` keeps."""
        return CategoryCodes(self.codes[mask], self.values)


def _numbers_of(col: Any, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, bad mask, bad values as text) of a numeric feature column; infinite values are kept here."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from features.readers import normalize_text, parse_amounts

    n = len(col)
    no = np.zeros(n, dtype=bool)
    if _is_numeric_type(col.type):
        return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), no, np.empty(0, dtype=object)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        try:
            vals = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
            return vals.astype("float64", copy=False), no, np.empty(0, dtype=object)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    # slow path: spaces, thousands separators, currency signs, or real junk somewhere in this chunk
    text = normalize_text(pd.Series(col.to_pandas(), dtype=object))
    vals = pd.to_numeric(text.astype(object), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    rest = text.notna().to_numpy() & np.isnan(vals)
    if rest.any():
        # what the fast cast accepts ("inf", "1e400") must give the same value here
        vals[rest] = text[rest].map(_float_or_nan).to_numpy(dtype="float64")
        rest = text.notna().to_numpy() & np.isnan(vals)
    if rest.any():
        vals[rest] = parse_amounts(text[rest]).to_numpy(dtype="float64", na_value=np.nan)
    bad = text.notna().to_numpy() & np.isnan(vals)
    return vals, bad, text[bad].to_numpy(dtype=object)


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _blank_mask(table: Any, text_numbers: frozenset[str] = frozenset()) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    blank = np.ones(table.num_rows, dtype=bool)
    for name, col in zip(table.column_names, table.columns, strict=True):
        m = np.asarray(pc.is_null(col, nan_is_null=name not in text_numbers))
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            m = m | np.asarray(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(col), ""), False))
        blank &= m
        if not blank.any():
            break
    return blank


def clean_chunk(raw: RawChunk, plan: ColumnPlan) -> CleanChunk:
    """Typed features, ids and pass-through columns of the scorable rows of ``raw``; the rest as rejects.

    A row is rejected for a blank id, a value that is not a number in a numeric feature (the column and the
    value are named), or an infinite value. Entirely blank rows are skipped and counted.
    """
    t = raw.table
    n = t.num_rows
    blank = _blank_mask(t, raw.text_numbers) if n else np.zeros(0, dtype=bool)
    problems: list[tuple[np.ndarray, str, np.ndarray | str, str | np.ndarray]] = []
    ids = _text_codes_of(t.column(plan.id_col))[0] if n else np.empty(0, dtype=object)
    no_id = pd.isna(ids).astype(bool) & ~blank
    if no_id.any():
        problems.append((np.flatnonzero(no_id), plan.id_col, "", f"{plan.id_col} is blank"))
    cols: dict[str, Any] = {}
    # one float matrix for all numeric features: the frame built from it is a single block (no consolidation copy)
    num = np.empty((n, len(plan.numeric)), dtype="float64", order="F")
    for j, c in enumerate(plan.numeric):
        if n:
            vals, bad, bad_text = _numbers_of(t.column(c), c)
        else:
            vals, bad, bad_text = np.zeros(0), np.zeros(0, dtype=bool), np.empty(0, dtype=object)
        if bad.any():
            problems.append((np.flatnonzero(bad), c, bad_text, f"{c} is not a number"))
        inf = np.isinf(vals)
        if inf.any():
            problems.append((np.flatnonzero(inf), c, np.where(vals[inf] > 0, "inf", "-inf"), f"{c} is infinite"))
        num[:, j] = vals
        del vals
    codes: dict[str, CategoryCodes] = {}
    for c in plan.categorical:
        cols[c], cc = _text_codes_of(t.column(c)) if n else (np.empty(0, dtype=object), None)
        if cc is not None:
            codes[c] = cc
    bad_rows = np.zeros(n, dtype=bool)
    for pos, *_ in problems:
        bad_rows[pos] = True
    ok = ~bad_rows & ~blank
    rejects = _reject_frame(problems, raw.row_numbers, ids)
    if raw.bad_rows:
        extra = pd.DataFrame(
            {"row": [r for r, _ in raw.bad_rows], "id": "", "column": "(row)", "value": "",
             "reason": [why for _, why in raw.bad_rows]}
        )
        rejects = pd.concat([rejects, extra], ignore_index=True) if len(rejects) else extra
    all_ok = bool(ok.all())
    feats = pd.DataFrame(num if all_ok else num[ok], columns=plan.numeric, copy=False)
    del num
    for c in plan.categorical:
        feats[c] = cols[c] if all_ok else cols[c][ok]
    feats = feats[plan.features] if list(feats.columns) != plan.features else feats
    keep = t.select(plan.keep).filter(ok) if plan.keep else None
    if not all_ok:
        codes = {c: cc.take(ok) for c, cc in codes.items()}
    return CleanChunk(feats, ids[ok], keep, raw.row_numbers[ok], rejects, int(blank.sum()), codes)


def _reject_frame(problems: list, row_numbers: np.ndarray, ids: np.ndarray) -> pd.DataFrame:
    """One line per rejected row: row number, id, column(s), value(s) and reason(s) joined with '; '."""
    if not problems:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REJECT_COLUMNS})
    parts = []
    for pos, col, values, reason in problems:
        parts.append(
            pd.DataFrame(
                {"pos": pos, "column": col,
                 "value": values if not isinstance(values, str) else [values] * len(pos), "reason": reason}
            )
        )
    p = pd.concat(parts, ignore_index=True).astype({"value": str})
    p = p.sort_values("pos", kind="stable")
    if p["pos"].duplicated().any():
        p = p.groupby("pos", sort=True).agg({"column": "; ".join, "value": "; ".join, "reason": "; ".join})
        p = p.reset_index()
    pos = p["pos"].to_numpy()
    return pd.DataFrame(
        {
            "row": row_numbers[pos],
            "id": [("" if v is None or v is pd.NA else v) for v in ids[pos]],
            "column": p["column"].to_numpy(),
            "value": p["value"].to_numpy(),
            "reason": p["reason"].to_numpy(),
        }
    )


# ------------------------------------------------------------------------------------------------ scoring


@dataclass
class ScoredChunk:
    """Probabilities, scores, grades and (optionally) reason texts of a feature frame."""

    probability: np.ndarray
    score: np.ndarray
    grade: np.ndarray
    reasons: dict[str, Any] = field(default_factory=dict)  # Arrow string arrays (or object arrays)


def reason_columns(k: int) -> list[str]:
    """Names of the reason columns for ``k`` positive and ``k`` negative reasons."""
    return [f"reason_pos_{i}" for i in range(1, k + 1)] + [f"reason_neg_{i}" for i in range(1, k + 1)]


def _format_numbers(values: np.ndarray) -> np.ndarray:
    """Readable numbers: whole numbers without decimals, others rounded to 2 decimals; NaN → 'missing'."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lookup = np.array([*(_number_text(float(v)) for v in uniques), "missing"], dtype=object)
    return lookup[codes]


REASON_METHODS = ("exact", "approx")


def contributions(scorer: Any, Z: np.ndarray, method: str = "exact") -> np.ndarray:
    """Per-row log-odds contributions (bias last) of a preprocessed matrix.

    ``exact``: the scorer's own ``contributions_matrix`` (TreeSHAP for XGBoost, exact for linear models), as
    the HTTP service gives. ``approx``: for XGBoost, the per-path attribution XGBoost computes with
    ``approx_contribs=True`` (Saabas): it also sums to the margin, costs about one prediction, but may order
    features differently; linear models are exact either way.
    """
    if method not in REASON_METHODS:
        raise BatchError(f"reasons method {method!r}: use {' or '.join(REASON_METHODS)}")
    est = getattr(scorer, "estimator_", None)
    if method == "approx" and hasattr(est, "get_booster"):
        import xgboost as xgb

        return est.get_booster().predict(xgb.DMatrix(Z), pred_contribs=True, approx_contribs=True)
    if hasattr(est, "coef_") and not hasattr(est, "get_booster") and np.ndim(est.coef_) == 2 and len(est.coef_) == 1:
        # ``contributions_matrix`` of a linear model (``Z * coef`` and the intercept), written into one array
        # instead of two temporaries: the same products, element for element (tested)
        n, f = Z.shape
        out = np.empty((n, f + 1), dtype=np.result_type(Z, est.coef_))
        np.multiply(Z, est.coef_[0], out=out[:, :f])
        out[:, f] = est.intercept_[0]
        return out
    return scorer.contributions_matrix(Z)


def format_reasons(
    scorer: Any, X: pd.DataFrame, Z: np.ndarray, top: int, folder: Any = None, method: str = "exact"
) -> dict[str, np.ndarray]:
    """Top ``top`` positive and negative reasons per row as text, e.g. ``added to cart = 1 (+0.84)``.

    Contributions (:func:`contributions`, exact by default) are folded to input features and selected
    exactly as ``training.scores.top_reasons`` does; an empty cell (None) means fewer reasons of that sign.
    The same texts as :func:`reason_arrays`, as object arrays.
    """
    return {k: v.to_numpy(zero_copy_only=False) for k, v in reason_arrays(scorer, X, Z, top, folder, method).items()}


def reason_arrays(
    scorer: Any, X: pd.DataFrame, Z: np.ndarray, top: int, folder: Any = None, method: str = "exact",
    contribs: np.ndarray | None = None,
) -> dict[str, Any]:
    """:func:`format_reasons` as Arrow string arrays (null: no reason), built without a Python object per cell.

    Every distinct value text, contribution text and label is formatted once; the cells are Arrow takes
    of those dictionaries joined with ``binary_join_element_wise``. ``contribs`` may be given when already
    computed (they must be ``contributions(scorer, Z, method)``).
    """
    from serving.http.postprocess import ReasonFolder

    if folder is None:
        folder = ReasonFolder(scorer.reason_groups(), Z.shape[1])
    if contribs is None:
        contribs = contributions(scorer, Z, method)
    folded = folder.fold(contribs)
    del contribs
    pos, neg = select_reasons(folded, top)
    return reason_texts(folded, pos, neg, top, folder.names, X)


def reason_texts(
    folded: np.ndarray, pos: np.ndarray, neg: np.ndarray, top: int, names: Sequence[str], X: pd.DataFrame
) -> dict[str, Any]:
    """Reason text columns (Arrow, null for no reason) of selected folded contributions: ``label = value (±c)``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from serving.http.postprocess import label_of

    n = folded.shape[0]
    cols = [(f"reason_{kind}_{k + 1}", sel, sign, k) for kind, sel, sign in (("pos", pos, 1.0), ("neg", neg, -1.0))
            for k in range(top)]
    if n == 0 or not cols:
        return {c: pa.nulls(n, pa.string()) for c, *_ in cols}
    all_rows = np.arange(n)
    # every cell: feature index, contribution and whether it is a reason at all (sign)
    J = np.zeros((len(cols), n), dtype=np.int64)
    C = np.zeros((len(cols), n), dtype="float64")
    H = np.zeros((len(cols), n), dtype=bool)
    for i, (_, sel, sign, k) in enumerate(cols):
        if k < sel.shape[1]:
            J[i] = sel[:, k]
            C[i] = folded[all_rows, J[i]]
            H[i] = C[i] * sign > 0
    # value texts: per feature, the distinct values of the rows where it is a reason, formatted once
    value_code = np.zeros(J.shape, dtype=np.int64)
    texts: list[str] = []
    cells = np.flatnonzero(H.ravel())
    cj = J.ravel()[cells]
    crow = cells % n
    order = np.argsort(cj, kind="stable")
    bounds = np.flatnonzero(np.diff(cj[order])) + 1
    flat_code = value_code.ravel()
    for group in np.split(order, bounds):
        if len(group) == 0:
            continue
        name = names[int(cj[group[0]])]
        codes, uniques = _value_dictionary(X[name] if name in X.columns else None, crow[group])
        flat_code[cells[group]] = codes + len(texts)
        texts.extend(uniques)
    value_dict = pa.array(texts, type=pa.string())
    # contribution texts: distinct rounded values formatted once
    # by bit pattern, so -0.0 (a tiny negative contribution) keeps its sign: "-0.00"
    rc, runiques = pd.factorize(np.round(C.ravel(), 2).view(np.int64))
    contrib_dict = pa.array([f"{u:+.2f}" for u in runiques.view(np.float64)], type=pa.string())
    label_dict = pa.array([label_of(g) for g in names], type=pa.string())
    rc = rc.reshape(C.shape)
    out: dict[str, Any] = {}
    for i, (col, *_) in enumerate(cols):
        miss = ~H[i]
        if miss.all():
            out[col] = pa.nulls(n, pa.string())
            continue
        lab = pc.take(label_dict, pa.array(J[i], mask=miss))
        val = pc.take(value_dict, pa.array(value_code[i], mask=miss)) if len(texts) else lab
        con = pc.take(contrib_dict, pa.array(rc[i], mask=miss))
        out[col] = pc.binary_join_element_wise(lab, " = ", val, " (", con, ")", "")
    return out


def _value_dictionary(col: pd.Series | None, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Display texts of ``col``'s values in ``rows`` as (codes, distinct texts): numbers as
    :func:`_format_numbers` shows them, text as it is, missing as ``missing``."""
    if col is None:
        return np.zeros(len(rows), dtype=np.int64), ["missing"]
    if pd.api.types.is_numeric_dtype(col.dtype):
        values = col.to_numpy(dtype="float64", na_value=np.nan)[rows]
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        texts = [_number_text(float(v)) for v in uniques]
    else:
        values = col.to_numpy(dtype=object)[rows]
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        texts = [str(v) for v in uniques]
    codes = np.where(codes < 0, len(texts), codes)
    return codes.astype(np.int64), [*texts, "missing"]


def _number_text(v: float) -> str:
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return s if s not in ("", "0", "-0") else f"{v:.2g}"


def select_reasons(folded: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indexes of the ``top`` largest and ``top`` smallest values per row, in the order
    ``training.scores.top_reasons`` uses (a stable sort of ``-folded``: ties of the largest go to the lower
    index, ties of the smallest to the higher one).

    ``argpartition`` then a sort of the ``top`` candidates; rows where equal values straddle the cut fall back
    to the full stable sort, so the result is always the full sort's.
    """
    n, f = folded.shape
    if n == 0 or top <= 0:
        return np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0), dtype=np.int64)
    if top >= f:
        order = np.argsort(-folded, axis=1, kind="stable")
        return order[:, :top], order[:, ::-1][:, :top]
    if top <= 4 and folded.dtype.kind == "f" and np.isfinite(folded).all():
        return _select_by_extremes(folded, top)

    def smallest(values: np.ndarray, low_index_first: bool) -> np.ndarray:
        part = np.argpartition(values, top - 1, axis=1)[:, :top]
        pv = np.take_along_axis(values, part, axis=1)
        o = np.lexsort((part if low_index_first else -part, pv), axis=1)
        sel = np.take_along_axis(part, o, axis=1)
        cut = pv.max(axis=1)
        tied = np.flatnonzero((values <= cut[:, None]).sum(axis=1) > top)
        if len(tied):
            full = np.argsort(-values[tied] if not low_index_first else values[tied], axis=1, kind="stable")
            sel[tied] = full[:, ::-1][:, :top] if not low_index_first else full[:, :top]
        return sel

    pos = smallest(-folded, low_index_first=True)
    # the smallest: reversed stable order of -folded = ascending values, ties by the higher index first
    neg = smallest(folded, low_index_first=False)
    return pos, neg


def _select_by_extremes(folded: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`select_reasons` for a few reasons of finite values: ``top`` rounds of ``argmax`` (first, i.e. lowest,
    index among equals) and of ``argmin`` over the reversed columns (highest index among equals), each round
    masking the picked cells; the order is the full stable sort's. ``folded`` is restored before returning."""
    n, f = folded.shape
    rows = np.arange(n)
    out = []
    for pick_max in (True, False):
        picked = np.empty((n, top), dtype=np.int64)
        saved = np.empty((n, top), dtype=folded.dtype)
        fill = -np.inf if pick_max else np.inf
        done = 0
        try:
            for k in range(top):
                j = folded.argmax(axis=1) if pick_max else f - 1 - folded[:, ::-1].argmin(axis=1)
                picked[:, k] = j
                saved[:, k] = folded[rows, j]
                folded[rows, j] = fill
                done += 1
        finally:
            for k in range(done - 1, -1, -1):
                folded[rows, picked[:, k]] = saved[:, k]
        out.append(picked)
    return out[0], out[1]


def feature_matrix(
    preprocessor: Any, X: pd.DataFrame, codes: dict[str, CategoryCodes] | None = None
) -> np.ndarray:
    """``preprocessor.transform(X)`` (a fitted ``FeaturePreprocessor``), element for element, built without
    pandas' per-column conversion and per-value category mapping: numeric features as one float block, each
    categorical feature's codes with one ``get_indexer`` of its text values.

    Falls back to ``preprocessor.transform`` for frames it does not expect (a numeric feature that is not a
    number column, a categorical one that is not text or missing), so the result is always the transform's.
    ``codes`` (from :func:`clean_chunk`, rows aligned with ``X``) give a categorical column as codes into its
    distinct values: the lookup then runs on those values only, with the same result.
    """
    from training.model import FeaturePreprocessor

    if type(preprocessor) is not FeaturePreprocessor:  # e.g. train table's TablePreprocessor: its own transform
        return preprocessor.transform(X)
    num_names = list(preprocessor.numeric_features_)
    cat_names = list(preprocessor.categorical_features_)
    if any(c not in X.columns for c in preprocessor.feature_names_in_):
        return preprocessor.transform(X)  # raises naming the missing columns
    if not all(pd.api.types.is_float_dtype(X[c].dtype) for c in num_names):
        return preprocessor.transform(X)
    cat_values: dict[str, np.ndarray] = {}
    hints: dict[str, CategoryCodes] = {}
    for c in cat_names:
        hint = (codes or {}).get(c)
        if hint is not None and len(hint.codes) == len(X):
            v = hint.values  # the same distinct values: the same inferred type
            hints[c] = hint
        else:
            v = cat_values[c] = X[c].to_numpy(dtype=object)
        if pd.api.types.infer_dtype(v, skipna=True) not in ("string", "empty"):
            return preprocessor.transform(X)
    n = len(X)
    onehot = preprocessor.encoding == "onehot"
    widths = [len(preprocessor.categories_[c]) if onehot else 1 for c in cat_names]
    Z = np.empty((n, len(num_names) + sum(widths)), dtype="float64")
    k = len(num_names)
    if k:
        # the same operations, element for element, on a column-major copy (contiguous columns: half the time
        # of working on Z's strided block), then one copy into Z
        block = X.iloc[:, :k] if list(X.columns[:k]) == num_names else X[num_names]  # a view when in order
        A = np.array(block.to_numpy(dtype="float64"), dtype="float64", order="F")
        del block
        bad = ~np.isfinite(A)
        if onehot:  # non-finite → NaN → the median: one step
            np.copyto(A, np.broadcast_to(np.asarray(preprocessor.medians_, dtype="float64"), A.shape), where=bad)
            A -= preprocessor.means_
            A /= preprocessor.scales_
        else:
            A[bad] = np.nan
        del bad
        Z[:, :k] = A
        del A
    if onehot and k < Z.shape[1]:
        Z[:, k:] = 0.0
    for c, w in zip(cat_names, widths, strict=True):
        hint = hints.get(c)
        v = hint.values if hint is not None else cat_values[c]
        idx = pd.Index(preprocessor.categories_[c], dtype=object).get_indexer(v)
        idx[pd.isna(v)] = -1
        if hint is not None:  # row i's value is v[hint.codes[i]] (or null at -1)
            idx = np.where(hint.codes >= 0, idx[np.maximum(hint.codes, 0)], -1) if len(v) else np.full(len(X), -1)
        if onehot:
            block = Z[:, k : k + w]
            ok = idx >= 0
            block[np.flatnonzero(ok), idx[ok]] = 1.0
        else:
            Z[:, k] = np.where(idx >= 0, idx, np.nan)
        k += w
    return Z


def score_frame(
    scorer: Any, X: pd.DataFrame, reasons: int = 0, threads: int | None = None, folder: Any = None,
    reason_method: str = "exact", codes: dict[str, CategoryCodes] | None = None,
) -> ScoredChunk:
    """Score a frame of the model's features with the scorer's own transform, model and calibration
    (``codes``: :attr:`CleanChunk.codes` of the same rows, see :func:`feature_matrix`)."""
    from training.scores import to_grade, to_score

    with _xgb_threads(threads):
        Z = feature_matrix(scorer.preprocessor_, X, codes)
        p = np.asarray(scorer.predict_proba_matrix(Z), dtype="float64")
        why = reason_arrays(scorer, X, Z, reasons, folder, reason_method) if reasons > 0 and len(X) else {}
    if reasons > 0 and not why:
        import pyarrow as pa

        why = {c: pa.nulls(len(X), pa.string()) for c in reason_columns(reasons)}
    s = to_score(p)
    return ScoredChunk(p, s, to_grade(s, scorer.grade_thresholds_), why)


@contextlib.contextmanager
def _xgb_threads(threads: int | None) -> Iterator[None]:
    # a model that is not XGBoost never imported it (its import is ~0.5 s of the main thread); one that is did
    xgb = sys.modules.get("xgboost")
    if not threads or xgb is None:
        yield
        return
    with xgb.config_context(nthread=int(threads)):
        yield


def set_model_threads(scorer: Any, threads: int) -> None:
    """Make the scorer's classifier predict with ``threads`` threads (XGBoost keeps its training n_jobs)."""
    est = getattr(scorer, "estimator_", None)
    if est is not None and "n_jobs" in est.get_params():
        with contextlib.suppress(Exception):
            est.set_params(n_jobs=int(threads))


# -------------------------------------------------------------------------------------------- pipelining


def prefetch(items: Iterator[_T], ahead: int = 1, name: str = "crmscore-read") -> Iterator[_T]:
    """``items`` produced by a background thread (:class:`ReadAhead`), up to ``ahead`` items beyond the one
    the consumer holds.

    Reading and cleaning chunk n+1 (pyarrow's CSV reader and casts release the GIL) then overlaps with
    scoring chunk n (XGBoost releases it too), so both cores of a small machine stay busy; with ``ahead=1``
    two chunks are alive at a time (the one being scored, the one being read). An exception of the producer is
    raised in the consumer where the item would have come; when the consumer stops early, the producer stops
    before its next item and its generator is closed (its ``finally`` blocks run).
    """
    reader = ReadAhead(items, ahead, name=name)
    try:
        yield from reader
    finally:
        reader.close()


class ReadAhead(Iterator[_T]):
    """``items`` produced by a background thread that starts at once, up to :attr:`ahead` items before the
    consumer; lowering :attr:`ahead` later (a large buffer while the model loads, one chunk once scoring runs)
    takes effect as the consumer drains the buffer. The producer's exception is raised where its item would
    have come; :meth:`close` stops the producer before its next item and closes its generator.
    """

    def __init__(self, items: Iterator[_T], ahead: int, name: str = "crmscore-parse") -> None:
        self.ahead = max(1, ahead)
        self._items = items
        self._buffer: list[tuple[BaseException | None, Any]] = []
        self._cond = threading.Condition()
        self._stopped = False
        self._done = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while len(self._buffer) >= self.ahead and not self._stopped:
                        self._cond.wait(0.1)
                    if self._stopped:
                        return
                try:
                    x = next(self._items)
                except StopIteration:
                    self._put((None, _END))
                    return
                self._put((None, x))
                del x
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put((e, None))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def _put(self, item: tuple[BaseException | None, Any]) -> None:
        with self._cond:
            self._buffer.append(item)
            self._cond.notify_all()

    def __next__(self) -> _T:
        if self._done:
            raise StopIteration
        with self._cond:
            while not self._buffer:
                self._cond.wait(0.1)
            err, x = self._buffer.pop(0)
            self._cond.notify_all()
        if err is not None:
            self._done = True
            raise err
        if x is _END:
            self._done = True
            raise StopIteration
        return x

    def close(self) -> None:
        """Stop the producer (after the item it is reading) and drop what it buffered."""
        with self._cond:
            self._stopped = True
            self._buffer.clear()
            self._cond.notify_all()
        self._done = True
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=60)
        with self._cond:
            self._buffer.clear()


_END = object()


class BackgroundWorker:
    """Runs submitted calls one at a time, in order, in a background thread; :meth:`submit` waits while the
    previous call still runs (so at most one chunk is being written while the next is scored).

    Used to spill a scored chunk to Parquet while the next one is scored. The first exception of a call is
    raised by the next :meth:`submit` or by :meth:`join`; later calls are skipped then.
    """

    def __init__(self, name: str = "crmscore-write") -> None:
        self._q: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._idle = threading.Semaphore(1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._q.get()
            if job is None:
                return
            try:
                if self._error is None:
                    job()
            except BaseException as e:  # noqa: BLE001 - re-raised in the submitting thread
                self._error = e
            finally:
                del job
                self._idle.release()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error  # kept: later jobs stay skipped

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` next; waits for the previous job; raises the error of an earlier job."""
        self._idle.acquire()
        try:
            self._check()
        except BaseException:
            self._idle.release()
            raise
        self._q.put(job)

    def join(self) -> None:
        """Wait for every submitted job; raise the first error of any."""
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        self._check()

    def abort(self) -> None:
        """Stop after the running job; errors are dropped."""
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join(timeout=60)
        self._error = None


# ---------------------------------------------------------------------------------------------- progress


class Progress:
    """A one-line progress display on stderr (rows, rows/s, ETA); silent unless ``enabled``."""

    def __init__(self, total: int | None, enabled: bool, stream: Any = None) -> None:
        self.total = total
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.t0 = time.perf_counter()
        self._last = 0.0
        self.rows = 0

    def update(self, rows: int, phase: str = "scoring", force: bool = False) -> None:
        """Show ``rows`` done (at most five times a second)."""
        self.rows = rows
        if not self.enabled:
            return
        now = time.perf_counter()
        if not force and now - self._last < 0.2:
            return
        self._last = now
        dt = max(now - self.t0, 1e-9)
        rate = rows / dt
        msg = f"{phase}: {rows:,} rows, {rate:,.0f} rows/s"
        if self.total and rows < self.total and rate > 0:
            msg += f", ~{rows / self.total:.0%}, ETA {max(self.total - rows, 0) / rate:,.0f} s"
        self.stream.write("\r" + msg.ljust(78)[:100])
        self.stream.flush()

    def close(self) -> None:
        """Clear the line."""
        if self.enabled:
            self.stream.write("\r" + " " * 100 + "\r")
            self.stream.flush()


# ------------------------------------------------------------------------------------------------ output


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _work_name(target: Path, suffix: str) -> Path:
    return target.with_name(f".{target.name}.crmscore-{os.getpid()}.{suffix}")


def remove_stale_work(target: Path) -> list[Path]:
    """Remove work directories and partial outputs that killed runs left beside ``target``."""
    removed = []
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.crmscore-(\d+)\.({_WORK_SUFFIX}|{_PART_SUFFIX}\w*)$")
    if not target.parent.is_dir():
        return removed
    for p in target.parent.iterdir():
        m = pattern.match(p.name)
        if m and not _pid_alive(int(m.group(1))):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _check_writable(path: Path, what: str) -> None:
    parent = path.parent
    if path.is_dir():
        raise BatchError(f"cannot write the {what} {path}: it is a directory")
    if not parent.is_dir():
        raise BatchError(f"cannot write the {what} {path}: directory {parent} does not exist")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BatchError(f"cannot write the {what} {path}: directory {parent} is not writable")
    if path.exists() and not os.access(path, os.W_OK):
        raise BatchError(f"cannot write the {what} {path}: the file is read-only")


class _FileSink:
    """Streams Arrow tables into a temporary CSV or Parquet file, moved into place by :meth:`commit`."""

    def __init__(self, path: Path, kind: str, bom: bool = False) -> None:
        self.path = path
        self.kind = kind
        self.bom = bom
        self.tmp = _work_name(path, _PART_SUFFIX)
        self._writer: Any = None
        self._fh: Any = None
        self.schema: Any = None

    def write(self, table: Any) -> None:
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        if self._writer is None:
            self.schema = table.schema
            if self.kind == "parquet":
                self._writer = pq.ParquetWriter(self.tmp, self.schema)
            else:
                self._fh = open(self.tmp, "wb")  # noqa: SIM115 - closed in commit/abort
                if self.bom:
                    self._fh.write(b"\xef\xbb\xbf")
                self._writer = pcsv.CSVWriter(self._fh, self.schema)
        self._writer.write_table(table.cast(self.schema) if table.schema != self.schema else table)

    def commit(self, empty_schema: Any) -> None:
        if self._writer is None:
            self.write(empty_schema.empty_table())
        self._writer.close()
        if self._fh is not None:
            self._fh.flush()
            os.fsync(self._fh.fileno())
            self._fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            if self._writer is not None:
                self._writer.close()
        with contextlib.suppress(Exception):
            if self._fh is not None:
                self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


def _sql_first_line(e: Exception) -> str:
    return str(getattr(e, "orig", None) or e).splitlines()[0]


class _SqlSink:
    """Appends chunks to a temporary table, renamed to the target table (replacing it) in one transaction."""

    def __init__(self, url: str, table: str) -> None:
        from sqlalchemy import create_engine

        self.url = url
        self.table = table
        self.tmp = f"{table}__crmscore_{os.getpid()}"
        self.engine = create_engine(url)
        self._created = False

    def write(self, table: Any) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        df = table.to_pandas()
        try:
            df.to_sql(self.tmp, self.engine, if_exists="append" if self._created else "replace", index=False,
                      chunksize=50_000)
        except SQLAlchemyError as e:
            raise BatchError(f"{self._label()}: cannot write: {_sql_first_line(e)}") from None
        self._created = True

    def _label(self) -> str:
        from features.readers import mask_url

        return f"{mask_url(self.url)} table {self.table}"

    def commit(self, empty_schema: Any) -> None:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        if not self._created:
            self.write(empty_schema.empty_table())
        try:
            with self.engine.begin() as conn:
                q = conn.dialect.identifier_preparer.quote
                conn.execute(text(f"DROP TABLE IF EXISTS {q(self.table)}"))
                conn.execute(text(f"ALTER TABLE {q(self.tmp)} RENAME TO {q(self.table)}"))
        except SQLAlchemyError as e:
            raise BatchError(f"{self._label()}: cannot replace the table: {_sql_first_line(e)}") from None
        self.engine.dispose()

    def abort(self) -> None:
        from sqlalchemy import text

        with contextlib.suppress(Exception):
            with self.engine.begin() as conn:
                conn.execute(text(f"DROP TABLE IF EXISTS {conn.dialect.identifier_preparer.quote(self.tmp)}"))
        with contextlib.suppress(Exception):
            self.engine.dispose()


@dataclass
class OutputTarget:
    """Where results go: a CSV or Parquet file, or a SQL table; plus the rejects and summary files."""

    label: str
    kind: str  # csv | parquet | sql
    path: Path | None
    url: str | None
    table: str | None
    rejects: Path
    summary: Path
    work_parent: Path

    def sink(self, bom: bool = False) -> _FileSink | _SqlSink:
        """A fresh writer for the results."""
        if self.kind == "sql":
            return _SqlSink(self.url, self.table)
        return _FileSink(self.path, self.kind, bom=bom)


def resolve_output(output: str, output_table: str | None, rejects: str | None) -> OutputTarget:
    """Check the output, rejects and summary locations are writable before any work is done."""
    from features.readers import is_sql_url, mask_url

    if is_sql_url(output):
        from sqlalchemy.engine import make_url

        try:
            u = make_url(output)
        except Exception as e:  # noqa: BLE001
            raise BatchError(f"--output is not a valid SQLAlchemy URL: {mask_url(output)} ({e})") from None
        table = output_table or "scores"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
            raise BatchError(f"--output-table {table!r}: use letters, digits and underscores")
        if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
            db = Path(u.database)
            _check_writable(db, "output database")
            base = db.with_name(f"{db.name}.{table}")
        else:
            base = Path.cwd() / table
        target = OutputTarget(mask_url(output) + f" table {table}", "sql", None, output, table,
                              Path(rejects) if rejects else base.with_name(base.name + ".rejects.csv"),
                              base.with_name(base.name + ".summary.json"), base.parent)
    else:
        if output_table:
            raise BatchError("--output-table is for a SQL --output (e.g. sqlite:///scores.db)")
        p = Path(output)
        suffix = p.suffix.lower()
        kind = "parquet" if suffix in (".parquet", ".pq") else "csv" if suffix in (".csv", ".txt", ".tsv") else None
        if kind is None:
            raise BatchError(f"--output {p}: use a .csv or .parquet file, or a SQL URL with --output-table")
        _check_writable(p, "output")
        target = OutputTarget(str(p), kind, p, None, None,
                              Path(rejects) if rejects else p.with_name(p.name + ".rejects.csv"),
                              p.with_name(p.name + ".summary.json"), p.parent)
    _check_writable(target.rejects, "rejects file")
    _check_writable(target.summary, "summary file")
    return target


def _write_text_atomic(path: Path, text: str) -> None:
    tmp = _work_name(path, _PART_SUFFIX)
    try:
        with open(tmp, "w", encoding="utf-8") as fh:
            fh.write(text)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)


class _RejectsSink:
    """Rejected rows appended to a temporary CSV (UTF-8 with BOM, as ingestion's rejects), then moved into place."""

    def __init__(self, path: Path, id_col: str) -> None:
        self.path = path
        self.tmp = _work_name(path, _PART_SUFFIX)
        self.id_col = id_col
        self.count = 0
        self.reasons: dict[str, int] = {}
        self._fh = open(self.tmp, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed in commit/abort
        self._w = csv.writer(self._fh)
        self._w.writerow(["row", id_col, "column", "value", "reason"])

    def write(self, rejects: pd.DataFrame) -> None:
        if len(rejects) == 0:
            return
        self._w.writerows(rejects[list(REJECT_COLUMNS)].itertuples(index=False, name=None))
        self.count += len(rejects)
        for r in rejects["reason"]:
            for part in str(r).split("; "):
                key = re.sub(r"^row has \d+ fields", "row has a wrong number of fields", part)
                self.reasons[key] = self.reasons.get(key, 0) + 1

    def commit(self) -> None:
        self._fh.flush()
        os.fsync(self._fh.fileno())
        self._fh.close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self._fh.close()
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.tmp)


# ------------------------------------------------------------------------------------------------ records


def _records_sink(enabled: bool) -> tuple[Any, str]:
    """``serving.http.records.RecordSink(source="batch")`` when recording is on and the module exists."""
    if not enabled:
        return None, "off"
    import importlib.util

    if importlib.util.find_spec("serving.http.records") is None:
        return None, "unavailable (serving.http.records is not installed)"
    try:
        from serving.http.records import RecordSink

        return RecordSink(source="batch", max_queue=10**9), "written"
    except Exception as e:  # noqa: BLE001 - recording never stops a batch run
        return None, f"failed: {type(e).__name__}: {str(e)[:200]}"


# --------------------------------------------------------------------------------------------- the run


@dataclass
class _Spill:
    """Per-chunk results on disk, with the few columns ranking needs kept in memory."""

    dir: Path
    files: list[Path] = field(default_factory=list)
    ids: list[Any] = field(default_factory=list)  # pyarrow string arrays
    probs: list[np.ndarray] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)

    def add(self, table: Any, ids: Any, probability: np.ndarray, rows: np.ndarray) -> None:
        """Spill ``table``; keep its ids (the table's id column, a chunked array), probabilities and rows."""
        import pyarrow.feather as feather

        f = self.dir / f"chunk-{len(self.files):06d}.arrow"
        feather.write_feather(table, f, compression="uncompressed")  # read back once: no encoding work
        self.files.append(f)
        self.ids.extend(ids.chunks)  # pa.chunked_array(self.ids) takes arrays, not chunked arrays
        self.probs.append(probability)
        self.rows.append(rows)


def _result_table(clean: CleanChunk, scored: ScoredChunk, id_col: str, reasons: int) -> Any:
    import pyarrow as pa

    cols: dict[str, Any] = {id_col: pa.array(clean.ids, type=pa.string())}
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


def rank_rows(ids: Any, probability: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep mask (last occurrence of each id), rank (1 = highest probability, ties by input order; 0 for
    dropped rows) and decile (1 = top tenth) of every scored row; the arrays are in input order."""
    import pyarrow as pa

    n = len(probability)
    # the order of all rows is sorted (numpy, without the GIL) while pyarrow finds each id's last row; the
    # kept rows in that order are the order of the kept rows
    sorting = _Job(lambda: np.lexsort((rows, -probability)), name="crmscore-rank")
    tab = pa.table({"id": ids, "pos": pa.array(np.arange(n, dtype=np.int64))})
    last = tab.group_by("id", use_threads=False).aggregate([("pos", "max")]).column("pos_max").to_numpy()
    keep = np.zeros(n, dtype=bool)
    keep[last] = True
    everything = sorting.result()
    order = everything[keep[everything]]
    rank = np.zeros(n, dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    m = max(len(order), 1)
    decile = np.where(rank > 0, (rank - 1) * 10 // m + 1, 0)
    return keep, rank, decile


def _quantiles(scores: np.ndarray) -> dict[str, float]:
    if len(scores) == 0:
        return {}
    qs = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
    vals = np.quantile(scores, qs)
    return {f"p{int(q * 100):02d}": float(v) for q, v in zip(qs, vals, strict=True)} | {
        "min": float(scores.min()), "max": float(scores.max())
    }


def _tables_input(
    options: BatchOptions, model: LoadedScorer, work: Path
) -> tuple[InputSource, dict[str, Any]]:
    """Features of every customer in a directory of CRM tables, as of ``options.as_of``."""
    from features.build import CRMSnapshot, build_features
    from features.io import DataDirError, load_tables
    from features.readers import IngestError, parse_dates

    d = Path(options.input)
    if not options.as_of:
        raise BatchError(f"{d} is a directory: give --as-of DATE to build features from its CRM tables")
    as_of = parse_dates(pd.Series([options.as_of])).iloc[0]
    if pd.isna(as_of):
        raise BatchError(f"--as-of {options.as_of!r} is not a date (use YYYY-MM-DD)")
    info: dict[str, Any] = {"as_of": str(as_of.date()) if as_of == as_of.normalize() else str(as_of)}
    pre_rejects = pd.DataFrame({c: pd.Series(dtype=object) for c in REJECT_COLUMNS})
    ingest_dups = 0
    if (d / "customers.parquet").is_file():
        if options.mapping:
            raise BatchError(f"{d} is a data dir of validated tables: --mapping is for raw exports only")
        data_dir = d
        rows_in = None
    else:
        from features.ingest import ingest

        data_dir = work / "ingested"
        try:
            summary = ingest(d, data_dir, mapping=Path(options.mapping) if options.mapping else None)
        except IngestError as e:
            raise BatchError(" ".join(str(e).split())) from None
        cs = summary.tables.get("customers")
        if cs is None:
            raise BatchError(f"{d}: no customers table found (customers.csv, .xlsx or .parquet)")
        rows_in = cs.read
        ingest_dups = cs.duplicates
        rej = pd.read_csv(data_dir / "rejects" / "customers.csv", dtype=str, keep_default_na=False,
                          encoding="utf-8-sig")
        if len(rej):
            pre_rejects = pd.DataFrame({"row": rej["row"], "id": "", "column": rej["column"],
                                        "value": rej["value"], "reason": "ingest: " + rej["reason"]})
        info["ingest_summary"] = json.dumps({t: s.model_dump() for t, s in summary.tables.items()},
                                            ensure_ascii=False)
    try:
        tables = load_tables(data_dir, required=("customers",))
    except DataDirError as e:
        raise BatchError(str(e)) from None
    customers = tables["customers"]
    builder = getattr(model.scorer, "builder", None)
    if builder is not None:
        feats = builder.transform(CRMSnapshot(tables, pd.Timestamp(as_of)))
    else:
        feats = build_features(tables, pd.Timestamp(as_of))
    ids = customers["customer_id"].astype("string")
    later = ~ids.isin(feats.index.astype("string")).to_numpy()
    if later.any():
        pos = np.flatnonzero(later)
        pre_rejects = pd.concat(
            [pre_rejects, pd.DataFrame({"row": pos + 1, "id": ids.iloc[pos].fillna("").to_numpy(),
                                        "column": "created_at", "value": customers["created_at"].iloc[pos].astype(str),
                                        "reason": f"created after --as-of {info['as_of']}"})],
            ignore_index=True,
        )
    frame = feats.reset_index()
    frame.columns = [str(c) for c in frame.columns]
    if options.keep:
        extra = [k for k in options.keep if k not in frame.columns]
        missing = [k for k in extra if k not in customers.columns]
        if missing:
            raise BatchError(f"{d}: --keep column(s) {', '.join(missing)} not in the customers table")
        prof = customers.drop_duplicates("customer_id", keep="last").set_index("customer_id")[extra]
        for k in extra:
            frame[k] = prof[k].reindex(frame["customer_id"]).to_numpy()
    if options.id_col != "customer_id":
        frame = frame.rename(columns={"customer_id": options.id_col})
    info["rows_in"] = rows_in if rows_in is not None else len(customers)
    info["pre_rejects"] = pre_rejects
    info["pre_duplicates"] = ingest_dups
    header = list(frame.columns)

    def chunks(plan: ColumnPlan, chunk_size: int) -> Iterator[RawChunk]:
        for start in range(0, len(frame), chunk_size):
            part = frame.iloc[start : start + chunk_size]
            sub = pd.DataFrame({t: part[s].to_numpy() for t, s in plan.source.items()})
            table = _arrow_from_pandas(sub)
            yield RawChunk(table, np.arange(start, start + len(part), dtype=np.int64) + 1)

    return InputSource(f"{d} (CRM tables as of {info['as_of']})", header, chunks, estimated_rows=len(frame)), info


def tune_malloc() -> bool:
    """Keep freed memory in the process instead of returning it to the kernel after every chunk (glibc only).

    Each chunk allocates and frees arrays of tens of megabytes; glibc's defaults hand them back with ``munmap``
    or a heap trim and fault them in again for the next chunk, which cost a third of a 1M-lead run in kernel
    time (page faults). With a 256 MiB mmap threshold and a 1 GiB trim threshold the same pages are reused;
    peak memory is unchanged (docs/batch.md). numpy's huge-page hint is turned off with them (see below).
    Returns whether the settings were applied.
    """
    import ctypes
    import ctypes.util

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    m_trim_threshold, m_mmap_threshold, m_arena_max = -1, -3, -8
    applied = bool(mallopt(m_mmap_threshold, 256 << 20)) and bool(mallopt(m_trim_threshold, 1 << 30))
    # one arena: a worker thread's arena grows by 64 MiB heaps, so its 100 MB arrays were mmap'd and unmapped
    # for every chunk whatever the threshold (page faults 370k → 160k per million rows)
    applied = applied and bool(mallopt(m_arena_max, 1))
    if applied:
        # numpy asks for transparent huge pages on every large array; on memory from the heap (where arrays
        # now come from) a first touch then cost ~2.2 s per GB here instead of ~0.35 s with normal pages
        with contextlib.suppress(ImportError, AttributeError):
            from numpy._core.multiarray import _set_madvise_hugepage

            _set_madvise_hugepage(False)
    return applied


#: text a CSV may be parsed ahead while the model loads (Arrow bytes; the default 1M-lead benchmark keeps
#: its peak under 2 GB with this)
READ_AHEAD_BYTES = 512 << 20


class _Job:
    """A call run in a daemon thread; :meth:`result` waits and returns its value or raises its exception."""

    def __init__(self, fn: Callable[..., _T], *args: Any, name: str) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._value = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the caller of result()
            self._error = e

    def result(self) -> Any:
        """The call's return value (or its exception, raised here)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value


def score_batch(options: BatchOptions) -> BatchSummary:
    """Score a lead list (see the module docstring); returns the summary also written as JSON.

    Raises :class:`BatchError` (one line) for input, model or output problems found before or while
    scoring; nothing is written in place of the output then.
    """
    # the parser, the cleaner and the spill thread take the GIL for short stretches between long GIL-free ones:
    # a 1 ms switch interval (Python's default is 5 ms) hands it over sooner (~0.2 s of a million-lead run)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(min(interval, 0.001))
    try:
        with _one_blas_thread():
            return _score_batch(options)
    finally:
        sys.setswitchinterval(interval)


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


def _score_batch(options: BatchOptions) -> BatchSummary:
    import pyarrow as pa

    t0 = time.perf_counter()
    if options.reasons < 0 or options.reasons > 20:
        raise BatchError("--reasons must be between 0 and 20")
    if options.chunk_size < 1:
        raise BatchError("--chunk-size must be at least 1")
    if options.reason_method not in REASON_METHODS:
        raise BatchError(f"--reasons-method {options.reason_method!r}: use {' or '.join(REASON_METHODS)}")
    target = resolve_output(options.output, options.output_table, options.rejects)
    is_dir = not _is_url(options.input) and Path(options.input).is_dir()
    if not is_dir and not _is_url(options.input) and not Path(options.input).exists():
        raise BatchError(f"file not found: {options.input}")
    # the model loads (imports, registry, skops: seconds, mostly holding the GIL) while the input is opened and
    # a CSV is parsed ahead (pyarrow, without the GIL); a model error still wins over an input error
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
            f"cannot write the output {work_base}: directory {work_base.parent} is not writable ({e.strerror or e})"
        ) from None
    sink: Any = None
    rejects: Any = None
    records: Any = None
    writer: BackgroundWorker | None = None
    records_state = "off"
    progress = Progress(None, sys.stderr.isatty() if options.progress is None else options.progress)
    try:
        sink = target.sink(options.bom)
        rejects = _RejectsSink(target.rejects, options.id_col)
        records, records_state = _records_sink(options.records)
        info: dict[str, Any] = {}
        if is_dir:
            source, info = _tables_input(options, model, work)
            mapping = FeatureMapping()
        else:
            mapping = load_feature_mapping(options.mapping)
            assert source is not None
        keep = [k for k in options.keep if k]
        plan = plan_columns(source.header, model, options.id_col, keep, mapping, source.label, source.delimiter)
        progress.total = source.estimated_rows
        spill = _Spill(work)
        folder = None
        if options.reasons > 0:
            from serving.http.postprocess import ReasonFolder

            if not model.scorer.supports_reasons:
                raise BatchError(f"model {model.uri} has no exact per-row contributions: run without --reasons")
            n_cols = len(model.scorer.preprocessor_.get_feature_names_out())
            folder = ReasonFolder(model.scorer.reason_groups(), n_cols)
        rows_in = 0
        blank = 0
        if "pre_rejects" in info:
            rejects.write(info["pre_rejects"])
        def cleaned() -> Iterator[tuple[int, int, CleanChunk]]:
            for raw in source.chunks(plan, options.chunk_size):
                clean = clean_chunk(raw, plan)
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
                                     options.reason_method, clean.codes)
                table = _result_table(clean, scored, plan.id_col, options.reasons)
                scored.reasons = {}
                if records is None:
                    clean.features = None  # not needed by the writer: free it now
                writer.submit(lambda t=table, c=clean, sc=scored: spill_chunk(t, c, sc))
                del table, scored
            del clean
            progress.update(rows_in)
        writer.join()
        if is_dir:
            rows_in = info["rows_in"]
        if rows_in == 0 and not spill.files:
            raise BatchError(f"{source.label}: no data rows to score")
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
        progress.update(rows_in, "writing", force=True)
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
        if summary.rows_in != summary.scored + summary.rejected + summary.duplicates:
            raise BatchError(
                f"internal accounting error: rows in {summary.rows_in} != scored {summary.scored} + rejected "
                f"{summary.rejected} + duplicates {summary.duplicates}; no output written"
            )
        rejects.commit()
        sink.commit(schema)
        _write_text_atomic(target.summary, json.dumps(summary.model_dump(), ensure_ascii=False, indent=2))
        return summary
    except BaseException as e:
        if writer is not None:
            writer.abort()
        for part in (sink, rejects):
            if part is not None:
                part.abort()
        if isinstance(e, OSError) and not isinstance(e, BatchError):
            where = f"{e.filename}: " if getattr(e, "filename", None) else ""
            raise BatchError(f"cannot read or write {where}{e.strerror or e}") from None
        raise
    finally:
        if source is not None and source.stop is not None:
            source.stop()
        progress.close()
        shutil.rmtree(work, ignore_errors=True)
        if records is not None:
            with contextlib.suppress(Exception):
                records.close(timeout=1.0)


def _is_url(s: str) -> bool:
    from features.readers import is_sql_url

    return is_sql_url(s)


def _output_schema(spill: _Spill, plan: ColumnPlan, reasons: int) -> Any:
    """The output's columns: id, pass-through, results, reasons (from the first chunk, else all text)."""
    import pyarrow as pa
    import pyarrow.feather as feather

    if spill.files:
        s = feather.read_table(spill.files[0], memory_map=True).schema
        fields = [f for f in s if f.name != _ROW]
        return pa.schema(fields[: len(fields) - len(reason_columns(reasons)) - 3] + [
            pa.field("probability", pa.float64()), pa.field("score", pa.int64()), pa.field("grade", pa.string()),
            pa.field("rank", pa.int64()), pa.field("decile", pa.int64()),
            *[pa.field(c, pa.string()) for c in reason_columns(reasons)],
        ])
    fields = [pa.field(plan.id_col, pa.string())] + [pa.field(k, pa.string()) for k in plan.keep if k != plan.id_col]
    fields += [pa.field("probability", pa.float64()), pa.field("score", pa.int64()), pa.field("grade", pa.string()),
               pa.field("rank", pa.int64()), pa.field("decile", pa.int64())]
    fields += [pa.field(c, pa.string()) for c in reason_columns(reasons)]
    return pa.schema(fields)


def _finish_table(t: Any, rank: np.ndarray, decile: np.ndarray, schema: Any) -> Any:
    import pyarrow as pa

    t = t.append_column("rank", pa.array(rank, type=pa.int64())).append_column("decile", pa.array(decile, pa.int64()))
    return t.select(schema.names).cast(schema)


def _write_results(
    spill: _Spill, sink: Any, keep: np.ndarray, rank: np.ndarray, decile: np.ndarray, sort: bool,
    chunk_size: int, schema: Any, work: Path,
) -> None:
    """Second pass: read the spilled chunks back and write the kept rows, in input or rank order."""
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    offsets = np.cumsum([0] + [len(p) for p in spill.probs])
    if not sort:

        def finished() -> Iterator[Any]:
            for i, f in enumerate(spill.files):
                lo, hi = offsets[i], offsets[i + 1]
                m = keep[lo:hi].astype(bool)
                t = feather.read_table(f, memory_map=True).filter(pa.array(m))
                yield _finish_table(t, rank[lo:hi][m], decile[lo:hi][m], schema)

        # read and finish chunk i+1 while chunk i is written
        for t in prefetch(finished(), ahead=1, name="crmscore-pass2"):
            sink.write(t)
        return
    # distribution by rank into buckets of about chunk_size rows, then each bucket sorted and written
    n_kept = int(keep.sum())
    size = max(chunk_size, -(-n_kept // 512))
    writers: dict[int, Any] = {}
    bucket_dir = work / "buckets"
    bucket_dir.mkdir(exist_ok=True)
    try:
        for i, f in enumerate(spill.files):
            lo, hi = offsets[i], offsets[i + 1]
            m = keep[lo:hi].astype(bool)
            part = feather.read_table(f, memory_map=True).filter(pa.array(m))
            t = _finish_table(part, rank[lo:hi][m], decile[lo:hi][m], schema)
            b = (rank[lo:hi][m] - 1) // size
            for bb in np.unique(b):
                part = t.filter(pa.array(b == bb))
                if int(bb) not in writers:
                    writers[int(bb)] = pq.ParquetWriter(bucket_dir / f"b{int(bb):06d}.parquet", schema)
                writers[int(bb)].write_table(part)
    finally:
        for w in writers.values():
            w.close()
    for bb in sorted(writers):
        t = pq.read_table(bucket_dir / f"b{bb:06d}.parquet")
        sink.write(t.sort_by([("rank", "ascending")]))
        os.unlink(bucket_dir / f"b{bb:06d}.parquet")
