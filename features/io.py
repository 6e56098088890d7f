"""Reading and writing a data dir: the four validated contract tables as Parquet files."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pandas as pd

from features.contract import TABLES, coerce_types


class DataDirError(FileNotFoundError):
    """A data dir is missing or lacks a required table."""


def load_tables(data_dir: str | Path, required: tuple[str, ...] = ("customers",)) -> dict[str, pd.DataFrame]:
    """Load the contract tables found in ``data_dir`` (``<table>.parquet``), typed per the contract."""
    d = Path(data_dir)
    if not d.is_dir():
        raise DataDirError(f"data dir not found: {d}")
    tables: dict[str, pd.DataFrame] = {}
    for name in TABLES:
        p = d / f"{name}.parquet"
        if p.is_file():
            tables[name] = coerce_types(_read_parquet(p, name), name, keep_text=True)
    missing = [t for t in required if t not in tables]
    if missing:
        raise DataDirError(f"{d}: missing table(s) {', '.join(missing)} (expected <table>.parquet)")
    return tables


# Event-table text columns repeat a few values (or one id many times): read them dictionary-encoded,
# as pandas categoricals, which is several times faster and smaller than one Python str per row.
_DICTIONARY_COLUMNS = {
    "interactions": ["customer_id", "channel", "event_type"],
    "orders": ["customer_id", "status", "category"],
    "marketing_touches": ["customer_id", "campaign_id", "channel"],
}


def _read_parquet(path: Path, table: str) -> pd.DataFrame:
    import pyarrow.parquet as pq

    names = set(pq.read_schema(path).names)
    dict_cols = [c for c in _DICTIONARY_COLUMNS.get(table, []) if c in names]
    return pq.read_table(path, read_dictionary=dict_cols).to_pandas()


def write_parquet_atomic(df: pd.DataFrame, path: str | Path, index: bool = False) -> Path:
    """Write ``df`` to ``path`` through a temporary file and a rename, so no half file is ever visible."""
    p = Path(path)
    p.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{p.name}.", suffix=".tmp", dir=p.parent)
    os.close(fd)
    try:
        df.to_parquet(tmp, index=index)
        os.replace(tmp, p)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return p
