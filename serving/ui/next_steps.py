"""The profile page's "next steps" section: one customer's next best action and top recommendations.

``POST /ui/api/next_steps {"customer_id": ...}`` (API key needed, like the page's other calls) builds the
customer's profile as ``/ui/api/profile`` does (:func:`serving.ui.page.build_profile`: lead and churn grades,
value tier), turns it into the fields of ``/next_action`` (:func:`action_customer`) and answers the action from
:func:`serving.http.cross_sell.next_actions` and the products from :func:`serving.http.cross_sell.recommend_for`,
the functions behind ``POST /next_action`` and ``POST /recommend``. A part that cannot be computed (no
cross-sell model, no order lines) carries ``{"error": ...}`` and the other part is still shown.
"""

from __future__ import annotations

import logging
from typing import Any

import pandas as pd

from serving.access import views
from serving.http.cross_sell import next_actions, recommend_for
from serving.http.loader import ModelUnavailable
from serving.http.postprocess import RequestError
from serving.http.schemas_actions import ActionCustomer, NextActionRequest, RecommendRequest
from serving.ui.index import ProfileError
from serving.ui.routes import _body_field, _error, _json

log = logging.getLogger("crmscore.serving")

#: products shown on the page
PAGE_RECOMMENDATIONS = 5


def action_customer(profile: dict[str, Any]) -> ActionCustomer:
    """The /next_action fields of a built profile: the lead grade of a lead, the churn grade of an active
    customer, the value tier, member level, consent and days since the last paid order."""
    status = profile.get("status") or {}
    record = profile.get("customer") or {}
    lead, churn, seg = (profile.get(k) or {} for k in ("lead", "churn", "segment"))
    last = status.get("last_paid_order")
    recency = None
    if last:
        recency = max(0.0, (pd.Timestamp(profile["as_of"]) - pd.Timestamp(last)) / pd.Timedelta(days=1))
    consent = record.get("marketing_consent")
    return ActionCustomer(
        customer_id=str(profile["customer_id"]),
        lead_grade=lead.get("grade") if status.get("is_lead") else None,
        churn_grade=churn.get("grade") if status.get("is_active") else None,
        value_tier=seg.get("value_tier"),
        member_level=record.get("member_level") or None,
        marketing_consent=consent if isinstance(consent, bool) else None,
        recency_days=recency,
    )


def build_next_steps(service: Any, index: Any, customer_id: str) -> dict[str, Any]:
    """The section's data (:class:`ProfileError` 404 for an unknown id)."""
    from serving.ui.page import build_profile  # serving.ui.page imports serving.ui.routes

    profile = build_profile(service, index, customer_id)
    who = action_customer(profile)
    action: dict[str, Any]
    try:
        action = next_actions(service.cross_sell, NextActionRequest(customers=[who]))["results"][0]
    except (ModelUnavailable, RequestError) as e:
        action = {"error": getattr(e, "message", str(e))}
    recs: dict[str, Any]
    try:
        req = RecommendRequest(customer_id=customer_id, k=PAGE_RECOMMENDATIONS, as_of=index.as_of)
        recs = recommend_for(service.cross_sell, req)
    except (ModelUnavailable, RequestError) as e:
        recs = {"error": getattr(e, "message", str(e))}
    return {
        "customer_id": customer_id,
        "as_of": profile["as_of"],
        "inputs": who.model_dump(exclude={"tags"}),
        "action": action,
        "recommendations": recs,
    }


async def next_steps_response(service: Any, request: Any) -> Any:
    """POST /ui/api/next_steps ``{"customer_id": "..."}``: the customer's next best action and recommendations;
    404 for a customer outside the caller's scope, as for an unknown one (the profile's own check)."""
    principal = views.principal_of(request)
    cid = "?"

    def run(index: Any, cid: str) -> dict[str, Any]:
        views.apply_tombstones(service, index)
        if views.visible_row(index, principal, cid) is None:
            raise ProfileError(404, views.NOT_FOUND)
        return build_next_steps(service, index, cid)

    try:
        index = service.profiles.require()
        cid = await _body_field(request, "customer_id", 200)
        payload = await service._offload(run, index, cid)
    except ProfileError as e:
        return _error(e.status, e.message)
    except Exception as e:  # noqa: BLE001 - never a traceback (it could quote PII) to the log or the client
        log.error("next steps of customer %s failed: %s", cid, type(e).__name__)
        return _error(500, f"next_steps: internal error ({type(e).__name__})")
    return _json(payload)
