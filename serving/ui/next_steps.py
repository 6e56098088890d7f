"""The profile page's "next steps" section: one customer's next best action and top recommendations.

``POST /ui/api/next_steps {"customer_id": ...}`` (API key needed, like the page's other calls) builds the
customer's profile as ``/ui/api/profile`` does (:func:`serving.ui.page.build_profile`: lead and churn grades,
value tier), turns it into the fields of ``/next_action`` (:func:`action_customer`) and answers the action from
:func:`serving.http.cross_sell.next_actions` and the products from :func:`serving.http.cross_sell.recommend_for`,
the functions behind ``POST /next_action`` and ``POST /recommend``. A part that cannot be computed (no
cross-sell model, no order lines) carries ``{"error": ...}`` and the other part is still shown.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from serving.http.cross_sell import next_actions, recommend_for
from serving.http.loader import ModelUnavailable
from serving.http.postprocess import RequestError
from serving.http.schemas_actions import ActionCustomer, NextActionRequest, RecommendRequest
from serving.ui.routes import customer_response

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
    return await customer_response(
        service, request, "next_steps", lambda index, cid, _principal: build_next_steps(service, index, cid)
    )
