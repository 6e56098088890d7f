"""Customer ids as integers for the report's tables, looked up once per table and shared by every section.

The sections group and join on these integers instead of on the id text: at 1M customers that spares hashing
20M interaction ids and 2M order ids as Python strings in each section. A categorical column (how
``features.io`` reads the event tables' ids) costs only its categories. Ids compare as their text
(``astype(str)``), as the report always has.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import empty_frame


def text_codes(s: pd.Series) -> tuple[np.ndarray, pd.Index]:
    """(codes, ids): each row's position in ``ids``, the distinct values as text (as ``astype(str)`` writes them)."""
    if isinstance(s.dtype, pd.CategoricalDtype):
        cats = pd.Index(s.cat.categories.astype(str), dtype=object)
        codes = s.cat.codes.to_numpy().astype(np.int64)
        if (codes < 0).any():
            cats = cats.append(pd.Index(["nan"], dtype=object))  # a missing value's text in a categorical
            codes = np.where(codes < 0, len(cats) - 1, codes)
        if cats.is_unique:
            return codes, cats
    codes, uniques = pd.factorize(s.astype(str))
    return codes.astype(np.int64), pd.Index(uniques, dtype=object)


def lookup(codes: np.ndarray, ids: pd.Index, index: pd.Index) -> np.ndarray:
    """Rows' positions in ``index`` (unique text) from their :func:`text_codes`; -1 for a value not in it."""
    return index.get_indexer(ids)[codes] if len(codes) else np.zeros(0, dtype=np.int64)


class CustomerKeys:
    """Every table's ``customer_id`` as positions among the customers table's ids (``ids``, in table order).

    Made once per report (``serving.report.run.compute_tables``) and handed to each table function; a function
    called alone makes its own. Results are cached per table name, so the tables must not change meanwhile.
    """

    def __init__(self, tables: dict[str, pd.DataFrame]) -> None:
        self._tables = tables
        self.ids = pd.Index(self.table("customers")["customer_id"].astype(str), dtype=object)
        self._codes: dict[str, tuple[np.ndarray, pd.Index, np.ndarray]] = {}
        self._positions: dict[str, np.ndarray] = {}

    def table(self, name: str) -> pd.DataFrame:
        """Table ``name``, or an empty one with the contract's columns when the data has none."""
        df = self._tables.get(name)
        return empty_frame(name) if df is None else df

    def codes(self, name: str) -> tuple[np.ndarray, pd.Index, np.ndarray]:
        """(codes, ids, where) of table ``name``: :func:`text_codes` of its rows and each id's customer position."""
        if name not in self._codes:
            codes, ids = text_codes(self.table(name)["customer_id"])
            self._codes[name] = (codes, ids, self.ids.get_indexer(ids))
        return self._codes[name]

    def positions(self, name: str) -> np.ndarray:
        """Each row's customer position in ``ids`` (-1 when its id is not a customer's)."""
        if name not in self._positions:
            codes, _ids, where = self.codes(name)
            self._positions[name] = where[codes]
        return self._positions[name]

    def with_others(self, *names: str) -> tuple[list[np.ndarray], int]:
        """Positions of these tables' rows where an id that is no customer's is numbered after the customers
        (the same number in each table); and how many numbers there are."""
        parts = [self.codes(n) for n in names]
        unknown = [ids.to_numpy()[where < 0] for _c, ids, where in parts]
        others = pd.Index(pd.unique(np.concatenate([np.asarray([], dtype=object), *unknown])), dtype=object)
        out = []
        for codes, ids, where in parts:
            w = where.copy()
            miss = w < 0
            w[miss] = len(self.ids) + others.get_indexer(ids[miss])
            out.append(w[codes])
        return out, len(self.ids) + len(others)
