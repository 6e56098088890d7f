"""Member level, progress to the next level and tags of the customers of one ``POST /segment`` request.

The same code and configs as the batch commands: each customer's profile and events become contract tables
(:func:`serving.http.postprocess.tables_for_leads`, as for online features), the level is
:func:`features.members.levels.compute_levels` over those tables at the request's ``as_of``, the context is
:func:`serving.members.context.build_context` with the segment model's own output (RFM scores and segment,
value tier, P(alive)) and the segmenter's input summary (recency, frequency, tenure ...) standing in for the
batch's fitted-at-T RFM, and the tags are :func:`features.members.tags.apply_tags`.

What online cannot know, said in the response rather than guessed:

* a level is computed from the orders sent, with no earlier run: upgrade-only history and manual level changes
  live in the batch output (``crmscore members apply``), so a level carried over from an earlier window is
  not known here;
* manual tags are batch-only (imported from CSV files);
* a rule tag reading a field the request cannot give (``lead_grade``, ``churn_grade`` from batch score files,
  or a tag built on such a tag) is not evaluated and is listed in ``tags_not_evaluated`` with the reason.

Configs: ``$CRMSCORE_MEMBERS_CONFIG`` and ``$CRMSCORE_TAGS_CONFIG`` (YAML paths), else the embedded defaults
(equal to ``configs/members.yaml`` and ``configs/tags.yaml``), loaded once per worker.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from features.members.config import MembersConfig, TagsConfig, load_members_config, load_tags_config
from features.members.levels import compute_levels
from features.members.tags import apply_tags
from features.messages import M_
from features.rules import FieldSpec, Rule, parse_rule
from serving.members.context import build_context, context_fields

#: environment variables naming the YAML configs the service reads
MEMBERS_CONFIG_ENV = "CRMSCORE_MEMBERS_CONFIG"
TAGS_CONFIG_ENV = "CRMSCORE_TAGS_CONFIG"
#: level columns each result carries (``features.members.levels.LEVEL_COLUMNS`` names)
CARD_LEVEL_COLUMNS = ("member_level", "member_level_zh", "next_level", "level_progress", "progress")


def evaluable_tags(cfg: TagsConfig, fields: Mapping[str, FieldSpec]) -> tuple[TagsConfig, dict[str, str]]:
    """The tags that can be computed with ``fields`` (manual tags left out), and why each other one cannot.

    A rule tag needs every field it reads and every tag it names; product tags need only the orders.
    """
    keep: list[Any] = []
    skipped: dict[str, str] = {}
    usable: set[str] = set()
    for t in cfg.tags:
        if t.kind == "manual":
            skipped[t.name] = "manual tags are imported in batch (crmscore tags apply --manual)"
            continue
        if t.kind == "rule":
            rule = Rule(t.name, t.rule or "", parse_rule(t.rule or "", M_("tag {name!r}", name=t.name)))
            missing = [f for f in rule.field_names if f not in fields]
            if missing:
                skipped[t.name] = f"needs {', '.join(missing)}, which a request does not give"
                continue
            no_tag = [x for x in rule.tag_names if x not in usable]
            if no_tag:
                skipped[t.name] = f"needs tag {', '.join(no_tag)}, not evaluated here"
                continue
        keep.append(t)
        usable.add(t.name)
    return TagsConfig(tags=keep), skipped


def _why(spec: Any, row: Mapping[str, Any], rule_fields: Sequence[str]) -> str:
    """Why a tag applies to one customer: the rule and this customer's values, or the product window."""
    if spec.kind == "product":
        return f"paid order in {' / '.join(spec.categories or [])} within the last {spec.window_days} days"
    values = []
    for f in rule_fields:
        v = row.get(f)
        if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
            shown = "missing"
        elif isinstance(v, float):
            shown = f"{v:.4g}"
        else:
            shown = str(v)
        values.append(f"{f} = {shown}")
    return f"rule: {spec.rule}" + (f" ({'; '.join(values)})" if values else "")


