"""Request and response models of the scoring service (pydantic; shown in the service's OpenAPI page).

A lead (or customer) is sent either with precomputed ``features`` (the columns of the training
feature table) or as a raw CRM ``profile`` with optional recent ``events``, from which the service
computes the same features online. PII fields (name, phone, email, address) are accepted in a
profile so CRMs can send their records as they are, but they are dropped on arrival: never a
feature, never logged, never returned.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StrictBool, model_validator

from serving.http.member_schemas import MemberCard
from serving.http.openapi import Answer
from serving.i18n import N_

_FiniteFloat = Annotated[float, Field(allow_inf_nan=False)]
#: One feature value: a finite number, true/false, a category string, or null (missing).
FeatureValue = _FiniteFloat | StrictBool | str | None


def _utc_naive(v: datetime | None) -> datetime | None:
    """Timestamps with an offset become naive UTC; naive ones are taken as given (the training data's clock)."""
    if v is not None and v.tzinfo is not None:
        return v.astimezone(UTC).replace(tzinfo=None)
    return v


Timestamp = Annotated[datetime, AfterValidator(_utc_naive)]
_Id = Annotated[str, Field(min_length=1, max_length=200)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ----------------------------------------------------------------------------------------------- inputs
class Profile(_Strict):
    """A lead's or customer's CRM record (contract table ``customers``). PII fields are accepted and dropped."""

    customer_id: _Id = Field(description="stable CRM id")
    created_at: Timestamp | None = Field(
        default=None, description="when the lead entered the CRM; missing or later than as_of = new at as_of"
    )
    source_channel: str | None = Field(default=None, examples=["wechat"])
    province: str | None = Field(default=None, examples=["广东省"])
    city: str | None = None
    industry: str | None = None
    company_size: str | None = Field(default=None, examples=["11-50"])
    job_title: str | None = None
    gender: str | None = Field(default=None, description="M, F or U")
    age: int | None = Field(default=None, ge=14, le=110)
    member_level: str | None = Field(default=None, examples=["gold"])
    points_balance: _FiniteFloat | None = Field(default=None, ge=0)
    marketing_consent: bool | None = None
    budget_range: str | None = Field(default=None, description="BANT budget: <10k, 10k-50k, 50k-200k, 200k+")
    decision_maker: bool | None = Field(default=None, description="BANT authority: the contact decides")
    product_interest: str | None = Field(default=None, description="BANT need: the product line asked about")
    purchase_timeline: str | None = Field(default=None, description="BANT timeline: 0-1m, 1-3m, 3-6m, 6m+")
    name: str | None = Field(default=None, description="PII: accepted, never used, logged or returned")
    phone: str | None = Field(default=None, description="PII: accepted, never used, logged or returned")
    email: str | None = Field(default=None, description="PII: accepted, never used, logged or returned")
    address: str | None = Field(default=None, description="PII: accepted, never used, logged or returned")
    owner_id: str | None = Field(default=None, description="owning sales rep (access scope, never a feature)")
    team_id: str | None = Field(default=None, description="the owner's team (access scope, never a feature)")


class Interaction(_Strict):
    """One tracked touch point (contract table ``interactions``)."""

    ts: Timestamp
    channel: str = Field(examples=["web"], description="web, app, phone, sms, email, wechat, store, other")
    event_type: str = Field(examples=["add_to_cart"], description="visit, register, browse, ... (see the contract)")


class Order(_Strict):
    """One order (contract table ``orders``)."""

    order_id: str | None = None
    ts: Timestamp
    amount: _FiniteFloat = Field(ge=0)
    status: Literal["paid", "refunded", "cancelled"]
    items: int | None = Field(default=None, ge=0)
    category: str | None = None


class MarketingTouch(_Strict):
    """One campaign message (contract table ``marketing_touches``)."""

    touch_id: str | None = None
    campaign_id: str | None = None
    channel: str = Field(examples=["sms"], description="sms, email, wechat, app, phone")
    sent_at: Timestamp
    opened_at: Timestamp | None = None
    clicked_at: Timestamp | None = None
    coupon_claimed: bool | None = None
    responded: bool | None = None


class Events(_Strict):
    """Recent events of one lead; only those at or before ``as_of`` are used."""

    interactions: list[Interaction] = Field(default_factory=list)
    orders: list[Order] = Field(default_factory=list)
    marketing_touches: list[MarketingTouch] = Field(default_factory=list)


_PROFILE_EXAMPLE: dict[str, Any] = {
    "customer_id": "L-10293",
    "created_at": "2025-06-01T09:30:00",
    "source_channel": "wechat",
    "province": "广东省",
    "industry": "retail",
    "company_size": "11-50",
    "member_level": "none",
    "marketing_consent": True,
    "name": "张三",
    "phone": "13800000000",
}
_EVENTS_EXAMPLE: dict[str, Any] = {
    "interactions": [
        {"ts": "2025-06-20T10:00:00", "channel": "web", "event_type": "visit"},
        {"ts": "2025-06-21T11:00:00", "channel": "app", "event_type": "add_to_cart"},
    ],
    "orders": [],
    "marketing_touches": [{"sent_at": "2025-06-18T08:00:00", "channel": "sms", "opened_at": "2025-06-18T09:00:00"}],
}


class Lead(_Strict):
    """One lead to score: precomputed ``features``, or a raw ``profile`` plus optional ``events``."""

    model_config = ConfigDict(
        extra="forbid",
        # BentoML's OpenAPI models take one "example" per schema
        json_schema_extra={
            "example": {"profile": _PROFILE_EXAMPLE, "events": _EVENTS_EXAMPLE, "as_of": "2025-06-30T00:00:00"}
        },
    )

    customer_id: _Id | None = Field(
        default=None, description="required with features; with a profile it is profile.customer_id"
    )
    features: dict[str, FeatureValue] | None = Field(
        default=None,
        description="precomputed feature values by name (GET /model_info lists them); absent ones are missing",
    )
    profile: Profile | None = Field(default=None, description="raw CRM record; features are computed online")
    events: Events | None = Field(default=None, description="recent events of this lead (with a profile)")
    as_of: Timestamp | None = Field(default=None, description="scoring time for profile + events; default now (UTC)")

    @model_validator(mode="after")
    def _one_source(self) -> Lead:
        if (self.features is None) == (self.profile is None):
            raise ValueError(N_("give either 'features' or 'profile' (with optional 'events'), not both or neither"))
        if self.features is not None:
            if self.customer_id is None:
                raise ValueError(N_("'customer_id' is required with 'features'"))
            if self.events is not None:
                raise ValueError(N_("'events' go with a 'profile', not with precomputed 'features'"))
        elif self.profile is not None and self.customer_id not in (None, self.profile.customer_id):
            raise ValueError(N_("'customer_id' differs from 'profile.customer_id'"))
        return self

    @property
    def id(self) -> str:
        """The lead's customer id."""
        if self.customer_id is not None:
            return self.customer_id
        assert self.profile is not None  # the validator requires features (with customer_id) or a profile
        return self.profile.customer_id


class FeatureTable(_Strict):
    """Precomputed features of many leads as one table (bulk scoring): far less JSON than one object per lead.

    Values as in ``Lead.features`` (finite numbers, true/false, category strings, null); a missing column
    is a missing feature for every lead.
    """

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "customer_ids": ["L-1", "L-2"],
                "columns": ["tenure_days", "n_visit_7d", "province"],
                "rows": [[12.0, 3, "浙江省"], [400.0, 0, None]],
            }
        },
    )

    customer_ids: list[_Id] = Field(min_length=1, description="one id per row")
    columns: list[str] = Field(min_length=1, description="feature names (GET /model_info lists them)")
    rows: list[list[FeatureValue]] = Field(description="one list of values per lead, in the order of columns")

    @model_validator(mode="after")
    def _rectangular(self) -> FeatureTable:
        if len(self.rows) != len(self.customer_ids):
            raise ValueError(N_("{n} rows for {k} customer_ids").format(n=len(self.rows), k=len(self.customer_ids)))
        if len(set(self.columns)) != len(self.columns):
            raise ValueError(N_("columns: duplicate feature names"))
        k = len(self.columns)
        if set(map(len, self.rows)) - {k}:  # C-level: a generator per row costs ~1 ms for 1,000 rows
            bad = next(i for i, r in enumerate(self.rows) if len(r) != k)
            raise ValueError(N_("rows[{i}] has {n} values for {k} columns").format(i=bad, n=len(self.rows[bad]), k=k))
        return self


