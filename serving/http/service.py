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
import json
import logging
import math
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio
import bentoml
from fastapi import FastAPI
from pydantic_core import to_json
from starlette.requests import Request
from starlette.responses import Response

from features.messages import M_
from serving.access import views
from serving.http.cross_sell import CrossSellState, next_actions, recommend_for
from serving.http.forecast import ForecastUnavailable, LatestForecast
from serving.http.loader import ModelSlots, ModelUnavailable
from serving.http.middleware import PROTECTED, GuardMiddleware, service_metrics
from serving.http.postprocess import (
    RequestError,
    build_lead_results,
    build_segment_results,
    check_batch_size,
    online_feature_rows,
    score_and_grade,
    segment_inputs,
)
from serving.http.records import RecordSink
from serving.http.routing import load_service_routing, route_one
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
from serving.http.schemas_actions import (
    ActionCustomer,
    NextActionRequest,
    NextActionResponse,
    Purchase,
    RecommendRequest,
    RecommendResponse,
)
from serving.http.schemas_uplift import (
    CouponUpliftRequest,
    CouponUpliftResponse,
    RouteLead,
    RouteLeadRequest,
    RouteLeadResponse,
    UpliftCustomer,
)
from serving.http.uplift import score_uplift
from serving.i18n import localized
from serving.members.bant import add_fit_grades, load_service_bant
from serving.members.online import MemberProgramme, request_cards
from serving.settings import crmscore_home, load_settings
from serving.ui.index import ProfileError
from serving.ui.next_steps import next_steps_response
from serving.ui.page import (
    load_profiles,
    page_response,
    profile_response,
    search_response,
    status_response,
)

log = logging.getLogger("crmscore.serving")

__all__ = ["CRMScoring", "PROTECTED"]


def _json_response(payload: Any, status: int = 200) -> Response:
    return Response(to_json(payload), status_code=status, media_type="application/json")


def _error(status: int, message: object, errors: list[dict] | None = None) -> Response:
    """The shared error body; ``message`` in the request's language (``serving.i18n``, set by the middleware)
    when it was raised with ``M_``."""
    return _json_response(error_body(localized(message), errors), status)


