"""One check of the feature builder's input tables, shared by the NumPy and Spark engines.

Both engines call :func:`check_columns` with the columns of each table mapped to a *kind* (``string``,
``integer``, ``float``, ``bool``, ``datetime`` or ``other``): from the Parquet files' Arrow schemas
(:func:`check_data_dir`), or from a Spark schema for catalog tables. A missing table, a missing column or a
column of the wrong type therefore gives the same message on either engine.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from features.build import CATEGORICAL_FEATURES
from features.io import DataDirError
from features.messages import M_

#: what each kind accepts as input (a text column may hold integer ids; a flag may be stored as 0/1)
ACCEPTS: dict[str, tuple[str, ...]] = {
    "string": ("string", "integer"),
    "datetime": ("datetime",),
    "number": ("integer", "float"),
    "bool": ("bool", "integer"),
    "category": ("string", "integer", "float", "bool"),  # profile categories are read as their text
}

#: columns the feature builder reads, with their kind; ``True`` marks the ones every table must have
FEATURE_COLUMNS: dict[str, dict[str, tuple[str, bool]]] = {
    "customers": {
        "customer_id": ("string", True),
        "created_at": ("datetime", True),
        "age": ("number", False),
        "points_balance": ("number", False),
        "marketing_consent": ("bool", False),
        **{c: ("category", False) for c in CATEGORICAL_FEATURES},
    },
    "interactions": {
        "customer_id": ("string", True),
        "ts": ("datetime", True),
        "channel": ("string", True),
        "event_type": ("string", True),
    },
    "orders": {
        "customer_id": ("string", True),
        "ts": ("datetime", True),
        "amount": ("number", True),
        "status": ("string", True),
    },
    "marketing_touches": {
        "customer_id": ("string", True),
        "channel": ("string", True),
        "sent_at": ("datetime", True),
        "opened_at": ("datetime", True),
        "clicked_at": ("datetime", True),
        "coupon_claimed": ("bool", True),
        "responded": ("bool", True),
    },
}


def check_columns(table: str, kinds: Mapping[str, str], source: str) -> None:
    """Raise :class:`DataDirError` naming ``source``, the column and the reason when ``table`` cannot be read."""
    spec = FEATURE_COLUMNS[table]
    missing = [c for c, (_, required) in spec.items() if required and c not in kinds]
    if missing:
        raise DataDirError(M_(
            "{source}: table {table} lacks column(s) {missing}",
            source=source, table=table, missing=', '.join(missing),
        ))
    for col, (want, _) in spec.items():
        found = kinds.get(col)
        if found is not None and found not in ACCEPTS[want]:
            raise DataDirError(
                M_(
                    "{source}: column {table}.{column} is {found}, expected {want} (type raw exports with `crmscore "
                    "ingest` first)",
                    source=source, table=table, column=col, found=found, want=want,
                )
            )


def arrow_kind(t: Any) -> str:
    """The kind of an Arrow type."""
    import pyarrow as pa

    if pa.types.is_dictionary(t):
        t = t.value_type
    if pa.types.is_string(t) or pa.types.is_large_string(t):
        return "string"
    if pa.types.is_boolean(t):
        return "bool"
    if pa.types.is_integer(t):
        return "integer"
    if pa.types.is_floating(t) or pa.types.is_decimal(t):
        return "float"
    if pa.types.is_timestamp(t) or pa.types.is_date(t):
        return "datetime"
    return "other"


def spark_kind(t: Any) -> str:
    """The kind of a Spark SQL data type."""
    name = type(t).__name__
    if name in ("StringType", "VarcharType", "CharType"):
        return "string"
    if name == "BooleanType":
        return "bool"
    if name in ("ByteType", "ShortType", "IntegerType", "LongType"):
        return "integer"
    if name in ("FloatType", "DoubleType", "DecimalType"):
        return "float"
    if name in ("TimestampType", "TimestampNTZType", "DateType"):
        return "datetime"
    return "other"


def table_files(data_dir: str | Path) -> dict[str, Path]:
    """The contract tables present in a data dir (``<table>.parquet``, a file or a directory of parts)."""
    d = Path(data_dir)
    if not d.is_dir():
        raise DataDirError(M_("data dir not found: {data_dir}", data_dir=d))
    found = {t: d / f"{t}.parquet" for t in FEATURE_COLUMNS}
    return {t: p for t, p in found.items() if p.exists()}


def check_data_dir(data_dir: str | Path) -> dict[str, Path]:
    """Check a data dir for the feature builder from its Parquet schemas (nothing else is read).

    Returns the tables found; raises :class:`DataDirError` for a missing dir, a missing ``customers`` table or
    a missing / mistyped column.
    """
    import pyarrow.dataset as ds

    files = table_files(data_dir)
    if "customers" not in files:
        raise DataDirError(M_(
            "{data_dir}: missing table(s) customers (expected <table>.parquet)",
            data_dir=Path(data_dir),
        ))
    for table, path in files.items():
        schema = ds.dataset(path, format="parquet").schema
        check_columns(table, {f.name: arrow_kind(f.type) for f in schema}, str(path))
    return files