@dataclass
class MemberProgramme:
    """The members and tags configs a worker serves, and :meth:`cards` for the customers of a request."""

    members: MembersConfig
    tags: TagsConfig
    source: dict[str, str] = field(default_factory=dict)

    @classmethod
    def load(cls) -> MemberProgramme:
        """The configs named by ``$CRMSCORE_MEMBERS_CONFIG`` / ``$CRMSCORE_TAGS_CONFIG``, else the defaults."""
        m = os.environ.get(MEMBERS_CONFIG_ENV) or None
        t = os.environ.get(TAGS_CONFIG_ENV) or None
        return cls(
            load_members_config(m),
            load_tags_config(t),
            {"members": m or "embedded defaults", "tags": t or "embedded defaults"},
        )

    def cards(
        self, tables: dict[str, pd.DataFrame], as_of: Any, ids: Sequence[str], segments: pd.DataFrame
    ) -> list[dict[str, Any]]:
        """Level, progress and tags of the customers ``ids`` (unique) in the contract ``tables`` as of ``as_of``.

        ``segments`` holds one row per id (index ``customer_id``): the segment model's output and its input
        summary, used in place of the batch's own RFM / P(alive) fit. Results are in the order of ``ids``.
        """
        t = pd.Timestamp(as_of)
        idx = pd.Index(pd.array(list(ids), dtype="string"), name="customer_id")
        levels = compute_levels(tables, t, self.members).levels
        levels = levels.set_index("customer_id").reindex(idx).reset_index()
        base = self.members.levels[0]
        unknown = levels["member_level"].isna()
        if unknown.any():  # a customer the level population misses (created after as_of): the entry level
            levels.loc[unknown, ["member_level", "member_level_zh"]] = [base.id, base.zh]
        seg = segments.copy()
        seg.index = pd.Index(seg.index.astype("string"), name="customer_id")
        from features.members.tags import rule_fields

        needed = [f for f in rule_fields(self.tags) if f not in seg.columns]
        ctx, _ = build_context(tables, t, levels, needed, [("segment model", seg)])
        fields = context_fields(ctx, self.members.order)
        cfg, skipped = evaluable_tags(self.tags, fields)
        res = apply_tags(ctx, tables.get("orders"), t, cfg, fields)
        specs = {s.name: s for s in cfg.tags}
        reads = {
            s.name: Rule(s.name, s.rule or "", parse_rule(s.rule or "", s.name)).field_names
            for s in cfg.tags
            if s.kind == "rule"
        }
        rows = ctx.to_dict("records")
        pos = {cid: i for i, cid in enumerate(idx)}
        hits: list[list[dict[str, Any]]] = [[] for _ in idx]
        long = res.long
        for cid, tag in zip(long["customer_id"].astype(str), long["tag"].astype(str), strict=True):
            i = pos[cid]
            spec = specs[tag]
            hits[i].append(
                {"tag": tag, "en": spec.en, "kind": spec.kind, "why": _why(spec, rows[i], reads.get(tag, ()))}
            )
        order = {s.name: k for k, s in enumerate(self.tags.tags)}
        out = []
        for i, rec in enumerate(levels[list(CARD_LEVEL_COLUMNS)].to_dict("records")):
            card = {k: (None if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)) else v)
                    for k, v in rec.items()}
            card["level_progress"] = float(card["level_progress"]) if card["level_progress"] is not None else None
            card["tags"] = sorted(hits[i], key=lambda h: order[h["tag"]])
            card["tags_not_evaluated"] = skipped
            out.append(card)
        return out


def request_cards(
    programme: MemberProgramme, customers: Sequence[Any], now: Any, inputs: pd.DataFrame, outputs: pd.DataFrame
) -> list[dict[str, Any] | None]:
    """Member cards of ``schemas.Customer`` items, in order; None for a customer sent as a ``summary`` (no events,
    so no level or product tags). ``inputs`` / ``outputs`` are the segmenter's input and output frames, in order.
    """
    from features.contract import PII_COLUMNS
    from serving.http.postprocess import tables_for_leads

    seg = pd.concat(
        [inputs.reset_index(drop=True), outputs.reset_index(drop=True).drop(columns="customer_id", errors="ignore")],
        axis=1,
    )
    seg = seg.loc[:, ~seg.columns.duplicated(keep="last")]
    out: list[dict[str, Any] | None] = [None] * len(customers)
    groups: dict[Any, list[int]] = {}
    for i, c in enumerate(customers):
        if c.profile is not None:
            groups.setdefault(c.as_of or now, []).append(i)
    for as_of, members in groups.items():
        ids = [customers[i].id for i in members]
        # a customer id sent twice at one as_of is carded on its own (one row per id in the tables)
        batches = [members] if len(set(ids)) == len(ids) else [[i] for i in members]
        for batch in batches:
            profiles = [customers[i].profile.model_dump(exclude=set(PII_COLUMNS)) for i in batch]  # PII dropped
            events = [{} if customers[i].events is None else customers[i].events.model_dump() for i in batch]
            tables = tables_for_leads(profiles, events, as_of)
            bids = [customers[i].id for i in batch]
            part = seg.iloc[batch].drop(columns="customer_id", errors="ignore")
            part.index = pd.Index(bids, name="customer_id")
            for i, card in zip(batch, programme.cards(tables, as_of, bids, part), strict=True):
                out[i] = card
    return out
