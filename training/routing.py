"""Lead routing (线索分配): one owner per lead from ``configs/routing.yaml`` (`crmscore route`).

Order of decisions for each lead:

1. a lead that already has an ``owner_id`` keeps it (rule ``existing_owner``; it does not use today's capacity);
2. leads matching ``skip`` (a rule in the allow-listed language of :mod:`features.rules`) are left unassigned;
3. the first ``team_rules`` entry whose ``when`` matches restricts the lead to that team;
4. territory first: reps working on the as-of day whose territories include the lead's city or province
   (``*`` covers everything). Places are compared without their administrative suffix on either side
   (:func:`place_key`: ``上海市`` = ``上海``, ``广西壮族自治区`` = ``广西``, ``Zhejiang Province`` = ``zhejiang``);
5. then skill: among them, reps with the lead's industry or product line as a skill; when none has it, any of the
   territory's reps (rule ``territory``, else ``territory+skill``);
6. within those, weighted round-robin by free capacity: the rep with the largest share of today's capacity still
   free, then the most free slots, then the order in the config.

Leads are taken A-grade first (then B, C, D, no grade), then by score (high first), then by lead id, so the result
is deterministic. Daily capacity is never exceeded; leads that cannot be placed are listed with the reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.messages import M_

#: a trailing administrative suffix, dropped before places are compared (at least two characters are kept, so a
#: two-character name such as ``沙市`` stays whole); longer suffixes first
_PLACE_SUFFIX = r"^(.{2,}?)\s*(?:特别行政区|维吾尔自治区|壮族自治区|回族自治区|自治区|省|市|province|city)$"
DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
GRADE_ORDER = {"A": 0, "B": 1, "C": 2, "D": 3}


class RoutingError(ValueError):
    """The routing configuration or the lead table cannot be used; the message names the field."""


class Rep(BaseModel):
    """One sales rep: team, territories (provinces / cities, ``*`` = all), skills, daily capacity, working days."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(min_length=1)
    team: str = Field(min_length=1)
    territories: list[str] = Field(min_length=1)
    skills: list[str] = Field(default_factory=list)
    daily_capacity: int = Field(ge=0)
    working_days: list[str] = Field(default_factory=lambda: list(DAYS[:5]))

    @field_validator("working_days")
    @classmethod
    def _days(cls, v: list[str]) -> list[str]:
        out = [d.strip().lower()[:3] for d in v]
        bad = [d for d, o in zip(v, out, strict=True) if o not in DAYS]
        if bad:
            raise ValueError(M_("unknown working day(s) {bad} (use {value})", bad=bad, value=", ".join(DAYS)))
        return out


class TeamRule(BaseModel):
    """Leads matching ``when`` (a rule) go only to reps of ``team``."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1)
    when: str = Field(min_length=1)
    team: str = Field(min_length=1)


class RoutingConfig(BaseModel):
    """``configs/routing.yaml``: the reps, the lead columns routing reads, and optional rules."""

    model_config = ConfigDict(extra="forbid")

    id_field: str = "lead_id"
    grade_field: str = "grade"
    score_field: str = "score"
    owner_field: str = "owner_id"
    territory_fields: list[str] = Field(default_factory=lambda: ["city", "province"])
    skill_fields: list[str] = Field(default_factory=lambda: ["industry", "product_line"])
    skip: str = ""
    team_rules: list[TeamRule] = Field(default_factory=list)
    reps: list[Rep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check(self) -> RoutingConfig:
        ids = [r.id for r in self.reps]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(M_("reps: repeated id(s) {value}", value=", ".join(dup)))
        teams = {r.team for r in self.reps}
        for tr in self.team_rules:
            if tr.team not in teams:
                raise ValueError(
                    M_(
                        "team_rules.{name}: team {team!r} has no reps (teams: {value})",
                        name=tr.name, team=tr.team, value=", ".join(sorted(teams)),
                    )
                )
        return self


@dataclass
class RoutingResult:
    """One row per lead (``lead_id``, ``owner_id``, ``rule``, ``reason``, ``grade``) and one per rep (summary)."""

    assignments: pd.DataFrame
    summary: pd.DataFrame


def _norm(s: pd.Series) -> np.ndarray:
    return s.astype("string").str.strip().str.lower().fillna("").to_numpy(dtype=object)


def place_keys(s: pd.Series) -> np.ndarray:
    """Places as compared by the router: trimmed, lower-case, without a trailing 省 / 市 / 自治区 / 特别行政区
    (or ``province`` / ``city``), so ``上海市`` on a lead matches ``上海`` in a rep's territories and back."""
    text = s.astype("string").str.strip().str.lower()
    return text.str.replace(_PLACE_SUFFIX, r"\1", regex=True).fillna("").to_numpy(dtype=object)


def place_key(value: str) -> str:
    """One place as compared by the router (see :func:`place_keys`)."""
    return str(place_keys(pd.Series([value]))[0])


