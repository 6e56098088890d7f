"""Request and response models of POST /coupon_uplift and POST /route_lead (pydantic; in the OpenAPI page)."""

from __future__ import annotations

from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field

from serving.http.openapi import Answer
from serving.http.schemas import FeatureValue

_Id = Annotated[str, Field(min_length=1, max_length=200)]
_Text = Annotated[str, Field(max_length=200)]
_FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------------- uplift
class UpliftCustomer(_Strict):
    """One customer: the feature row the uplift model was trained on (the columns of `crmscore features`)."""

    id: _Id = Field(description="customer id, returned as sent")
    features: dict[str, FeatureValue] = Field(
        description="feature name → value (finite number, true/false, category text or null); a feature left out "
        "is missing; GET /model_info lists the model's features"
    )


class CouponUpliftRequest(_Strict):
    """Customers to rank by the change a coupon causes."""

    customers: list[UpliftCustomer] = Field(min_length=1, description="one entry per customer")
    reasons: bool = Field(default=True, description="return the top reasons for and against per customer")


class Reason(Answer):
    """One feature's contribution to the customer's uplift (on the learner's scale; see docs/uplift.md)."""

    feature: str = Field(description="input feature")
    label: str = Field(description="readable label of the feature")
    value: FeatureValue = Field(description="the customer's value of the feature")
    contribution: float = Field(description="> 0 raises the expected uplift, < 0 lowers it")


class UpliftReasons(Answer):
    """Strongest reasons for (positive) and against (negative) a high uplift."""

    positive: list[Reason] = Field(description="features raising the uplift, strongest first")
    negative: list[Reason] = Field(description="features lowering it, strongest first")


class UpliftResult(Answer):
    """The expected uplift of one customer."""

    id: str = Field(description="customer id as sent")
    uplift: float = Field(
        description="expected change in the probability of the outcome (a purchase in the campaign's window) "
        "the coupon causes, −1 … 1"
    )
    rank: int = Field(description="1 = the customer of this request the coupon changes most")
    reasons: UpliftReasons | None = Field(default=None, description="null when reasons were not asked for")


class CouponUpliftResponse(Answer):
    """Expected uplift per customer, in the order sent."""

    model: str = Field(description="registered model name")
    model_version: str = Field(description="registered version that scored the request")
    learner: str = Field(description="t_learner, class_transform, x_learner or s_learner")
    results: list[UpliftResult]


# ------------------------------------------------------------------------------------------ routing
class RouteLead(_Strict):
    """A new lead, e.g. from a web form: the fields routing reads (configs/routing.yaml names them)."""

    lead_id: _Id = Field(description="lead id (the routing config's id_field)")
    city: _Text | None = Field(default=None, examples=["上海"], description="territory field")
    province: _Text | None = Field(default=None, examples=["上海"], description="territory field")
    industry: _Text | None = Field(default=None, examples=["retail"], description="skill field")
    product_line: _Text | None = Field(default=None, examples=["saas"], description="skill field")
    grade: _Text | None = Field(default=None, examples=["A"], description="A–D (A-grade leads are placed first)")
    score: _FiniteFloat | None = Field(default=None, description="lead score (orders leads within a grade)")
    owner_id: _Text | None = Field(default=None, description="an existing owner: the lead keeps it")
    fields: dict[str, FeatureValue] = Field(
        default_factory=dict, description="other columns the config's rules read (skip, team_rules), by name"
    )


class RouteLeadRequest(_Strict):
    """One lead to route, the day, and the load the reps already have that day."""

    lead: RouteLead = Field(description="the lead")
    as_of: _Text | None = Field(
        default=None,
        examples=["2025-06-02"],
        description="the day routed (picks the reps working that day); default: today (UTC)",
    )
    assigned_today: dict[str, Annotated[int, Field(ge=0)]] = Field(
        default_factory=dict,
        description="rep id → leads already assigned to the rep that day (counted against its "
        "daily capacity); the service keeps no state between requests",
    )


class RouteLeadResponse(Answer):
    """The owner chosen, or why there is none."""

    lead_id: str = Field(description="lead id as sent")
    owner_id: str | None = Field(description="the rep chosen; null when the lead stays unassigned")
    team: str | None = Field(description="the rep's team; null without an owner or when the rep has no team")
    rule: str = Field(description="existing_owner, territory+skill, territory (prefixed by a team rule's name)")
    reason: str = Field(description="why the lead stays unassigned (empty when it has an owner)")
    grade: str = Field(description="the lead's grade as read")
