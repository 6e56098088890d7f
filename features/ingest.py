"""Validated ingestion: CRM exports (files or SQL) → contract tables in a data dir.

``ingest(source, out, mapping)`` reads each table, renames source columns to contract fields
(a mapping YAML, the CRM-import step where a user matches their spreadsheet headers to CRM
fields), parses values (dates, amounts, booleans, full-width digits), validates them against
:mod:`features.contract`, drops duplicate keys keeping the latest record, and writes

* ``OUT/<table>.parquet``: accepted rows with the contract dtypes (PII kept: the profile page
  shows it; it is never logged);
* ``OUT/rejects/<table>.csv``: one line per rejected row: its row number as the user sees it,
  the column(s), the offending value(s) (PII masked) and the reason(s);
* ``OUT/ingest_summary.json``: per table ``read = accepted + rejected + duplicates``, orphans,
  ignored columns, encoding and source.

The mapping file (source columns → contract fields, constants, computed fields) is read by
:mod:`features.ingest_mapping`; its docstring lists the settings and the allow-listed operations.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from features.contract import ALL_TABLES, OPTIONAL_TABLES, PANDAS_DTYPES, TABLES, TableSpec, get_table
from features.export import neutralise_frame
from features.ingest_mapping import (
    IngestMapping,
    MappedTable,
    TableMapping,
    _problems,
    apply_mapping,
    expression_columns,
    load_mapping,
)
from features.messages import M_
from features.progress import ProgressCallback, no_progress
from features.readers import (
    EXCEL_SUFFIXES,
    FILE_SUFFIXES,
    DateOrder,
    IngestError,
    RawTable,
    _parse_amount_text,
    _parse_bool_text,
    _parse_date_text,
    _parse_date_text_inferred,
    detect_encoding,
    excel_sheet_names,
    is_sql_url,
    list_sql_tables,
    mask_url,
    normalize_text,
    parse_amounts,
    parse_dates,
    read_table_source,
)

__all__ = [
    "IngestError",
    "IngestMapping",
    "DateOrderSummary",
    "IngestSummary",
    "MappedTable",
    "TableMapping",
    "TableSummary",
    "apply_mapping",
    "detect_encoding",
    "expression_columns",
    "ingest",
    "load_mapping",
    "parse_amounts",
    "parse_dates",
    "read_table_source",
    "validate_table",
]

logger = logging.getLogger(__name__)

PII_MASK = "***"
CHILD_TABLES = ("interactions", "orders", "marketing_touches", "feedback")


# ----------------------------------------------------------------------------------------- models


class DateOrderSummary(BaseModel):
    """How one date column's ``05/03/2024``-style values were read (day or month first), and why."""

    column: str
    order: Literal["day_first", "month_first"]
    basis: Literal["inferred", "default", "conflict", "none"] = Field(
        description="inferred: evidence one way; conflict: evidence both ways, the configured default used; "
        "default: ambiguous values only; none: no such values"
    )
    day_first_only: int = Field(description="values only valid day first (first field over 12: 23/02/2024)")
    month_first_only: int = Field(description="values only valid month first (second field over 12: 02/23/2024)")
    ambiguous: int = Field(description="values valid both ways (05/03/2024)")
    note: str

    @classmethod
    def of(cls, column: str, order: DateOrder) -> DateOrderSummary:
        """The summary line of ``order`` for ``column``."""
        return cls(column=column, order=order.order, basis=order.basis, day_first_only=order.day_first_only,
                   month_first_only=order.month_first_only, ambiguous=order.ambiguous, note=order.note)


class TableSummary(BaseModel):
    """Counts and provenance of one ingested table; ``read == accepted + rejected + duplicates``."""

    read: int
    accepted: int
    rejected: int
    duplicates: int
    orphans: int | None = Field(description="rows whose customer_id is not in customers; None when unknown")
    ignored_columns: list[str]
    encoding: str | None
    source: str
    blank_rows: int = Field(default=0, description="entirely blank rows skipped (not counted in read)")
    first_row_number: int = Field(description="row number of the first data row (2 below a header row)")
    reasons: dict[str, int] = Field(default_factory=dict, description="rejection reason → rows")
    rejects_file: str | None = None
    output_file: str | None = None
    date_orders: list[DateOrderSummary] = Field(
        default_factory=list, description="per text date column: day/month order read and the evidence"
    )


