"""The CRM data contract: four tables, their columns, types, allowed values and PII flags.

Every stage reads tables through this contract: ingestion validates against it, the feature
builder trusts it, and the PII list here is the single source for "never a feature, never logged".
"""

from __future__ import annotations

from typing import Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

DType = Literal["string", "datetime", "float", "int", "bool", "category"]

CHANNELS = ("web", "app", "phone", "sms", "email", "wechat", "store", "other")
EVENT_TYPES = (
    "visit",
    "register",
    "login",
    "browse",
    "favorite",
    "consult",
    "add_to_cart",
    "checkout_page",
    "order",
    "pay",
    "review",
    "refund",
    "complaint",
    "support_ticket",
    "coupon_claim",
)
#: Funnel stages in order; a lead's depth is the index of the deepest one reached (0 = none).
FUNNEL_STAGES = (
    "visit",
    "register",
    "browse",
    "favorite",
    "consult",
    "add_to_cart",
    "checkout_page",
    "order",
    "pay",
)
SOURCE_CHANNELS = ("web", "app", "wechat", "referral", "ad", "event", "phone", "store", "other")
COMPANY_SIZES = ("1-10", "11-50", "51-200", "201-1000", "1000+")
GENDERS = ("M", "F", "U")
MEMBER_LEVELS = ("none", "silver", "gold", "platinum")
ORDER_STATUSES = ("paid", "refunded", "cancelled")
TOUCH_CHANNELS = ("sms", "email", "wechat", "app", "phone")
#: BANT lead qualification answers (optional customers columns; configs/bant.yaml scores them)
BUDGET_RANGES = ("<10k", "10k-50k", "50k-200k", "200k+")
PURCHASE_TIMELINES = ("0-1m", "1-3m", "3-6m", "6m+")
BANT_COLUMNS = ("budget_range", "decision_maker", "product_interest", "purchase_timeline")


class ColumnSpec(BaseModel):
    """One column of a contract table."""

    model_config = ConfigDict(frozen=True)

    name: str
    dtype: DType
    required: bool = False
    allowed: tuple[str, ...] | None = Field(default=None, description="closed set of values, if any")
    open_set: bool = Field(
        default=False,
        description="allowed values are the known ones but others are kept (scored as unknown), not rejected",
    )
    min: float | None = None
    max: float | None = None
    pii: bool = False
    description: str = ""


class TableSpec(BaseModel):
    """One contract table: its columns, key and event time column."""

    model_config = ConfigDict(frozen=True)

    name: str
    key: tuple[str, ...]
    time_column: str | None
    columns: tuple[ColumnSpec, ...]
    description: str = ""

    @property
    def column_names(self) -> list[str]:
        """All contract column names, in order."""
        return [c.name for c in self.columns]

    @property
    def required(self) -> list[str]:
        """Names of the columns every row must have."""
        return [c.name for c in self.columns if c.required]

    @property
    def pii(self) -> list[str]:
        """Names of the PII columns."""
        return [c.name for c in self.columns if c.pii]

    def column(self, name: str) -> ColumnSpec:
        """The spec of one column, by name."""
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(f"table {self.name!r} has no column {name!r}")


def _c(name: str, dtype: DType, **kw) -> ColumnSpec:
    return ColumnSpec(name=name, dtype=dtype, **kw)


CUSTOMERS = TableSpec(
    name="customers",
    key=("customer_id",),
    time_column="created_at",
    description="One row per lead or customer.",
    columns=(
        _c("customer_id", "string", required=True, description="stable CRM id"),
        _c("created_at", "datetime", required=True, description="when the lead entered the CRM"),
        _c("source_channel", "category", allowed=SOURCE_CHANNELS, open_set=True),
        _c("province", "category", description="省份, free text kept as a category"),
        _c("city", "category"),
        _c("industry", "category"),
        _c("company_size", "category", allowed=COMPANY_SIZES, open_set=True),
        _c("job_title", "category"),
        _c("gender", "category", allowed=GENDERS, open_set=True),
        _c("age", "int", min=14, max=110),
        _c("member_level", "category", allowed=MEMBER_LEVELS, open_set=True),
        _c("points_balance", "float", min=0),
        _c("marketing_consent", "bool"),
        _c("budget_range", "category", allowed=BUDGET_RANGES, open_set=True, description="BANT budget (¥)"),
        _c("decision_maker", "bool", description="BANT authority: the contact decides the purchase"),
        _c("product_interest", "category", description="BANT need: the product line asked about"),
        _c("purchase_timeline", "category", allowed=PURCHASE_TIMELINES, open_set=True, description="BANT timeline"),
        _c("name", "string", pii=True),
        _c("phone", "string", pii=True),
        _c("email", "string", pii=True),
        _c("address", "string", pii=True),
        _c("owner_id", "string", description="sales rep owning the customer (the sales role sees its own)"),
        _c("team_id", "string", description="team of the owner (the manager role sees its team's customers)"),
    ),
)

INTERACTIONS = TableSpec(
    name="interactions",
    key=("customer_id", "ts", "channel", "event_type"),
    time_column="ts",
    description="Every tracked touch point: visits, browsing, consultations, cart, support.",
    columns=(
        _c("customer_id", "string", required=True),
        _c("ts", "datetime", required=True),
        _c("channel", "category", required=True, allowed=CHANNELS, open_set=True),
        _c("event_type", "category", required=True, allowed=EVENT_TYPES, open_set=True),
    ),
)

ORDERS = TableSpec(
    name="orders",
    key=("order_id",),
    time_column="ts",
    description="Orders with their payment status.",
    columns=(
        _c("order_id", "string", required=True),
        _c("customer_id", "string", required=True),
        _c("ts", "datetime", required=True),
        _c("amount", "float", required=True, min=0),
        _c("status", "category", required=True, allowed=ORDER_STATUSES),
        _c("items", "int", min=0),
        _c("category", "category"),
    ),
)

