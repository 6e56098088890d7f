"""The contract tables as Spark DataFrames: from a data dir of Parquet files, or from a YAML file naming
Parquet paths or catalog (Hive, Unity) tables.

A tables YAML (``--data tables.yaml``)::

    tables:
      customers: {table: crm.customers}              # a catalog table
      interactions: {path: s3a://crm/interactions}  # a Parquet file or directory
      orders: {table: crm.orders}
      marketing_touches: {table: crm.marketing_touches}

Every table is checked with :func:`features.engines.inputs.check_columns` before anything is computed: from
the Parquet footers (as the NumPy engine) for paths, from the catalog schema for tables.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from features.config import ConfigError, load_config
from features.engines.inputs import FEATURE_COLUMNS, arrow_kind, check_columns, check_data_dir, spark_kind
from features.io import DataDirError
from features.messages import M_


class TableSource(BaseModel):
    """Where one contract table is: a Parquet ``path`` (file or directory, any Hadoop URI) or a catalog ``table``."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(default=None, description="Parquet file or directory (local path or URI)")
    table: str | None = Field(default=None, description="catalog table name, e.g. crm.customers")

    @model_validator(mode="after")
    def _one(self) -> TableSource:
        if (self.path is None) == (self.table is None):
            raise ValueError("give exactly one of path or table")
        return self


class SparkTablesConfig(BaseModel):
    """The contract tables of a Spark job; ``customers`` is required, the event tables are optional."""

    model_config = ConfigDict(extra="forbid")

    tables: dict[str, TableSource] = Field(description="contract table name -> where it is")

    @model_validator(mode="after")
    def _known(self) -> SparkTablesConfig:
        unknown = [t for t in self.tables if t not in FEATURE_COLUMNS]
        if unknown:
            raise ValueError(M_(
                "unknown table(s) {unknown}; use {tables}",
                unknown=', '.join(unknown), tables=', '.join(FEATURE_COLUMNS),
            ))
        return self


def table_sources(data: str | Path) -> dict[str, TableSource]:
    """The tables of ``data``: a data dir (``<table>.parquet``) or a tables YAML file."""
    p = Path(str(data))
    if p.suffix.lower() in (".yaml", ".yml"):
        cfg = load_config(p, SparkTablesConfig)
        if "customers" not in cfg.tables:
            raise ConfigError(M_("{path}: field 'tables': the customers table is required", path=p))
        return dict(cfg.tables)
    return {t: TableSource(path=str(f)) for t, f in check_data_dir(p).items()}


def _arrow_schema(path: str) -> Any | None:
    """The Arrow schema of a Parquet path, or None when pyarrow cannot open it (e.g. an unsupported URI)."""
    import pyarrow.dataset as ds

    try:
        return ds.dataset(path, format="parquet").schema
    except (OSError, ValueError, ImportError):
        return None


def read_tables(spark: Any, data: str | Path, extra: dict[str, list[str]] | None = None) -> dict[str, Any]:
    """The contract tables of ``data`` as Spark DataFrames, checked; raises ``DataDirError`` / ``ConfigError``.

    Each table keeps only the columns the features read, plus those ``extra`` names for it (when present).
    """
    out: dict[str, Any] = {}
    for name, src in table_sources(data).items():
        if src.table is not None:
            if not spark.catalog.tableExists(src.table):
                raise DataDirError(M_("catalog table {table} (for {name}) not found", table=src.table, name=name))
            df = spark.table(src.table)
            check_columns(name, {f.name: spark_kind(f.dataType) for f in df.schema.fields}, src.table)
        else:
            assert src.path is not None
            schema = _arrow_schema(src.path)
            if schema is None:
                raise DataDirError(M_(
                    "{path}: cannot read the Parquet schema of table {name}",
                    path=src.path, name=name,
                ))
            check_columns(name, {f.name: arrow_kind(f.type) for f in schema}, src.path)
            df = spark.read.parquet(src.path)
        wanted = [c for c in dict.fromkeys([*FEATURE_COLUMNS[name], *(extra or {}).get(name, [])]) if c in df.columns]
        out[name] = df.select(*wanted)
    return out
