"""The profile page's HTTP responses: the page itself and its JSON API.

Routes (mounted by ``serving/http/service.py``):

* ``GET /ui``: the page (static HTML, CSS and JavaScript, no customer data; open);
* ``GET /ui/api/status``, ``POST /ui/api/search``, ``POST /ui/api/profile``: need ``Authorization: Bearer <key>``
  (the page asks for the key once and keeps it in the tab's ``sessionStorage``). Search terms travel in
  POST bodies, never in URLs, so a name never lands in an access log or the browser history.

PII (name, phone, email, address) is returned only by these authenticated calls and is never logged.

The page is three files shipped as package data in ``serving/ui/static/``: ``profile.html`` (with the
placeholders ``/*CSS*/`` and ``/*JS*/``), ``profile.css`` and ``profile.js``. They are read once, when this
module is imported (service start-up), through :mod:`importlib.resources`; the stylesheet and the script are
inlined into the HTML, and the Content-Security-Policy carries the SHA-256 of exactly that inlined text, so
the page runs its own script and style and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.resources
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from features.messages import M_
from serving.access import views
from serving.access.roles import Principal
from serving.ui.index import _SEARCH_FIELDS, MAX_QUERY_CHARS, SEARCH_LIMIT, TIMELINE_LIMIT, ProfileError

log = logging.getLogger("crmscore.serving")


# --------------------------------------------------------------------------------------------- HTTP
def _json(payload: Any, status: int = 200) -> Any:
    from pydantic_core import to_json
    from starlette.responses import Response

    return Response(
        to_json(payload), status_code=status, media_type="application/json",
        headers={"Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"},
    )


def _error(status: int, message: object) -> Any:
    """The shared error body, its message in the request's language (``M_`` messages; field names stay)."""
    import re

    from serving.http.schemas import error_body
    from serving.i18n import localized

    english, text = str(message), localized(message)
    field_name, _sep, reason = english.partition(":")
    if text != english:  # the reason of the translated message (after the field and a colon of either width)
        reason = re.sub(rf"^{re.escape(field_name)}\s*[:：]\s*", "", text)
    return _json(error_body(text, [{"field": field_name, "reason": reason.strip() or text}]), status)


async def _body_field(request: Any, name: str, max_chars: int) -> str:
    """One string field of a JSON object body, checked (400/422 naming the field; the value is never echoed)."""
    import json

    raw = await request.body()
    try:
        data = json.loads(raw or b"null")
    except ValueError:
        raise ProfileError(400, M_("body: not valid JSON")) from None
    if not isinstance(data, dict):
        raise ProfileError(422, M_("body: expected a JSON object with '{name}'", name=name))
    extra = sorted(set(data) - {name})
    if extra:
        raise ProfileError(422, M_("{field}: unknown field (expected only '{name}')", field=extra[0], name=name))
    value = data.get(name)
    if not isinstance(value, str):
        raise ProfileError(422, M_("{name}: required, a string", name=name))
    if not value.strip():
        raise ProfileError(422, M_("{name}: empty; type a customer id or a part of a name", name=name))
    if len(value) > max_chars:
        raise ProfileError(422, M_("{name}: longer than {max_chars} characters", name=name, max_chars=max_chars))
    return value


def status_response(service: Any) -> Any:
    """GET /ui/api/status: what the page's data is (size, as_of, when loaded)."""
    from serving.ui.page import model_versions  # serving.ui.page imports this module

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
    """POST /ui/api/search ``{"q": "..."}``: customers whose id is ``q`` or whose name contains it, within the
    caller's scope (PII masked for roles without PII access); one audit line (ids found, never the query)."""
    import anyio

    principal = views.principal_of(request)
    try:
        index = service.profiles.require()
        q = await _body_field(request, "q", MAX_QUERY_CHARS)
    except ProfileError as e:
        return _error(e.status, e.message)

    def run() -> dict[str, Any]:
        views.apply_tombstones(service, index)
        found = index.search(q, allowed=views.allowed_rows(index, principal))
        matches = [views.shown(index.summary_of(r), principal) for r in found.rows]
        views.record_view("search", principal, [m["customer_id"] for m in matches], list(_SEARCH_FIELDS),
                          getattr(service, "home", None), by=found.by, total=found.total)
        return {
            "by": found.by,
            "total": found.total,
            "limit": SEARCH_LIMIT,
            "truncated": found.total > len(found.rows),
            "matches": matches,
        }

    try:
        payload = await anyio.to_thread.run_sync(run)
    except Exception as e:  # noqa: BLE001 - never a traceback (it could quote PII) to the log or the client
        log.error("search failed: %s", type(e).__name__)
        return _error(500, M_("search: internal error ({error})", error=type(e).__name__))
    return _json(payload)


