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


def record_export(
    action: str, principal: Principal, files: Sequence[str | Path], customers: Sequence[str] = (),
    fields: Sequence[str] = (), masked: bool = False, **detail: Any,
) -> dict[str, Any]:
    """The audit line of an export: the files written (``crmscore forget`` scrubs them), ids and columns."""
    return audit.append(action, principal, customers, fields, masked=masked,
                        files=[str(Path(f).resolve()) for f in files], **detail)
