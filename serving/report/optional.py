"""Optional contract columns the report's tables read: a table whose column is absent is left empty, with a note.

The contract requires only the key and time columns; a CRM export without ``source_channel`` (or ``province``,
``city``) still gets every section that does not need it, and the sections that do say what they could not
compute instead of failing.
"""

from __future__ import annotations

import pandas as pd

from serving.i18n import _

#: per report table: the (table, column) pairs it reads beyond the required ones
NEEDS: dict[str, tuple[tuple[str, str], ...]] = {
    "funnel": (("customers", "source_channel"),),
    "time_to_payment": (("customers", "source_channel"),),
    "channels": (("customers", "source_channel"),),
    "regions_province": (("customers", "province"),),
    "regions_city": (("customers", "province"), ("customers", "city")),
}

#: the section (page anchor) each table belongs to
SECTION_OF = {
    "funnel": "funnel",
    "time_to_payment": "funnel",
    "channels": "channels",
    "regions_province": "regions",
    "regions_city": "regions",
}


def missing_columns(tables: dict[str, pd.DataFrame], name: str) -> list[str]:
    """``table.column`` names report table ``name`` reads and the data lacks (an absent table lacks none)."""
    return [
        f"{tab}.{col}"
        for tab, col in NEEDS.get(name, ())
        if tables.get(tab) is not None and col not in tables[tab].columns
    ]


def gap_note(name: str, missing: list[str]) -> str:
    """The note a section shows for a table it could not compute."""
    return _("{table}: not computed, the data has no column {columns}").format(table=name, columns=", ".join(missing))