def _refuse(e: RequestError) -> Response:
    """A refused request's error body in the request's language."""
    message, errors = e.localized()
    return _json_response(error_body(message, errors), e.status)


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
    tracing={"excluded_urls": ["/score_leads", "/predict_churn", "/segment", "/recommend"]},
    envs=[{"name": "OMP_NUM_THREADS", "value": "1"}, {"name": "OMP_WAIT_POLICY", "value": "PASSIVE"}],
)
class CRMScoring:
    """One worker: the three models, the registry watcher and the drift record sink.

    The models are not ``bentoml.models.BentoModel`` class attributes (BentoML's usual way): they are named in
    ``configs/serving.yaml`` and resolved by :class:`serving.http.loader.ModelSlots` at the served alias,
    because they hot-swap from the MLflow registry when the alias moves (and a Bento built with
    ``crmscore bento build`` serves the packed copies the same way). ``__init__`` only wires the parts.
    """

    def __init__(self) -> None:
        self.settings = s = load_settings()
        self.home = crmscore_home()
        # .bento is set on the class by BentoML's @bentoml.service decorator at run time (None outside a Bento)
        self.slots = ModelSlots.load(s, in_bento=CRMScoring.bento is not None)  # type: ignore[attr-defined]
        # /recommend, /next_action: model, purchase histories, rules
        self.cross_sell = CrossSellState.load(s, in_bento=CRMScoring.bento is not None)  # type: ignore[attr-defined]
        self.watcher = self.slots.watch(s, on_swap=self._on_swap, also=[self._refresh_cross_sell])
        self.sink = RecordSink.for_service(self.home, s)
        self._limiter: anyio.CapacityLimiter | None = None
        self.profiles = load_profiles(s)  # the profile page's data (settings.data_dir), or why there is none
        self.routing, self.routing_error = load_service_routing()  # POST /route_lead's reps, or why there are none
        self.programme = MemberProgramme.load()  # member levels and tags added to /segment results
        self.bant = load_service_bant()  # the BANT fit grade added to /score_leads results
        self.forecast = LatestForecast(s.resolved_registry_uri())  # GET /forecast: the latest forecast run

    def _on_swap(self, slot: Any, new: Any) -> None:
        service_metrics().swaps.labels(model=slot.name).inc()

    def _refresh_cross_sell(self) -> tuple[str, str] | None:
        """The watcher's check of the cross-sell model: a moved alias swaps in a completely loaded new state
        (one reference assignment: a request reads ``self.cross_sell`` once)."""
        new = self.cross_sell.refresh(self.settings)
        if new is None:
            return None
        old, self.cross_sell = self.cross_sell.version, new
        service_metrics().swaps.labels(model=new.name).inc()
        log.info("hot swap: %s@%s now v%s (was v%s)", new.name, new.alias, new.version, old)
        return new.name, str(new.version)

    def __is_ready__(self) -> bool:
        """Ready when a scoring model is loaded and no registered model failed to load (a model missing
        from the registry does not block readiness: its endpoint answers 503)."""
        # the coupon uplift model is optional: one that fails to load answers 503 on its own endpoint only
        slots = [v for k, v in self.slots.items() if k != "uplift"]
        failed = any(s.current is None and (s.error or "").startswith("loading failed") for s in slots)
        return not failed and (self.slots["lead"].current is not None or self.slots["churn"].current is not None)

    @bentoml.on_shutdown
    def _shutdown(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        if self.sink is not None:
            self.sink.close()

    async def _offload(self, func: Any, *args: Any) -> Any:
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(1)
        return await anyio.to_thread.run_sync(functools.partial(func, *args), limiter=self._limiter)

    # -------------------------------------------------------------------------------------- scoring
    def _feature_rows(self, leads: Sequence[Lead], model: Any, now: datetime) -> list[dict[str, Any]]:
        """Feature rows of the leads: precomputed ones checked against the model, profiles built online."""
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
        top = self.settings.top_reasons
        try:
            model = self.slots[kind].require()
            if table is not None:
                ids = list(table.customer_ids)
                scored = model.score_table(table.columns, table.rows, top=top, reasons=reasons)
            else:
                assert leads is not None  # ScoreRequest's validator requires leads or table
                ids = [lead.id for lead in leads]
                scored = model.score(self._feature_rows(leads, model, now), top=top, reasons=reasons)
        except ModelUnavailable as e:
            return _error(503, e)
        except RequestError as e:
            return _refuse(e)
        thresholds = model.grade_thresholds
        if thresholds is None:
            raise RuntimeError(f"model {model.name} version {model.version} has no grade thresholds (not a scorer?)")
        scores, grades = score_and_grade(scored.probability, thresholds)
        results = build_lead_results(
            ids, scored.probability, thresholds, scored.reasons, scored.unknown, model.name, model.version,
            scores=scores, grades=grades,
        )
        if kind == "lead" and leads is not None:
            add_fit_grades(results, leads, self.bant)
        if self.sink is not None:
            self.sink.record(model.name, model.version, ids, scored.probability, scores, grades.tolist(),
                             scored.features)
        try:
            service_metrics().rows.labels(model=model.name, version=model.version).inc(len(ids))
        except Exception:  # noqa: BLE001
            pass
        return _json_response({"model": model.name, "model_version": model.version, "results": results})

    async def _score(self, kind: str, leads: list[Lead] | None, table: FeatureTable | None, reasons: bool) -> Response:
        if table is not None:
            n = len(table.customer_ids)
        else:
            assert leads is not None  # ScoreRequest's validator requires leads or table
            n = len(leads)
        try:
            check_batch_size(n, self.settings.max_batch, "table.rows" if table is not None else "leads")
        except RequestError as e:
            return _refuse(e)
        now = _now_naive_utc()
        inline = n <= self.settings.inline_max_leads and (leads is None or all(x.profile is None for x in leads))
        if inline:
            return self._score_sync(kind, leads, table, reasons, now)
        return await self._offload(self._score_sync, kind, leads, table, reasons, now)

    @bentoml.api(route="/score_leads", input_spec=ScoreRequest, output_spec=ScoreResponse)
    async def score_leads(
        self, leads: list[Lead] | None = None, table: FeatureTable | None = None, reasons: bool = True
    ) -> Response:
        """Lead scores: probability of converting, score 1–99, grade A–D and the top reasons per lead.

        Returns the JSON response itself (its body is a ``ScoreResponse``, the ``output_spec``; errors are the
        shared error body): encoding the result dicts once is cheaper than building the pydantic model."""
        return await self._score("lead", leads, table, reasons)

    @bentoml.api(route="/predict_churn", input_spec=ScoreRequest, output_spec=ScoreResponse)
    async def predict_churn(
        self, leads: list[Lead] | None = None, table: FeatureTable | None = None, reasons: bool = True
    ) -> Response:
        """Churn risk of active customers: probability of no purchase in the horizon, score, grade, reasons
        (a ``ScoreResponse`` body, as :meth:`score_leads`)."""
        return await self._score("churn", leads, table, reasons)

    # ------------------------------------------------------------------------------------- segments
    def _segment_sync(self, customers: Sequence[Customer], now: datetime) -> Response:
        try:
            model = self.slots["segments"].require()
        except ModelUnavailable as e:
            return _error(503, M_("{error}; fit and register {name} with `crmscore segment fit`",
                                  error=e, name=self.settings.models.segments))
        window, horizon = _segment_params(model.model)
        try:
            inputs = segment_inputs(customers, now, window)
            out = model.model.predict(inputs)
        except RequestError as e:
            return _refuse(e)
        except ValueError as e:  # the segmenter's own input checks (they name the column and a customer id)
            return _error(422, M_("customers: {error}", error=e), [{"field": "customers", "reason": localized(e)}])
        ids = [c.id for c in customers]
        results = build_segment_results(out, ids, horizon, model.name, model.version)
        for result, card in zip(results, request_cards(self.programme, customers, now, inputs, out), strict=True):
            result["member"] = card
        try:
            service_metrics().rows.labels(model=model.name, version=model.version).inc(len(ids))
        except Exception:  # noqa: BLE001
            pass
        return _json_response({"model": model.name, "model_version": model.version, "results": results})

    @bentoml.api(route="/segment", input_spec=SegmentRequest, output_spec=SegmentResponse)
    async def segment(self, customers: list[Customer]) -> Response:
        """RFM scores and segment, value tier, behavioural cluster, P(alive) and expected value per customer
        (a ``SegmentResponse`` body, as :meth:`score_leads`)."""
        try:
            check_batch_size(len(customers), self.settings.max_batch, "customers")
        except RequestError as e:
            return _refuse(e)
        return await self._offload(self._segment_sync, customers, _now_naive_utc())

    # ------------------------------------------------------------------------------ uplift and routing
    def _uplift_sync(self, customers: Sequence[UpliftCustomer], reasons: bool) -> Response:
        try:
            model = self.slots["uplift"].require()
            ids, rows = [c.id for c in customers], [c.features for c in customers]
            body = score_uplift(model, ids, rows, self.settings.top_reasons, reasons)
        except ModelUnavailable as e:
            return _error(503, M_("{error}; train and register it with `crmscore train uplift`", error=e))
        except RequestError as e:
            return _refuse(e)
        return _json_response(body)

    @bentoml.api(route="/coupon_uplift", input_spec=CouponUpliftRequest, output_spec=CouponUpliftResponse)
    async def coupon_uplift(self, customers: list[UpliftCustomer], reasons: bool = True) -> Response:
        """Expected uplift of a coupon per customer (change in P(purchase in the window)), its rank within the
        request and the top reasons (a ``CouponUpliftResponse`` body, as :meth:`score_leads`)."""
        try:
            check_batch_size(len(customers), self.settings.max_batch, "customers")
        except RequestError as e:
            return _refuse(e)
        return await self._offload(self._uplift_sync, customers, reasons)

    @bentoml.api(route="/route_lead", input_spec=RouteLeadRequest, output_spec=RouteLeadResponse)
    async def route_lead(
        self, lead: RouteLead, as_of: str | None = None, assigned_today: dict[str, int] | None = None
    ) -> Response:
        """One owner for one new lead by configs/routing.yaml (territory, skill, free capacity), or why there is
        none (a ``RouteLeadResponse`` body)."""
        if self.routing is None:
            return _error(503, self.routing_error or M_("no routing config"))
        try:
            body = route_one(self.routing, lead.model_dump(), as_of, assigned_today or {})
        except RequestError as e:
            return _refuse(e)
        return _json_response(body)

    # --------------------------------------------------------------------------- cross-sell, next action
    def _cross_sell_sync(self, func: Any, request: Any) -> Response:
        """``func(self.cross_sell, request)`` as JSON; its refusals as the shared error body."""
        try:
            return _json_response(func(self.cross_sell, request))
        except ModelUnavailable as e:
            return _error(503, e)
        except RequestError as e:
            return _refuse(e)

    def _in_scope(self, principal: Any, customer_id: str) -> bool:
        """Whether a scoped principal may look ``customer_id`` up: the profile index holds owner and team ids (no
        index, no proof of scope: not visible)."""
        try:
            index = self.profiles.require()
        except ProfileError:
            return False
        return views.visible_row(index, principal, customer_id) is not None

    @bentoml.api(route="/recommend", input_spec=RecommendRequest, output_spec=RecommendResponse)
    async def recommend(
        self, customer_id: str, purchases: list[Purchase] | None = None, k: int = 10, exclude_days: int | None = None,
        as_of: datetime | None = None, *, ctx: bentoml.Context,
    ) -> Response:
        """Top-k products for one customer (known to the service's data, or sent with its purchases), each with its
        evidence in words, leaving out products bought in the last N days (a ``RecommendResponse`` body).

        A customer looked up by id outside a manager's or sales rep's scope answers 404, like an unknown one."""
        principal = views.principal_of(ctx.request)
        if purchases is None and principal.scoped and not await self._offload(self._in_scope, principal, customer_id):
            resp = _error(404, M_("customer_id: no customer with this id in the service's data"))
        else:
            req = RecommendRequest.model_construct(
                customer_id=customer_id, purchases=purchases, k=k, exclude_days=exclude_days, as_of=as_of
            )
            if purchases is None:  # a customer of the service's data: array slices, cheaper than a thread hop
                resp = self._cross_sell_sync(recommend_for, req)
            else:
                resp = await self._offload(self._cross_sell_sync, recommend_for, req)
        ctx.response.status_code = resp.status_code  # with a ctx parameter BentoML answers with ctx's status
        return resp

    @bentoml.api(route="/next_action", input_spec=NextActionRequest, output_spec=NextActionResponse)
    async def next_action(self, customers: list[ActionCustomer]) -> Response:
        """One action per customer with its reason: the first rule of configs/actions.yaml it meets (a
        ``NextActionResponse`` body)."""
        try:
            check_batch_size(len(customers), self.settings.max_batch, "customers")
        except RequestError as e:
            return _refuse(e)
        req = NextActionRequest.model_construct(customers=customers)
        return await self._offload(self._cross_sell_sync, next_actions, req)

    # ------------------------------------------------------------------------------------------ info
    def model_info_payload(self) -> dict[str, Any]:
        """What GET /model_info returns."""
        out: dict[str, Any] = {}
        for kind, slot in self.slots.items():
            m = slot.current
            if m is None:
                # a sentence for people: in the request's language (the middleware set it), like the 503 it explains
                error = None if slot.error is None else localized(slot.error)
                out[kind] = {"name": slot.name, "alias": slot.alias, "loaded": False, "error": error}
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

    @info_app.get("/forecast", summary="The latest sales forecast run's table (crmscore forecast)")
    def forecast_table(self) -> Response:
        """Weekly revenue forecast (every method, every group, 80% / 95% intervals) of the newest finished
        ``crmscore forecast`` run in the tracking store, with its backtest metrics; 404 when there is none."""
        try:
            return _json_response(self.forecast.payload())
        except ForecastUnavailable as e:
            return _error(404, e)

    # ------------------------------------------------------------------------------ profile page (/ui)
    @info_app.get("/ui", include_in_schema=False)
    def ui_page(self) -> Response:
        """The customer profile page: static HTML, no customer data (its API calls need the key)."""
        return page_response()

    @info_app.get("/ui/api/status", include_in_schema=False)
    def ui_status(self) -> Response:
        """What the profile page's data is: customers, events, as_of."""
        return status_response(self)

    @info_app.post("/ui/api/search", include_in_schema=False)
    async def ui_search(self, request: Request) -> Response:
        """Customers by exact id or part of a name (``{"q": ...}``)."""
        return await search_response(self, request)

    @info_app.post("/ui/api/profile", include_in_schema=False)
    async def ui_profile(self, request: Request) -> Response:
        """One customer's record, scores, segment and timeline (``{"customer_id": ...}``)."""
        return await profile_response(self, request)

    @info_app.post("/ui/api/next_steps", include_in_schema=False)
    async def ui_next_steps(self, request: Request) -> Response:
        """One customer's next best action and top recommendations (``{"customer_id": ...}``)."""
        return await next_steps_response(self, request)


# add_asgi_middleware comes from the bentoml.Service wrapper the @bentoml.service decorator returns at run time
CRMScoring.add_asgi_middleware(GuardMiddleware)  # type: ignore[attr-defined]
