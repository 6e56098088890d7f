"""The BentoML 1.4 scoring service: lead scores, churn risk, customer segments, model info, drift summaries.

Run it with ``crmscore serve`` (or ``bentoml serve serving.http.service:CRMScoring``). Each worker loads
``lead_scoring``, ``churn_risk`` and ``customer_segments`` at the served alias (default ``champion``)
from the Bento it was packed into or from the MLflow registry, follows the alias (hot swap) unless
pinned, records every scored lead for drift monitoring, and refuses bad input with a 4xx whose
message names the field. Scoring endpoints, /model_info and /drift need ``Authorization: Bearer <key>``;
/healthz, /livez, /readyz and /metrics stay open. See docs/serving.md.
"""

from __future__ import annotations

import functools
import gc
import hmac
import json
import logging
import math
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import bentoml
from fastapi import FastAPI
from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response

from serving.http.schemas import (
    Customer,
    FeatureTable,
    Lead,
    ModelInfo,
    ScoreRequest,
    ScoreResponse,
    SegmentRequest,
    SegmentResponse,
    error_body,
)
from serving.ui.page import UI_API_PATHS

log = logging.getLogger("crmscore.serving")

#: Endpoint → the kind of model it serves (for per-model metrics).
ENDPOINT_KIND = {"/score_leads": "lead", "/predict_churn": "churn", "/segment": "segments"}
#: Paths that need an API key (everything else, including health and metrics, is open).
PROTECTED = frozenset({*ENDPOINT_KIND, "/model_info", "/drift", *UI_API_PATHS})


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
        rows=Counter("crmscore_rows_scored_total", "Leads or customers scored", ["model", "version"]),
        swaps=Counter("crmscore_model_swaps_total", "Hot swaps to a new model version", ["model"]),
    )


def _json_response(payload: Any, status: int = 200) -> Response:
    return Response(to_json(payload), status_code=status, media_type="application/json")


def _error(status: int, message: str, errors: list[dict] | None = None) -> Response:
    return _json_response(error_body(message, errors), status)


# ------------------------------------------------------------------------------------------ middleware
class ClientErrorLogFilter(logging.Filter):
    """Turn BentoML's ``Exception on /path [POST]`` tracebacks for *client* errors into one warning line.

    BentoML logs every request body that fails pydantic validation (malformed JSON, deep nesting, wrong
    types) with a full traceback whose message quotes the start and end of the body (``input_value=b'...'``),
    i.e. possibly PII; and a body cut off by the size limit as a ``ClientDisconnect`` traceback. Both are
    answered with a 4xx by :class:`GuardMiddleware`, so the log keeps the path and the error type only.
    """

    CLIENT_ERRORS = ("ValidationError", "ClientDisconnect")

    def filter(self, record: logging.LogRecord) -> bool:
        """Rewrite matching records in place; never drops a record."""
        exc = record.exc_info[1] if record.exc_info else None
        if exc is not None and type(exc).__name__ in self.CLIENT_ERRORS:
            detail = ""
            if type(exc).__name__ == "ValidationError":
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


def install_client_error_log_filter() -> None:
    """Attach :class:`ClientErrorLogFilter` to BentoML's HTTP app logger (once per process)."""
    target = logging.getLogger("bentoml._internal.server.http_app")
    if not any(isinstance(f, ClientErrorLogFilter) for f in target.filters):
        target.addFilter(ClientErrorLogFilter())


