"""Files people open in a spreadsheet: neutralising formula injection (OWASP "CSV injection").

A cell whose text starts with ``=``, ``+``, ``-``, ``@``, a tab or a carriage return runs as a formula in Excel
or WPS. Every CSV crm-scoring writes for people passes its text columns through :func:`neutralise_frame`
(pandas) or :func:`neutralise_arrow` (Arrow), which prefix such cells with a single quote, OWASP's advice.
Numeric columns are never touched (they stay numbers), and a text cell that is a plain number (``-12.5``,
``+86``) is left as it is. Writers offer a flag to turn this off for machine consumers (``--no-neutralise``).
"""

from __future__ import annotations

from typing import Any

#: Characters that start a formula in a spreadsheet (OWASP CSV injection).
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_START_RE = r"^[=+\-@\t\r]"
_NUMBER_RE = r"^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$"


def neutralise_text(v: str) -> str:
    """One cell: ``=1+1`` → ``'=1+1``; ``-12.5`` and ordinary text unchanged."""
    import re

    if v.startswith(FORMULA_START) and not re.match(_NUMBER_RE, v):
        return "'" + v
    return v


def neutralise_frame(df: Any) -> Any:
    """``df`` with every text cell that would start a formula prefixed with ``'`` (a copy when anything changed;
    numeric, boolean and date columns untouched)."""
    import pandas as pd

    out = None
    for c in df.columns:
        col = df[c]
        if isinstance(col.dtype, pd.CategoricalDtype):
            cats = col.cat.categories
            if cats.dtype != object and not pd.api.types.is_string_dtype(cats.dtype):
                continue
            fixed = [neutralise_text(x) if isinstance(x, str) else x for x in cats]
            if list(cats) != fixed:
                out = df.copy() if out is None else out
                out[c] = col.cat.rename_categories(fixed)
            continue
        if not (col.dtype == object or pd.api.types.is_string_dtype(col.dtype)):
            continue
        s = col.astype("string")
        hit = (s.str.match(_START_RE) & ~s.str.match(_NUMBER_RE)).fillna(False).to_numpy(dtype=bool)
        if hit.any():
            out = df.copy() if out is None else out
            fixed_col = col.astype(object).copy()
            fixed_col[hit] = ["'" + str(x) for x in col[hit]]
            out[c] = fixed_col
    return df if out is None else out


def neutralise_arrow(table: Any) -> Any:
    """An Arrow table with every text cell that would start a formula prefixed with ``'`` (vectorised,
    non-text columns untouched)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    for i, f in enumerate(table.schema):
        t = f.type
        if pa.types.is_dictionary(t) and (pa.types.is_string(t.value_type) or pa.types.is_large_string(t.value_type)):
            col = table.column(i).cast(t.value_type)
        elif pa.types.is_string(t) or pa.types.is_large_string(t):
            col = table.column(i)
        else:
            continue
        hit = pc.and_(pc.match_substring_regex(col, _START_RE), pc.invert(pc.match_substring_regex(col, _NUMBER_RE)))
        if not pc.any(hit).as_py():
            continue
        fixed = pc.if_else(hit, pc.binary_join_element_wise(pa.scalar("'", col.type), col, ""), col)
        table = table.set_column(i, pa.field(f.name, col.type, f.nullable, f.metadata), fixed)
    return table


def neutralise_spark(df: Any) -> Any:
    """A Spark DataFrame with every text cell that would start a formula prefixed with ``'`` (string columns
    only; the same rule as :func:`neutralise_text`, run by Spark)."""
    from pyspark.sql import functions as F  # noqa: N812 - Spark's usual alias
    from pyspark.sql.types import StringType

    cols = []
    for f in df.schema.fields:
        c = F.col(f.name)
        if isinstance(f.dataType, StringType):
            hit = c.rlike(_START_RE) & ~c.rlike(_NUMBER_RE)
            c = F.when(hit, F.concat(F.lit("'"), F.col(f.name))).otherwise(F.col(f.name)).alias(f.name)
        cols.append(c)
    return df.select(*cols)