class IngestSummary(BaseModel):
    """What one ``ingest`` run read, accepted and wrote."""

    source: str
    out: str
    day_first: bool = Field(description="the configured default order for date columns no value decides")
    tables: dict[str, TableSummary]
    absent_tables: list[str] = Field(default_factory=list, description="contract tables not in the source")
    ignored_files: list[str] = Field(default_factory=list, description="files in the source dir not ingested")


# ----------------------------------------------------------------------------------------- validation


def _validate(
    df: pd.DataFrame, spec: TableSpec, day_first: bool
) -> tuple[pd.DataFrame, pd.DataFrame, list[DateOrderSummary]]:
    """All contract columns converted to contract dtypes, the long list of (pos, column, value, reason), and
    the day/month order each text date column was read in (``day_first`` is the default when no value
    decides)."""
    out: dict[str, pd.Series] = {}
    probs: list[pd.DataFrame] = []
    orders: list[DateOrderSummary] = []

    for c in spec.columns:
        target = PANDAS_DTYPES[c.dtype]
        if c.name not in df.columns:
            out[c.name] = pd.Series(index=df.index, dtype=target)
            continue
        raw = df[c.name]
        typed_dt = pd.api.types.is_datetime64_any_dtype(raw.dtype)
        typed_num = pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype)
        # typed columns need no text, except for the values written next to a rejected row; a date-typed
        # column (Excel, Parquet) in a text or yes/no field still needs it
        no_text = (typed_dt and c.dtype in ("datetime", "float", "int")) or (typed_num and c.dtype in ("float", "int"))
        text = None if no_text else normalize_text(raw)

        def flag(mask: pd.Series, reason: str, c=c, raw=raw, text=text) -> None:
            rows = mask.fillna(False).astype(bool).to_numpy()
            if rows.any():
                if c.pii:
                    values: Any = PII_MASK
                else:
                    values = (text[rows] if text is not None else normalize_text(raw[rows])).astype(object)
                    values = values.fillna("").to_numpy()
                probs.append(_problems(df.index[rows], c.name, values, reason))

        blank = raw.isna() if text is None else text.isna()
        if c.required:
            flag(blank, f"{c.name} is blank")
        if c.dtype == "datetime":
            order: DateOrder | None = None
            if text is None:  # a date-typed column
                val = parse_dates(raw, day_first)
            else:
                val, order = _parse_date_text_inferred(text, day_first)
                orders.append(DateOrderSummary.of(c.name, order))
            invalid = ~blank & val.isna()
            if text is not None and order is not None and order.basis == "conflict" and invalid.any():
                # the values the other order would read: say why they are rejected
                other = _parse_date_text(text[invalid], not order.day_first).notna()
                other = other.reindex(text.index, fill_value=False)
                flag(other, f"{c.name} is a {'month' if order.day_first else 'day'}-first date in a column read "
                     f"{order.order.replace('_', ' ')} (the column mixes both; see date_orders in ingest_summary.json)")
                invalid &= ~other
            flag(invalid, f"{c.name} is not a valid date")
        elif c.dtype in ("float", "int"):
            val = parse_amounts(raw) if text is None else _parse_amount_text(text)
            flag(~blank & val.isna(), f"{c.name} is not a valid number")
            if c.dtype == "int":
                frac = val.notna() & (val != val.round())
                flag(frac, f"{c.name} is not a whole number")
                val = val.where(~frac)
            if c.min is not None:
                flag(val < c.min, f"{c.name} is below the minimum {c.min:g}")
            if c.max is not None:
                flag(val > c.max, f"{c.name} is above the maximum {c.max:g}")
            if c.dtype == "int":
                val = val.round().astype("Int64")
        elif c.dtype == "bool":
            if pd.api.types.is_bool_dtype(raw.dtype) or text is None:
                val = raw.astype("boolean")
            else:
                val = _parse_bool_text(text)
            flag(~blank & val.isna(), f"{c.name} is not a yes/no value")
        else:
            assert text is not None  # only a date or number field goes without text
            val = text
            if c.allowed:
                canon = text.str.lower().map({a.lower(): a for a in c.allowed})
                known = canon.notna()
                val = canon.astype("string").where(known, text)
                if not c.open_set:
                    flag(~blank & ~known, f"{c.name} is not one of {', '.join(c.allowed)}")
        out[c.name] = val.astype(target)
    converted = pd.DataFrame(out, index=df.index)
    problems = pd.concat(probs, ignore_index=True) if probs else _problems(pd.Index([]), "", [], "")
    return converted, problems, orders


