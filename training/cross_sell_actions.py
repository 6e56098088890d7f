"""Next best action: ordered rules in the project's rule language (``features.rules``) → one action per customer.

``configs/actions.yaml`` lists rules in order; the first rule a customer meets gives the action and its reason,
customers meeting none get ``default``. The rules read the context `crmscore tags apply` builds (member level,
RFM, recency, value tier, the non-PII profile with ``marketing_consent``) plus lead and churn grades from
``--scores lead=FILE --scores churn=FILE`` and ``tag:NAME`` from a ``tags apply`` output folder. Rules are
parsed and checked against the allow-listed fields (never evaluated as code); an error names the rule and the
character position.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator

from features.messages import M_
from features.rules import FieldSpec, Rule, RuleError, compile_rule, parse_rule


class ActionRule(BaseModel):
    """One rule: when ``rule`` holds (and no earlier rule did), the customer gets ``action`` for ``reason``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, description="unique id of the rule")
    action: str = Field(min_length=1, description="what the team does (e.g. 电销 sales call within 24 h)")
    channel: str = Field(default="", description="who or what carries it out: sales, campaign, service …")
    marketing: bool = Field(default=True, description="a marketing action (never for customers without consent)")
    reason: str = Field(min_length=1, description="why, in words, written next to the customer")
    rule: str = Field(min_length=1, description="condition in the rule language (docs/members.md)")


#: the rules of configs/actions.yaml (the embedded default; the YAML documents them)
DEFAULT_RULES: list[dict[str, object]] = [
    {
        "name": "service_only",
        "action": "仅服务 service only, no marketing",
        "channel": "service",
        "marketing": False,
        "reason": "no marketing consent (or consent unknown)",
        "rule": "not marketing_consent",
    },
    {
        "name": "retention_call",
        "action": "挽留优惠 + 专属电话 retention offer and a personal call",
        "channel": "account manager",
        "reason": "important customer with high churn risk",
        "rule": "value_tier == important and churn_grade in [A, B]",
    },
    {
        "name": "sales_call_24h",
        "action": "电销 sales call within 24 h",
        "channel": "sales",
        "reason": "A-grade lead (highest purchase intent)",
        "rule": "lead_grade == A",
    },
    {
        "name": "batch_coupon",
        "action": "优惠券 coupon in the next batch campaign",
        "channel": "campaign",
        "reason": "B or C-grade lead (medium intent)",
        "rule": "lead_grade in [B, C]",
    },
    {
        "name": "win_back",
        "action": "唤醒 win-back message in the next batch campaign",
        "channel": "campaign",
        "reason": "no purchase for more than 180 days",
        "rule": "recency_days > 180",
    },
]


class ActionsConfig(BaseModel):
    """`configs/actions.yaml`: the ordered rules and the action for everyone else."""

    model_config = ConfigDict(extra="forbid")

    rules: list[ActionRule] = Field(default_factory=lambda: [ActionRule.model_validate(r) for r in DEFAULT_RULES])
    default: ActionRule = Field(
        default_factory=lambda: ActionRule(
            name="no_action",
            action="无动作 no action this cycle",
            channel="",
            marketing=False,
            reason="no rule matched",
            rule="-",
        )
    )

    @field_validator("rules")
    @classmethod
    def _unique(cls, v: list[ActionRule]) -> list[ActionRule]:
        if not v:
            raise ValueError(M_("rules: at least one rule is needed"))
        seen: set[str] = set()
        for r in v:
            if r.name in seen:
                raise ValueError(M_("rules: name {name!r} appears twice", name=r.name))
            seen.add(r.name)
        return v


def rule_fields(cfg: ActionsConfig) -> tuple[list[str], list[str]]:
    """Fields and tags the action rules read (syntax only), so the caller builds only what is needed."""
    fields: list[str] = []
    tags: list[str] = []
    for r in cfg.rules:
        tree = parse_rule(r.rule, M_("action {name!r}", name=r.name))
        rule = Rule(r.name, r.rule, tree)
        fields += rule.field_names
        tags += rule.tag_names
    return list(dict.fromkeys(fields)), list(dict.fromkeys(tags))


def compile_actions(
    cfg: ActionsConfig, fields: Mapping[str, FieldSpec], tags: set[str] | None = None, hint: str = ""
) -> list[Rule]:
    """Every rule checked against the context's fields and the known tags; a :class:`RuleError` names the rule."""
    return [compile_rule(r.rule, fields, tags, name=M_("action {name!r}", name=r.name), hint=hint) for r in cfg.rules]


def assign_actions(
    ctx: pd.DataFrame,
    cfg: ActionsConfig,
    fields: Mapping[str, FieldSpec],
    tags: Mapping[str, np.ndarray] | None = None,
    hint: str = "",
) -> pd.DataFrame:
    """One row per context row: ``customer_id, action_id, action, channel, marketing, reason, rule``.

    The first matching rule wins (the order of the config is the precedence).
    """
    rules = compile_actions(cfg, fields, set(tags or {}), hint)
    n = len(ctx)
    chosen = np.full(n, len(cfg.rules), dtype=np.int64)  # index into rules; len = default
    open_ = np.ones(n, dtype=bool)
    cache: dict = {}
    for i, rule in enumerate(rules):
        hit = rule.evaluate(ctx, tags, cache) & open_
        chosen[hit] = i
        open_ &= ~hit
    table = [*cfg.rules, cfg.default]
    pick = lambda attr: np.array([getattr(r, attr) for r in table], dtype=object)[chosen]  # noqa: E731
    return pd.DataFrame(
        {
            "customer_id": ctx["customer_id"].astype("string").to_numpy(),
            "action_id": pick("name"),
            "action": pick("action"),
            "channel": pick("channel"),
            "marketing": pick("marketing").astype(bool),
            "reason": pick("reason"),
            "rule": pick("rule"),
        }
    )


def action_counts(actions: pd.DataFrame, cfg: ActionsConfig) -> pd.DataFrame:
    """Customers per action, in the config's order (actions nobody got are listed with 0)."""
    order = [r.name for r in [*cfg.rules, cfg.default]]
    got = actions["action_id"].value_counts().reindex(order, fill_value=0)
    names = {r.name: r.action for r in [*cfg.rules, cfg.default]}
    return pd.DataFrame(
        {"action_id": order, "action": [names[o] for o in order], "customers": got.to_numpy().astype(np.int64)}
    )


__all__ = [
    "ActionRule",
    "ActionsConfig",
    "RuleError",
    "action_counts",
    "assign_actions",
    "compile_actions",
    "rule_fields",
]
