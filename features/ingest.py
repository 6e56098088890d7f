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

Mapping file (see ``configs/mapping.example.yaml``)::

    day_first: false                  # 05/03/2024 = 5 March when true
    tables:
      orders:
        source: 订单.csv               # file in the --source directory (default: orders.csv/.xlsx/.parquet)
        sheet: Sheet1                 # .xlsx sheet (default: a sheet named after the table, else the first)
        table: crm_orders             # SQL table name (default: the contract name)
        query: SELECT ...             # or a SQL query
        columns: {订单号: order_id}     # source column → contract field
        constants: {status: paid}     # contract field → one value for every row
        derive:                       # contract field → computed value (allow-listed operations)
          amount: {abs: {multiply: [Quantity, UnitPrice]}}
        updated_at: 修改时间           # source column that decides which duplicate is the latest

Computed columns (``derive``) are small JSON-like expressions, never evaluated as code. An operand
is a source column name (string), a number, or another expression. Operations:

* ``{column: X}``: the source column X (lets one column feed several fields);
* ``{const: V}``: the value V;
* ``{multiply: [a, b, ...]}``: product of numeric operands (amounts parsed as in the contract);
* ``{abs: a}``: absolute value of a numeric operand;
* ``{concat: [a, b, ...]}`` or ``{concat: {parts: [...], sep: "-"}}``: text joined (blank if any part is);
* ``{line_number: X}``: 1, 2, 3 … for the rows sharing a value of X, in file order (invoice line);
* ``{map_prefix: {column: X, prefix: C, then: refunded, else: paid}}``: by whether X starts with C;
* ``{map_values: {column: X, values: {男: M, 女: F}, else: U}}``: lookup (case-insensitive; without
  ``else`` unmatched values are kept).
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.config import ConfigError, load_config
from features.contract import PANDAS_DTYPES, TABLES, TableSpec, get_table
from features.readers import (
    EXCEL_SUFFIXES,
    FILE_SUFFIXES,
    IngestError,
    RawTable,
    _parse_amount_text,
    _parse_bool_text,
    _parse_date_text,
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
    "IngestSummary",
    "TableMapping",
    "TableSummary",
    "apply_mapping",
    "detect_encoding",
    "ingest",
    "load_mapping",
    "parse_amounts",
    "parse_dates",
    "read_table_source",
    "validate_table",
]

logger = logging.getLogger(__name__)

#: source column names (normalised) taken as "last updated" when deciding which duplicate is the latest
UPDATED_AT_NAMES = frozenset(
    {
        "updated_at", "updated", "update_time", "updatetime", "last_updated", "last_update",
        "modified_at", "modified", "modify_time", "last_modified", "更新时间", "修改时间", "最后更新时间",
        "最后修改时间",
    }
)  # fmt: skip
PII_MASK = "***"
CHILD_TABLES = ("interactions", "orders", "marketing_touches")


# ----------------------------------------------------------------------------------------- mapping

_OPS = ("column", "const", "multiply", "abs", "concat", "line_number", "map_prefix", "map_values")


def _check_operand(x: Any, where: str) -> None:
    if isinstance(x, bool) or not isinstance(x, (str, int, float, dict)):
        raise ValueError(f"{where}: an operand is a column name, a number or an expression, not {x!r}")
    if isinstance(x, dict):
        _check_expression(x, where)


def _check_scalar(x: Any, where: str) -> None:
    if x is not None and not isinstance(x, (str, int, float, bool)):
        raise ValueError(f"{where}: expected a single value, got {x!r}")


