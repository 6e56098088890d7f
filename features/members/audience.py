"""Audiences (人群): the customers matching a rule over tags and the tag run's context, consent respected.

:func:`audience_rule` joins ``--where`` and the ``--lead-grade`` / ``--churn-grade`` / ``--segment`` shortcuts
into one rule; :func:`select_audience` evaluates it and, for a marketing export, leaves out every customer
whose ``marketing_consent`` is not true (false or unknown), counting them. ``purpose="service"`` (a service
message, not marketing) keeps them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.messages import M_
from features.rules import FieldSpec, compile_rule, quote_value

PURPOSES = ("marketing", "service")


def audience_rule(
    where: str | None,
    lead_grades: list[str] | None = None,
    churn_grades: list[str] | None = None,
    segments: list[str] | None = None,
) -> str:
    """One rule from ``--where`` and the shortcuts (all must hold); an error when nothing selects anyone."""
    parts = [f"({where})"] if where and where.strip() else []
    for col, vals in (("lead_grade", lead_grades), ("churn_grade", churn_grades), ("rfm_segment", segments)):
        if vals:
            parts.append(f"{col} in [{', '.join(quote_value(v) for v in vals)}]")
    if not parts:
        raise ValueError(M_("audience: give --where or at least one of --lead-grade, --churn-grade, --segment"))
    return " and ".join(parts)


@dataclass
class AudienceResult:
    """The selected customers (rows of the context, consent applied) and the counts."""

    selected: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def select_audience(
    context: pd.DataFrame,
    long_tags: pd.DataFrame,
    rule_text: str,
    fields: dict[str, FieldSpec],
    consent: pd.Series | None,
    purpose: str = "marketing",
    name: str = "audience",
    known_tags: set[str] | frozenset[str] = frozenset(),
    hint: str = "",
) -> AudienceResult:
    """Customers of ``context`` matching ``rule_text``; ``consent`` is marketing_consent indexed by customer_id.

    ``long_tags`` is the tag run's long table (``customer_id, tag, ...``); its tags and ``known_tags`` (the
    configured ones, some maybe on nobody) may be named with ``tag:NAME``. Counts: matched, left out for no
    consent (false / unknown), exported.
    """
    if purpose not in PURPOSES:
        raise ValueError(M_("--purpose: {purpose!r} is not one of {value}", purpose=purpose, value=", ".join(PURPOSES)))
    ids = pd.Index(context["customer_id"].astype("string"))
    tag_names = set(long_tags["tag"].astype(str).unique()) | set(known_tags)
    rule = compile_rule(rule_text, fields, tag_names, name=M_("audience {name!r}", name=name), hint=hint)
    masks = {}
    for tname in rule.tag_names:
        who = long_tags.loc[long_tags["tag"] == tname, "customer_id"].astype("string")
        masks[tname] = ids.isin(who)
    hit = rule.evaluate(context.reset_index(drop=True), masks)
    summary: dict[str, Any] = {"rule": rule_text, "purpose": purpose, "customers": int(len(ids))}
    summary["matched"] = int(hit.sum())
    keep = hit.copy()
    if purpose == "marketing":
        if consent is None:
            raise ValueError(
                M_(
                    "audience: the customers table has no marketing_consent column, so consent cannot be checked (a "
                    "non-marketing export can use --purpose service)",
                )
            )
        c = consent.astype("boolean")
        c.index = c.index.astype("string")
        c = c[~c.index.duplicated()].reindex(ids)
        yes = c.fillna(False).to_numpy(dtype=bool)
        unknown = c.isna().to_numpy()
        summary["excluded_no_consent"] = int((hit & ~yes & ~unknown).sum())
        summary["excluded_consent_unknown"] = int((hit & unknown).sum())
        keep &= yes
    else:
        summary["excluded_no_consent"] = 0
        summary["excluded_consent_unknown"] = 0
    summary["exported"] = int(keep.sum())
    return AudienceResult(selected=context.loc[np.asarray(keep)].reset_index(drop=True), summary=summary)