class ScoreRequest(_Strict):
    """Body of POST /score_leads and POST /predict_churn: ``leads`` (objects) or ``table`` (bulk, columnar)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "leads": [
                    {"profile": _PROFILE_EXAMPLE, "events": _EVENTS_EXAMPLE, "as_of": "2025-06-30T00:00:00"},
                    {
                        "customer_id": "L-10294",
                        "features": {"tenure_days": 12.0, "n_visit_7d": 3, "province": "浙江省"},
                    },
                ],
                "reasons": True,
            }
        },
    )

    leads: list[Lead] | None = Field(
        default=None,
        min_length=1,
        description="one or many leads (at most the service's max_batch, default 10,000)",
    )
    table: FeatureTable | None = Field(
        default=None, description="alternative to leads for bulk scoring of precomputed features"
    )
    reasons: bool = Field(
        default=True,
        description="add the top positive and negative reasons per lead (exact TreeSHAP; the costliest step)",
    )

    @model_validator(mode="after")
    def _one_body(self) -> ScoreRequest:
        if (self.leads is None) == (self.table is None):
            raise ValueError(N_("give either 'leads' or 'table', not both or neither"))
        return self


class Customer(_Strict):
    """One customer to segment: a precomputed ``summary`` or a raw ``profile`` plus ``events``."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "example": {
                "customer_id": "C-1",
                "summary": {
                    "recency_days": 12.0,
                    "frequency": 4.0,
                    "monetary": 520.0,
                    "avg_repeat_value": 105.0,
                    "tenure_days": 300.0,
                    "interactions_90d": 25.0,
                    "touches_90d": 6.0,
                    "open_rate_90d": 0.5,
                    "click_rate_90d": 0.17,
                    "coupon_claims_90d": 1.0,
                },
            }
        },
    )

    customer_id: _Id | None = Field(default=None, description="required with summary")
    summary: dict[str, _FiniteFloat | None] | None = Field(
        default=None, description="the segmenter's per-customer summary (see training.segment.INPUT_DOC)"
    )
    profile: Profile | None = None
    events: Events | None = None
    as_of: Timestamp | None = Field(default=None, description="cutoff for profile + events; default now (UTC)")

    @model_validator(mode="after")
    def _one_source(self) -> Customer:
        if (self.summary is None) == (self.profile is None):
            raise ValueError(N_("give either 'summary' or 'profile' (with optional 'events'), not both or neither"))
        if self.summary is not None and self.customer_id is None:
            raise ValueError(N_("'customer_id' is required with 'summary'"))
        if self.profile is not None and self.customer_id not in (None, self.profile.customer_id):
            raise ValueError(N_("'customer_id' differs from 'profile.customer_id'"))
        return self

    @property
    def id(self) -> str:
        """The customer's id."""
        if self.customer_id is not None:
            return self.customer_id
        assert self.profile is not None  # the validator requires features (with customer_id) or a profile
        return self.profile.customer_id


