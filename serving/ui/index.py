"""The profile page's data: a data dir indexed in memory once per worker, and search over it.

The service loads a data dir once when a worker starts (``crmscore serve --data DIR``; ``$CRMSCORE_DATA_DIR``
in the worker) into a :class:`ProfileIndex`: customers by id, a normalised name index for search, and the
three event tables sorted once by customer with per-customer row ranges (``np.searchsorted``), so the events
of one customer are slices, not scans. :func:`load_profiles` builds the :class:`ProfileStore` a worker holds.
"""

from __future__ import annotations

import functools
import logging
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from features.messages import M_

log = logging.getLogger("crmscore.serving")

#: Most search results listed.
SEARCH_LIMIT = 20
#: Most timeline entries shown (most recent first).
TIMELINE_LIMIT = 50
#: Longest accepted search text.
MAX_QUERY_CHARS = 200
#: JSON API paths of the page: the service's API-key guard covers them.
UI_API_PATHS = ("/ui/api/status", "/ui/api/search", "/ui/api/profile")
#: Event tables and the time column each is ordered by.
EVENT_TIME_COLUMNS = {"interactions": "ts", "orders": "ts", "marketing_touches": "sent_at"}
_SEARCH_FIELDS = ("customer_id", "name", "province", "city", "member_level", "created_at")


