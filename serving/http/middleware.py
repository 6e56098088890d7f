"""The ASGI middleware in front of the scoring service: API keys, body limits, overload shedding, clear 4xx
messages and per-model metrics.

:class:`GuardMiddleware` is added to the service with ``CRMScoring.add_asgi_middleware``; it wraps only the
protected paths (:data:`PROTECTED`): health probes, ``/metrics`` and BentoML's own pages pass straight through.
For a protected request, in this order:

1. the API key (401), the Content-Type (415) and a Content-Length over ``max_body_mb`` (413);
2. on the scoring endpoints (:data:`ENDPOINT_KIND`), admission: a per-key rate limit (429 + ``Retry-After``,
   only when ``rate_limit_per_key`` is set), the worker's event-loop lag (:class:`LoopLag`: 503 + ``Retry-After``
   while the loop runs more than ``max_loop_lag_seconds`` behind) and its concurrency and queue limits
   (:class:`Admission`: 503 + ``Retry-After`` at once when the queue is full, or when a queued request waited
   ``queue_timeout_seconds``);
3. BentoML and the service; a body without Content-Length that outgrows the limit ends as a 413, and
   BentoML's pydantic 400s are rewritten into one message naming the field (422, or 400 for malformed JSON).

Every response of a protected path carries ``x-crmscore-worker`` (the BentoML worker index), so a client or a
test can tell which worker answered (the hot-swap contract is per worker, docs/serving.md).

May import ``serving.settings``, ``serving.http.schemas`` and ``serving.http.postprocess``; never the service.
"""

from __future__ import annotations

import asyncio
import functools
import json
import logging
import math
import os
import time
from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any

from pydantic_core import ValidationError, to_json

from serving.access.keys import Authenticator
from serving.access.roles import ENDPOINT_ACTIONS, Principal
from serving.http.postprocess import format_validation_errors
from serving.http.schemas import error_body
from serving.http.schemas_actions import CROSS_SELL_PATHS
from serving.i18n import N_, _, get_language, localized, request_language, using_language
from serving.settings import ServingSettings, load_settings
from serving.ui.page import UI_API_PATHS

log = logging.getLogger("crmscore.serving")

#: Endpoint → the kind of model it serves (for per-model metrics and admission).
ENDPOINT_KIND = {"/score_leads": "lead", "/predict_churn": "churn", "/segment": "segments", "/coupon_uplift": "uplift"}
#: Paths that need an API key (everything else, including health and metrics, is open).
PROTECTED = frozenset({*ENDPOINT_KIND, "/route_lead", "/model_info", "/drift", "/forecast", *UI_API_PATHS,
                       *CROSS_SELL_PATHS})
#: BentoML's probes: open, but their not-ready / not-alive answers follow ``?lang=`` / ``Accept-Language`` too
PROBES = frozenset({"/readyz", "/livez"})
#: BentoML's own fixed texts that reach a client (the 500/503 of an API endpoint, the probes' not-ready and
#: not-alive answers, Starlette's bare 500): shown through the catalogue in another language than English
BENTOML_MESSAGES: tuple[str, ...] = (
    N_("An unexpected error has occurred, please check the server log."),
    N_("Service is not ready because .__is_ready__() returns False."),
    N_("Service is dead because .__is_alive__() returns False."),
    N_("Runners are not ready."),
    N_("Internal Server Error"),
)

#: Buckets of ``crmscore_scoring_latency_seconds``: 1 ms to 30 s, each bucket at most 1.28× as wide as the one
#: before (1, 1.25, 1.6, 2 ... 8 per decade), so a quantile read from the bucket counts is placed within a bucket
#: at most 28% wide over the whole range (bench_serving.py --overload reads them). Also the buckets of
#: ``crmscore_loop_lag_at_admission_seconds``.
SCORING_LATENCY_BUCKETS: tuple[float, ...] = tuple(
    round(m * 10.0**e, 6) for e in (-3, -2, -1, 0) for m in (1.0, 1.25, 1.6, 2.0, 2.5, 3.2, 4.0, 5.0, 6.3, 8.0)
) + (10.0, 12.5, 16.0, 20.0, 25.0, 30.0)
#: ``outcome`` label of a scoring request that went past admission (whatever its final status) / was refused
#: by it (503 overload, 429 rate limit); requests refused before admission (401/403/413/415) are not observed.
ACCEPTED, SHED = "accepted", "shed"