class GuardMiddleware:
    """Pure ASGI middleware in front of the service: API keys, body limits, clear 4xx messages, metrics.

    * protected paths need ``Authorization: Bearer <key>`` (keys compared with ``hmac.compare_digest``);
    * bodies larger than ``max_body_mb`` get 413, non-JSON bodies 415;
    * BentoML's pydantic 400s are rewritten to one message naming the field (422; 400 for malformed JSON);
    * per-endpoint request / error / latency metrics.
    """

    def __init__(self, app: Any) -> None:
        from serving.settings import load_api_keys, load_settings

        install_client_error_log_filter()
        self.app = app
        self.keys = [k.encode() for k in load_api_keys()]
        self.max_body = int(load_settings().max_body_mb * 1024 * 1024)
        self.names = {}

    def _model_label(self, path: str) -> str:
        kind = ENDPOINT_KIND.get(path)
        if kind is None:
            return "-"
        if not self.names:
            from serving.settings import load_settings

            s = load_settings()
            self.names = {k: getattr(s.models, k) for k in ("lead", "churn", "segments")}
        return self.names[kind]

    def _authorised(self, headers: Sequence[tuple[bytes, bytes]]) -> str | None:
        """None when a valid key is given, else the reason for the 401."""
        auth = next((v for k, v in headers if k == b"authorization"), None)
        if not self.keys:
            return "no API keys are configured on the server (set CRMSCORE_API_KEYS or CRMSCORE_API_KEYS_FILE)"
        if auth is None:
            return "missing Authorization header; send 'Authorization: Bearer <key>'"
        scheme, _, token = auth.partition(b" ")
        if scheme.lower() != b"bearer" or not token:
            return "Authorization header must be 'Bearer <key>'"
        token = token.strip()
        ok = False
        for key in self.keys:  # compare with every key: time does not depend on which one matches
            ok |= hmac.compare_digest(token, key)
        return None if ok else "invalid API key"

    async def _send_error(self, send: Any, status: int, message: str, extra: list | None = None) -> None:
        body = to_json(error_body(message))
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        headers += extra or []
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": body})

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or path not in PROTECTED:
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        state: dict[str, Any] = {"status": 500}
        headers = scope.get("headers") or []
        try:
            why = self._authorised(headers)
            if why is not None:
                state["status"] = 401
                await self._send_error(send, 401, why, [(b"www-authenticate", b'Bearer realm="crmscore"')])
                return
            if scope.get("method") == "POST":
                ctype = next((v for k, v in headers if k == b"content-type"), b"application/json")
                if ctype.split(b";")[0].strip().lower() not in (b"application/json", b""):
                    state["status"] = 415
                    await self._send_error(send, 415, "body: Content-Type must be application/json")
                    return
                length = next((v for k, v in headers if k == b"content-length"), None)
                if length is not None and length.isdigit() and int(length) > self.max_body:
                    state["status"] = 413
                    mb = self.max_body / 1024 / 1024
                    await self._send_error(send, 413, f"body: {int(length):,} bytes exceed the limit of {mb:g} MB")
                    return
                receive = self._limited(receive, state)
            await self.app(scope, receive, self._rewriting(send, state))
        finally:
            self._observe(path, state["status"], time.perf_counter() - t0)

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
        """Wrap ``send``: pass responses through, but turn BentoML's pydantic 400s into one clear message
        (and whatever answer a too-large body produced into a 413)."""
        chunks: list[bytes] = []

        async def wrapped(message: dict) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
                if message["status"] == 400 or state.get("too_large"):
                    state["held"] = message
                    return
                await send(message)
                return
            if "held" not in state or message["type"] != "http.response.body":
                await send(message)
                return
            chunks.append(message.get("body", b""))
            if message.get("more_body"):
                return
            if state.get("too_large"):
                mb = self.max_body / 1024 / 1024
                status, body = 413, to_json(error_body(f"body: larger than the limit of {mb:g} MB"))
            else:
                status, body = _rewrite_400(b"".join(chunks))
            state["status"] = status
            start = state.pop("held")
            hdrs = [(k, v) for k, v in start["headers"] if k.lower() not in (b"content-length", b"content-type")]
            hdrs += [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
            await send({"type": "http.response.start", "status": status, "headers": hdrs})
            await send({"type": "http.response.body", "body": body})

        return wrapped

    def _observe(self, path: str, status: int, seconds: float) -> None:
        try:
            m = service_metrics()
            model = self._model_label(path)
            m.requests.labels(model=model, endpoint=path).inc()
            m.latency.labels(model=model, endpoint=path).observe(seconds)
            if status >= 400:
                m.errors.labels(model=model, endpoint=path, status=str(status)).inc()
        except Exception:  # noqa: BLE001 - metrics never break a request
            log.debug("metrics update failed", exc_info=True)


def _rewrite_400(body: bytes) -> tuple[int, bytes]:
    """BentoML's validation-error body → (status, our error body naming the field)."""
    from serving.http.postprocess import format_validation_errors

    try:
        data = json.loads(body)
    except ValueError:
        return 400, body
    detail = data.get("detail") if isinstance(data, dict) else None
    if not isinstance(detail, list):
        msg = data.get("error") if isinstance(data, dict) else None
        return 400, to_json(error_body(str(msg or "bad request")))
    status, message, errors = format_validation_errors(detail)
    return status, to_json(error_body(message, errors))


# --------------------------------------------------------------------------------------- GET endpoints
info_app = FastAPI(title="crmscore info", docs_url=None, redoc_url=None, openapi_url=None)


def _now_naive_utc() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _segment_params(pyfunc: Any) -> tuple[int, int]:
    """(window_days, horizon_days) of the customer_segments pyfunc."""
    try:
        cfg = pyfunc.unwrap_python_model().segmenter.cfg
        return int(cfg.window_days), int(cfg.horizon_days)
    except Exception:  # noqa: BLE001 - fall back to the signature's column names
        import re

        names = [c.name for c in pyfunc.metadata.get_input_schema().inputs]
        outs = [c.name for c in pyfunc.metadata.get_output_schema().inputs]
        w = next(int(m.group(1)) for n in names if (m := re.fullmatch(r"interactions_(\d+)d", n)))
        h = next(int(m.group(1)) for n in outs if (m := re.fullmatch(r"expected_value_(\d+)d", n)))
        return w, h


@bentoml.asgi_app(info_app, path="/")
@bentoml.service(
    name="CRMScoring",
    description="Lead scores, churn risk and customer segments with reasons; hot-swapped MLflow champions.",
    workers=1,
    traffic={"timeout": 120},
    logging={"access": {"enabled": False}},
    # tracing is off by default (sample rate 0); excluding the scoring paths also skips the OpenTelemetry
    # middleware's per-request work there (~10% of a one-lead request). See docs/serving.md to trace them.
    tracing={"excluded_urls": ["/score_leads", "/predict_churn", "/segment"]},
    envs=[{"name": "OMP_NUM_THREADS", "value": "1"}, {"name": "OMP_WAIT_POLICY", "value": "PASSIVE"}],
)
class CRMScoring:
    """One worker: the three models, the registry watcher and the drift record sink."""

    def __init__(self) -> None:
        from serving.http.loader import (
            KINDS,
            ModelLoadError,
            ModelSlot,
            ModelWatcher,
            RegistryUnavailable,
            load_model,
            model_source,
        )
        from serving.http.records import RecordSink
        from serving.settings import crmscore_home, load_settings
        from serving.ui.page import load_profiles

        self.settings = s = load_settings()
        self.home = crmscore_home()
        in_bento = CRMScoring.bento is not None
        self.slots = {k: ModelSlot(k, getattr(s.models, k), s.alias) for k in KINDS}
        for kind, slot in self.slots.items():
            try:
                loaded = load_model(kind, s, in_bento=in_bento)
            except RegistryUnavailable as e:
                if model_source(s, in_bento) == "bento":  # only an unpacked model was looked up: not a failure
                    slot.error = f"{slot.name} is not packed in this Bento and the registry lookup failed: {e}"
                    log.warning("%s", slot.error)
                else:
                    slot.error = f"loading failed: {e}"
                    log.error("loading %s@%s failed: %s", slot.name, s.alias, e)
                continue
            except Exception as e:  # noqa: BLE001 - one broken model must not stop the others
                # ModelLoadError messages name the model, version and URI; anything else gets the model name
                if isinstance(e, ModelLoadError):
                    why = str(e)[:500]
                else:
                    why = f"{slot.name}@{s.alias}: {type(e).__name__}: {str(e)[:300]}"
                log.exception("loading failed: %s", why)
                slot.error = f"loading failed: {why}"
                continue
            if loaded is None:
                slot.error = (
                    f"{slot.name} is not packed in this Bento" if model_source(s, in_bento) == "bento"
                    else f"no version of {slot.name} has the alias '{s.alias}'"
                )
                log.warning("%s@%s not found; its endpoint answers 503", slot.name, s.alias)
            else:
                slot.swap(loaded)
                log.info("loaded %s v%s from %s", loaded.name, loaded.version, loaded.source)
        self.sink = None
        if s.records_enabled:
            self.sink = RecordSink(self.home, "http", s.records_flush_seconds, s.records_max_queue).start()
        self.watcher = None
        if not s.pin_models and model_source(s, in_bento) == "registry":
            self.watcher = ModelWatcher(list(self.slots.values()), s, on_swap=self._on_swap)
            self.watcher.start()
        self._limiter = None
        self.profiles = load_profiles(s)  # the profile page's data (settings.data_dir), or why there is none
        # Everything loaded so far (libraries, models) lives as long as the worker: keep it out of the cyclic
        # garbage collector's scans (a full pass over it costs ~40 ms), and collect less often: a 1,000-lead
        # request allocates tens of thousands of short-lived containers that reference counting frees anyway.
        if s.gc_tuning:
            gc.freeze()
            gc.set_threshold(50_000, 20, 20)

    def _on_swap(self, slot: Any, new: Any) -> None:
        service_metrics().swaps.labels(model=slot.name).inc()
        if self.settings.gc_tuning:
            gc.freeze()

    def __is_ready__(self) -> bool:
        """Ready when a scoring model is loaded and no registered model failed to load (a model missing
        from the registry does not block readiness: its endpoint answers 503)."""
        slots = self.slots.values()
        failed = any(s.current is None and (s.error or "").startswith("loading failed") for s in slots)
        return not failed and (self.slots["lead"].current is not None or self.slots["churn"].current is not None)

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.sink is not None:
            self.sink.close()

    async def _offload(self, func: Any, *args: Any) -> Any:
        import anyio

        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        return await anyio.to_thread.run_sync(functools.partial(func, *args), limiter=self._limiter)

    # -------------------------------------------------------------------------------------- scoring
    def _feature_rows(self, leads: Sequence[Lead], model: Any, now: datetime) -> list[dict[str, Any]]:
        """Feature rows of the leads: precomputed ones checked against the model, profiles built online."""
        from serving.http.postprocess import online_feature_rows

        model.inputs.check([lead.features if lead.features is not None else {} for lead in leads])
        rows: list[dict[str, Any] | None] = [lead.features for lead in leads]
        todo = [i for i, lead in enumerate(leads) if lead.profile is not None]
        if todo:
            built = online_feature_rows(model.model.builder, [leads[i] for i in todo], now, field_indexes=todo)
            for i, row in zip(todo, built, strict=True):
                rows[i] = row
        return rows  # type: ignore[return-value]

    def _score_sync(
        self, kind: str, leads: Sequence[Lead] | None, table: FeatureTable | None, reasons: bool, now: datetime
    ) -> Response:
        from serving.http.loader import ModelUnavailable
        from serving.http.postprocess import RequestError, build_lead_results, score_and_grade

        top = self.settings.top_reasons
        try:
            model = self.slots[kind].require()
            if table is not None:
                ids = list(table.customer_ids)
                scored = model.score_table(table.columns, table.rows, top=top, reasons=reasons)
            else:
                ids = [lead.id for lead in leads]
                scored = model.score(self._feature_rows(leads, model, now), top=top, reasons=reasons)
        except ModelUnavailable as e:
            return _error(503, str(e))
        except RequestError as e:
            return _error(e.status, e.message, e.errors)
        scores, grades = score_and_grade(scored.probability, model.grade_thresholds)
        results = build_lead_results(
            ids, scored.probability, model.grade_thresholds, scored.reasons, scored.unknown, model.name, model.version,
            scores=scores, grades=grades,
        )
        if self.sink is not None:
            self.sink.record(model.name, model.version, ids, scored.probability, scores, grades.tolist(),
                             scored.features)
        try:
            service_metrics().rows.labels(model=model.name, version=model.version).inc(len(ids))
        except Exception:  # noqa: BLE001
            pass
        return _json_response({"model": model.name, "model_version": model.version, "results": results})

    async def _score(self, kind: str, leads: list[Lead] | None, table: FeatureTable | None, reasons: bool) -> Response:
        from serving.http.postprocess import RequestError, check_batch_size

        n = len(table.customer_ids) if table is not None else len(leads)
        try:
            check_batch_size(n, self.settings.max_batch, "table.rows" if table is not None else "leads")
        except RequestError as e:
            return _error(e.status, e.message, e.errors)
        now = _now_naive_utc()
        inline = n <= self.settings.inline_max_leads and (leads is None or all(x.profile is None for x in leads))
        if inline:
            return self._score_sync(kind, leads, table, reasons, now)
        return await self._offload(self._score_sync, kind, leads, table, reasons, now)

    @bentoml.api(route="/score_leads", input_spec=ScoreRequest, output_spec=ScoreResponse)
    async def score_leads(
        self, leads: list[Lead] | None = None, table: FeatureTable | None = None, reasons: bool = True
    ) -> ScoreResponse:
        """Lead scores: probability of converting, score 1–99, grade A–D and the top reasons per lead."""
        return await self._score("lead", leads, table, reasons)

    @bentoml.api(route="/predict_churn", input_spec=ScoreRequest, output_spec=ScoreResponse)
    async def predict_churn(
        self, leads: list[Lead] | None = None, table: FeatureTable | None = None, reasons: bool = True
    ) -> ScoreResponse:
        """Churn risk of active customers: probability of no purchase in the horizon, score, grade, reasons."""
        return await self._score("churn", leads, table, reasons)

    # ------------------------------------------------------------------------------------- segments
    def _segment_sync(self, customers: Sequence[Customer], now: datetime) -> Response:
        from serving.http.loader import ModelUnavailable
        from serving.http.postprocess import RequestError, build_segment_results, segment_inputs

        try:
            model = self.slots["segments"].require()
        except ModelUnavailable as e:
            hint = f"fit and register {self.settings.models.segments} with `crmscore segment fit`"
            return _error(503, f"{e}; {hint}")
        window, horizon = _segment_params(model.model)
        try:
            out = model.model.predict(segment_inputs(customers, now, window))
        except RequestError as e:
            return _error(e.status, e.message, e.errors)
        except ValueError as e:  # the segmenter's own input checks (they name the column and a customer id)
            return _error(422, f"customers: {e}", [{"field": "customers", "reason": str(e)}])
        ids = [c.id for c in customers]
        results = build_segment_results(out, ids, horizon, model.name, model.version)
        try:
            service_metrics().rows.labels(model=model.name, version=model.version).inc(len(ids))
        except Exception:  # noqa: BLE001
            pass
        return _json_response({"model": model.name, "model_version": model.version, "results": results})

    @bentoml.api(route="/segment", input_spec=SegmentRequest, output_spec=SegmentResponse)
    async def segment(self, customers: list[Customer]) -> SegmentResponse:
        """RFM scores and segment, value tier, behavioural cluster, P(alive) and expected value per customer."""
        from serving.http.postprocess import RequestError, check_batch_size

        try:
            check_batch_size(len(customers), self.settings.max_batch, "customers")
        except RequestError as e:
            return _error(e.status, e.message, e.errors)
        return await self._offload(self._segment_sync, customers, _now_naive_utc())

    # ------------------------------------------------------------------------------------------ info
    def model_info_payload(self) -> dict[str, Any]:
        """What GET /model_info returns."""
        out: dict[str, Any] = {}
        for kind, slot in self.slots.items():
            m = slot.current
            if m is None:
                out[kind] = {"name": slot.name, "alias": slot.alias, "loaded": False, "error": slot.error}
                continue
            out[kind] = {
                "name": m.name,
                "alias": slot.alias,
                "loaded": True,
                "version": m.version,
                "source": m.source,
                "trained_at": m.trained_at,
                "loaded_at": m.loaded_at,
                "metrics": {k: v for k, v in m.metrics.items() if math.isfinite(v)},
                "grade_thresholds": m.grade_thresholds,
                "features": m.features,
            }
        s = self.settings
        return {
            "models": out,
            "pinned": s.pin_models,
            "poll_interval_seconds": s.poll_interval_seconds,
            "max_batch": s.max_batch,
        }

    @info_app.get("/model_info", response_model=ModelInfo, summary="Loaded model versions, training time, metrics")
    def model_info(self) -> dict[str, Any]:
        """Loaded versions per model, when each was trained, its out-of-time metrics and grade cut points."""
        return self.model_info_payload()

    @info_app.get("/drift", summary="Latest drift summary per model (empty when none was computed)")
    def drift(self) -> dict[str, Any]:
        """The latest drift summary of each served model (``<home>/drift/<model>/latest.json``), else ``{}``."""
        out: dict[str, Any] = {}
        for slot in self.slots.values():
            p = Path(self.home) / "drift" / slot.name / "latest.json"
            if p.is_file():
                try:
                    out[slot.name] = json.loads(p.read_text(encoding="utf-8"))
                except (OSError, ValueError) as e:
                    out[slot.name] = {"error": f"unreadable drift summary: {type(e).__name__}"}
        return out

    # ------------------------------------------------------------------------------ profile page (/ui)
    @info_app.get("/ui", include_in_schema=False)
    def ui_page(self) -> Response:
        """The customer profile page: static HTML, no customer data (its API calls need the key)."""
        from serving.ui.page import page_response

        return page_response()

    @info_app.get("/ui/api/status", include_in_schema=False)
    def ui_status(self) -> Response:
        """What the profile page's data is: customers, events, as_of."""
        from serving.ui.page import status_response

        return status_response(self)

    @info_app.post("/ui/api/search", include_in_schema=False)
    async def ui_search(self, request: Request) -> Response:
        """Customers by exact id or part of a name (``{"q": ...}``)."""
        from serving.ui.page import search_response

        return await search_response(self, request)

    @info_app.post("/ui/api/profile", include_in_schema=False)
    async def ui_profile(self, request: Request) -> Response:
        """One customer's record, scores, segment and timeline (``{"customer_id": ...}``)."""
        from serving.ui.page import profile_response

        return await profile_response(self, request)


CRMScoring.add_asgi_middleware(GuardMiddleware)
