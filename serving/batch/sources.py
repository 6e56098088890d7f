"""Inputs read in chunks: the column plan, CSV, Parquet, Excel, SQL and a directory of CRM tables."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.messages import M_, message_of
from serving.batch.model import LoadedScorer
from serving.batch.options import REJECT_COLUMNS, BatchError, BatchOptions, FeatureMapping
from serving.batch.threads import ReadAhead

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
    id_origin: str | None = None,
) -> ColumnPlan:
    """Match the input's header to the id, the model's features and the pass-through columns.

    Raises :class:`BatchError` naming every missing column (and hinting at the delimiter when the header
    was read as a single column). A missing id column is a sentence of its own naming the file, the column,
    where that name came from (``id_origin``, e.g. "the id column lead_scoring was trained with") and
    ``--id-col`` as the fix.
    """
    header = [str(h) for h in header]
    dupes = sorted({h for h in header if header.count(h) > 1})
    if dupes:
        raise BatchError(M_("{source}: duplicate column name(s) {dupes}", source=source, dupes=', '.join(dupes[:10])))
    by_norm: dict[str, str] = {}
    for h in header:
        by_norm.setdefault(_norm_header(h), h)
    src: dict[str, str] = {}
    for s, target in mapping.columns.items():
        col = s if s in header else by_norm.get(_norm_header(s))
        if col is None:
            raise BatchError(M_(
                "{source}: the mapping names column {value!r} (for {target}), which is not in the input",
                source=source, value=s, target=target,
            ))
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
        shown = ", ".join(missing[:12]) + (_in_all(len(missing)) if len(missing) > 12 else "")
        hint = ""
        if len(header) == 1:
            hint = M_(
                "; the header was read as one column {header!r} (delimiter {delimiter!r}): is the file delimited by "
                ", ; tab or |?",
                header=header[0][:60], delimiter=delimiter,
            )
        if id_col in missing and not hint:
            raise BatchError(_missing_id(source, id_col, id_origin, header, [m for m in missing if m != id_col]))
        kinds = M_("the id column and model feature(s)") if id_col in missing else M_("column(s)")
        raise BatchError(M_(
            "{source}: missing required {kinds}: {shown}{hint}",
            source=source, kinds=kinds, shown=shown, hint=hint,
        ))
    return ColumnPlan(
        id_col=id_col,
        keep=list(keep),
        numeric=model.numeric,
        categorical=model.categorical,
        source={t: src[t] for t in wanted},
        ignored=[h for h in header if h not in used],
    )


def _missing_id(source: str, id_col: str, origin: str | None, header: list[str], others: list[str]) -> str:
    """The error for an input without its id column, as a sentence that says how to fix it."""
    looks = [h for h in header if re.search(r"(^|_)(id|no|key|code)$|编号$", _norm_header(h))]
    also = ""
    if others:
        shown = ", ".join(others[:12]) + (_in_all(len(others)) if len(others) > 12 else "")
        also = M_(" The model's feature(s) {features} are missing too.", features=shown)
    return M_(
        "{source} has no id column {id_col!r}{origin}: name the column that holds the ids with --id-col "
        "(for example --id-col {example}).{also}",
        source=source, id_col=id_col, origin=M_(" ({origin})", origin=origin) if origin else "",
        example=looks[0] if looks else "NAME", also=also,
    )


def _in_all(n: int) -> str:
    return M_(", … ({n_columns} in all)", n_columns=n)

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
        raise BatchError(message_of(e) or str(e)) from None
    with path.open("r", encoding=enc, newline="") as fh:
        sample = fh.read(1 << 16)
    if not sample.strip():
        raise BatchError(M_("{path}: the file is empty", path=path))
    delim = sniff_delimiter(sample)
    header = next(csv.reader(sample.splitlines()[:1], delimiter=delim), [])
    header = [h.strip() for h in header]
    lines = sample.splitlines()
    data_lines = [ln for ln in lines[1:] if ln.strip()]
    if not data_lines and len(sample) < (1 << 16):
        raise BatchError(M_("{path}: the file has a header but no data rows", path=path))
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
                # one thread: a threaded reader knows no line numbers (rejects must name them), and with its pool
                # (a serial re-read from the first bad line) a million-lead run took +1 to +2.4 s wall and +0.6 to
                # +1.6 CPU-s against this at load ~1.2 on 2 cores (2026-12-04): the other stages already fill them
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
                    # the lines before this chunk's last one: how far the parser has read ahead (timing) must
                    # not decide which chunk reports a bad line, or the rejects file's order would vary
                    last = int(idx[-1]) + 2 if len(idx) else 0
                    rows = [(r, f"row has {a} fields, the header has {e}") for r, a, e in bad
                            if r not in reported and r <= last]
                    reported.update(r for r, _ in rows)
                    yield t, idx + 2, rows
                    del t  # the consumer drops its chunk once cleaned; no other reference may keep it alive
                break
            except pa.ArrowInvalid as e:
                if typed:  # a cell that is not a plain number: read the rest as text (the slow, exact path)
                    typed = False
                    continue
                raise BatchError(M_(
                    "{path}: cannot read the file: {reason}",
                    path=path, reason=str(e).splitlines()[0],
                )) from None
        rest = [(r, a, e) for r, a, e in bad if r not in reported]
        if rest:
            empty = pa.table({c: pa.array([], type=pa.string()) for c in names})
            why = [(r, f"row has {a} fields, the header has {e}") for r, a, e in rest]
            yield empty, np.zeros(0, dtype=np.int64), why

    def start(chunk_size: int, budget_bytes: int) -> None:
        # parse ahead while the model loads: up to budget_bytes of Arrow data (the parsed tables' own size)
        started["size"] = chunk_size
        started["it"] = ReadAhead(tables(chunk_size, True), ahead=64, budget_bytes=budget_bytes,
                                  size=lambda item: item[0].nbytes)

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
                    it.budget_bytes = None
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
        raise BatchError(M_(
            "{path}: not a readable Parquet file ({error_type})",
            path=path, error_type=type(e).__name__,
        )) from None
    header = [str(c).strip() for c in pf.schema_arrow.names]
    if pf.metadata.num_rows == 0:
        raise BatchError(M_("{path}: the file has no rows", path=path))

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
        raise BatchError(message_of(e) or str(e)) from None
    frame = raw.frame
    if len(frame) == 0:
        raise BatchError(M_("{path}: the file has a header but no data rows", path=path))

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
        raise BatchError(M_("{label}: give the rows to score with --query 'SELECT … FROM …'", label=label))
    try:
        list_sql_tables(url)  # a missing SQLite file is an error, not a new empty database
    except IngestError as e:
        raise BatchError(message_of(e) or str(e)) from None
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            head = pd.read_sql_query(text(f"SELECT * FROM ({query}) AS q LIMIT 0"), conn)
    except SQLAlchemyError as e:
        first = str(getattr(e, "orig", None) or e).splitlines()[0]
        raise BatchError(M_("{label}: the query failed: {reason}", label=label, reason=first)) from None
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
            raise BatchError(M_("{label}: the query failed: {reason}", label=label, reason=first)) from None
        finally:
            engine.dispose()

    return InputSource(f"{label} (query)", header, chunks)


def open_input(source: str, query: str | None = None) -> InputSource:
    """Open a flat input by its kind: SQLAlchemy URL, .csv/.tsv/.txt, .parquet/.pq or .xlsx."""
    from features.readers import CSV_SUFFIXES, EXCEL_SUFFIXES, PARQUET_SUFFIXES, is_sql_url

    if is_sql_url(source):
        return open_sql_input(source, query)
    if query:
        raise BatchError(M_("--query needs a SQL --input (a SQLAlchemy URL such as sqlite:///crm.db)"))
    p = Path(source)
    if not p.exists():
        raise BatchError(M_("file not found: {path}", path=p))
    suffix = p.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return open_csv_input(p)
    if suffix in PARQUET_SUFFIXES:
        return open_parquet_input(p)
    if suffix in EXCEL_SUFFIXES:
        return open_excel_input(p)
    raise BatchError(M_(
        "{path}: unsupported input type {suffix}; use CSV, Parquet, .xlsx or a SQL URL",
        path=p, suffix=suffix or '(none)',
    ))


def _tables_input(
    options: BatchOptions, model: LoadedScorer, work: Path
) -> tuple[InputSource, dict[str, Any]]:
    """Features of every customer in a directory of CRM tables, as of ``options.as_of``."""
    from features.build import CRMSnapshot, build_features
    from features.io import DataDirError, load_tables
    from features.readers import IngestError, parse_dates

    d = Path(options.input)
    if not options.as_of:
        raise BatchError(M_(
            "{data_dir} is a directory: give --as-of DATE to build features from its CRM tables",
            data_dir=d,
        ))
    as_of = parse_dates(pd.Series([options.as_of])).iloc[0]
    if pd.isna(as_of):
        raise BatchError(M_("--as-of {as_of!r} is not a date (use YYYY-MM-DD)", as_of=options.as_of))
    info: dict[str, Any] = {"as_of": str(as_of.date()) if as_of == as_of.normalize() else str(as_of)}
    pre_rejects = pd.DataFrame({c: pd.Series(dtype=object) for c in REJECT_COLUMNS})
    ingest_dups = 0
    if (d / "customers.parquet").is_file():
        if options.mapping:
            raise BatchError(M_(
                "{data_dir} is a data dir of validated tables: --mapping is for raw exports only",
                data_dir=d,
            ))
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
            raise BatchError(M_("{data_dir}: no customers table found (customers.csv, .xlsx or .parquet)", data_dir=d))
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
        raise BatchError(message_of(e) or str(e)) from None
    customers = tables["customers"]
    builder = getattr(model.scorer, "builder", None)
    if builder is not None:
        if getattr(builder, "feedback_features", False):
            from features.feedback import with_feedback

            tables = with_feedback(tables, data_dir)
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
            raise BatchError(M_(
                "{data_dir}: --keep column(s) {missing} not in the customers table",
                data_dir=d, missing=', '.join(missing),
            ))
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
