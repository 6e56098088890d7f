"""What the customer profile page (客户画像) shows about one customer: record, scores, segment, funnel, timeline.

A profile's numbers come from the service's own scoring code. The customer's record and events become a
``schemas.Lead`` and a ``schemas.Customer`` (profile + events at the index's ``as_of``), exactly what a CRM
sends to ``/score_leads``, ``/predict_churn`` and ``/segment``, and go through the same steps
(``CRMScoring._feature_rows`` → ``LoadedModel.score`` → ``build_lead_results``; ``CRMScoring._segment_sync``).
Profile views are not recorded for drift monitoring: they are look-ups, not scoring traffic.

The page's data is indexed by :mod:`serving.ui.index`; its HTTP routes are in :mod:`serving.ui.routes` and
its HTML, CSS and JavaScript in ``serving/ui/static/``.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from serving.access import views
from serving.i18n import localized
from serving.ui.index import (  # noqa: F401 - UI_API_PATHS, load_profiles: imported from here by serving.http
    TIMELINE_LIMIT,
    UI_API_PATHS,
    ProfileError,
    ProfileIndex,
    load_profiles,
)
from serving.ui.routes import (  # noqa: F401 - imported from here by serving.http.service
    page_response,
    profile_response,
    search_response,
    status_response,
)


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
    if kind == "lead":
        from serving.members.bant import add_fit_grades

        add_fit_grades([result], [lead], service.bant)  # BANT fit × intent, as /score_leads
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
            error = None if slot.error is None else localized(slot.error)  # in the request's language
            out[kind] = {"name": slot.name, "alias": slot.alias, "loaded": False, "error": error}
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
        raise ProfileError(404, views.NOT_FOUND)
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

