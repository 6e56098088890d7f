"""The customer profile page (客户画像) of the scoring service: one HTML page at ``/ui`` and its JSON API.

The service loads a data dir once when a worker starts (``crmscore serve --data DIR``; ``$CRMSCORE_DATA_DIR``
in the worker) into a :class:`ProfileIndex`: customers by id, a normalised name index for search, and the
three event tables sorted once by customer with per-customer row ranges (``np.searchsorted``), so the events
of one customer are slices, not scans.

A profile's numbers come from the service's own scoring code. The customer's record and events become a
``schemas.Lead`` and a ``schemas.Customer`` (profile + events at the index's ``as_of``), exactly what a CRM
sends to ``/score_leads``, ``/predict_churn`` and ``/segment``, and go through the same steps
(``CRMScoring._feature_rows`` → ``LoadedModel.score`` → ``build_lead_results``; ``CRMScoring._segment_sync``).
Profile views are not recorded for drift monitoring: they are look-ups, not scoring traffic.

Routes (mounted by ``serving/http/service.py``):

* ``GET /ui``: the page (static HTML, CSS and JavaScript, no customer data; open);
* ``GET /ui/api/status``, ``POST /ui/api/search``, ``POST /ui/api/profile``: need ``Authorization: Bearer <key>``
  (the page asks for the key once and keeps it in the tab's ``sessionStorage``). Search terms travel in
  POST bodies, never in URLs, so a name never lands in an access log or the browser history.

PII (name, phone, email, address) is returned only by these authenticated calls and is never logged.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import time
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

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

    def search(self, query: str, limit: int = SEARCH_LIMIT) -> SearchResult:
        """Customers matching ``query``: an exact customer id (also ignoring case and width), else a part of
        the name compared after :func:`normalise_text` (exact names first, then names starting with it)."""
        q = query.strip()
        if q in self._by_id:
            return SearchResult("id", 1, [self._by_id[q]])
        nq = normalise_text(q)
        if not nq:
            return SearchResult("name", 0, [])
        if nq in self._by_norm_id:
            return SearchResult("id", 1, [self._by_norm_id[nq]])
        names = self._names
        hits = [i for i, name in enumerate(names) if nq in name]
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
            raise ProfileError(503, self.error or "no data dir loaded")
        return self.index


def load_profiles(settings: Any) -> ProfileStore:
    """The profile index of ``settings.data_dir`` at ``settings.as_of`` (never raises: errors are kept and
    answered with 503 by the page's API)."""
    data_dir = getattr(settings, "data_dir", None)
    if not data_dir:
        return ProfileStore(
            error="the profile page has no data: start the service with `crmscore serve --data DIR` "
            "(or set CRMSCORE_DATA_DIR)"
        )
    try:
        index = ProfileIndex.load(data_dir, getattr(settings, "as_of", None))
    except (OSError, ValueError, KeyError) as e:
        msg = f"loading the data dir {data_dir} for the profile page failed: {type(e).__name__}: {str(e)[:300]}"
        log.error("%s", msg)
        return ProfileStore(error=msg)
    log.info("profile page: %d customers from %s indexed in %.1f s, as of %s (%s)", len(index), data_dir,
             index.load_seconds, index.as_of_iso, index.as_of_source)
    return ProfileStore(index=index)


# ------------------------------------------------------------------------------------------- profile
def _validation_message(e: Any, what: str) -> str:
    """A pydantic ValidationError as one line naming the field (no input value: it may be PII)."""
    from serving.http.postprocess import format_validation_errors

    _, message, _ = format_validation_errors(e.errors(include_input=False))
    return f"{what}: {message}"


def score_lead(service: Any, kind: str, lead: Any) -> dict[str, Any]:
    """One lead's result from the ``kind`` model (lead, churn), by the steps of ``CRMScoring._score_sync``
    (without the drift record); ``{"error": ...}`` when the model is not loaded or refuses the input."""
    from serving.http.loader import ModelUnavailable
    from serving.http.postprocess import RequestError, build_lead_results, score_and_grade

    now = datetime.now(UTC).replace(tzinfo=None)
    try:
        model = service.slots[kind].require()
        rows = service._feature_rows([lead], model, now)
        scored = model.score(rows, top=service.settings.top_reasons, reasons=True)
    except ModelUnavailable as e:
        return {"error": str(e)}
    except RequestError as e:
        return {"error": e.message}
    scores, grades = score_and_grade(scored.probability, model.grade_thresholds)
    (result,) = build_lead_results(
        [lead.id], scored.probability, model.grade_thresholds, scored.reasons, scored.unknown, model.name,
        model.version, scores=scores, grades=grades,
    )
    result["unknown_categories"] = list(result["unknown_categories"])
    result["grade_thresholds"] = model.grade_thresholds
    return result


def segment_customer(service: Any, customer: Any) -> dict[str, Any]:
    """One customer's /segment result (``CRMScoring._segment_sync`` itself), or ``{"error": ...}``."""
    import json

    now = datetime.now(UTC).replace(tzinfo=None)
    response = service._segment_sync([customer], now)
    body = json.loads(response.body)
    if response.status_code != 200:
        return {"error": body.get("error", f"HTTP {response.status_code}")}
    return body["results"][0]


def model_versions(service: Any) -> dict[str, dict[str, Any]]:
    """Name, alias, version and training time of each served model (or why it is not loaded)."""
    out = {}
    for kind, slot in service.slots.items():
        m = slot.current
        if m is None:
            out[kind] = {"name": slot.name, "alias": slot.alias, "loaded": False, "error": slot.error}
        else:
            out[kind] = {"name": m.name, "alias": slot.alias, "loaded": True, "version": m.version,
                         "trained_at": m.trained_at, "source": m.source}
    return out


def _fmt_amount(v: Any) -> str:
    return "?" if v is None else f"¥{float(v):,.2f}"


def build_timeline(
    events: Mapping[str, list[dict[str, Any]]], as_of: str, limit: int = TIMELINE_LIMIT
) -> tuple[list[dict[str, Any]], int]:
    """Interactions, orders, marketing touches and their responses (opened, clicked) at or before ``as_of``,
    most recent first: (the first ``limit`` entries, how many there are)."""
    items: list[dict[str, Any]] = []

    def add(ts: str | None, kind: str, title: str, detail: str) -> None:
        if ts is not None and ts <= as_of:  # ISO 8601 texts of one format compare in time order
            items.append({"ts": ts, "kind": kind, "title": title, "detail": detail})

    for r in events.get("interactions", []):
        add(r.get("ts"), "interaction", str(r.get("event_type")), f"channel: {r.get('channel')}")
    for r in events.get("orders", []):
        parts = [_fmt_amount(r.get("amount"))]
        if r.get("items") is not None:
            parts.append(f"{r['items']} item(s)")
        if r.get("category"):
            parts.append(str(r["category"]))
        if r.get("order_id"):
            parts.append(f"order {r['order_id']}")
        add(r.get("ts"), "order", f"order {r.get('status')}", " · ".join(parts))
    for r in events.get("marketing_touches", []):
        camp = r.get("campaign_id") or "campaign"
        flags = [x for x, on in (("coupon claimed", r.get("coupon_claimed")), ("responded", r.get("responded")))
                 if on]
        detail = f"{camp}" + (f" · {', '.join(flags)}" if flags else "")
        add(r.get("sent_at"), "touch", f"{r.get('channel')} message sent", detail)
        add(r.get("opened_at"), "response", f"{r.get('channel')} message opened", str(camp))
        add(r.get("clicked_at"), "response", f"{r.get('channel')} message clicked", str(camp))
    items.sort(key=lambda x: x["ts"], reverse=True)
    return items[:limit], len(items)


def funnel_reached(events: Mapping[str, list[dict[str, Any]]], as_of: str) -> dict[str, Any]:
    """The deepest funnel stage (``contract.FUNNEL_STAGES``) of the interactions at or before ``as_of``:
    the stage, its depth (1-based, 0 = none; the feature ``funnel_depth``) and all stages."""
    from features.contract import FUNNEL_STAGES

    depth = 0
    for r in events.get("interactions", []):
        et = r.get("event_type")
        if et in FUNNEL_STAGES and r.get("ts") is not None and r["ts"] <= as_of:
            depth = max(depth, FUNNEL_STAGES.index(et) + 1)
    return {"stage": FUNNEL_STAGES[depth - 1] if depth else None, "depth": depth, "stages": list(FUNNEL_STAGES)}


def customer_status(events: Mapping[str, list[dict[str, Any]]], as_of: Any) -> dict[str, Any]:
    """Paid orders at or before ``as_of``, the last one, and which model applies: the lead model to leads
    (no paid order yet), the churn model to active customers (a paid order in the label look-back)."""
    import pandas as pd

    from features.config import LabelConfig

    lookback = LabelConfig().churn_lookback_days
    t = pd.Timestamp(as_of)
    iso = t.isoformat()
    paid = [r["ts"] for r in events.get("orders", []) if r.get("status") == "paid" and r.get("ts") and r["ts"] <= iso]
    last = max(paid) if paid else None
    active = last is not None and pd.Timestamp(last) > t - pd.Timedelta(days=lookback)
    return {"paid_orders": len(paid), "last_paid_order": last, "is_lead": not paid, "is_active": active,
            "churn_lookback_days": lookback}


def build_profile(service: Any, index: ProfileIndex, customer_id: str) -> dict[str, Any]:
    """Everything the page shows about one customer (see the module docstring for where each number comes
    from). Raises :class:`ProfileError` (404) for an unknown id."""
    from pydantic import ValidationError

    from serving.http.schemas import Customer, Lead

    t0 = time.perf_counter()
    row = index.row_of(customer_id)
    if row is None:
        raise ProfileError(404, "customer_id: no customer with this id in the data")
    record = index.customer_record(row)
    events = index.events_of(row)
    as_of = index.as_of_iso
    body = {"profile": index.profile_of(record), "events": events, "as_of": as_of}
    try:
        lead = Lead.model_validate(body)
        lead_result, churn_result = score_lead(service, "lead", lead), score_lead(service, "churn", lead)
    except ValidationError as e:
        lead_result = churn_result = {"error": _validation_message(e, "this customer's record cannot be scored")}
    try:
        segment_result = segment_customer(service, Customer.model_validate(body))
    except ValidationError as e:
        segment_result = {"error": _validation_message(e, "this customer's record cannot be segmented")}
    timeline, n_events = build_timeline(events, as_of)
    return {
        "customer_id": customer_id,
        "as_of": as_of,
        "as_of_source": index.as_of_source,
        "customer": record,
        "status": customer_status(events, index.as_of),
        "lead": lead_result,
        "churn": churn_result,
        "segment": segment_result,
        "funnel": funnel_reached(events, as_of),
        "timeline": timeline,
        "timeline_total": n_events,
        "events_total": {k: len(v) for k, v in events.items()},
        "models": model_versions(service),
        "took_ms": round((time.perf_counter() - t0) * 1000, 1),
    }


# --------------------------------------------------------------------------------------------- HTTP
def _json(payload: Any, status: int = 200) -> Any:
    from pydantic_core import to_json
    from starlette.responses import Response

    return Response(
        to_json(payload), status_code=status, media_type="application/json",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


def _error(status: int, message: str) -> Any:
    from serving.http.schemas import error_body

    field_name, _, reason = message.partition(":")
    return _json(error_body(message, [{"field": field_name, "reason": reason.strip() or message}]), status)


async def _body_field(request: Any, name: str, max_chars: int) -> str:
    """One string field of a JSON object body, checked (400/422 naming the field; the value is never echoed)."""
    import json

    raw = await request.body()
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        raise ProfileError(400, "body: not valid JSON") from None
    if not isinstance(data, dict):
        raise ProfileError(422, f"body: expected a JSON object with '{name}'")
    extra = sorted(set(data) - {name})
    if extra:
        raise ProfileError(422, f"{extra[0]}: unknown field (expected only '{name}')")
    value = data.get(name)
    if not isinstance(value, str):
        raise ProfileError(422, f"{name}: required, a string")
    if not value.strip():
        raise ProfileError(422, f"{name}: empty; type a customer id or a part of a name")
    if len(value) > max_chars:
        raise ProfileError(422, f"{name}: longer than {max_chars} characters")
    return value


def status_response(service: Any) -> Any:
    """GET /ui/api/status: what the page's data is (size, as_of, when loaded)."""
    try:
        index = service.profiles.require()
    except ProfileError as e:
        return _error(e.status, e.message)
    return _json(
        {
            "customers": len(index),
            "events": {k: len(v.frame) for k, v in index.events.items()},
            "as_of": index.as_of_iso,
            "as_of_source": index.as_of_source,
            "source": index.source,
            "loaded_at": index.loaded_at,
            "load_seconds": round(index.load_seconds, 2),
            "search_limit": SEARCH_LIMIT,
            "timeline_limit": TIMELINE_LIMIT,
            "models": model_versions(service),
        }
    )


async def search_response(service: Any, request: Any) -> Any:
    """POST /ui/api/search ``{"q": "..."}``: customers whose id is ``q`` or whose name contains it."""
    import anyio

    try:
        index = service.profiles.require()
        q = await _body_field(request, "q", MAX_QUERY_CHARS)
    except ProfileError as e:
        return _error(e.status, e.message)
    found = await anyio.to_thread.run_sync(index.search, q)
    return _json(
        {
            "by": found.by,
            "total": found.total,
            "limit": SEARCH_LIMIT,
            "truncated": found.total > len(found.rows),
            "matches": [index.summary_of(r) for r in found.rows],
        }
    )


async def profile_response(service: Any, request: Any) -> Any:
    """POST /ui/api/profile ``{"customer_id": "..."}``: the customer's profile, scores, segment and timeline."""
    try:
        index = service.profiles.require()
        cid = await _body_field(request, "customer_id", 200)
        payload = await service._offload(build_profile, service, index, cid)
    except ProfileError as e:
        return _error(e.status, e.message)
    except Exception as e:  # noqa: BLE001 - never a traceback (it could quote PII) to the log or the client
        log.error("profile of customer %s failed: %s", cid, type(e).__name__)
        return _error(500, f"profile: internal error ({type(e).__name__})")
    return _json(payload)


def page_response() -> Any:
    """GET /ui: the page itself, with a Content-Security-Policy that allows only its own script and style."""
    from starlette.responses import HTMLResponse

    html, csp = page_html()
    return HTMLResponse(
        html,
        headers={
            "Content-Security-Policy": csp,
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        },
    )


@functools.cache
def page_html() -> tuple[str, str]:
    """(the page's HTML, its Content-Security-Policy with the hashes of the inline script and style)."""
    import base64

    def digest(text: str) -> str:
        return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"

    html = _PAGE.replace("/*CSS*/", _CSS, 1).replace("/*JS*/", _JS, 1)
    csp = (
        f"default-src 'none'; script-src {digest(_JS)}; style-src {digest(_CSS)}; connect-src 'self'; "
        "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return html, csp


# ------------------------------------------------------------------------------------------ the page
_PAGE = """<!doctype html>
<html lang="zh-CN">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<link rel="icon" href="data:,">
<title>客户画像 · Customer profile · crmscore</title>
<style>/*CSS*/</style>
</head>
<body>
<header class="top">
  <div class="brand"><span class="zh">客户画像</span> <span class="en">Customer profile</span></div>
  <div class="meta" id="meta" data-testid="meta"></div>
  <button type="button" id="signout" class="link" hidden>Forget key</button>
</header>
<main>
  <section id="keybox" class="card narrow" hidden>
    <h2>API key</h2>
    <p>This page shows customer data. Enter the scoring service's API key
      (the one sent as <code>Authorization: Bearer</code>); it is kept in this tab only.</p>
    <form id="keyform" autocomplete="off">
      <input id="key" type="password" placeholder="API key" aria-label="API key" required>
      <button type="submit">Continue</button>
    </form>
  </section>
  <section id="searchbox" hidden>
    <form id="searchform" class="search" autocomplete="off" role="search">
      <input id="q" type="search" maxlength="200" aria-label="customer id or name"
        placeholder="Customer id or name · 客户编号或姓名">
      <button type="submit">Search</button>
    </form>
  </section>
  <div id="msg" class="msg" role="status" aria-live="polite" data-testid="msg" hidden></div>
  <section id="results" class="card" data-testid="results" hidden>
    <h2 id="results-title"></h2>
    <ul id="result-list" class="results"></ul>
  </section>
  <div id="profile" data-testid="profile" hidden></div>
</main>
<script>/*JS*/</script>
</body>
</html>
"""

_CSS = """
:root { --bg: #f4f6f9; --card: #fff; --ink: #1d2733; --muted: #5b6878; --line: #dde3ea;
  --accent: #1f6feb; --up: #d9622b; --down: #2f7fbf; --good: #1a7f37; }
* { box-sizing: border-box; }
[hidden] { display: none !important; }
html, body { margin: 0; padding: 0; }
body { background: var(--bg); color: var(--ink); line-height: 1.45;
  font: 15px/1.45 system-ui, -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei",
  "WenQuanYi Micro Hei", sans-serif; }
.top { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 16px; padding: 12px 20px;
  background: #14213d; color: #fff; }
.brand { font-size: 20px; font-weight: 600; }
.brand .en { font-weight: 400; opacity: .8; font-size: 16px; }
.meta { flex: 1; font-size: 13px; opacity: .85; }
button { font: inherit; padding: 8px 14px; border: 0; border-radius: 6px; background: var(--accent);
  color: #fff; cursor: pointer; }
button.link { background: transparent; color: #cfe0ff; padding: 4px 0; text-decoration: underline; }
input { font: inherit; padding: 8px 10px; border: 1px solid var(--line); border-radius: 6px; min-width: 0; }
main { max-width: 1180px; margin: 0 auto; padding: 16px 20px 40px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 10px; padding: 14px 16px;
  margin-bottom: 16px; min-width: 0; }
.card h2 { font-size: 16px; margin: 0 0 10px; }
.card h2 .sub { font-weight: 400; color: var(--muted); font-size: 13px; }
.narrow { max-width: 520px; }
form { display: flex; gap: 8px; }
form input { flex: 1; }
.search { margin-bottom: 12px; }
.msg { padding: 10px 14px; border-radius: 8px; background: #fff8e1; border: 1px solid #f0d58a;
  margin-bottom: 12px; }
.msg.error { background: #fdecea; border-color: #f1aeb5; }
.results { list-style: none; margin: 0; padding: 0; }
.results li { border-top: 1px solid var(--line); }
.results li:first-child { border-top: 0; }
.results button { display: flex; flex-wrap: wrap; gap: 2px 12px; width: 100%; text-align: left;
  background: transparent; color: var(--ink); padding: 8px 4px; border-radius: 0; }
.results button:hover { background: #eef4ff; }
.results .rid { font-family: ui-monospace, monospace; color: var(--muted); }
.results .rname { font-weight: 600; }
.results .rwhere { color: var(--muted); }
.grid { display: grid; grid-template-columns: minmax(0, 1fr) minmax(0, 1fr); gap: 0 16px; }
.span2 { grid-column: 1 / -1; }
.title { display: flex; flex-wrap: wrap; align-items: baseline; gap: 4px 14px; margin: 4px 0 12px; }
.title h1 { font-size: 22px; margin: 0; }
.title .cid { font-family: ui-monospace, monospace; color: var(--muted); }
.chip { display: inline-block; padding: 1px 8px; border-radius: 10px; background: #e8eef7; font-size: 12px; }
dl.attrs { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 4px 14px; margin: 0; }
dl.attrs dt { color: var(--muted); }
dl.attrs dd { margin: 0; overflow-wrap: anywhere; }
.pii { font-size: 10px; color: #8a1c1c; border: 1px solid #e3b1b1; border-radius: 4px; padding: 0 3px;
  margin-left: 4px; vertical-align: 1px; }
.headline { display: flex; flex-wrap: wrap; align-items: center; gap: 6px 18px; margin-bottom: 8px; }
.big { font-size: 34px; font-weight: 700; line-height: 1; }
.grade { font-size: 22px; font-weight: 700; width: 40px; height: 40px; border-radius: 8px; display: inline-flex;
  align-items: center; justify-content: center; background: #e8eef7; }
.grade.A { background: #1a7f37; color: #fff; } .grade.B { background: #6cb26f; color: #fff; }
.grade.C { background: #f0c36d; } .grade.D { background: #d9d9d9; }
.risk .grade.A { background: #b42318; } .risk .grade.B { background: #e8794a; }
.muted { color: var(--muted); font-size: 13px; }
.note { color: var(--muted); font-size: 13px; margin: 4px 0 8px; }
.warn { color: #8a4b00; }
.reasons { list-style: none; margin: 0 0 6px; padding: 0; }
.chart h3 { font-size: 13px; margin: 10px 0 4px; color: var(--muted); font-weight: 600; }
.reason { margin: 0 0 6px; }
.rlabel { display: flex; justify-content: space-between; gap: 8px; font-size: 13px; }
.rlabel .rval { color: var(--muted); white-space: nowrap; }
.rbar { display: flex; align-items: center; gap: 8px; }
.rbar svg { flex: 1; height: 12px; display: block; }
.rbar .rnum { font-variant-numeric: tabular-nums; font-size: 12px; width: 56px; text-align: right; }
svg .axis { stroke: #9aa5b1; stroke-width: 1; }
svg .up { fill: var(--up); } svg .down { fill: var(--down); }
.kv { display: grid; grid-template-columns: max-content minmax(0, 1fr); gap: 4px 14px; margin: 0; }
.kv dt { color: var(--muted); } .kv dd { margin: 0; }
.funnel { list-style: none; display: flex; flex-wrap: wrap; gap: 6px; padding: 0; margin: 0; }
.funnel li { padding: 3px 9px; border-radius: 12px; background: #eef1f5; color: #8593a3; font-size: 13px; }
.funnel li.on { background: #d7e9ff; color: #0b4a8b; }
.funnel li.here { background: var(--accent); color: #fff; font-weight: 600; }
.timeline { list-style: none; margin: 0; padding: 0; }
.timeline li { display: grid; grid-template-columns: 140px 92px minmax(0, 1fr); gap: 2px 10px; padding: 6px 0;
  border-top: 1px solid var(--line); font-size: 14px; }
.timeline li:first-child { border-top: 0; }
.timeline time { color: var(--muted); font-variant-numeric: tabular-nums; }
.kind { font-size: 12px; border-radius: 10px; padding: 1px 8px; justify-self: start; background: #eef1f5; }
.kind.order { background: #e3f4e6; } .kind.touch { background: #fff1d6; } .kind.response { background: #f4e6ff; }
.timeline .what b { font-weight: 600; }
.timeline .what span { color: var(--muted); }
table.models { border-collapse: collapse; width: 100%; font-size: 14px; }
table.models th, table.models td { text-align: left; padding: 4px 8px 4px 0; border-top: 1px solid var(--line);
  overflow-wrap: anywhere; }
button.more { margin-top: 8px; background: #e8eef7; color: var(--ink); }
.err { color: #a40e26; }
@media (max-width: 760px) {
  .grid { grid-template-columns: minmax(0, 1fr); }
  main { padding: 12px 10px 32px; }
  .top { padding: 10px 12px; }
  .timeline li { grid-template-columns: minmax(0, 1fr) auto; }
  .timeline .what { grid-column: 1 / -1; }
  .big { font-size: 28px; }
  table.models .trained, table.models .alias { display: none; }
  /* one column, the scores first */
  .col { display: contents; }
  [data-testid=lead] { order: 1; } [data-testid=churn] { order: 2; } [data-testid=segment] { order: 3; }
  [data-testid=attributes] { order: 4; } [data-testid=funnel] { order: 5; } [data-testid=timeline] { order: 6; }
  [data-testid=models] { order: 7; }
}
"""

_JS = r"""
'use strict';
(() => {
  const KEY = 'crmscore.apiKey';
  const $ = (id) => document.getElementById(id);
  const SVG = 'http://www.w3.org/2000/svg';
  const FIRST_EVENTS = 12;

  function el(tag, props, ...kids) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (v === null || v === undefined || v === false) continue;
      if (k === 'text') e.textContent = v;
      else if (k === 'class') e.className = v;
      else e.setAttribute(k, v === true ? '' : String(v));
    }
    for (const k of kids) if (k !== null && k !== undefined) e.append(k);
    return e;
  }
  function sv(tag, attrs) {
    const e = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, String(v));
    return e;
  }
  const fmt = {
    pct: (p) => (p === null || p === undefined) ? '–' : (100 * p).toFixed(1) + '%',
    num: (x, d) => (x === null || x === undefined) ? '–' : Number(x).toFixed(d),
    money: (x) => (x === null || x === undefined) ? '–' : '¥' + Number(x).toLocaleString('en-US',
      {minimumFractionDigits: 2, maximumFractionDigits: 2}),
    time: (s) => s ? s.replace('T', ' ').slice(0, 16) : '–',
    day: (s) => s ? s.slice(0, 10) : '–',
    value: (v) => (v === null || v === undefined) ? 'missing' :
      (typeof v === 'number' ? (Number.isInteger(v) ? String(v) : v.toFixed(2)) : String(v)),
  };

  class AuthError extends Error {}

  function key() { return sessionStorage.getItem(KEY); }

  async function api(path, body) {
    const opts = {method: body ? 'POST' : 'GET', cache: 'no-store',
      headers: {'Authorization': 'Bearer ' + (key() || '')}};
    if (body) {
      opts.headers['Content-Type'] = 'application/json';
      opts.body = JSON.stringify(body);
    }
    const r = await fetch(path, opts);
    let data = {};
    try { data = await r.json(); } catch (e) { data = {}; }
    if (r.status === 401) throw new AuthError(data.error || 'API key refused');
    if (!r.ok) throw new Error(data.error || ('HTTP ' + r.status));
    return data;
  }

  function say(text, isError) {
    const m = $('msg');
    m.textContent = text || '';
    m.hidden = !text;
    m.classList.toggle('error', !!isError);
  }
  function clearData() {
    $('profile').replaceChildren();
    $('profile').hidden = true;
    $('result-list').replaceChildren();
    $('results').hidden = true;
    $('meta').textContent = '';
  }
  function askKey(reason) {
    sessionStorage.removeItem(KEY);
    clearData();
    $('searchbox').hidden = true;
    $('signout').hidden = true;
    $('keybox').hidden = false;
    say(reason || '', !!reason);
    $('key').value = '';
    $('key').focus();
  }
  function failed(e) {
    if (e instanceof AuthError) askKey('The API key was refused: ' + e.message);
    else say(e.message || String(e), true);
  }

  async function start() {
    try {
      const s = await api('/ui/api/status');
      $('keybox').hidden = true;
      $('searchbox').hidden = false;
      $('signout').hidden = false;
      $('meta').textContent = s.customers.toLocaleString('en-US') + ' customers · as of ' +
        fmt.time(s.as_of) + ' (' + s.as_of_source + ')';
      $('meta').dataset.asOf = s.as_of;
      say('');
      $('q').focus();
    } catch (e) { failed(e); }
  }

  async function search(q) {
    say('');
    $('results').hidden = true;
    try {
      const r = await api('/ui/api/search', {q: q});
      if (r.total === 0) {
        $('profile').hidden = true;
        say('No match: no customer has the id or a name containing “' + q + '”.');
        return;
      }
      if (r.total === 1) { await openProfile(r.matches[0].customer_id); return; }
      showResults(q, r);
    } catch (e) { failed(e); }
  }

  function showResults(q, r) {
    $('profile').hidden = true;
    const list = $('result-list');
    list.replaceChildren();
    const shown = r.matches.length;
    $('results-title').textContent = r.total + ' customers match “' + q + '”' +
      (r.truncated ? ' — showing the first ' + shown + '; type more of the name to narrow it down' : '');
    for (const m of r.matches) {
      const b = el('button', {type: 'button', 'data-id': m.customer_id},
        el('span', {class: 'rname', text: m.name || '(no name)'}),
        el('span', {class: 'rid', text: m.customer_id}),
        el('span', {class: 'rwhere', text: [m.province, m.city].filter(Boolean).join(' ') || ''}),
        el('span', {class: 'rwhere', text: m.member_level ? 'member: ' + m.member_level : ''}),
        el('span', {class: 'rwhere', text: 'since ' + fmt.day(m.created_at)}));
      b.addEventListener('click', () => openProfile(m.customer_id));
      list.append(el('li', {}, b));
    }
    $('results').hidden = false;
  }

  async function openProfile(id) {
    try {
      say('Loading ' + id + ' …');
      performance.mark('profile-start');
      const p = await api('/ui/api/profile', {customer_id: id});
      say('');
      render(p);
      performance.measure('profile', 'profile-start');  // request + drawing (bench/bench_profile_page.py)
    } catch (e) { failed(e); }
  }

  // ------------------------------------------------------------------ rendering
  const ATTRS = [
    ['customer_id', 'Customer id · 客户编号'], ['name', 'Name · 姓名', 1], ['phone', 'Phone · 电话', 1],
    ['email', 'Email · 邮箱', 1], ['address', 'Address · 地址', 1], ['created_at', 'Created · 创建时间'],
    ['source_channel', 'Source channel · 来源'], ['province', 'Province · 省份'], ['city', 'City · 城市'],
    ['industry', 'Industry · 行业'], ['company_size', 'Company size · 公司规模'], ['job_title', 'Job title · 职位'],
    ['gender', 'Gender · 性别'], ['age', 'Age · 年龄'], ['member_level', 'Member level · 会员等级'],
    ['points_balance', 'Points · 积分'], ['marketing_consent', 'Marketing consent · 营销许可'],
  ];

  function card(title, sub, testid, span) {
    const h = el('h2', {}, title);
    if (sub) h.append(' ', el('span', {class: 'sub', text: sub}));
    return el('section', {class: 'card' + (span ? ' span2' : '') + (testid === 'churn' ? ' risk' : ''),
                          'data-testid': testid}, h);
  }

  function attrsCard(c) {
    const s = card('Attributes · 基本信息', null, 'attributes');
    const dl = el('dl', {class: 'attrs'});
    for (const [k, label, pii] of ATTRS) {
      let v = c[k];
      if (k === 'created_at') v = fmt.time(v);
      else if (typeof v === 'boolean') v = v ? 'yes' : 'no';
      else if (v === null || v === undefined || v === '') v = '–';
      const dt = el('dt', {text: label});
      if (pii) dt.append(el('span', {class: 'pii', text: 'PII', title: 'personal data: shown only here'}));
      dl.append(dt, el('dd', {'data-field': k, text: String(v)}));
    }
    s.append(dl);
    return s;
  }

  function reasonChart(res, upText, downText) {
    const wrap = el('div', {class: 'chart'});
    const all = [...res.reasons.positive, ...res.reasons.negative];
    const scale = Math.max(1e-9, ...all.map((r) => Math.abs(r.contribution)));
    for (const [items, cls, title] of [[res.reasons.positive, 'up', upText],
                                       [res.reasons.negative, 'down', downText]]) {
      if (!items.length) continue;
      const ul = el('ul', {class: 'reasons', 'data-direction': cls});
      wrap.append(el('h3', {class: 'reasons-title', text: title}), ul);
      for (const r of items) {
        const w = 98 * Math.abs(r.contribution) / scale;
        const svg = sv('svg', {viewBox: '0 0 200 12', preserveAspectRatio: 'none', role: 'img',
          'aria-label': r.label + ' ' + r.contribution.toFixed(3)});
        svg.append(sv('rect', {x: r.contribution >= 0 ? 100 : 100 - w, y: 1, width: w, height: 10, class: cls}),
                   sv('line', {x1: 100, x2: 100, y1: 0, y2: 12, class: 'axis'}));
        ul.append(el('li', {class: 'reason ' + cls, 'data-feature': r.feature,
                            'data-contribution': String(r.contribution)},
          el('div', {class: 'rlabel'}, el('span', {text: r.label}),
             el('span', {class: 'rval', text: '= ' + fmt.value(r.value)})),
          el('div', {class: 'rbar'}, svg,
             el('span', {class: 'rnum', text: (r.contribution > 0 ? '+' : '') + r.contribution.toFixed(3)}))));
      }
    }
    if (!all.length) wrap.append(el('p', {class: 'note', text: 'No reasons: every feature is at its average.'}));
    return wrap;
  }

  function modelLine(res) {
    return el('p', {class: 'muted', 'data-testid': 'model-version',
      text: 'model ' + res.model + ' v' + res.model_version});
  }

  function scoreCard(kind, res, status) {
    const isLead = kind === 'lead';
    const s = card(isLead ? 'Lead score · 线索评分' : 'Churn risk · 流失风险',
      isLead ? 'probability of a first paid order in the horizon' : 'probability of no paid order in the horizon',
      kind);
    if (res.error) { s.append(el('p', {class: 'err', text: res.error})); return s; }
    const applies = isLead ? status.is_lead : status.is_active;
    s.append(el('div', {class: 'headline'},
      el('span', {class: 'big', 'data-testid': kind + '-score', 'data-value': String(res.score),
                  text: String(res.score)}),
      el('span', {class: 'grade ' + res.grade, 'data-testid': kind + '-grade', text: res.grade,
                  title: 'grade A–D (cut points ' + (res.grade_thresholds || []).join('/') + ')'}),
      el('span', {'data-testid': kind + '-probability', 'data-value': String(res.probability),
                  text: 'p = ' + fmt.num(res.probability, 4)})));
    if (!applies) {
      s.append(el('p', {class: 'note warn', text: isLead
        ? 'This model scores leads (no paid order yet); this customer has ' + status.paid_orders + ' paid order(s).'
        : 'This model scores active customers (a paid order in the last ' + status.churn_lookback_days +
          ' days); this customer has ' + (status.paid_orders ? 'none that recent.' : 'no paid order.')}));
    }
    if (res.unknown_categories && res.unknown_categories.length) {
      s.append(el('p', {class: 'note', text: 'Values the model never saw: ' + res.unknown_categories.join(', ')}));
    }
    s.append(reasonChart(res, isLead ? 'Raise the score' : 'Raise the risk',
                         isLead ? 'Lower the score' : 'Lower the risk'));
    s.append(modelLine(res));
    return s;
  }

  function segmentCard(g) {
    const s = card('Segment & value · 分群与价值', null, 'segment');
    if (g.error) { s.append(el('p', {class: 'err', text: g.error})); return s; }
    const dl = el('dl', {class: 'kv'});
    const row = (label, testid, text, value) => dl.append(el('dt', {text: label}),
      el('dd', {'data-testid': testid, 'data-value': value === undefined || value === null ? null : String(value),
                text: text}));
    row('RFM segment', 'seg-rfm', g.rfm_segment);
    row('R / F / M', 'seg-rfm-scores', g.r_score + ' / ' + g.f_score + ' / ' + g.m_score);
    const tier = el('dd', {'data-testid': 'seg-tier', 'data-value': g.value_tier},
      g.value_tier + ' ', el('span', {class: 'chip', 'data-testid': 'seg-tier-zh', text: g.value_tier_zh || '–'}));
    dl.append(el('dt', {text: 'Value tier · 价值等级'}), tier);
    row('Cluster', 'seg-cluster', '#' + g.cluster + ' · ' + g.cluster_description, g.cluster);
    row('P(alive)', 'seg-palive', fmt.pct(g.p_alive), g.p_alive);
    row('Expected purchases', 'seg-ep', fmt.num(g.expected_purchases, 2) + ' in ' + g.horizon_days + ' days',
        g.expected_purchases);
    row('Expected value', 'seg-ev', fmt.money(g.expected_value) + ' in ' + g.horizon_days + ' days',
        g.expected_value);
    s.append(dl, modelLine(g));
    return s;
  }

  function funnelCard(f, st) {
    const s = card('Funnel · 转化漏斗', f.stage ? 'reached: ' + f.stage + ' (' + f.depth + ' of ' +
      f.stages.length + ')' : 'no funnel step yet', 'funnel');
    const ol = el('ol', {class: 'funnel'});
    f.stages.forEach((name, i) => ol.append(el('li', {
      class: (i < f.depth ? 'on' : '') + (i === f.depth - 1 ? ' here' : ''),
      'data-stage': name, text: name})));
    s.append(ol, el('p', {class: 'note', text: st.paid_orders + ' paid order(s)' +
      (st.last_paid_order ? ', the last on ' + fmt.day(st.last_paid_order) : '') + '.'}));
    return s;
  }

  function timelineCard(p) {
    const shown = p.timeline.length;
    const s = card('Recent history · 最近动态', shown < p.timeline_total
      ? 'latest ' + shown + ' of ' + p.timeline_total : p.timeline_total + ' event(s)', 'timeline', true);
    const ol = el('ol', {class: 'timeline'});
    p.timeline.forEach((t, i) => {
      ol.append(el('li', {'data-kind': t.kind, hidden: i >= FIRST_EVENTS},
        el('time', {datetime: t.ts, text: fmt.time(t.ts)}),
        el('span', {class: 'kind ' + t.kind, text: t.kind}),
        el('span', {class: 'what'}, el('b', {text: t.title}), ' ', el('span', {text: t.detail}))));
    });
    if (!shown) s.append(el('p', {class: 'note', text: 'No events at or before the as-of time.'}));
    s.append(ol);
    if (shown > FIRST_EVENTS) {
      const more = el('button', {type: 'button', class: 'more', 'data-testid': 'timeline-more',
                                 text: 'Show all ' + shown});
      more.addEventListener('click', () => {
        for (const li of ol.children) li.hidden = false;
        more.remove();
      });
      s.append(more);
    }
    return s;
  }

  function modelsCard(models) {
    const s = card('Models · 模型版本', 'the versions that produced the numbers above', 'models', true);
    const tb = el('tbody');
    for (const [kind, m] of Object.entries(models)) {
      tb.append(el('tr', {'data-kind': kind}, el('td', {text: kind}), el('td', {text: m.name}),
        el('td', {text: m.loaded ? 'v' + m.version : 'not loaded'}), el('td', {class: 'alias', text: '@' + m.alias}),
        el('td', {class: 'trained', text: m.trained_at ? 'trained ' + m.trained_at : (m.error || '')})));
    }
    s.append(el('table', {class: 'models'}, el('thead', {}, el('tr', {},
      el('th', {text: 'Use'}), el('th', {text: 'Model'}), el('th', {text: 'Version'}),
      el('th', {class: 'alias', text: 'Alias'}),
      el('th', {class: 'trained', text: 'Trained'}))), tb));
    return s;
  }

  function render(p) {
    $('results').hidden = true;
    const c = p.customer;
    const root = $('profile');
    const title = el('div', {class: 'title'},
      el('h1', {'data-testid': 'name', text: c.name || '(no name)'}),
      el('span', {class: 'cid', 'data-testid': 'customer-id', text: c.customer_id}),
      el('span', {class: 'muted', 'data-testid': 'as-of', 'data-value': p.as_of,
                  text: 'as of ' + fmt.time(p.as_of) + ' · ' + p.as_of_source}));
    const grid = el('div', {class: 'grid'});
    const left = el('div', {class: 'col'}), right = el('div', {class: 'col'});
    left.append(attrsCard(c), segmentCard(p.segment), funnelCard(p.funnel, p.status));
    right.append(scoreCard('lead', p.lead, p.status), scoreCard('churn', p.churn, p.status));
    grid.append(left, right, timelineCard(p), modelsCard(p.models));
    root.replaceChildren(title, grid);
    root.hidden = false;
    root.dataset.customerId = c.customer_id;
    window.scrollTo(0, 0);
  }

  // ------------------------------------------------------------------ wiring
  $('keyform').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const k = $('key').value.trim();
    if (!k) return;
    sessionStorage.setItem(KEY, k);
    start();
  });
  $('searchform').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const q = $('q').value.trim();
    if (q) search(q);
  });
  $('signout').addEventListener('click', () => askKey(''));
  if (key()) start(); else askKey('');
})();
"""
