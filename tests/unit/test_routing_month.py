"""A simulated month of demo leads: no rep above capacity, A-grade leads spread within the bound, deterministic;
today's earlier load and the month's A-grade history as routing inputs."""

from __future__ import annotations

import pandas as pd
import pytest

from training.routing import RoutingConfig, RoutingError, route_leads
from training.routing_month import (
    A_SPREAD_BOUND,
    demo_month_leads,
    demo_routing_config,
    fairness_report,
    simulate_month,
)

MONDAY = "2025-06-02"


def test_month_load_and_a_grade_spread_within_the_bound():
    cfg = demo_routing_config(n_reps=40, seed=1)
    leads = demo_month_leads(days=30, per_day=250, seed=4)
    first = simulate_month(leads, cfg)
    rep = fairness_report(first, cfg)
    assert rep["leads"] == len(leads) and rep["a_assigned"] > 100
    assert rep["rep_days_over_capacity"] == 0 and rep["max_daily_load_share"] <= 1.0
    assert rep["max_a_deviation"] <= A_SPREAD_BOUND and rep["ok"] == 1
    # every routed lead went to a rep covering its province
    terr = {r.id: set(r.territories) for r in cfg.reps}
    a = first.assignments.merge(leads[["lead_id", "province"]], on="lead_id")
    placed = a[a["owner_id"] != ""]
    assert all(p in terr[o] for o, p in zip(placed["owner_id"], placed["province"], strict=True))
    # the same seed: the same assignments
    again = simulate_month(demo_month_leads(days=30, per_day=250, seed=4), cfg)
    pd.testing.assert_frame_equal(first.assignments, again.assignments)


def test_without_the_month_history_a_grade_leads_pile_up_on_the_first_rep():
    """Two identical reps, one A-grade lead a day: the history spreads them; without it config order decides."""
    cfg = RoutingConfig(reps=[
        {"id": "a", "team": "t", "territories": ["上海"], "daily_capacity": 5},
        {"id": "b", "team": "t", "territories": ["上海"], "daily_capacity": 5},
    ])  # fmt: skip
    days = [d.date().isoformat() for d in pd.date_range("2025-06-02", periods=10, freq="B")]
    leads = pd.DataFrame({"lead_id": [f"L{i}" for i in range(10)], "day": days, "city": "上海", "grade": "A"})
    spread = simulate_month(leads, cfg).assignments["owner_id"].value_counts().to_dict()
    assert spread == {"a": 5, "b": 5}
    piled = [route_leads(leads.iloc[[i]].drop(columns="day"), cfg, d).assignments["owner_id"].iloc[0]
             for i, d in enumerate(days)]  # fmt: skip
    assert piled == ["a"] * 10


def test_earlier_load_counts_against_capacity_and_bad_names_are_refused():
    cfg = RoutingConfig(reps=[
        {"id": "a", "team": "t", "territories": ["上海"], "daily_capacity": 2},
        {"id": "b", "team": "t", "territories": ["上海"], "daily_capacity": 1},
    ])  # fmt: skip
    leads = pd.DataFrame({"lead_id": ["L1", "L2", "L3"], "city": "上海", "grade": "B"})
    res = route_leads(leads, cfg, MONDAY, assigned={"a": 2})
    assert res.assignments["owner_id"].tolist() == ["b", "", ""]
    assert res.assignments["reason"].iloc[2] == "no free capacity among the reps covering 上海"
    with pytest.raises(RoutingError, match="assigned: unknown rep id"):
        route_leads(leads, cfg, MONDAY, assigned={"zz": 1})
    with pytest.raises(RoutingError, match="a_history: unknown rep id"):
        route_leads(leads, cfg, MONDAY, a_history={"zz": 1})