def _check_expression(expr: Any, where: str) -> None:
    """Raise ValueError naming ``where`` unless ``expr`` is one allow-listed operation with valid arguments."""
    if not isinstance(expr, dict) or len(expr) != 1:
        raise ValueError(f"{where}: an expression is a mapping with exactly one operation ({', '.join(_OPS)})")
    (op, arg), = expr.items()
    at = f"{where}.{op}"
    if op not in _OPS:
        raise ValueError(f"{where}: unknown operation {op!r}; allowed: {', '.join(_OPS)}")
    if op in ("column", "line_number"):
        if not isinstance(arg, str) or not arg:
            raise ValueError(f"{at}: expected a source column name")
    elif op == "const":
        _check_scalar(arg, at)
    elif op == "multiply":
        if not isinstance(arg, list) or len(arg) < 2:
            raise ValueError(f"{at}: expected a list of two or more operands")
        for x in arg:
            _check_operand(x, at)
    elif op == "abs":
        _check_operand(arg, at)
    elif op == "concat":
        parts = arg.get("parts") if isinstance(arg, dict) else arg
        if isinstance(arg, dict) and (set(arg) - {"parts", "sep"} or not isinstance(arg.get("sep", ""), str)):
            raise ValueError(f"{at}: expected keys parts (a list) and sep (text)")
        if not isinstance(parts, list) or not parts:
            raise ValueError(f"{at}: expected a non-empty list of operands")
        for x in parts:
            _check_operand(x, at)
    elif op in ("map_prefix", "map_values"):
        keys = {"column", "prefix", "then", "else"} if op == "map_prefix" else {"column", "values", "else"}
        need = keys - {"else"}
        if not isinstance(arg, dict) or not need <= set(arg) or set(arg) - keys:
            raise ValueError(f"{at}: expected keys {', '.join(sorted(need))} (and optionally else)")
        _check_operand(arg["column"], f"{at}.column")
        for k in ("then", "else"):
            _check_scalar(arg.get(k), f"{at}.{k}")
        if op == "map_prefix" and (not isinstance(arg["prefix"], str) or not arg["prefix"]):
            raise ValueError(f"{at}.prefix: expected non-empty text")
        if op == "map_values":
            if not isinstance(arg["values"], dict) or not arg["values"]:
                raise ValueError(f"{at}.values: expected a mapping of source value → value")
            for v in arg["values"].values():
                _check_scalar(v, f"{at}.values")


def expression_columns(expr: Any) -> set[str]:
    """The source column names an expression (or operand) reads."""
    if isinstance(expr, str):
        return {expr}
    if not isinstance(expr, dict):
        return set()
    (op, arg), = expr.items()
    if op in ("column", "line_number"):
        return {arg}
    if op == "const":
        return set()
    if op == "concat" and isinstance(arg, dict):
        arg = arg["parts"]
    if op in ("map_prefix", "map_values"):
        return expression_columns(arg["column"])
    items = arg if isinstance(arg, list) else [arg]
    return set().union(*(expression_columns(x) for x in items))