class SegmentRequest(_Strict):
    """Body of POST /segment."""

    customers: list[Customer] = Field(min_length=1, description="one or many customers")


# ---------------------------------------------------------------------------------------------- outputs
class Reason(Answer):
    """One feature's contribution to the lead's log-odds (exact TreeSHAP / linear term)."""

    feature: str = Field(examples=["n_add_to_cart_7d"])
    label: str = Field(examples=["add to cart events in 7 days"])
    value: float | bool | str | None = Field(description="the lead's value of the feature (null = missing)")
    contribution: float = Field(description="change in log-odds this feature brings, relative to the average lead")


class Reasons(Answer):
    """Top reasons pushing the probability up (positive) and down (negative)."""

    positive: list[Reason]
    negative: list[Reason]


class LeadScore(Answer):
    """The score of one lead."""

    customer_id: str
    probability: float = Field(description="calibrated probability of the outcome", examples=[0.42])
    score: int = Field(description="round(100 × probability), clipped to 1–99", examples=[42])
    grade: Literal["A", "B", "C", "D"] = Field(description="A = top share of training scores; cut points per model")
    reasons: Reasons | None = Field(default=None, description="null when the request asked for no reasons")
    unknown_categories: list[str] = Field(
        default_factory=list, description="categorical features whose value the model never saw (scored as unknown)"
    )
    model: str
    model_version: str
    fit_score: float | None = Field(default=None, description="BANT fit score (configs/bant.yaml); lead model only")
    fit_grade: Literal["A", "B", "C", "D"] | None = Field(
        default=None, description="BANT fit grade, present when the lead's profile carries BANT answers"
    )
    fit_intent: str | None = Field(default=None, description="fit × intent cell, e.g. B×A (fit B, intent grade A)")