@functools.cache
def service_metrics() -> SimpleNamespace:
    """Per-model Prometheus metrics (created once per worker, after BentoML set the multiprocess dir)."""
    from prometheus_client import Counter, Histogram

    return SimpleNamespace(
        requests=Counter("crmscore_requests_total", "Requests per model endpoint", ["model", "endpoint"]),
        errors=Counter(
            "crmscore_request_errors_total", "Requests answered with 4xx/5xx", ["model", "endpoint", "status"]
        ),
        latency=Histogram(
            "crmscore_request_latency_seconds",
            "Request latency per model endpoint, parsing to response",
            ["model", "endpoint"],
            buckets=(0.001, 0.002, 0.004, 0.008, 0.016, 0.032, 0.064, 0.128, 0.256, 0.512, 1.0, 2.0, 5.0, 10.0),
        ),
        outcome_latency=Histogram(
            "crmscore_scoring_latency_seconds",
            "Scoring endpoints: middleware entry to response sent, by admission outcome (accepted or shed)",
            ["endpoint", "outcome"],
            buckets=SCORING_LATENCY_BUCKETS,
        ),
        admission_lag=Histogram(
            "crmscore_loop_lag_at_admission_seconds",
            "Scoring endpoints: the worker's event-loop lag when a request was admitted (roughly how long it "
            "waited, read but not yet handled, before the middleware saw it)",
            ["endpoint"],
            buckets=SCORING_LATENCY_BUCKETS,
        ),
        rows=Counter("crmscore_rows_scored_total", "Leads or customers scored", ["model", "version"]),
        swaps=Counter("crmscore_model_swaps_total", "Hot swaps to a new model version", ["model"]),
        shed=Counter(
            "crmscore_requests_shed_total", "Requests refused by overload protection (503) or rate limit (429)",
            ["endpoint", "reason"],
        ),
    )


def worker_label() -> str:
    """This worker's BentoML index (``"0"``, ``"1"``...), or ``pid-<pid>`` outside a BentoML server."""
    try:
        import bentoml

        index = bentoml.server_context.worker_index
    except Exception:  # noqa: BLE001 - outside a server the context may be missing
        index = None
    return str(index) if index is not None else f"pid-{os.getpid()}"


# ----------------------------------------------------------------------------------------- admission
class Admission:
    """Concurrency and queue limits of one worker's scoring endpoints (event-loop only, no threads).

    At most ``max_concurrency`` requests are inside the service at once; up to ``max_queue`` more wait in
    arrival order. A request that finds the queue full is refused at once, and one that waited
    ``queue_timeout`` seconds without a turn is refused then: the caller answers both with 503 and
    ``Retry-After``. So an accepted request waits at most ``queue_timeout`` before it is scored, and the
    memory held by waiting requests is bounded by ``max_queue``. ``max_concurrency`` None turns it off.

    An admitted request gives the event loop one pass (``await asyncio.sleep(0)``) before it goes on. Small
    requests are scored on the loop without awaiting anything, so without that pass each one would run from
    admission to response in one go: the requests that arrived together would be admitted one after another,
    each finding the previous one finished, never more than one "in progress", and a refusal would go out only
    when the loop reached it behind all the scoring (seconds under overload). With the pass, every request of a
    loop pass is admitted, queued or refused *before* any of them is scored: at most ``max_concurrency`` run
    per pass, the queue fills, and the rest get their 503 at once, one pass after they were read.
    """

    def __init__(self, max_concurrency: int | None, max_queue: int, queue_timeout: float) -> None:
        self.max_concurrency = max_concurrency
        self.max_queue = max_queue
        self.queue_timeout = queue_timeout
        self.active = 0
        self._waiters: list[asyncio.Future[None]] = []

    @property
    def queued(self) -> int:
        """Requests waiting for a turn."""
        return len(self._waiters)

    async def acquire(self) -> str | None:
        """Take a turn; None when admitted (call :meth:`release` afterwards), else why it was refused."""
        if self.max_concurrency is None:
            self.active += 1
            return None
        if self.active < self.max_concurrency and not self._waiters:
            self.active += 1
            try:
                await asyncio.sleep(0)  # one loop pass: the others read with this one are admitted or refused first
            except BaseException:  # cancelled (the client went away) during the pass
                self.release()
                raise
            return None
        if len(self._waiters) >= self.max_queue:
            return "queue full"
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        try:
            await asyncio.wait_for(asyncio.shield(fut), self.queue_timeout)
        except TimeoutError:
            if fut.done():  # the turn came at the last moment: pass it on
                self.release()
            else:
                self._waiters.remove(fut)
            return "queue timeout"
        except BaseException:  # cancelled (the client went away) while waiting
            if fut.done():
                self.release()
            elif fut in self._waiters:
                self._waiters.remove(fut)
            raise
        return None  # the releasing request passed its turn on (active unchanged)

    def release(self) -> None:
        """End an admitted request: its turn goes to the oldest waiting request, if any."""
        self.active -= 1
        self._hand_on()

    def _hand_on(self) -> None:
        while self._waiters:
            fut = self._waiters.pop(0)
            if not fut.done():
                self.active += 1
                fut.set_result(None)
                return


