"""The ingestion mapping: which source column feeds which contract field, constants and computed fields.

A mapping YAML (see ``configs/mapping.example.yaml``) is the CRM-import step where a user matches
their spreadsheet headers to CRM fields::

    day_first: false                  # an undecided 05/03/2024 = 5 March when true (see below)
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

``day_first`` is only a default: each date column's day/month order is inferred from its own values
(``23/02/2024`` can only be day first, ``02/23/2024`` only month first); the default applies to a column whose
values are all ambiguous or conflict (see :func:`features.readers.parse_dates_inferred`).

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

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.config import ConfigError, load_config
from features.contract import ALL_TABLES, get_table
from features.messages import M_
from features.readers import DateOrder, IngestError, _parse_amount_text, normalize_text, parse_dates_inferred

#: source column names (normalised) taken as "last updated" when deciding which duplicate is the latest
UPDATED_AT_NAMES = frozenset(
    {
        "updated_at", "updated", "update_time", "updatetime", "last_updated", "last_update",
        "modified_at", "modified", "modify_time", "last_modified", "更新时间", "修改时间", "最后更新时间",
        "最后修改时间",
    }
)  # fmt: skip



# ----------------------------------------------------------------------------------------- mapping

_OPS = ("column", "const", "multiply", "abs", "concat", "line_number", "map_prefix", "map_values")


def _check_operand(x: Any, where: str) -> None:
    if isinstance(x, bool) or not isinstance(x, (str, int, float, dict)):
        raise ValueError(M_(
            "{where}: an operand is a column name, a number or an expression, not {x!r}",
            where=where, x=x,
        ))
    if isinstance(x, dict):
        _check_expression(x, where)


def _check_scalar(x: Any, where: str) -> None:
    if x is not None and not isinstance(x, (str, int, float, bool)):
        raise ValueError(M_("{where}: expected a single value, got {x!r}", where=where, x=x))


def _check_expression(expr: Any, where: str) -> None:
    """Raise ValueError naming ``where`` unless ``expr`` is one allow-listed operation with valid arguments."""
    if not isinstance(expr, dict) or len(expr) != 1:
        raise ValueError(M_(
            "{where}: an expression is a mapping with exactly one operation ({value})",
            where=where, value=", ".join(_OPS),
        ))
    (op, arg), = expr.items()
    at = f"{where}.{op}"
    if op not in _OPS:
        raise ValueError(M_(
            "{where}: unknown operation {op!r}; allowed: {value}",
            where=where, op=op, value=", ".join(_OPS),
        ))
    if op in ("column", "line_number"):
        if not isinstance(arg, str) or not arg:
            raise ValueError(M_("{at}: expected a source column name", at=at))
    elif op == "const":
        _check_scalar(arg, at)
    elif op == "multiply":
        if not isinstance(arg, list) or len(arg) < 2:
            raise ValueError(M_("{at}: expected a list of two or more operands", at=at))
        for x in arg:
            _check_operand(x, at)
    elif op == "abs":
        _check_operand(arg, at)
    elif op == "concat":
        parts = arg.get("parts") if isinstance(arg, dict) else arg
        if isinstance(arg, dict) and (set(arg) - {"parts", "sep"} or not isinstance(arg.get("sep", ""), str)):
            raise ValueError(M_("{at}: expected keys parts (a list) and sep (text)", at=at))
        if not isinstance(parts, list) or not parts:
            raise ValueError(M_("{at}: expected a non-empty list of operands", at=at))
        for x in parts:
            _check_operand(x, at)
    elif op in ("map_prefix", "map_values"):
        keys = {"column", "prefix", "then", "else"} if op == "map_prefix" else {"column", "values", "else"}
        need = keys - {"else"}
        if not isinstance(arg, dict) or not need <= set(arg) or set(arg) - keys:
            raise ValueError(M_(
                "{at}: expected keys {value} (and optionally else)",
                at=at, value=", ".join(sorted(need)),
            ))
        _check_operand(arg["column"], f"{at}.column")
        for k in ("then", "else"):
            _check_scalar(arg.get(k), f"{at}.{k}")
        if op == "map_prefix" and (not isinstance(arg["prefix"], str) or not arg["prefix"]):
            raise ValueError(M_("{at}.prefix: expected non-empty text", at=at))
        if op == "map_values":
            if not isinstance(arg["values"], dict) or not arg["values"]:
                raise ValueError(M_("{at}.values: expected a mapping of source value → value", at=at))
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
    day_first: bool | None = Field(default=None, description="overrides the top-level day_first (a default)")

    @field_validator("derive")
    @classmethod
    def _valid_expressions(cls, v: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        for name, expr in v.items():
            _check_expression(expr, f"derive.{name}")
        return v

    @model_validator(mode="after")
    def _one_origin_per_field(self) -> TableMapping:
        if self.table is not None and self.query is not None:
            raise ValueError(M_("give either table or query, not both"))
        seen: dict[str, str] = {}
        for origin, fields in (
            ("columns", list(self.columns.values())),
            ("constants", list(self.constants)),
            ("derive", list(self.derive)),
        ):
            for f in fields:
                if f in seen:
                    raise ValueError(M_(
                        "field {f!r} is given twice (in {value} and {origin})",
                        f=f, value=seen[f], origin=origin,
                    ))
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

    day_first: bool = Field(default=False, description="read an undecided 05/03/2024 as 5 March")
    tables: dict[str, TableMapping] = Field(default_factory=dict)

    @field_validator("tables")
    @classmethod
    def _known_tables_and_fields(cls, v: dict[str, TableMapping]) -> dict[str, TableMapping]:
        for name, tm in v.items():
            if name not in ALL_TABLES:
                raise ValueError(M_(
                    "unknown table {name!r}; the contract has {value}",
                    name=name, value=", ".join(ALL_TABLES),
                ))
            known = set(get_table(name).column_names)
            for f in tm.fields:
                if f not in known:
                    raise ValueError(M_(
                        "{name}: {f!r} is not a field of {name} (fields: {value})",
                        name=name, f=f, value=", ".join(sorted(known)),
                    ))
        return v


def load_mapping(path: str | Path | None) -> IngestMapping:
    """Load and validate a mapping YAML; ``None`` gives the empty mapping (headers named like the contract)."""
    try:
        return load_config(path, IngestMapping)
    except ConfigError as e:
        raise IngestError(str(e)) from None


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


def _problems(pos: pd.Index, column: str, values: Any, reason: str | list[str]) -> pd.DataFrame:
    """Problem lines for the rows at ``pos``: one ``reason`` for all, or one per row."""
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
                M_(
                    "{table}: the mapping's derive names column {name!r}, which is not in {source} (columns: {value})",
                    table=self.table, name=name, source=self.source, value=_columns_hint(list(self.frame.columns)),
                )
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
        raise IngestError(M_("unknown operation {op!r}", op=op))  # unreachable: the mapping was validated


@dataclass
class MappedTable:
    """A raw table renamed to contract fields, with what was used, ignored and could not be computed."""

    frame: pd.DataFrame
    ignored_columns: list[str]
    updated_at: pd.Series | None
    problems: pd.DataFrame
    #: (source column, the day/month order its dates were read in) of the updated_at column
    updated_at_order: tuple[str, DateOrder] | None = None


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
                M_(
                    "{table}: the mapping names column {src!r} (for {fld}), which is not in {source} (columns: "
                    "{value})",
                    table=table, src=src, fld=fld, source=source, value=_columns_hint(cols),
                )
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
            M_(
                "{table}: required field(s) {value} not found in {source} (columns: {value2}); map them in the "
                "mapping file under tables.{table}.columns",
                table=table, value=", ".join(missing), source=source, value2=_columns_hint(cols),
            )
        )
    updated = None
    upd_order = None
    upd_col = None
    if tm.updated_at is not None:
        upd_col = _find_column(cols, tm.updated_at)
        if upd_col is None:
            raise IngestError(M_(
                "{table}: updated_at column {updated_at!r} is not in {source}",
                table=table, updated_at=tm.updated_at, source=source,
            ))
    else:
        upd_col = next((c for c in cols if c not in used and _norm_header(c) in UPDATED_AT_NAMES), None)
    if upd_col is not None:
        updated, upd_order = parse_dates_inferred(raw[upd_col], day_first)
        used.add(upd_col)
    frame = pd.DataFrame({f: data[f] for f in spec.column_names if f in data}, index=raw.index)
    problems = pd.concat(ev.problems) if ev.problems else _problems(pd.Index([]), "", [], "")
    upd = None if upd_order is None or upd_col is None else (upd_col, upd_order)
    return MappedTable(frame=frame, ignored_columns=[c for c in cols if c not in used], updated_at=updated,
                       problems=problems, updated_at_order=upd)