class TableMapping(BaseModel):
    """How one contract table is found in the source and how its columns map to contract fields."""

    model_config = ConfigDict(extra="forbid")

    source: str | None = Field(default=None, description="file name in the --source directory")
    sheet: str | int | None = Field(default=None, description=".xlsx sheet name or 0-based index")
    table: str | None = Field(default=None, description="SQL table name (SQL sources)")
    query: str | None = Field(default=None, description="SQL query (SQL sources)")
    columns: dict[str, str] = Field(default_factory=dict, description="source column → contract field")
    constants: dict[str, str | int | float | bool] = Field(default_factory=dict, description="field → value")
    derive: dict[str, dict[str, Any]] = Field(default_factory=dict, description="field → expression")
    updated_at: str | None = Field(default=None, description="source column deciding the latest duplicate")
    day_first: bool | None = Field(default=None, description="overrides the top-level day_first")

    @field_validator("derive")
    @classmethod
    def _valid_expressions(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, expr in v.items():
            _check_expression(expr, f"derive.{name}")
        return v

    @model_validator(mode="after")
    def _one_origin_per_field(self) -> TableMapping:
        if self.table is not None and self.query is not None:
            raise ValueError("give either table or query, not both")
        seen: dict[str, str] = {}
        for origin, fields in (
            ("columns", list(self.columns.values())),
            ("constants", list(self.constants)),
            ("derive", list(self.derive)),
        ):
            for f in fields:
                if f in seen:
                    raise ValueError(f"field {f!r} is given twice (in {seen[f]} and {origin})")
                seen[f] = origin
        return self

    @property
    def fields(self) -> dict[str, str]:
        """Contract field → where it comes from (columns, constants or derive)."""
        out = {f: "columns" for f in self.columns.values()}
        out.update({f: "constants" for f in self.constants})
        out.update({f: "derive" for f in self.derive})
        return out


class IngestMapping(BaseModel):
    """A mapping file: per contract table, a :class:`TableMapping`."""

    model_config = ConfigDict(extra="forbid")

    day_first: bool = Field(default=False, description="read 05/03/2024 as 5 March")
    tables: dict[str, TableMapping] = Field(default_factory=dict)

    @field_validator("tables")
    @classmethod
    def _known_tables_and_fields(cls, v: dict[str, TableMapping]) -> dict[str, TableMapping]:
        for name, tm in v.items():
            if name not in TABLES:
                raise ValueError(f"unknown table {name!r}; the contract has {', '.join(TABLES)}")
            known = set(get_table(name).column_names)
            for f in tm.fields:
                if f not in known:
                    raise ValueError(f"{name}: {f!r} is not a field of {name} (fields: {', '.join(sorted(known))})")
        return v


def load_mapping(path: str | Path | None) -> IngestMapping:
    """Load and validate a mapping YAML; ``None`` gives the empty mapping (headers named like the contract)."""
    try:
        return load_config(path, IngestMapping)
    except ConfigError as e:
        raise IngestError(str(e)) from None


# ----------------------------------------------------------------------------------------- models


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


class IngestSummary(BaseModel):
    """What one ``ingest`` run read, accepted and wrote."""

    source: str
    out: str
    day_first: bool
    tables: dict[str, TableSummary]
    absent_tables: list[str] = Field(default_factory=list, description="contract tables not in the source")
    ignored_files: list[str] = Field(default_factory=list, description="files in the source dir not ingested")


# ----------------------------------------------------------------------------------------- mapping


def _norm_header(name: str) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _find_column(columns: list[str], name: str) -> str | None:
    """``name`` among ``columns``: exact, else case/space-insensitive."""
    if name in columns:
        return name
    key = _norm_header(name)
    return next((c for c in columns if _norm_header(c) == key), None)


def _columns_hint(columns: list[str]) -> str:
    shown = ", ".join(columns[:25])
    return shown + (f", … ({len(columns)} in all)" if len(columns) > 25 else "")


def _problems(pos: pd.Index, column: str, values: Any, reason: str) -> pd.DataFrame:
    return pd.DataFrame(
        {"pos": np.asarray(pos, dtype="int64"), "column": column, "value": values, "reason": reason}
    )


@dataclass
class _Evaluator:
    """Evaluates ``derive`` expressions over a raw frame, collecting per-row problems."""

    frame: pd.DataFrame
    source: str
    table: str
    problems: list[pd.DataFrame] = field(default_factory=list)
    _texts: dict[str, pd.Series] = field(default_factory=dict)

    def text(self, x: Any, target: str) -> pd.Series:
        """Normalised text of an operand; a source column is normalised once however often it is used."""
        if isinstance(x, str):
            if x not in self._texts:
                self._texts[x] = normalize_text(self.column(x))
            return self._texts[x]
        return normalize_text(self.value(x, target))

    def column(self, name: str) -> pd.Series:
        col = _find_column(list(self.frame.columns), name)
        if col is None:
            raise IngestError(
                f"{self.table}: the mapping's derive names column {name!r}, which is not in {self.source} "
                f"(columns: {_columns_hint(list(self.frame.columns))})"
            )
        return self.frame[col]

    def value(self, x: Any, target: str) -> pd.Series:
        if isinstance(x, str):
            return self.column(x)
        if isinstance(x, (int, float)):
            return pd.Series(x, index=self.frame.index)
        return self.evaluate(x, target)

    def number(self, x: Any, target: str) -> pd.Series:
        v = self.value(x, target)
        if pd.api.types.is_numeric_dtype(v.dtype) and not pd.api.types.is_bool_dtype(v.dtype):
            return v.astype("float64")
        text = self.text(x, target) if isinstance(x, str) else normalize_text(v)
        num = _parse_amount_text(text)
        bad = text.notna() & num.isna()
        if bad.any():
            label = x if isinstance(x, str) else next(iter(x))
            self.problems.append(
                _problems(text.index[bad], target, text[bad].astype(object),
                          f"{target} cannot be computed: {label} is not a valid number")
            )
        return num

    def evaluate(self, expr: dict[str, Any], target: str) -> pd.Series:
        (op, arg), = expr.items()
        idx = self.frame.index
        if op == "column":
            return self.column(arg)
        if op == "const":
            return pd.Series([arg] * len(idx), index=idx, dtype=object)
        if op == "multiply":
            out = self.number(arg[0], target)
            for x in arg[1:]:
                out = out * self.number(x, target)
            return out
        if op == "abs":
            return self.number(arg, target).abs()
        if op == "concat":
            parts, sep = (arg["parts"], arg.get("sep", "")) if isinstance(arg, dict) else (arg, "")
            texts = [self.text(x, target) for x in parts]
            out = texts[0]
            for t in texts[1:]:
                out = out + sep + t
            return out
        if op == "line_number":
            keys = self.text(arg, target).fillna("")
            return keys.groupby(keys, sort=False).cumcount().astype("int64") + 1
        if op == "map_prefix":
            text = self.text(arg["column"], target)
            hit = text.str.startswith(arg["prefix"])
            out = pd.Series(arg.get("else"), index=idx, dtype=object)
            out[hit.fillna(False).astype(bool)] = arg["then"]
            return out.where(text.notna(), None)
        if op == "map_values":
            text = self.text(arg["column"], target)
            lookup = {str(k).strip().lower(): v for k, v in arg["values"].items()}
            mapped = text.str.lower().map(lookup)
            found = text.str.lower().isin(list(lookup)).fillna(False).astype(bool)
            rest = text.astype(object) if "else" not in arg else pd.Series(arg["else"], index=idx, dtype=object)
            out = rest.astype(object).where(~found, mapped.astype(object))
            return out.where(text.notna(), None)
        raise IngestError(f"unknown operation {op!r}")  # unreachable: the mapping was validated


@dataclass
class MappedTable:
    """A raw table renamed to contract fields, with what was used, ignored and could not be computed."""

    frame: pd.DataFrame
    ignored_columns: list[str]
    updated_at: pd.Series | None
    problems: pd.DataFrame


def apply_mapping(raw: pd.DataFrame, table: str, mapping: TableMapping | None, source: str,
                  day_first: bool = False) -> MappedTable:
    """Rename source columns to contract fields, add constants and computed columns.

    A source column maps to a field by the mapping, else by a header equal to the field name
    (case, spaces and hyphens ignored). Raises :class:`IngestError` naming the table, the file and
    the fields when a required field is not mapped.
    """
    spec = get_table(table)
    tm = mapping or TableMapping()
    cols = list(raw.columns)
    used: set[str] = set()
    data: dict[str, pd.Series] = {}
    for src, fld in tm.columns.items():
        col = _find_column(cols, src)
        if col is None:
            raise IngestError(
                f"{table}: the mapping names column {src!r} (for {fld}), which is not in {source} "
                f"(columns: {_columns_hint(cols)})"
            )
        data[fld] = raw[col]
        used.add(col)
    for fld, value in tm.constants.items():
        data[fld] = pd.Series([value] * len(raw), index=raw.index, dtype=object)
    ev = _Evaluator(raw, source, table)
    for fld, expr in tm.derive.items():
        data[fld] = ev.evaluate(expr, fld)
        used.update(_find_column(cols, c) or c for c in expression_columns(expr))
    for fld in spec.column_names:
        if fld not in data:
            col = _find_column(cols, fld)
            if col is not None and col not in used:
                data[fld] = raw[col]
                used.add(col)
    missing = [f for f in spec.required if f not in data]
    if missing:
        raise IngestError(
            f"{table}: required field(s) {', '.join(missing)} not found in {source} "
            f"(columns: {_columns_hint(cols)}); map them in the mapping file under tables.{table}.columns"
        )
    updated = None
    upd_col = None
    if tm.updated_at is not None:
        upd_col = _find_column(cols, tm.updated_at)
        if upd_col is None:
            raise IngestError(f"{table}: updated_at column {tm.updated_at!r} is not in {source}")
    else:
        upd_col = next((c for c in cols if c not in used and _norm_header(c) in UPDATED_AT_NAMES), None)
    if upd_col is not None:
        updated = parse_dates(raw[upd_col], day_first)
        used.add(upd_col)
    frame = pd.DataFrame({f: data[f] for f in spec.column_names if f in data}, index=raw.index)
    problems = pd.concat(ev.problems) if ev.problems else _problems(pd.Index([]), "", [], "")
    return MappedTable(frame=frame, ignored_columns=[c for c in cols if c not in used], updated_at=updated,
                       problems=problems)


# ----------------------------------------------------------------------------------------- validation


def _validate(df: pd.DataFrame, spec: TableSpec, day_first: bool) -> tuple[pd.DataFrame, pd.DataFrame]:
    """All contract columns converted to contract dtypes, and the long list of (pos, column, value, reason)."""
    out: dict[str, pd.Series] = {}
    probs: list[pd.DataFrame] = []

    for c in spec.columns:
        target = PANDAS_DTYPES[c.dtype]
        if c.name not in df.columns:
            out[c.name] = pd.Series(index=df.index, dtype=target)
            continue
        raw = df[c.name]
        typed_dt = pd.api.types.is_datetime64_any_dtype(raw.dtype)
        typed_num = pd.api.types.is_numeric_dtype(raw.dtype) and not pd.api.types.is_bool_dtype(raw.dtype)
        # typed columns need no text, except for the values written next to a rejected row
        text = None if typed_dt or (typed_num and c.dtype in ("float", "int")) else normalize_text(raw)

        def flag(mask: pd.Series, reason: str, c=c, raw=raw, text=text) -> None:
            mask = mask.fillna(False).astype(bool).to_numpy()
            if mask.any():
                if c.pii:
                    values: Any = PII_MASK
                else:
                    values = (text[mask] if text is not None else normalize_text(raw[mask])).astype(object)
                    values = values.fillna("").to_numpy()
                probs.append(_problems(df.index[mask], c.name, values, reason))

        blank = raw.isna() if text is None else text.isna()
        if c.required:
            flag(blank, f"{c.name} is blank")
        if c.dtype == "datetime":
            val = parse_dates(raw, day_first) if typed_dt else _parse_date_text(text, day_first)
            flag(~blank & val.isna(), f"{c.name} is not a valid date")
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
            val = raw.astype("boolean") if pd.api.types.is_bool_dtype(raw.dtype) else _parse_bool_text(text)
            flag(~blank & val.isna(), f"{c.name} is not a yes/no value")
        else:
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
    return converted, problems


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
    values, canonical case), and min/max. Duplicate keys are not handled here.
    """
    spec = get_table(table)
    work = df.reset_index(drop=True)
    rows = pd.Series(
        np.arange(2, len(work) + 2) if row_numbers is None else np.asarray(row_numbers), index=work.index
    )
    if len(rows) != len(work):
        raise ValueError(f"row_numbers has {len(rows)} entries for {len(work)} rows")
    converted, problems = _validate(work, spec, day_first)
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
                raise IngestError(f"file not found: {path} (the mapping's source for {table})")
        else:
            candidates = files.get(table, [])
            if len(candidates) > 1:
                raise IngestError(
                    f"{directory}: several files for {table}: {', '.join(p.name for p in candidates)}; keep one "
                    f"or name it in the mapping (tables.{table}.source)"
                )
            if not candidates:
                absent.append(table)
                continue
            path = candidates[0]
        claimed.add(path.resolve())
        jobs.append(_Job(table, _read_file_table(path, table, tm), tm))
    ignored = [p.name for ps in files.values() for p in ps if p.resolve() not in claimed]
    return jobs, absent, ignored


def _resolve_file(path: Path, mapping: IngestMapping, tables: list[str] | None) -> _Job:
    if tables:
        if len(tables) > 1:
            raise IngestError(f"{path} is one file, so it holds one table; got {', '.join(tables)}")
        table = tables[0]
    else:
        by_source = [t for t, tm in mapping.tables.items() if tm.source and Path(tm.source).name == path.name]
        if len(by_source) == 1:
            table = by_source[0]
        elif len(mapping.tables) == 1:
            table = next(iter(mapping.tables))
        elif path.stem.lower() in TABLES:
            table = path.stem.lower()
        else:
            raise IngestError(
                f"cannot tell which table {path.name} holds: name the file after a table "
                f"({', '.join(TABLES)}), pass --table, or give it as tables.<table>.source in the mapping"
            )
    tm = mapping.tables.get(table)
    return _Job(table, _read_file_table(path, table, tm), tm)


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
                f"table {name!r} not found in {mask_url(url)} (tables: {', '.join(names) or 'none'})"
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
        raise IngestError(f"{raw.source}: the file is empty")
    if len(frame) == 0:
        raise IngestError(f"{raw.source}: no usable rows for {job.table}: the file has a header but no data rows")
    blank = _blank_rows(frame)
    rows = frame[~blank]
    if len(rows) == 0:
        raise IngestError(f"{raw.source}: no usable rows for {job.table}: every row is blank")
    tm_day_first = job.mapping.day_first if job.mapping is not None else None
    dfirst = day_first if tm_day_first is None else tm_day_first
    mapped = apply_mapping(rows, job.table, job.mapping, raw.source, dfirst)
    converted, problems = _validate(mapped.frame, spec, dfirst)
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
    row_number = pd.Series(np.arange(len(frame)) + raw.first_row_number, index=frame.index)
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
) -> IngestSummary:
    """Read, map, validate and write contract tables from ``source`` into the data dir ``out``.

    ``source`` is a directory of files named after the tables (``customers.csv``, ``orders.xlsx``,
    ``orders.parquet`` …, or the names given in the mapping), a single file (its table from
    ``tables``, the mapping or its name), or a SQLAlchemy URL (``sqlite:///crm.db``). ``tables``
    restricts the run to those tables and makes each one required. ``day_first`` (or the
    mapping's ``day_first``) reads ``05/03/2024`` as 5 March.

    Every input row ends up accepted, rejected (``out/rejects/<table>.csv``) or counted as a
    duplicate. Raises :class:`IngestError` with a one-line reason for unusable input: a missing
    file, an unknown table, an unreadable encoding, an unmapped required field, or a table with no
    usable rows (its rejects and the summary are still written first).
    """
    for t in tables or []:
        if t not in TABLES:
            raise IngestError(f"unknown table {t!r}; the contract has {', '.join(TABLES)}")
    mp = load_mapping(mapping)
    dfirst = day_first or mp.day_first
    wanted = list(tables) if tables else list(TABLES)
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
            raise IngestError(f"file not found: {path}")
        if path.is_dir():
            jobs, absent, ignored_files = _resolve_dir(path, mp, wanted)
            if tables and absent:
                raise IngestError(
                    f"file not found: no {', '.join(absent)} file in {path} "
                    f"(looked for {absent[0]}{{{','.join(FILE_SUFFIXES)}}})"
                )
        else:
            jobs = [_resolve_file(path, mp, tables)]
            absent = [t for t in wanted if t != jobs[0].table] if not tables else []
    if not jobs:
        raise IngestError(f"no contract tables found in {label} (expected {', '.join(TABLES)})")

    results = {job.table: _process(job, dfirst) for job in jobs}
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
    for name, res in results.items():
        rej_path = out / "rejects" / f"{name}.csv"
        # UTF-8 with a BOM so spreadsheet programs show Chinese text correctly
        res.rejects.to_csv(rej_path, index=False, encoding="utf-8-sig")
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
        tables={t: results[t].summary for t in TABLES if t in results},
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
            f"{t}: no usable rows: all {s.read} rows were rejected (reasons in {s.rejects_file}); "
            "no tables were written"
        )
    return summary