class LoopLag:
    """How far behind this worker's event loop runs: a timer every ``interval`` seconds notes how late it fired.

    Small scoring requests are scored on the event loop, so they are never "in progress" together and a
    concurrency limit does not see them pile up: under overload they wait as ready tasks and unread sockets
    before the middleware is even called. The loop's lag measures exactly that wait; while it is above the
    limit, new scoring requests are refused at once (cheap: a 503 without parsing the body), the backlog
    drains, and the requests that are accepted wait about the limit at most.
    """

    def __init__(self, interval: float = 0.02) -> None:
        self.interval = interval
        self.lag = 0.0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        """Start measuring on the running loop (idempotent; called from the first request)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="crmscore-loop-lag")

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            due = loop.time() + self.interval
            await asyncio.sleep(self.interval)
            # smoothed downwards only: one prompt tick after a stall does not declare the backlog gone
            self.lag = max(0.0, loop.time() - due, self.lag * 0.8)


class KeyRateLimiter:
    """Token bucket per API key: ``rate`` requests per second with bursts of ``burst`` (one worker's share)."""

    def __init__(self, rate: float, burst: int) -> None:
        self.rate = rate
        self.burst = float(max(1, burst))
        self._buckets: dict[bytes, tuple[float, float]] = {}

    def take(self, key: bytes, now: float | None = None) -> float:
        """0 when the request may go ahead, else the seconds until the key has a token again."""
        now = time.monotonic() if now is None else now
        tokens, last = self._buckets.get(key, (self.burst, now))
        tokens = min(self.burst, tokens + (now - last) * self.rate)
        if tokens >= 1.0:
            self._buckets[key] = (tokens - 1.0, now)
            return 0.0
        self._buckets[key] = (tokens, now)
        return (1.0 - tokens) / self.rate


# ---------------------------------------------------------------------------------------- the guard
class GuardMiddleware:
    """Pure ASGI middleware in front of the service: API keys, body limits, admission, clear 4xx, metrics.

    * protected paths need ``Authorization: Bearer <key>`` (keys compared with ``hmac.compare_digest``);
    * bodies larger than ``max_body_mb`` get 413, non-JSON bodies 415;
    * scoring endpoints beyond the per-key rate limit get 429, beyond the worker's concurrency and queue
      limits 503, both with ``Retry-After`` and without reading the body;
    * BentoML's pydantic 400s are rewritten to one message naming the field (422; 400 for malformed JSON);
    * per-endpoint request / error / latency / shed metrics, the scoring endpoints' latency by admission outcome
      (``crmscore_scoring_latency_seconds{endpoint, outcome}``), and the ``x-crmscore-worker`` header.
    """

    def __init__(self, app: Any, settings: ServingSettings | None = None) -> None:
        s = settings or load_settings()
        self.app = app
        self.auth = Authenticator.from_env()  # keys file (roles, hot reload) + the shared CRMSCORE_API_KEYS
        self.max_body = int(s.max_body_mb * 1024 * 1024)
        self.names = {k: getattr(s.models, k) for k in ("lead", "churn", "segments", "uplift")}
        self.admission = Admission(s.max_concurrency, s.max_queue, s.queue_timeout_seconds)
        self.max_lag = s.max_loop_lag_seconds
        self.loop_lag = LoopLag()
        self.retry_after = str(max(1, math.ceil(s.retry_after_seconds))).encode()
        self.limiter = None
        if s.rate_limit_per_key is not None:  # the service-wide rate, shared out over the workers
            share = s.rate_limit_per_key / s.workers
            burst = s.rate_limit_burst or max(1, math.ceil(s.rate_limit_per_key))
            self.limiter = KeyRateLimiter(share, max(1, math.ceil(burst / s.workers)))
        self.worker = worker_label().encode()
        install_client_error_redaction()

    def _model_label(self, path: str) -> str:
        kind = ENDPOINT_KIND.get(path)
        return "-" if kind is None else self.names[kind]

    def _authorised(self, headers: Sequence[tuple[bytes, bytes]]) -> tuple[str | None, bytes, Principal | None]:
        """(None, key, principal) when a valid key is given, else (the reason for the 401, b"", None)."""
        auth = next((v for k, v in headers if k == b"authorization"), None)
        if not self.auth.configured():
            return _("no API keys are configured on the server (set CRMSCORE_KEYS_FILE, CRMSCORE_API_KEYS or "
                     "CRMSCORE_API_KEYS_FILE)"), b"", None
        if auth is None:
            return _("missing Authorization header; send 'Authorization: Bearer <key>'"), b"", None
        scheme, _sep, token = auth.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return _("Authorization header must be 'Bearer <key>'"), b"", None
        token = token.strip()
        found = self.auth.authenticate(token)  # constant time in the secret (serving.access.keys)
        return (localized(found), b"", None) if isinstance(found, str) else (None, token, found)

    async def _send_error(self, send: Any, status: int, message: str, extra: list | None = None) -> None:
        body = to_json(error_body(message))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                   (b"x-crmscore-worker", self.worker)]
        headers += extra or []
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in PROTECTED:
            lang = scope_language(scope) if scope["type"] == "http" and path in PROBES else "en"
            if lang == "en":
                await self.app(scope, receive, send)
            else:  # a probe asked in another language: BentoML's not-ready text through the catalogue
                with using_language(lang):
                    await self.app(scope, receive, self._rewriting(send, {"status": 500}))
            return
        with using_language(scope_language(scope)):  # the messages of this request (its handlers see it too)
            await self._guarded(path, scope, receive, send)

    async def _guarded(self, path: str, scope: dict, receive: Any, send: Any) -> None:
        t0 = time.perf_counter()
        state: dict[str, Any] = {"status": 500}
        headers = scope.get("headers") or []
        admitted = False
        try:
            why, key, principal = self._authorised(headers)
            if why is not None or principal is None:
                state["status"] = 401
                await self._send_error(send, 401, why or _("invalid API key"),
                                       [(b"www-authenticate", b'Bearer realm="crmscore"')])
                return
            action = ENDPOINT_ACTIONS.get(path)
            if action is None or not principal.may(action):  # a path without an action: refused (fail closed)
                state["status"] = 403
                await self._send_error(send, 403, _("the role {role} may not call {path} (docs/access.md)").format(
                    role=principal.role, path=path))
                return
            scope["crmscore.principal"] = principal  # read by the profile page's routes (scope, masking, audit)
            if scope.get("method") == "POST":
                ctype = next((v for k, v in headers if k == b"content-type"), b"application/json")
                if ctype.split(b";")[0].strip().lower() not in (b"application/json", b""):
                    state["status"] = 415
                    await self._send_error(send, 415, _("body: Content-Type must be application/json"))
                    return
                length = next((v for k, v in headers if k == b"content-length"), None)
                if length is not None and length.isdigit() and int(length) > self.max_body:
                    state["status"] = 413
                    mb = self.max_body / 1024 / 1024
                    await self._send_error(send, 413, _("body: {n:,} bytes exceed the limit of {mb:g} MB").format(
                        n=int(length), mb=mb))
                    return
                receive = self._limited(receive, state)
            if path in ENDPOINT_KIND:
                refused = await self._admit(path, key, state, receive, send)
                state["outcome"] = SHED if refused else ACCEPTED
                if refused:
                    return
                admitted = True
            await self.app(scope, receive, self._rewriting(send, state))
        finally:
            if admitted:
                self.admission.release()
            self._observe(path, state["status"], time.perf_counter() - t0, state.get("outcome"), state.get("lag"))

    async def _admit(self, path: str, key: bytes, state: dict[str, Any], receive: Any, send: Any) -> bool:
        """Rate limit and admission of a scoring request; True when it was refused (and answered)."""
        if self.limiter is not None:
            wait = self.limiter.take(key)
            if wait > 0:
                state["status"] = 429
                self._count_shed(path, "rate limit")
                retry = str(max(1, math.ceil(wait))).encode()
                await _drain(receive)
                await self._send_error(send, 429, _("rate limit of this API key exceeded; retry later"),
                                       [(b"retry-after", retry)])
                return True
        refused = None
        if self.max_lag is not None:
            self.loop_lag.start()
            if self.loop_lag.lag > self.max_lag:
                refused = f"event loop {self.loop_lag.lag * 1000:.0f} ms behind"
        if refused is None:
            refused = await self.admission.acquire()
            if refused is None:
                if self.max_lag is not None:
                    state["lag"] = self.loop_lag.lag
                return False
        state["status"] = 503
        self._count_shed(path, "loop lag" if refused.startswith("event loop") else refused)
        message = _("service overloaded ({reason}: {active} requests in progress, {queued} waiting in this worker); "
                    "retry later").format(reason=refused, active=self.admission.active, queued=self.admission.queued)
        await _drain(receive)
        await self._send_error(send, 503, message, [(b"retry-after", self.retry_after)])
        return True

    def _count_shed(self, path: str, reason: str) -> None:
        try:
            service_metrics().shed.labels(endpoint=path, reason=reason).inc()
        except Exception:  # noqa: BLE001 - metrics never break a request
            log.debug("metrics update failed", exc_info=True)

    def _limited(self, receive: Any, state: dict[str, Any]) -> Any:
        """Wrap ``receive``: a body (sent without Content-Length) that outgrows the limit ends the request."""
        limit = self.max_body

        async def wrapped() -> dict:
            msg = await receive()
            if msg.get("type") == "http.request":
                state["seen"] = state.get("seen", 0) + len(msg.get("body", b""))
                if state["seen"] > limit:
                    state["too_large"] = True
                    return {"type": "http.disconnect"}
            return msg

        return wrapped

    def _rewriting(self, send: Any, state: dict[str, Any]) -> Any:
        """Wrap ``send``: pass responses through (with the worker header), but turn BentoML's pydantic 400s
        into one clear message (and whatever answer a too-large body produced into a 413); in another language
        than English, BentoML's own 5xx texts (:data:`BENTOML_MESSAGES`) are translated."""
        chunks: list[bytes] = []
        worker = (b"x-crmscore-worker", self.worker)
        translating = get_language() != "en"

        async def wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                if (message["status"] == 400 or state.get("too_large")
                        or (translating and message["status"] >= 500)):
                    state["held"] = message
                    return
                await send({**message, "headers": [*message.get("headers", []), worker]})
                return
            if "held" not in state or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            start = state.pop("held")
            ctype = b"application/json"
            if state.get("too_large"):
                mb = self.max_body / 1024 / 1024
                status, body = 413, to_json(error_body(_("body: larger than the limit of {mb:g} MB").format(mb=mb)))
            elif start["status"] == 400:
                status, body = rewrite_400(b"".join(chunks))
            else:
                status, body = start["status"], translate_bentoml_body(b"".join(chunks))
                ctype = next((v for k, v in start["headers"] if k.lower() == b"content-type"), ctype)
            state["status"] = status
            hdrs = [(k, v) for k, v in start["headers"] if k.lower() not in (b"content-length", b"content-type")]
            hdrs += [(b"content-type", ctype), (b"content-length", str(len(body)).encode()), worker]
            await send({"type": "http.response.start", "status": status, "headers": hdrs})
            await send({"type": "http.response.body", "body": body})

        return wrapped

    def _observe(self, path: str, status: int, seconds: float, outcome: str | None = None,
                 lag: float | None = None) -> None:
        try:
            m = service_metrics()
            model = self._model_label(path)
            m.requests.labels(model=model, endpoint=path).inc()
            m.latency.labels(model=model, endpoint=path).observe(seconds)
            if outcome is not None:
                m.outcome_latency.labels(endpoint=path, outcome=outcome).observe(seconds)
            if lag is not None:
                m.admission_lag.labels(endpoint=path).observe(lag)
            if status >= 400:
                m.errors.labels(model=model, endpoint=path, status=str(status)).inc()
        except Exception:  # noqa: BLE001 - metrics never break a request
            log.debug("metrics update failed", exc_info=True)