async def customer_response(
    service: Any, request: Any, what: str, build: Callable[[Any, str, Principal], dict[str, Any]]
) -> Any:
    """A POST ``{"customer_id": "..."}`` of the page: ``build(index, customer_id, principal)`` in a worker thread
    once the customer is known to be in the caller's scope (404 otherwise, as for an unknown customer); any
    other failure is a 500 naming only the exception type (a traceback could quote PII)."""
    principal = views.principal_of(request)
    cid = "?"

    def run(index: Any, cid: str) -> dict[str, Any]:
        views.apply_tombstones(service, index)
        if views.visible_row(index, principal, cid) is None:
            raise ProfileError(404, views.NOT_FOUND)
        return build(index, cid, principal)

    try:
        index = service.profiles.require()
        cid = await _body_field(request, "customer_id", 200)
        payload = await service._offload(run, index, cid)
    except ProfileError as e:
        return _error(e.status, e.message)
    except Exception as e:  # noqa: BLE001 - never a traceback (it could quote PII) to the log or the client
        log.error("%s of customer %s failed: %s", what, cid, type(e).__name__)
        return _error(500, M_("{what}: internal error ({error})", what=what, error=type(e).__name__))
    return _json(payload)


async def profile_response(service: Any, request: Any) -> Any:
    """POST /ui/api/profile ``{"customer_id": "..."}``: the customer's profile, scores, segment and timeline;
    404 for a customer outside the caller's scope (as for an unknown one), PII masked for roles without PII
    access, and one audit line per view."""
    from serving.ui.page import build_profile  # serving.ui.page imports this module

    def build(index: Any, cid: str, principal: Principal) -> dict[str, Any]:
        payload = build_profile(service, index, cid)
        payload["customer"] = views.shown(payload["customer"], principal)
        payload["pii_masked"] = not principal.sees_pii
        views.record_view("view_profile", principal, [cid], list(payload["customer"]), getattr(service, "home", None))
        return payload

    return await customer_response(service, request, "profile", build)


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


@dataclass(frozen=True)
class PageAssets:
    """The page as served: the HTML with its stylesheet and script inlined, and the matching policy."""

    html: str
    csp: str


def _static_text(name: str) -> str:
    """One file of ``serving/ui/static/`` (package data), as text; a missing file names itself."""
    resource = importlib.resources.files("serving.ui").joinpath("static", name)
    try:
        return resource.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise FileNotFoundError(
            f"serving/ui/static/{name}: the profile page's file is missing from the installed package "
            "(package data: pyproject [tool.setuptools.package-data], bentofile.yaml include)"
        ) from None


def _csp_source(text: str) -> str:
    """A CSP source expression allowing exactly ``text`` as an inline script or style."""
    return "'sha256-" + base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode() + "'"


def page_messages_json(page: str, js: str) -> str:
    """The page's messages in every language (``serving.i18n`` catalogue) and the default language, as JSON:
    ``{"default": "zh" | "en" | "", "messages": {"zh": {english: chinese}}}``. The default is
    ``$CRMSCORE_LANG`` when set, else empty (the browser's language decides); the page remembers a switch."""
    import json
    import os

    from serving.i18n import LANGUAGES, normalize_language, translate
    from serving.i18n.catalogue import page_message_ids

    ids = page_message_ids(page, js)
    default = normalize_language(os.environ.get("CRMSCORE_LANG")) or ""
    messages = {lang: {m: translate(m, lang) for m in ids} for lang in LANGUAGES if lang != "en"}
    return json.dumps({"default": default, "messages": messages}, ensure_ascii=False, sort_keys=True)


def load_page() -> PageAssets:
    """Read ``profile.html``, ``profile.css`` and ``profile.js``, inline the last two into the HTML (at its
    ``/*CSS*/`` and ``/*JS*/`` placeholders) with the page's message catalogue (at ``/*I18N*/``, a ``<meta>``
    the script reads) and compute the Content-Security-Policy from their hashes."""
    import html as _html

    page, css, js = (_static_text(n) for n in ("profile.html", "profile.css", "profile.js"))
    for placeholder in ("/*CSS*/", "/*JS*/", "/*I18N*/"):
        if page.count(placeholder) != 1:
            raise ValueError(f"serving/ui/static/profile.html: expected the placeholder {placeholder} exactly once")
    catalogue = _html.escape(page_messages_json(page, js), quote=True)
    html = page.replace("/*I18N*/", catalogue, 1).replace("/*CSS*/", css, 1).replace("/*JS*/", js, 1)
    csp = (
        f"default-src 'none'; script-src {_csp_source(js)}; style-src {_csp_source(css)}; connect-src 'self'; "
        "img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
    return PageAssets(html, csp)


#: read once, when the service imports this module (start-up)
PAGE = load_page()


def page_html() -> tuple[str, str]:
    """(the page's HTML, its Content-Security-Policy with the hashes of the inline script and style)."""
    return PAGE.html, PAGE.csp