class ProfileError(ValueError):
    """A request the profile API refuses: HTTP ``status`` and a message naming the field."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def normalise_text(value: str) -> str:
    """Text as the search compares it: NFKC (full-width → half-width), case-folded, without whitespace.

    ``"ＺＨＡＮＧ Wei"`` → ``"zhangwei"``; Chinese characters are kept as they are.
    """
    return "".join(unicodedata.normalize("NFKC", value).casefold().split())


def json_value(v: Any) -> Any:
    """One table value as JSON: missing → None, timestamps → ISO 8601 text, numpy scalars → Python."""
    import pandas as pd

    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp | datetime):
        return v.isoformat()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and v != v:  # NaN
        return None
    return v


def _records(frame: Any, columns: list[str]) -> list[dict[str, Any]]:
    """Rows of ``frame`` (only ``columns``) as JSON-ready dicts."""
    cols = {c: [json_value(v) for v in frame[c].tolist()] for c in columns}
    return [dict(zip(cols, vals, strict=True)) for vals in zip(*cols.values(), strict=True)]


@dataclass
class _EventTable:
    """One event table sorted by (customer position, time); customer ``i`` owns rows ``bounds[i]:bounds[i+1]``."""

    frame: Any
    bounds: np.ndarray
    columns: list[str]


@dataclass
class SearchResult:
    """What a search found: how it matched, how many customers match, and the first ones (row numbers)."""

    by: str
    total: int
    rows: list[int] = field(default_factory=list)


class ProfileIndex:
    """Customers, a name index and per-customer event ranges of one data dir, held in memory.

    Build it with :meth:`load` (a data dir) or :meth:`from_tables`. ``as_of`` is the time the profile's
    numbers and timeline are computed at: the given one, else the latest event time in the data.
    """

    def __init__(
        self,
        customers: Any,
        events: dict[str, _EventTable],
        as_of: Any,
        as_of_source: str,
        source: str = "",
        load_seconds: float = 0.0,
    ) -> None:
        self.customers = customers
        self.events = events
        self.as_of = as_of
        self.as_of_source = as_of_source
        self.source = source
        self.load_seconds = load_seconds
        self.loaded_at = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        self.ids: list[str] = customers["customer_id"].tolist()
        self._by_id = {cid: i for i, cid in enumerate(self.ids)}
        self._by_norm_id: dict[str, int] = {}
        for i, cid in enumerate(self.ids):
            self._by_norm_id.setdefault(normalise_text(cid), i)
        names = customers["name"].tolist() if "name" in customers.columns else [None] * len(self.ids)
        self._names = [normalise_text(n) if isinstance(n, str) else "" for n in names]
        self._profile_columns = [c for c in customers.columns if c in _profile_fields()]

    # ------------------------------------------------------------------------------------- building
    @classmethod
    def load(cls, data_dir: str | Path, as_of: Any = None) -> ProfileIndex:
        """Index the contract tables of ``data_dir`` (``features.io.load_tables``; customers required)."""
        from features.io import load_tables

        t0 = time.perf_counter()
        tables = load_tables(data_dir, required=("customers",))
        index = cls.from_tables(tables, as_of, source=str(Path(data_dir).name))
        del tables
        _release_memory()
        index.load_seconds = time.perf_counter() - t0
        return index

    @classmethod
    def from_tables(cls, tables: Mapping[str, Any], as_of: Any = None, source: str = "") -> ProfileIndex:
        """Index contract tables (a dict as ``features.io.load_tables`` returns it)."""
        import pandas as pd

        from features.build import _codes
        from features.contract import empty_frame, get_table

        t0 = time.perf_counter()
        cust = tables["customers"]
        cust = cust.loc[cust["customer_id"].notna().to_numpy(dtype=bool)]
        n_rows = len(cust)
        cust = cust.astype({"customer_id": "object"}).drop_duplicates("customer_id")
        if len(cust) < n_rows:
            log.warning("profile index: %d customer rows without an id or with a repeated id ignored",
                        n_rows - len(cust))
        cust = cust.sort_values("customer_id", kind="stable").reset_index(drop=True)
        ids = pd.Index(cust["customer_id"].to_numpy(dtype=object), dtype=object)
        events: dict[str, _EventTable] = {}
        for name, tcol in EVENT_TIME_COLUMNS.items():
            df = tables.get(name)
            if df is None:
                df = empty_frame(name)
            columns = [c for c in get_table(name).column_names if c in df.columns and c != "customer_id"]
            pos = _codes(df["customer_id"], ids).astype(np.int64)
            ts = pd.to_datetime(df[tcol]).to_numpy(dtype="datetime64[ns]").astype(np.int64)
            kept = np.flatnonzero(pos >= 0)
            if len(kept) < len(df):
                log.warning("profile index: %d %s rows of customers not in the customers table ignored",
                            len(df) - len(kept), name)
            order = kept[np.lexsort((ts[kept], pos[kept]))]  # by customer, then time (NaT first)
            sorted_pos = pos[order]
            frame = df.iloc[order][columns].reset_index(drop=True)
            bounds = np.searchsorted(sorted_pos, np.arange(len(ids) + 1), side="left")
            events[name] = _EventTable(frame, bounds, columns)
        when, why = _resolve_as_of(tables, as_of)
        index = cls(cust, events, when, why, source, time.perf_counter() - t0)
        return index

    # --------------------------------------------------------------------------------------- search
    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query: str, limit: int = SEARCH_LIMIT, allowed: np.ndarray | None = None) -> SearchResult:
        """Customers matching ``query``: an exact customer id (also ignoring case and width), else a part of
        the name compared after :func:`normalise_text` (exact names first, then names starting with it).

        ``allowed`` (a boolean mask over the customers, from ``serving.access.views.allowed_rows``) limits the
        search to the caller's scope: a customer outside it is never found, not even by its exact id."""
        q = query.strip()
        if q in self._by_id:
            row = self._by_id[q]
            return SearchResult("id", 1, [row]) if allowed is None or allowed[row] else SearchResult("id", 0, [])
        nq = normalise_text(q)
        if not nq:
            return SearchResult("name", 0, [])
        if nq in self._by_norm_id:
            row = self._by_norm_id[nq]
            return SearchResult("id", 1, [row]) if allowed is None or allowed[row] else SearchResult("id", 0, [])
        names = self._names
        hits = [i for i, name in enumerate(names) if nq in name and (allowed is None or allowed[i])]
        hits.sort(key=lambda i: (names[i] != nq, not names[i].startswith(nq), self.ids[i]))
        return SearchResult("name", len(hits), hits[:limit])

    def row_of(self, customer_id: str) -> int | None:
        """Row number of a customer id (exact), None when unknown."""
        return self._by_id.get(customer_id)

    def summary_of(self, row: int) -> dict[str, Any]:
        """The few fields a search result shows."""
        rec = self.customers.iloc[row]
        return {c: json_value(rec[c]) if c in rec.index else None for c in _SEARCH_FIELDS}

    # -------------------------------------------------------------------------------------- profile
    @property
    def as_of_iso(self) -> str:
        """``as_of`` as ISO 8601 text."""
        return self.as_of.isoformat()

    def customer_record(self, row: int) -> dict[str, Any]:
        """Every column of the customer's record (PII included), JSON-ready."""
        rec = self.customers.iloc[row]
        return {c: json_value(v) for c, v in rec.items()}

    def profile_of(self, record: Mapping[str, Any]) -> dict[str, Any]:
        """The customer's record limited to the fields of ``schemas.Profile`` (what a CRM sends)."""
        return {c: record.get(c) for c in self._profile_columns}

    def events_of(self, row: int) -> dict[str, list[dict[str, Any]]]:
        """All events of the customer per table, oldest first, JSON-ready (``schemas.Events`` fields)."""
        out = {}
        for name, tab in self.events.items():
            a, b = int(tab.bounds[row]), int(tab.bounds[row + 1])
            out[name] = _records(tab.frame.iloc[a:b], tab.columns) if b > a else []
        return out


