"""A simulated month of demo leads through the router: load and the fairness of A-grade leads.

:func:`demo_routing_config` builds sales reps over the demo generator's provinces and industries (a team per
province, reps of different daily capacity, no ``*`` territory); :func:`demo_month_leads` draws each working day's
new leads (province and city weighted as in the demo data, grade A/B/C/D, score). :func:`simulate_month` routes
each day's leads with :func:`training.routing.route_leads`, carrying the month-to-date A-grade counts
(``a_history``), and :func:`fairness_report` checks:

- **load**: no rep above its daily capacity on any day;
- **A-grade spread**: among reps eligible for the same leads (same team, territories, skills and working days),
  each rep's A-grade leads over the month differ from its capacity-proportional share of the group's A-grade
  leads by at most :data:`A_SPREAD_BOUND` leads;
- **determinism**: the same seed gives the same assignments.

Why the bound holds: given the month-to-date A-grade counts, each A-grade lead goes to the eligible rep with free
capacity and the fewest A-grade leads per unit of daily capacity so far, which hands them out in proportion to
capacity over the whole month (a largest-deficit apportionment, off by less than one lead while every rep of the
group has room; a full day or a day off can add up to about one more).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from training.routing import Rep, RoutingConfig, route_leads

#: most A-grade leads a rep's month may differ from its capacity-proportional share within its group
A_SPREAD_BOUND = 2.0
GRADES = ("A", "B", "C", "D")
GRADE_P = (0.15, 0.30, 0.35, 0.20)


def _geo() -> tuple[list[str], np.ndarray, list[tuple[str, ...]], list[str]]:
    from features.synth.params import _GEO, _INDUSTRIES

    names = [g[0] for g in _GEO]
    weights = np.array([g[1] for g in _GEO], dtype=float)
    return names, weights / weights.sum(), [g[2] for g in _GEO], list(_INDUSTRIES)


def demo_routing_config(n_reps: int = 60, seed: int = 0) -> RoutingConfig:
    """Reps over the demo's provinces: about ``n_reps`` in all, shared out by each province's weight (at least
    one rep for each province that gets any), daily capacity 10, 15 or 20, working Monday to Friday; the reps of
    a province are one team with the same territory and skills."""
    rng = np.random.default_rng(seed)
    names, p, _, industries = _geo()
    counts = np.floor(p * n_reps).astype(int)
    reps = []
    for k, (province, c) in enumerate(zip(names, counts, strict=True)):
        if c == 0:
            continue
        skills = sorted(rng.choice(industries, 3, replace=False).tolist())
        for j in range(c):
            reps.append(
                Rep(
                    id=f"p{k:02d}r{j:02d}",
                    team=f"team_{k:02d}",
                    territories=[province],
                    skills=skills,
                    daily_capacity=int(rng.choice([10, 15, 20])),
                )
            )
    return RoutingConfig(reps=reps)


def demo_month_leads(
    days: int = 30, per_day: int = 600, seed: int = 0, start: str = "2025-06-01"
) -> pd.DataFrame:
    """New leads of each day from ``start`` for ``days`` days (weekends included, Poisson around ``per_day``;
    fewer at weekends): ``lead_id, day, province, city, industry, grade, score``."""
    rng = np.random.default_rng(seed)
    names, p, cities, industries = _geo()
    frames = []
    for d, day in enumerate(pd.date_range(start, periods=days, freq="D")):
        n = int(rng.poisson(per_day * (0.3 if day.dayofweek >= 5 else 1.0)))
        prov = rng.choice(len(names), n, p=p)
        city = [cities[i][rng.integers(len(cities[i]))] for i in prov]
        grade = rng.choice(GRADES, n, p=GRADE_P)
        frames.append(
            pd.DataFrame(
                {
                    "lead_id": [f"M{d:02d}-{i:05d}" for i in range(n)],
                    "day": day.date().isoformat(),
                    "province": np.asarray(names, dtype=object)[prov],
                    "city": city,
                    "industry": rng.choice(industries, n),
                    "grade": grade,
                    "score": rng.integers(1, 100, n),
                }
            )
        )
    return pd.concat(frames, ignore_index=True)


@dataclass
class MonthResult:
    """Each lead's assignment (with its ``day``) and each rep's load per day."""

    assignments: pd.DataFrame
    daily: pd.DataFrame


def simulate_month(leads: pd.DataFrame, config: RoutingConfig) -> MonthResult:
    """Route each ``day`` of ``leads`` in order, carrying the month-to-date A-grade counts between days."""
    history = {r.id: 0 for r in config.reps}
    out, daily = [], []
    for day, part in leads.groupby("day", sort=True):
        res = route_leads(part.drop(columns=["day"]), config, str(day), a_history=history)
        out.append(res.assignments.assign(day=day))
        daily.append(res.summary.assign(day=day))
        for rep, a in zip(res.summary["rep_id"], res.summary["assigned_a"], strict=True):
            history[rep] += int(a)
    return MonthResult(pd.concat(out, ignore_index=True), pd.concat(daily, ignore_index=True))


def fairness_report(result: MonthResult, config: RoutingConfig) -> dict[str, float | int]:
    """The month's load and A-grade spread (see the module docstring); ``ok`` says whether both hold."""
    d = result.daily
    over = int((d["assigned"] > d["capacity"]).sum())
    month = d.groupby("rep_id", sort=False).agg(a=("assigned_a", "sum"), cap=("capacity", "sum"))
    key = {r.id: (r.team, tuple(sorted(r.territories)), tuple(sorted(r.skills)), tuple(r.working_days))
           for r in config.reps}  # fmt: skip
    month["group"] = [key[r] for r in month.index]
    g = month.groupby("group", sort=False)
    expected = g["a"].transform("sum") * month["cap"] / g["cap"].transform("sum").clip(lower=1)
    dev = (month["a"] - expected).abs()
    a = result.assignments
    return {
        "leads": len(a),
        "assigned": int((a["owner_id"] != "").sum()),
        "a_leads": int((a["grade"] == "A").sum()),
        "a_assigned": int(((a["grade"] == "A") & (a["owner_id"] != "")).sum()),
        "rep_days_over_capacity": over,
        "max_daily_load_share": float((d["assigned"] / d["capacity"].clip(lower=1)).max()),
        "max_a_deviation": float(dev.max()) if len(dev) else 0.0,
        "a_spread_bound": A_SPREAD_BOUND,
        "groups": int(g.ngroups),
        "ok": int(over == 0 and (dev.max() if len(dev) else 0.0) <= A_SPREAD_BOUND),
    }
