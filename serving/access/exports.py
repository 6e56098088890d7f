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


def ids_of_file(path: str | Path, id_col: str | None = None) -> list[str]:
    """The ids of an exported CSV or Parquet file (``id_col``, else ``customer_id``, ``lead_id`` or the first
    column), for the audit line; empty for anything else (a SQL table, a Spark output folder)."""
    import csv

    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    p = Path(path)
    if not p.is_file():
        return []
    suffix = p.suffix.lower()
    if suffix in (".parquet", ".pq"):
        names = pq.read_schema(p).names
    elif suffix == ".csv":
        with open(p, encoding="utf-8-sig") as fh:
            names = next(csv.reader(fh), [])
    else:
        return []
    col = next((c for c in (id_col, "customer_id", "lead_id") if c and c in names), names[0] if names else None)
    if col is None:
        return []
    if suffix == ".csv":
        opts = pacsv.ConvertOptions(include_columns=[col], column_types={col: "string"})
        t = pacsv.read_csv(p, convert_options=opts)
    else:
        t = pq.read_table(p, columns=[col])
    return [str(v) for v in t.column(0).cast("string").to_pylist() if v is not None]


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