def scope_language(scope: dict) -> str:
    """The language of a request's messages: ``?lang=zh|en``, else ``Accept-Language``, else English (JSON keys,
    field names and machine codes stay English)."""
    from urllib.parse import parse_qs

    query = parse_qs((scope.get("query_string") or b"").decode("latin-1")).get("lang", [None])[0]
    header = next((v for k, v in scope.get("headers") or [] if k == b"accept-language"), b"")
    return request_language(header.decode("latin-1"), query)


async def _drain(receive: Any) -> None:
    """Read and drop the rest of a refused request's body (no parsing; at most ``max_body_mb`` through the
    size guard), so the client, still sending, reads the refusal instead of a reset connection."""
    while True:
        msg = await receive()
        if msg.get("type") != "http.request" or not msg.get("more_body"):
            return


def rewrite_400(body: bytes) -> tuple[int, bytes]:
    """BentoML's validation-error body → (status, our error body naming the field)."""
    try:
        data = json.loads(body)
    except ValueError:
        return 400, body
    detail = data.get("detail") if isinstance(data, dict) else None
    if not isinstance(detail, list):  # BentoML's other 400s (not from pydantic): its own English text, if any
        msg = data.get("error") if isinstance(data, dict) else None
        if get_language() == "en":
            return 400, to_json(error_body(str(msg or "bad request")))
        text = _("bad request ({detail})").format(detail=msg) if msg else _("bad request")
        return 400, to_json(error_body(text))
    status, message, errors = format_validation_errors(detail)
    return status, to_json(error_body(message, errors))