def _aggregate_rejects(problems: pd.DataFrame, row_number: pd.Series) -> pd.DataFrame:
    """One line per rejected row: row, column(s), value(s), reason(s) joined with '; '."""
    if problems.empty:
        return pd.DataFrame({"row": pd.Series(dtype="int64"), "column": [], "value": [], "reason": []})
    p = problems.astype({"value": str})
    p = p.sort_values("pos", kind="stable")
    if p["pos"].duplicated().any():
        p = p.groupby("pos", sort=True).agg({"column": "; ".join, "value": "; ".join, "reason": "; ".join})
        p = p.reset_index()
    rows = row_number.reindex(p["pos"].to_numpy()).to_numpy()
    return pd.DataFrame(
        {"row": rows, "column": p["column"].to_numpy(), "value": p["value"].to_numpy(),
         "reason": p["reason"].to_numpy()}
    )


def validate_table(
    df: pd.DataFrame, table: str, row_numbers: Any = None, day_first: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Validate a frame whose columns are named like the contract fields.

    Returns ``(accepted_df, rejects_df)``: accepted rows with every contract column in contract
    order and dtype (index reset), and one line per rejected row with columns ``row`` (from
    ``row_numbers``, default 2, 3, … as below a header), ``column``, ``value`` (PII masked) and
    ``reason``. Checks types, required fields non-blank, closed value sets (open sets keep unknown
    values, canonical case), and min/max. Duplicate keys are not handled here. ``day_first`` is the
    default order of a date column none of whose values decides it (see ``parse_dates_inferred``).
    """
    spec = get_table(table)
    work = df.reset_index(drop=True)
    rows: pd.Series = pd.Series(
        np.arange(2, len(work) + 2) if row_numbers is None else np.asarray(row_numbers), index=work.index
    )
    if len(rows) != len(work):
        raise ValueError(M_("row_numbers has {value} entries for {value2} rows", value=len(rows), value2=len(work)))
    converted, problems, _ = _validate(work, spec, day_first)
    bad = np.zeros(len(work), dtype=bool)
    bad[problems["pos"].to_numpy()] = True
    return converted[~bad].reset_index(drop=True), _aggregate_rejects(problems, rows)


def _drop_duplicates(accepted: pd.DataFrame, spec: TableSpec, updated: pd.Series | None) -> pd.DataFrame:
    """Keep, per key, the latest row: by updated_at, else the table's time column, else file order."""
    order = None
    if updated is not None and updated.reindex(accepted.index).notna().any():
        order = updated.reindex(accepted.index)
    elif spec.time_column is not None and spec.time_column not in spec.key:
        order = accepted[spec.time_column]
    keys = list(spec.key)
    if not accepted.duplicated(keys).any():
        return accepted
    if order is not None:
        ranked = accepted.assign(_order=order.to_numpy(), _pos=np.arange(len(accepted)))
        ranked = ranked.sort_values(["_order", "_pos"], kind="stable", na_position="first")
        kept = ranked.drop_duplicates(keys, keep="last").drop(columns=["_order", "_pos"])
    else:
        kept = accepted.drop_duplicates(keys, keep="last")
    return kept.sort_index()


# ----------------------------------------------------------------------------------------- sources


@dataclass
class _Job:
    table: str
    raw: RawTable
    mapping: TableMapping | None


def _table_files(directory: Path) -> dict[str, list[Path]]:
    found: dict[str, list[Path]] = {}
    for p in sorted(directory.iterdir()):
        if p.is_file() and not p.name.startswith((".", "~$")) and p.suffix.lower() in FILE_SUFFIXES:
            found.setdefault(p.stem.lower(), []).append(p)
    return found


def _read_file_table(path: Path, table: str, tm: TableMapping | None) -> RawTable:
    sheet = tm.sheet if tm is not None else None
    if sheet is None and path.suffix.lower() in EXCEL_SUFFIXES:
        names = excel_sheet_names(path)
        sheet = next((n for n in names if n.lower() == table), None)
    return read_table_source(path, sheet=sheet)


def _resolve_dir(directory: Path, mapping: IngestMapping, wanted: list[str]) -> tuple[list[_Job], list[str], list[str]]:
    files = _table_files(directory)
    jobs, absent, claimed = [], [], set()
    for table in wanted:
        tm = mapping.tables.get(table)
        if tm is not None and tm.source is not None:
            path = Path(tm.source) if Path(tm.source).is_absolute() else directory / tm.source
            if not path.is_file():
                raise IngestError(M_(
                    "file not found: {path} (the mapping's source for {table})",
                    path=path, table=table,
                ))
        else:
            candidates = files.get(table, [])
            if len(candidates) > 1:
                raise IngestError(
                    M_(
                        "{directory}: several files for {table}: {value}; keep one or name it in the mapping "
                        "(tables.{table}.source)",
                        directory=directory, table=table, value=", ".join(p.name for p in candidates),
                    )
                )
            if not candidates:
                absent.append(table)
                continue
            path = candidates[0]
        claimed.add(path.resolve())
        jobs.append(_Job(table, _read_file_table(path, table, tm), tm))
    ignored = [p.name for ps in files.values() for p in ps if p.resolve() not in claimed]
    return jobs, absent, ignored


def _resolve_file(path: Path, mapping: IngestMapping, tables: list[str] | None) -> list[_Job]:
    """The job(s) of a single file: one table, plus an optional table (order_items) the mapping also maps onto
    the same file (invoice lines are both orders and order lines); the file is read once."""
    if tables:
        core = [t for t in tables if t not in OPTIONAL_TABLES]
        if len(tables) > 1 and not (len(tables) == 2 and len(core) == 1):
            raise IngestError(
                M_(
                    "{path} is one file, so it holds one table (and optionally its order lines, order_items); got "
                    "{value}",
                    path=path, value=", ".join(tables),
                )
            )
        table = core[0] if core else tables[0]
        extra = [t for t in tables if t != table]
    else:
        extra = [
            t
            for t, tm in mapping.tables.items()
            if t in OPTIONAL_TABLES and (tm.source is None or Path(tm.source).name == path.name)
        ]
        rest = {t: tm for t, tm in mapping.tables.items() if t not in extra}
        by_source = [t for t, tm in rest.items() if tm.source and Path(tm.source).name == path.name]
        if len(by_source) == 1:
            table = by_source[0]
        elif len(rest) == 1:
            table = next(iter(rest))
        elif not rest and extra:
            table, extra = extra[0], extra[1:]
        elif path.stem.lower() in ALL_TABLES:
            table = path.stem.lower()
            extra = [t for t in extra if t != table]
        else:
            raise IngestError(
                M_(
                    "cannot tell which table {name} holds: name the file after a table ({value}), pass --table, or "
                    "give it as tables.<table>.source in the mapping",
                    name=path.name, value=", ".join(ALL_TABLES),
                )
            )
    tm = mapping.tables.get(table)
    raw = _read_file_table(path, table, tm)
    return [_Job(table, raw, tm), *(_Job(t, raw, mapping.tables.get(t)) for t in extra)]


def _resolve_sql(url: str, mapping: IngestMapping, wanted: list[str], explicit: bool) -> tuple[list[_Job], list[str]]:
    names = list_sql_tables(url)
    jobs, absent = [], []
    for table in wanted:
        tm = mapping.tables.get(table)
        if tm is not None and tm.query is not None:
            jobs.append(_Job(table, read_table_source(url, query=tm.query), tm))
            continue
        name = tm.table if tm is not None and tm.table is not None else table
        present = any(n.lower() == name.lower() for n in names)
        if not present and (explicit or (tm is not None and tm.table is not None)):
            raise IngestError(
                M_(
                    "table {name!r} not found in {value} (tables: {value2})",
                    name=name, value=mask_url(url), value2=", ".join(names) or "none",
                )
            )
        if not present:
            absent.append(table)
            continue
        jobs.append(_Job(table, read_table_source(url, table=name), tm))
    return jobs, absent


# ----------------------------------------------------------------------------------------- ingest


def _blank_rows(frame: pd.DataFrame) -> np.ndarray:
    blank = np.ones(len(frame), dtype=bool)
    for c in frame.columns:
        col = frame[c]
        cell = col.isna().to_numpy()
        if col.dtype == object or pd.api.types.is_string_dtype(col.dtype):
            cell |= (col.astype(object) == "").to_numpy()
        blank &= cell
        if not blank.any():
            break
    return blank


@dataclass
class _Result:
    accepted: pd.DataFrame
    rejects: pd.DataFrame
    summary: TableSummary


def _process(job: _Job, day_first: bool) -> _Result:
    raw = job.raw
    spec = get_table(job.table)
    frame = raw.frame.reset_index(drop=True)
    if frame.shape[1] == 0:
        raise IngestError(M_("{source}: the file is empty", source=raw.source))
    if len(frame) == 0:
        raise IngestError(M_(
            "{source}: no usable rows for {table}: the file has a header but no data rows",
            source=raw.source, table=job.table,
        ))
    blank = _blank_rows(frame)
    rows = frame[~blank]
    if len(rows) == 0:
        raise IngestError(M_(
            "{source}: no usable rows for {table}: every row is blank",
            source=raw.source, table=job.table,
        ))
    tm_day_first = job.mapping.day_first if job.mapping is not None else None
    dfirst = day_first if tm_day_first is None else tm_day_first
    mapped = apply_mapping(rows, job.table, job.mapping, raw.source, dfirst)
    converted, problems, date_orders = _validate(mapped.frame, spec, dfirst)
    if mapped.updated_at_order is not None:
        date_orders.append(DateOrderSummary.of(*mapped.updated_at_order))
    for o in date_orders:
        if o.basis == "conflict":
            logger.warning("ingest %s: %s: %s", job.table, o.column, o.note)
    extra = [mapped.problems]
    if raw.bad_rows:
        pos = [p for p in raw.bad_rows if not blank[p]]
        extra.append(_problems(pd.Index(pos), "(row)", "", [raw.bad_rows[p] for p in pos]))
    # a computed field's own problem replaces the generic "is blank" for the same row and column
    problems = pd.concat([*extra, problems], ignore_index=True).drop_duplicates(["pos", "column"], keep="first")
    bad = pd.Index(problems["pos"].unique())
    accepted = converted.drop(index=bad)
    n_valid = len(accepted)
    accepted = _drop_duplicates(accepted, spec, mapped.updated_at)
    row_number: pd.Series = pd.Series(np.arange(len(frame)) + raw.first_row_number, index=frame.index)
    rejects = _aggregate_rejects(problems, row_number)
    reasons = problems.drop_duplicates(["pos", "reason"])["reason"].value_counts()
    summary = TableSummary(
        read=len(rows),
        accepted=len(accepted),
        rejected=len(bad),
        duplicates=n_valid - len(accepted),
        orphans=None,
        ignored_columns=mapped.ignored_columns,
        encoding=raw.encoding,
        source=raw.source,
        blank_rows=int(blank.sum()),
        first_row_number=raw.first_row_number,
        reasons={str(k): int(v) for k, v in reasons.items()},
        date_orders=date_orders,
    )
    return _Result(accepted.reset_index(drop=True), rejects, summary)


def _write_parquet(df: pd.DataFrame, path: Path) -> None:
    tmp = path.with_name(path.name + ".tmp")
    df.to_parquet(tmp, index=False)
    tmp.replace(path)


def ingest(
    source: str | Path,
    out: Path,
    mapping: Path | None = None,
    day_first: bool = False,
    tables: list[str] | None = None,
    progress: ProgressCallback = no_progress,
) -> IngestSummary:
    """Read, map, validate and write contract tables from ``source`` into the data dir ``out``.

    ``source`` is a directory of files named after the tables (``customers.csv``, ``orders.xlsx``,
    ``orders.parquet`` …, or the names given in the mapping), a single file (its table from
    ``tables``, the mapping or its name), or a SQLAlchemy URL (``sqlite:///crm.db``). ``tables``
    restricts the run to those tables and makes each one required.

    Each date column's day/month order is decided from its own values: ``23/02/2024`` can only be
    day first, ``02/23/2024`` only month first. ``day_first`` (or the mapping's ``day_first``) is the
    default for a column whose values are all ambiguous (``05/03/2024``) or conflict; the decision,
    its basis and the evidence counts per column are in the summary's ``date_orders``.

    Every input row ends up accepted, rejected (``out/rejects/<table>.csv``) or counted as a
    duplicate. Raises :class:`IngestError` with a one-line reason for unusable input: a missing
    file, an unknown table, an unreadable encoding, an unmapped required field, or a table with no
    usable rows (its rejects and the summary are still written first). ``progress`` counts the tables
    read and validated, then written.
    """
    for t in tables or []:
        if t not in ALL_TABLES:
            raise IngestError(M_("unknown table {t!r}; the contract has {value}", t=t, value=", ".join(ALL_TABLES)))
    mp = load_mapping(mapping)
    dfirst = day_first or mp.day_first
    # optional tables (order_items) are ingested when present and never listed as absent unless mapped
    wanted = list(tables) if tables else [*TABLES, *OPTIONAL_TABLES]
    quiet = set() if tables else {t for t in OPTIONAL_TABLES if t not in mp.tables}
    out = Path(out)
    absent: list[str] = []
    ignored_files: list[str] = []
    if is_sql_url(str(source)):
        jobs, absent = _resolve_sql(str(source), mp, wanted, explicit=bool(tables))
        label = mask_url(str(source))
    else:
        path = Path(source)
        label = str(path)
        if not path.exists():
            raise IngestError(M_("file not found: {path}", path=path))
        if path.is_dir():
            jobs, absent, ignored_files = _resolve_dir(path, mp, wanted)
            if tables and absent:
                raise IngestError(
                    M_(
                        "file not found: no {value} file in {path} (looked for {value2}{{{value3}}})",
                        value=", ".join(absent), path=path, value2=absent[0], value3=','.join(FILE_SUFFIXES),
                    )
                )
        else:
            jobs = _resolve_file(path, mp, tables)
            found = {j.table for j in jobs}
            absent = [t for t in wanted if t not in found and t not in OPTIONAL_TABLES] if not tables else []
    absent = [t for t in absent if t not in quiet]
    if not jobs:
        raise IngestError(M_(
            "no contract tables found in {label} (expected {value})",
            label=label, value=", ".join(TABLES),
        ))

    results: dict[str, _Result] = {}
    for i, job in enumerate(jobs):
        progress("reading and validating", i, len(jobs))
        results[job.table] = _process(job, dfirst)
    progress("reading and validating", len(jobs), len(jobs))
    customer_ids = None
    if "customers" in results:
        customer_ids = results["customers"].accepted["customer_id"]
    elif (out / "customers.parquet").is_file():
        customer_ids = pd.read_parquet(out / "customers.parquet", columns=["customer_id"])["customer_id"]
    if customer_ids is not None:
        for name in CHILD_TABLES:
            if name in results:
                ids = results[name].accepted["customer_id"]
                results[name].summary.orphans = int((~ids.isin(customer_ids)).sum())

    (out / "rejects").mkdir(parents=True, exist_ok=True)
    unusable = [t for t, r in results.items() if r.summary.accepted == 0]
    for i, (name, res) in enumerate(results.items()):
        progress("writing", i, len(results))
        rej_path = out / "rejects" / f"{name}.csv"
        # UTF-8 with a BOM so spreadsheet programs show Chinese text correctly
        neutralise_frame(res.rejects).to_csv(rej_path, index=False, encoding="utf-8-sig")
        res.summary.rejects_file = str(rej_path)
        if not unusable:
            _write_parquet(res.accepted, out / f"{name}.parquet")
            res.summary.output_file = str(out / f"{name}.parquet")
        s = res.summary
        logger.info(
            "ingest %s: read %d, accepted %d, rejected %d, duplicates %d, orphans %s",
            name, s.read, s.accepted, s.rejected, s.duplicates, s.orphans,
        )
    summary = IngestSummary(
        source=label,
        out=str(out),
        day_first=dfirst,
        tables={t: results[t].summary for t in ALL_TABLES if t in results},
        absent_tables=absent,
        ignored_files=ignored_files,
    )
    (out / "ingest_summary.json").write_text(
        json.dumps(summary.model_dump(), ensure_ascii=False, indent=2), encoding="utf-8"
    )
    if unusable:
        t = unusable[0]
        s = results[t].summary
        raise IngestError(
            M_(
                "{t}: no usable rows: all {read} rows were rejected (reasons in {rejects_file}); no tables were "
                "written",
                t=t, read=s.read, rejects_file=s.rejects_file,
            )
        )
    return summary
