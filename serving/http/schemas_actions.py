"""Request and response models of ``POST /recommend`` and ``POST /next_action`` (pydantic; in the OpenAPI page).

``/recommend`` takes a customer id known to the service's data (``crmscore serve --data DIR`` with orders and
order_items), or the customer's purchases themselves (``purchases``: product lines with their time).
``/next_action`` takes customers with the fields the rules of ``configs/actions.yaml`` read. No PII field is
accepted by either.
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from serving.http.openapi import Answer
from serving.http.schemas import Timestamp
from serving.i18n import N_

#: the cross-sell paths that need the API key (the guard's protected paths include them)
CROSS_SELL_PATHS = ("/recommend", "/next_action", "/ui/api/next_steps")

_Id = Annotated[str, Field(min_length=1, max_length=200)]


def _in_range(v: datetime | None) -> datetime | None:
    """Times the model's clock (nanoseconds since 1970, 64 bits) can hold: years 1900 to 2200."""
    if v is not None and not 1900 <= v.year <= 2200:
        raise ValueError(N_("must be a time between the years 1900 and 2200"))
    return v


_Time = Annotated[Timestamp, AfterValidator(_in_range)]
_Grade = Annotated[str, Field(pattern="^[A-D]$")]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


# ------------------------------------------------------------------------------------------------ recommend
class Purchase(_Strict):
    """One bought product line (a line of contract table ``order_items`` with its order's time)."""

    sku: _Id = Field(description="product id, as in the model's catalogue (order_items.sku)", examples=["M01"])
    ts: _Time = Field(description="when the order was paid")
    order_id: str | None = Field(default=None, max_length=200, description="the order (basket); default: ts")
    category: str | None = Field(
        default=None, max_length=200,
        description="the product's category (order_items.category); required when the model recommends categories",
    )


class RecommendRequest(_Strict):
    """Whom to recommend for: ``customer_id`` alone (looked up in the service's data) or with ``purchases``."""

    customer_id: _Id = Field(description="CRM customer id")
    purchases: list[Purchase] | None = Field(
        default=None,
        max_length=10_000,
        description="the customer's paid product lines; when absent, read from the service's data (--data DIR)",
    )
    k: int = Field(default=10, ge=1, le=100, description="products to return")
    exclude_days: int | None = Field(
        default=None,
        ge=0,
        le=3650,
        description="leave out products bought in the last N days (default: the model's exclude_recent_days)",
    )
    as_of: _Time | None = Field(
        default=None, description="recommend as of this time (only purchases up to it count); default: the last one"
    )


class Recommendation(Answer):
    """One recommended product and why."""

    rank: int = Field(description="1 = best")
    sku: str = Field(description="product id")
    product_name: str = Field(description="product name (catalogue)")
    score: float = Field(description="model score (higher is better; comparable within one customer)")
    evidence: str = Field(
        description="the reason in words, e.g. 'bought 奶粉; 34% of its buyers also buy 纸尿裤, 3.1× the base rate'"
    )


class RecommendResponse(Answer):
    """The top-k products of one customer."""

    customer_id: str
    model: str = Field(description="registered model name")
    model_version: str
    as_of: str = Field(description="purchases up to this time were read (ISO 8601)")
    history_lines: int = Field(description="purchase lines of the customer the model read")
    excluded_days: int = Field(description="products bought within this many days were left out")
    recommendations: list[Recommendation]


# ---------------------------------------------------------------------------------------------- next action
class ActionCustomer(_Strict):
    """What the action rules read about one customer (each missing field makes its comparisons false)."""

    customer_id: _Id = Field(description="CRM customer id")
    lead_grade: _Grade | None = Field(default=None, description="grade A–D from /score_leads (leads only)")
    churn_grade: _Grade | None = Field(default=None, description="grade A–D from /predict_churn (A = highest risk)")
    value_tier: str | None = Field(
        default=None, max_length=100, description="value tier from /segment", examples=["important"]
    )
    member_level: str | None = Field(
        default=None, max_length=100, description="member level id (configs/members.yaml)", examples=["gold"]
    )
    marketing_consent: bool | None = Field(default=None, description="marketing consent; unknown counts as none")
    recency_days: float | None = Field(
        default=None, ge=0, allow_inf_nan=False, description="days since the last paid order"
    )
    frequency: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="paid orders")
    monetary: float | None = Field(default=None, ge=0, allow_inf_nan=False, description="paid spend")
    tags: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        default_factory=list, max_length=200, description="tags the customer carries (for tag:NAME in rules)"
    )


class NextActionRequest(_Strict):
    """Customers to decide an action for (1 to the service's max_batch)."""

    customers: list[ActionCustomer] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_ids(self) -> NextActionRequest:
        seen: set[str] = set()
        for i, c in enumerate(self.customers):
            if c.customer_id in seen:
                raise ValueError(N_("customers[{i}].customer_id: appears twice in the request").format(i=i))
            seen.add(c.customer_id)
        return self


class Action(Answer):
    """The one action for a customer: the first rule of configs/actions.yaml it meets."""

    customer_id: str
    action_id: str = Field(description="name of the rule that decided (or the default's)")
    action: str = Field(description="what the team does, e.g. '电销 sales call within 24 h'")
    channel: str = Field(description="who or what carries it out")
    marketing: bool = Field(description="a marketing action (never for customers without consent)")
    reason: str = Field(description="why, in words")
    rule: str = Field(description="the rule's condition as written in the config")


class NextActionResponse(Answer):
    """One action per customer, in request order."""

    results: list[Action]
