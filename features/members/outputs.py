"""Output folders of ``crmscore members apply`` and ``crmscore tags apply``: Parquet + CSV + summary JSON.

Every file goes through :func:`features.io.atomic_path` (a killed run never leaves half a file); CSVs are
UTF-8 with a byte-order mark so spreadsheet tools show Chinese names. Readers check what a later run needs
and name the file when something is missing.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from features.io import atomic_path, write_text_atomic
from features.members.levels import HISTORY_COLUMNS, LEVEL_COLUMNS, PreviousLevels
from features.members.tags import LONG_COLUMNS, MANUAL_REMOVE_COLUMNS
from features.messages import M_


class OutputDirError(FileNotFoundError):
    """A previous output folder is missing a file or a column."""


def write_csv_atomic(df: pd.DataFrame | Any, path: str | Path, neutralise: bool = True) -> Path:
    """Write ``df`` (a DataFrame or an Arrow table) as UTF-8 CSV (with BOM) atomically; times to the second
    (Parquet keeps them whole).

    Text cells that would start a spreadsheet formula get a ``'`` prefix unless ``neutralise`` is off
    (``features.export``). Arrow's C++ writer: a million rows take about a second instead of pandas' ten.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    from features.export import neutralise_arrow

    table = df if isinstance(df, pa.Table) else pa.Table.from_pandas(df, preserve_index=False)
    if neutralise:
        table = neutralise_arrow(table)
    for i, f in enumerate(table.schema):
        if pa.types.is_timestamp(f.type):
            table = table.set_column(i, f.name, table.column(i).cast(pa.timestamp("s"), safe=False))
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fh.write(b"\xef\xbb\xbf")
        pacsv.write_csv(table, fh)
    return Path(path)


def write_table(
    df: pd.DataFrame, out_dir: str | Path, name: str, csv: bool = True, neutralise: bool = True
) -> list[Path]:
    """``<name>.parquet`` (and ``<name>.csv``, formula cells neutralised unless ``neutralise`` is off) in
    ``out_dir``.

    The frame becomes an Arrow table once (with pandas metadata, so reading the Parquet back gives the same
    dtypes) and both files are written from it: converting a million Python strings per column is the
    costly part, not the writing. The Parquet file is one row group: a dictionary-encoded column (the long
    tag table's customer ids: a million distinct values over tens of millions of rows) then stores its
    dictionary once instead of once per million rows, which makes writing and reading back about 2.5 times
    faster and the file half the size (these files are always read whole).
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    d = Path(out_dir)
    table = pa.Table.from_pandas(df, preserve_index=False)
    with atomic_path(d / f"{name}.parquet") as tmp:
        pq.write_table(table, tmp, row_group_size=max(table.num_rows, 1))
    paths = [d / f"{name}.parquet"]
    if csv:
        paths.append(write_csv_atomic(table, d / f"{name}.csv", neutralise=neutralise))
    return paths


def write_summary(summary: dict[str, Any], out_dir: str | Path, name: str = "summary.json") -> Path:
    """The run's counts as JSON."""
    return write_text_atomic(Path(out_dir) / name, json.dumps(summary, ensure_ascii=False, indent=1, default=str))


def read_summary(d: Path) -> dict[str, Any]:
    """``summary.json`` of an output folder."""
    p = d / "summary.json"
    if not p.is_file():
        raise OutputDirError(M_("{d}: no summary.json (is it the output of an earlier run?)", d=d))
    return json.loads(p.read_text(encoding="utf-8"))


def _read(d: Path, name: str, columns: list[str]) -> pd.DataFrame:
    p = d / f"{name}.parquet"
    if not p.is_file():
        raise OutputDirError(M_("{d}: no {name}.parquet (is it the output of an earlier run?)", d=d, name=name))
    df = pd.read_parquet(p)
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise OutputDirError(M_("{p}: missing column(s) {value}", p=p, value=", ".join(missing)))
    return df


def read_previous_levels(out_dir: str | Path) -> PreviousLevels:
    """The output of an earlier ``members apply`` (``--previous DIR``)."""
    d = Path(out_dir)
    if not d.is_dir():
        raise OutputDirError(M_("--previous: folder not found: {d}", d=d))
    summary = read_summary(d)
    return PreviousLevels(
        as_of=pd.Timestamp(summary["as_of"]),
        levels=_read(d, "levels", LEVEL_COLUMNS),
        history=_read(d, "history", HISTORY_COLUMNS),
    )


def read_levels(out_dir: str | Path) -> tuple[pd.DataFrame, dict[str, Any]]:
    """Current levels and summary of a ``members apply`` output folder (``--members DIR``)."""
    d = Path(out_dir)
    if not d.is_dir():
        raise OutputDirError(M_("--members: folder not found: {d}", d=d))
    return _read(d, "levels", LEVEL_COLUMNS), read_summary(d)


def read_previous_tags(out_dir: str | Path) -> tuple[pd.DataFrame, pd.DataFrame | None, dict[str, Any]]:
    """The long table, the manual removals so far and the summary of an earlier ``tags apply``."""
    d = Path(out_dir)
    if not d.is_dir():
        raise OutputDirError(M_("folder not found: {d}", d=d))
    summary = read_summary(d)
    long = _read(d, "tags", LONG_COLUMNS)
    rem = d / "manual_removals.parquet"
    removals = _read(d, "manual_removals", list(MANUAL_REMOVE_COLUMNS)) if rem.is_file() else None
    return long, removals, summary