def _release_memory() -> None:
    """Hand the memory freed after indexing back to the system (Arrow's pool and glibc keep it otherwise:
    ~300 MB at 100,000 customers). Best effort: nothing happens where either is unavailable."""
    import ctypes
    import gc

    gc.collect()
    try:
        import pyarrow as pa

        pa.default_memory_pool().release_unused()
    except (ImportError, AttributeError):
        pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _resolve_as_of(tables: Mapping[str, Any], as_of: Any) -> tuple[Any, str]:
    """(as_of, where it came from): the given time, else the latest event time in the tables."""
    import pandas as pd

    if as_of is not None and str(as_of).strip():
        try:
            t = pd.Timestamp(as_of)
        except (ValueError, TypeError):
            raise ValueError(f"as_of: not a date or time: {as_of!r}") from None
        if t.tzinfo is not None:
            t = t.tz_convert("UTC").tz_localize(None)
        return t, "given"
    ends = []
    for name, cols in (
        ("interactions", ("ts",)),
        ("orders", ("ts",)),
        ("marketing_touches", ("sent_at", "opened_at", "clicked_at")),
    ):
        df = tables.get(name)
        for c in cols:
            if df is not None and c in df.columns and len(df):
                m = pd.to_datetime(df[c]).max()
                if m is not pd.NaT and pd.notna(m):
                    ends.append(m)
    if ends:
        return pd.Timestamp(max(ends)), "latest event in the data"
    created = pd.to_datetime(tables["customers"]["created_at"]).max()
    if pd.isna(created):
        raise ValueError("no event and no customer creation time in the data: give as_of")
    return pd.Timestamp(created), "latest customer creation (no events in the data)"


@functools.cache
def _profile_fields() -> frozenset[str]:
    from serving.http.schemas import Profile

    return frozenset(Profile.model_fields)


# ------------------------------------------------------------------------------------ the index holder
@dataclass
class ProfileStore:
    """What a worker holds for the page: the index, or why there is none."""

    index: ProfileIndex | None = None
    error: str | None = None

    def require(self) -> ProfileIndex:
        """The index, or a 503 naming the reason."""
        if self.index is None:
            raise ProfileError(503, self.error or M_("no data dir loaded"))
        return self.index


def load_profiles(settings: Any) -> ProfileStore:
    """The profile index of ``settings.data_dir`` at ``settings.as_of`` (never raises: errors are kept and
    answered with 503 by the page's API)."""
    data_dir = getattr(settings, "data_dir", None)
    if not data_dir:
        return ProfileStore(error=M_(
            "the profile page has no data: start the service with `crmscore serve --data DIR` "
            "(or set CRMSCORE_DATA_DIR)"
        ))
    try:
        index = ProfileIndex.load(data_dir, getattr(settings, "as_of", None))
    except (OSError, ValueError, KeyError) as e:
        msg = M_("loading the data dir {data_dir} for the profile page failed: {kind}: {error}", data_dir=data_dir,
                 kind=type(e).__name__, error=str(e)[:300])
        log.error("%s", msg)
        return ProfileStore(error=msg)
    log.info("profile page: %d customers from %s indexed in %.1f s, as of %s (%s)", len(index), data_dir,
             index.load_seconds, index.as_of_iso, index.as_of_source)
    return ProfileStore(index=index)