MARKETING_TOUCHES = TableSpec(
    name="marketing_touches",
    key=("touch_id",),
    time_column="sent_at",
    description="Campaign messages sent, and whether they were opened, clicked, redeemed, answered.",
    columns=(
        _c("touch_id", "string", required=True),
        _c("customer_id", "string", required=True),
        _c("campaign_id", "string", required=True),
        _c("channel", "category", required=True, allowed=TOUCH_CHANNELS, open_set=True),
        _c("sent_at", "datetime", required=True),
        _c("opened_at", "datetime"),
        _c("clicked_at", "datetime"),
        _c("coupon_claimed", "bool"),
        _c("responded", "bool"),
    ),
)

ORDER_ITEMS = TableSpec(
    name="order_items",
    key=("order_id", "line"),
    time_column=None,
    description="Optional: the lines of each order (product, category, quantity, unit price); customer and time "
    "come from the order. A negative quantity is a returned line.",
    columns=(
        _c("order_id", "string", required=True, description="the order (basket) the line belongs to"),
        _c("line", "int", required=True, min=1, description="1, 2, 3 … within the order"),
        _c("sku", "string", required=True, description="product id"),
        _c("product_name", "string", description="product name (not PII)"),
        _c("category", "category"),
        _c("quantity", "float", description="units on the line; negative on a return"),
        _c("unit_price", "float", min=0),
    ),
)

FEEDBACK_KINDS = ("complaint", "suggestion", "praise", "review", "survey")
FEEDBACK_STATUSES = ("open", "in_progress", "resolved", "closed")
FEEDBACK = TableSpec(
    name="feedback",
    key=("feedback_id",),
    time_column="ts",
    description="Optional: complaints, suggestions, praise, reviews and survey answers, with their handling. "
    "resolved_at after T is not known at T.",
    columns=(
        _c("feedback_id", "string", required=True),
        _c("customer_id", "string", required=True),
        _c("ts", "datetime", required=True, description="when the feedback was given"),
        _c("kind", "category", required=True, allowed=FEEDBACK_KINDS),
        _c("rating", "int", min=1, max=5, description="1 (very unhappy) … 5 (very happy)"),
        _c("channel", "category", allowed=CHANNELS, open_set=True),
        _c("category", "category", description="what it is about, e.g. 物流, 质量, 服务"),
        _c("status", "category", allowed=FEEDBACK_STATUSES, open_set=True),
        _c("resolved_at", "datetime", description="when a complaint was resolved (empty while open)"),
        _c("text", "string", pii=True, description="free text: PII, never a feature, never logged"),
    ),
)

#: the four core tables every stage knows; optional tables are ingested and read only where named
TABLES: dict[str, TableSpec] = {t.name: t for t in (CUSTOMERS, INTERACTIONS, ORDERS, MARKETING_TOUCHES)}
#: optional contract tables (absent from a data dir unless ingested): order lines for cross-sell, feedback
OPTIONAL_TABLES: dict[str, TableSpec] = {t.name: t for t in (ORDER_ITEMS, FEEDBACK)}
ALL_TABLES: dict[str, TableSpec] = {**TABLES, **OPTIONAL_TABLES}
PII_COLUMNS: frozenset[str] = frozenset(c for t in ALL_TABLES.values() for c in t.pii)


def get_table(name: str) -> TableSpec:
    """Look a contract table up by name, with a clear error for unknown names."""
    try:
        return ALL_TABLES[name]
    except KeyError:
        raise KeyError(f"unknown table {name!r}; the contract has {', '.join(ALL_TABLES)}") from None


def drop_pii(df: pd.DataFrame) -> pd.DataFrame:
    """Return ``df`` without any PII column (name, phone, email, address)."""
    return df.drop(columns=[c for c in df.columns if c in PII_COLUMNS])


def empty_frame(table: str) -> pd.DataFrame:
    """An empty DataFrame with the contract's columns and dtypes (used for customers with no events)."""
    spec = get_table(table)
    return pd.DataFrame({c.name: pd.Series(dtype=PANDAS_DTYPES[c.dtype]) for c in spec.columns})


#: pandas dtypes that validated contract tables carry (what ingestion writes to Parquet). Values are dtype
#: names; typed ``Any`` because pandas-stubs' ``astype`` only accepts literal names, not a ``str`` variable.
PANDAS_DTYPES: dict[str, Any] = {
    "string": "string",
    "datetime": "datetime64[ns]",
    "float": "float64",
    "int": "Int64",
    "bool": "boolean",
    "category": "string",
}


def coerce_types(df: pd.DataFrame, table: str, keep_text: bool = False) -> pd.DataFrame:
    """Cast the contract columns present in ``df`` to their contract dtypes (no validation).

    ``keep_text`` leaves text columns that are already object or string dtype as they are (converting
    tens of millions of strings costs seconds and the feature builder reads either).
    """
    spec = get_table(table)
    out = df.copy(deep=False)
    for c in spec.columns:
        if c.name in out.columns:
            col = out[c.name]
            if (
                keep_text
                and c.dtype in ("string", "category")
                and (
                    col.dtype == object
                    or isinstance(col.dtype, pd.CategoricalDtype)
                    or pd.api.types.is_string_dtype(col)
                )
            ):
                continue
            if c.dtype == "datetime" and str(col.dtype) == "datetime64[ns]":
                continue
            if c.dtype == "datetime":
                out[c.name] = pd.to_datetime(out[c.name]).astype("datetime64[ns]")
            else:
                out[c.name] = out[c.name].astype(PANDAS_DTYPES[c.dtype])
    return out