class ScoreResponse(Answer):
    """Scores of all leads of a request, in request order."""

    model: str
    model_version: str
    results: list[LeadScore]


class SegmentResult(Answer):
    """Segments, value tier, cluster and expected value of one customer."""

    model_config = ConfigDict(extra="allow")

    customer_id: str
    r_score: int
    f_score: int
    m_score: int
    rfm_segment: str
    value_tier: str
    value_tier_zh: str | None = None
    cluster: int
    cluster_description: str
    p_alive: float | None = Field(description="P(still a customer); null without a paid order")
    expected_purchases: float | None = Field(description="expected purchases in the horizon")
    expected_value: float | None = Field(description="expected spend in the horizon (not discounted)")
    horizon_days: int
    model: str
    model_version: str
    member: MemberCard | None = Field(
        default=None, description="member level, progress and tags (null for a customer sent as a summary)"
    )


class SegmentResponse(Answer):
    """Segments of all customers of a request, in request order."""

    model: str
    model_version: str
    results: list[SegmentResult]


class ModelStatus(Answer):
    """One served model."""

    name: str
    alias: str
    loaded: bool
    version: str | None = None
    source: str | None = Field(default=None, description="registry or bento")
    trained_at: str | None = None
    loaded_at: str | None = None
    metrics: dict[str, float] = Field(default_factory=dict, description="out-of-time test metrics of the version")
    grade_thresholds: list[int] | None = Field(default=None, description="minimum scores of grades A, B, C")
    features: list[str] | None = Field(default=None, description="input feature names (for precomputed features)")
    error: str | None = Field(default=None, description="why the model is not loaded")


class ModelInfo(Answer):
    """What GET /model_info returns."""

    models: dict[str, ModelStatus]
    pinned: bool
    poll_interval_seconds: float
    max_batch: int


def error_body(message: str, errors: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The JSON body of every 4xx/5xx response the service produces itself."""
    return {"error": message, "errors": errors or []}


#: the request validators' messages with fields: pydantic hands them back as text, so the middleware translates
#: them by matching these templates (constant messages are looked up as they are)
VALIDATOR_TEMPLATES: tuple[str, ...] = (
    "{n} rows for {k} customer_ids",
    "rows[{i}] has {n} values for {k} columns",
    "customers[{i}].customer_id: appears twice in the request",
)