def route_leads(
    leads: pd.DataFrame,
    config: RoutingConfig,
    as_of: str | pd.Timestamp,
    assigned: Mapping[str, int] | None = None,
    a_history: Mapping[str, int] | None = None,
) -> RoutingResult:
    """Assign each lead an owner (see the module docstring); vectorised over reps, one pass over the leads.

    ``assigned``: rep id → leads the rep already received that day; they count against its daily capacity.
    ``a_history``: rep id → A-grade leads the rep received earlier in the period (e.g. this month); an A-grade
    lead then goes to the eligible rep with free capacity and the fewest A-grade leads per unit of daily capacity
    in the period so far (then the largest share free, …), so A-grade leads spread in proportion to capacity over
    the whole period, not only within a day (:mod:`training.routing_month`)."""
    from features.rules import compile_rule, fields_of_frame

    cfg = config
    if cfg.id_field not in leads.columns:
        raise RoutingError(
            M_(
                "lead table: id column {id_field!r} is missing (columns: {value})",
                id_field=cfg.id_field, value=", ".join(map(str, leads.columns[:30])),
            )
        )
    terr_cols = [c for c in cfg.territory_fields if c in leads.columns]
    if not terr_cols:
        raise RoutingError(M_(
            "lead table: none of the territory columns {territory_fields} is present",
            territory_fields=cfg.territory_fields,
        ))
    if leads[cfg.id_field].duplicated().any():
        dup = leads.loc[leads[cfg.id_field].duplicated(), cfg.id_field].iloc[0]
        raise RoutingError(M_(
            "lead table: lead id {dup!r} repeats in column {id_field!r}",
            dup=dup, id_field=cfg.id_field,
        ))
    try:
        day = DAYS[pd.Timestamp(as_of).dayofweek]
    except (ValueError, TypeError) as e:
        raise RoutingError(M_("--as-of {as_of!r} is not a date", as_of=as_of)) from e
    n, reps = len(leads), cfg.reps
    R = len(reps)
    rep_ids = np.array([r.id for r in reps], dtype=object)
    rep_team = np.array([r.team for r in reps], dtype=object)
    working = np.array([day in r.working_days for r in reps], dtype=bool)
    cap = np.array([r.daily_capacity if day in r.working_days else 0 for r in reps], dtype=np.int64)
    used = np.zeros(R, dtype=np.int64)
    used_a = np.zeros(R, dtype=np.int64)
    prior = np.zeros(R, dtype=np.int64)
    if assigned:
        unknown = sorted(set(map(str, assigned)) - set(rep_ids.tolist()))
        if unknown:
            raise RoutingError(M_("assigned: unknown rep id(s) {value}", value=", ".join(unknown[:10])))
        bad = {k: v for k, v in assigned.items() if int(v) < 0}
        if bad:
            raise RoutingError(M_("assigned: negative count(s) {bad}", bad=bad))
        prior = np.array([int(assigned.get(r, 0)) for r in rep_ids.tolist()], dtype=np.int64)
    hist = None
    if a_history is not None:
        unknown = sorted(set(map(str, a_history)) - set(rep_ids.tolist()))
        if unknown:
            raise RoutingError(M_("a_history: unknown rep id(s) {value}", value=", ".join(unknown[:10])))
        hist = np.array([int(a_history.get(r, 0)) for r in rep_ids.tolist()], dtype=np.int64)

    # territory and skill memberships as value → boolean rep mask
    def masks(attr: str) -> tuple[dict[str, np.ndarray], np.ndarray]:
        table: dict[str, np.ndarray] = {}
        star = np.zeros(R, dtype=bool)
        for j, r in enumerate(reps):
            for v in getattr(r, attr):
                v = place_key(v) if attr == "territories" else v.strip().lower()
                if v == "*":
                    star[j] = True
                else:
                    table.setdefault(v, np.zeros(R, dtype=bool))[j] = True
        return table, star

    terr_mask, terr_star = masks("territories")
    skill_mask, _ = masks("skills")
    terr_vals = [place_keys(leads[c]) for c in terr_cols]
    skill_vals = [_norm(leads[c]) for c in cfg.skill_fields if c in leads.columns]

    owner = (
        leads[cfg.owner_field].astype("string").str.strip().fillna("").to_numpy(dtype=object)
        if cfg.owner_field in leads.columns
        else np.full(n, "", dtype=object)
    )
    grade = (
        leads[cfg.grade_field].astype("string").str.strip().str.upper().fillna("").to_numpy(dtype=object)
        if cfg.grade_field in leads.columns
        else np.full(n, "", dtype=object)
    )
    score = (
        pd.to_numeric(leads[cfg.score_field], errors="coerce").fillna(-np.inf).to_numpy()
        if cfg.score_field in leads.columns
        else np.zeros(n)
    )
    fields = fields_of_frame(leads)
    skip = compile_rule(cfg.skip, fields, name="skip").evaluate(leads) if cfg.skip.strip() else np.zeros(n, dtype=bool)
    team_of = np.full(n, "", dtype=object)
    rule_of = np.full(n, "", dtype=object)
    for tr in reversed(cfg.team_rules):  # the first matching rule wins
        hit = compile_rule(tr.when, fields, name=f"team_rules.{tr.name}").evaluate(leads)
        team_of[hit], rule_of[hit] = tr.team, tr.name

    gkey = pd.Series(grade).map(GRADE_ORDER).fillna(4).to_numpy()
    ids_text = leads[cfg.id_field].astype("string").fillna("").to_numpy(dtype=object)
    order = np.lexsort((ids_text, -score, gkey))

    out_owner = np.full(n, "", dtype=object)
    out_rule = np.full(n, "", dtype=object)
    out_reason = np.full(n, "", dtype=object)
    has_owner = owner != ""
    out_owner[has_owner], out_rule[has_owner] = owner[has_owner], "existing_owner"
    skipped = skip & ~has_owner
    out_reason[skipped] = "skipped by the skip rule"
    todo = order[~(has_owner | skipped)[order]]

    # leads with the same places, skills and team share their candidate reps: one group code per combination
    key_frame = pd.DataFrame(
        {f"t{k}": v for k, v in enumerate(terr_vals)} | {f"s{k}": v for k, v in enumerate(skill_vals)}
    )
    key_frame["team"] = team_of
    code = key_frame.groupby(list(key_frame.columns), sort=False).ngroup().to_numpy()
    first_row = pd.Series(np.arange(n)).groupby(code).first()
    team_masks = {t: rep_team == t for t in set(rep_team)}
    groups: dict[int, tuple[str, list[tuple[np.ndarray, np.ndarray, str]], np.ndarray]] = {}
    for c, i in first_row.items():
        places = tuple(dict.fromkeys(v[i] for v in terr_vals if v[i]))
        skills = tuple(v[i] for v in skill_vals if v[i])
        tm = terr_star.copy()
        for p in places:
            if p in terr_mask:
                tm |= terr_mask[p]
        if team_of[i]:
            tm &= team_masks[team_of[i]]
        sm = np.zeros(R, dtype=bool)
        for s in skills:
            if s in skill_mask:
                sm |= skill_mask[s]
        where = "/".join(places)
        if not places and not terr_star.any():
            why = "no territory (city / province) on the lead"
        elif not tm.any():
            why = f"no rep{f' in team {team_of[i]}' if team_of[i] else ''} covers territory {where or '(none)'}"
        elif not (tm & working).any():
            why = f"no rep covering {where} works on {day}"
        else:
            why = f"no free capacity among the reps covering {where}"
        pools = [
            (np.flatnonzero(m), np.maximum(cap[m], 1), r) for m, r in ((tm & sm, "territory+skill"), (tm, "territory"))
        ]
        groups[int(c)] = (why, [p for p in pools if len(p[0])], tm)

    free = np.maximum(cap - prior, 0)
    for i in todo.tolist():
        why, pools, _ = groups[code[i]]
        for idx, capc, rule in pools:
            f = free[idx]
            share = f / capc
            m = share.max()
            if m <= 0:
                continue
            if hist is not None and grade[i] == "A":  # fewest A-grade leads per unit of capacity this period
                seen = np.where(f > 0, (hist[idx] + used_a[idx]) / capc, np.inf)
                k = (seen == seen.min()).nonzero()[0]
                k = k[share[k] == share[k].max()]
            else:
                k = (share == m).nonzero()[0]
            if len(k) > 1:
                k = k[f[k] == f[k].max()]
            j = idx[k[0]]
            free[j] -= 1
            used[j] += 1
            used_a[j] += grade[i] == "A"
            out_owner[i] = rep_ids[j]
            out_rule[i] = (f"{rule_of[i]}:" if rule_of[i] else "") + rule
            break
        else:
            out_reason[i] = why
    assignments = pd.DataFrame(
        {
            "lead_id": leads[cfg.id_field].to_numpy(),
            "owner_id": out_owner,
            "rule": out_rule,
            "reason": out_reason,
            "grade": grade,
        }
    )
    summary = pd.DataFrame(
        {
            "rep_id": rep_ids,
            "team": rep_team,
            "working": working,
            "capacity": cap,
            "assigned": used,
            "assigned_a": used_a,
            "free": cap - used,
            "kept_existing": pd.Series(owner).value_counts().reindex(rep_ids, fill_value=0).to_numpy(),
        }
    )
    return RoutingResult(assignments=assignments, summary=summary)


def load_routing_config(path: str | None) -> RoutingConfig:
    """``configs/routing.yaml`` (or another file) as a validated :class:`RoutingConfig`."""
    from features.config import load_config

    return load_config(path, RoutingConfig)
