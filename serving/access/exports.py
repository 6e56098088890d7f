"""Every export a person may open: formula neutralisation, PII masking by role, and the audit line.

An :class:`ExportPolicy` travels with an export writer (``crmscore score``'s sinks, ``crmscore audience
export``): it neutralises spreadsheet formulas in CSV text cells (``features.export``, on unless turned off
for machine consumers) and masks the PII columns for principals without PII access. :func:`record_export`
writes the audit line that also tells ``crmscore forget`` where the files are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from features.export import neutralise_arrow, neutralise_frame
from serving.access import audit
from serving.access.masking import mask_arrow, mask_frame, mask_value
from serving.access.roles import Principal


@dataclass(frozen=True)
class ExportPolicy:
    """How an export writes its cells: ``neutralise`` formulas (CSV), ``mask`` these PII columns."""

    neutralise: bool = True
    mask: frozenset[str] = field(default_factory=frozenset)

    def arrow(self, table: Any, csv: bool = True) -> Any:
        """An Arrow table as this policy writes it (neutralised only when ``csv``)."""
        if self.mask:
            table = mask_arrow(table, self.mask)
        return neutralise_arrow(table) if csv and self.neutralise else table

    def frame(self, df: Any, csv: bool = True) -> Any:
        """A pandas frame as this policy writes it (neutralised only when ``csv``)."""
        if self.mask:
            df = mask_frame(df, self.mask)
        return neutralise_frame(df) if csv and self.neutralise else df

    def rejects(self, df: Any) -> Any:
        """A rejects frame (``row, <id>, column, value, reason``): the value of a masked PII column is masked too."""
        if self.mask and "column" in df.columns and "value" in df.columns:
            hit = df["column"].isin(list(self.mask)).to_numpy(dtype=bool)
            if hit.any():
                df = df.copy()
                df["value"] = df["value"].astype(object)
                df.loc[hit, "value"] = [mask_value(c, v) for c, v in zip(df.loc[hit, "column"], df.loc[hit, "value"],
                                                                        strict=True)]
        return self.frame(df)


def policy_for(principal: Principal, neutralise: bool = True) -> ExportPolicy:
    """The policy of an export by ``principal``: PII masked unless the role may export PII."""
    from features.contract import PII_COLUMNS

    return ExportPolicy(neutralise, frozenset() if principal.may("export_pii") else frozenset(PII_COLUMNS))


def _id_column(names: Sequence[str], id_col: str | None) -> str | None:
    return next((c for c in (id_col, "customer_id", "lead_id") if c and c in names), names[0] if names else None)


def ids_of_file(path: str | Path, id_col: str | None = None) -> list[str]:
    """The ids of an exported CSV or Parquet file, or of a Spark output folder of such part files (``id_col``,
    else ``customer_id``, ``lead_id`` or the first column), for the audit line; empty for anything else."""
    import pyarrow.dataset as ds

    p = Path(path)
    if p.is_dir():
        parts = [f for f in sorted(p.iterdir()) if f.is_file() and not f.name.startswith((".", "_"))]
        kinds = {f.suffix.lower() for f in parts}
        if not parts or len(kinds) != 1 or not kinds <= {".parquet", ".csv"}:
            return []
        files: list[Path] = parts
        suffix = kinds.pop()
    elif p.is_file() and p.suffix.lower() in (".parquet", ".pq", ".csv"):
        files, suffix = [p], p.suffix.lower()
    else:
        return []
    if suffix == ".csv":
        import pyarrow.csv as pacsv

        with open(files[0], encoding="utf-8-sig") as fh:
            import csv

            names = next(csv.reader(fh), [])
        col = _id_column(names, id_col)
        if col is None:
            return []
        fmt = ds.CsvFileFormat(convert_options=pacsv.ConvertOptions(column_types={col: "string"}))
        dataset = ds.dataset([str(f) for f in files], format=fmt)
    else:
        dataset = ds.dataset([str(f) for f in files], format="parquet")
        col = _id_column(dataset.schema.names, id_col)
        if col is None:
            return []
    t = dataset.to_table(columns=[col])
    return [str(v) for v in t.column(0).cast("string").to_pylist() if v is not None]


def ids_of_sql(url: str, table: str, id_col: str | None = None) -> list[str]:
    """The ids of an export written to a SQL table (read back through the same URL), for the audit line."""
    from sqlalchemy import create_engine, inspect, text

    engine = create_engine(url)
    try:
        names = [c["name"] for c in inspect(engine).get_columns(table)]
        col = _id_column(names, id_col)
        if col is None:
            return []
        with engine.connect() as conn:
            quoted = col.replace('"', '""')
            rows = conn.execute(text(f'SELECT "{quoted}" FROM "{table}"'))
            return [str(r[0]) for r in rows if r[0] is not None]
    finally:
        engine.dispose()


def ids_of_output(output: str, output_table: str | None = None, id_col: str | None = None) -> list[str]:
    """The ids of a batch output, whatever it is: a file, a Spark output folder or a SQL table."""
    from features.readers import is_sql_url

    if is_sql_url(output):
        return ids_of_sql(output, output_table or "scores", id_col)
    return ids_of_file(output, id_col)


def record_export(
    action: str, principal: Principal, files: Sequence[str | Path], customers: Sequence[str] = (),
    fields: Sequence[str] = (), masked: bool = False, **detail: Any,
) -> dict[str, Any]:
    """The audit line(s) of an export: the files written (``crmscore forget`` scrubs them), the customer ids
    (:data:`~serving.access.audit.MAX_IDS_PER_LINE` per line, ``part`` numbering the lines) and the columns.
    Returns the last line."""
    ids = [str(c) for c in customers]
    step = audit.MAX_IDS_PER_LINE
    parts = [ids[k:k + step] for k in range(0, len(ids), step)] or [[]]
    return audit.append_parts(action, principal, parts, fields, masked=masked,
                              files=[str(Path(f).resolve()) for f in files], **detail)[-1]