def translate_bentoml_body(body: bytes) -> bytes:
    """A 5xx body of BentoML (``{"error": text}``, or the plain text of a probe) in the current language when its
    text is one of :data:`BENTOML_MESSAGES`; any other body unchanged (keys and shape never change)."""
    text = body.decode("utf-8", "replace").strip()
    if text in BENTOML_MESSAGES:
        return _(text).encode()
    try:
        data = json.loads(body)
    except ValueError:
        return body
    if not isinstance(data, dict):
        return body
    changed = {k: _(v) for k, v in data.items() if k in ("error", "detail") and v in BENTOML_MESSAGES}
    return to_json({**data, **changed}) if changed else body


# -------------------------------------------------------------- upstream workaround: PII in BentoML's log
#: The one logger the redaction below touches: BentoML 1.4's ``log_exception`` (``bentoml._internal.server.
#: http_app``), called by ``_bentoml_impl.server.app.ServiceAppFactory.api_endpoint_wrapper`` for every request
#: body that fails pydantic validation.
BENTOML_REQUEST_LOGGER = "bentoml._internal.server.http_app"


class ClientErrorRedaction(logging.Filter):
    """Turn BentoML's ``Exception on /path [POST]`` tracebacks for *client* errors into one warning line.

    Upstream behaviour (BentoML 1.4.x, no upstream issue found; shown by
    ``tests/unit/test_middleware.py::test_pydantic_errors_quote_the_request_body``): a body that fails
    validation is logged with a full traceback whose pydantic message quotes the start and end of the body
    (``input_value=b'...'``), i.e. possibly PII; a body cut off by the size limit logs a ``ClientDisconnect``
    traceback. Both are answered with a 4xx by :class:`GuardMiddleware`, so only the path and the error
    type are kept. This filter sits on that one BentoML logger and rewrites only records carrying one of
    these two exception types; every other record of every logger is untouched.
    """

    CLIENT_ERRORS = ("ValidationError", "ClientDisconnect")

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite matching records in place; never drops a record."""
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ in self.CLIENT_ERRORS:
            detail = ""
            if isinstance(exc, ValidationError):
                try:
                    detail = f" ({exc.error_count()} error(s), first: {exc.errors()[0]['type']})"
                except Exception:  # noqa: BLE001 - best effort, never the input itself
                    detail = ""
            original = record.getMessage()
            record.msg = "%s%s: client error, answered with a 4xx"
            record.args = (original, detail)
            record.exc_info = None
            record.exc_text = None
            record.levelno, record.levelname = logging.WARNING, "WARNING"
        return True


def install_client_error_redaction() -> None:
    """Attach :class:`ClientErrorRedaction` to :data:`BENTOML_REQUEST_LOGGER` (once per process)."""
    target = logging.getLogger(BENTOML_REQUEST_LOGGER)
    if not any(isinstance(f, ClientErrorRedaction) for f in target.filters):
        target.addFilter(ClientErrorRedaction())
