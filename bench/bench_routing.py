"""Benchmark of lead routing (`crmscore route`): 100,000 leads across 200 reps ≤ 10 s; and the simulated month.

    .venv/bin/python bench/bench_routing.py                          # 100k leads × 200 reps, a 30-day month
    .venv/bin/python bench/bench_routing.py --leads 10000 --reps 50  # a quick run
    .venv/bin/python bench/bench_routing.py --json-out bench/results/routing.json

``route_s``: one `training.routing.route_leads` call on one working day's ``--leads`` demo leads (31 provinces,
12 industries, grades A–D) across ``--reps`` reps whose capacity together exceeds the leads (so nearly every lead
is placed). ``month_s`` and the fairness figures: `training.routing_month` — 30 days of demo leads (600 a working
day) over 60 reps; reps over capacity (goal 0) and the largest deviation of a rep's A-grade leads from its
capacity-proportional share (bound ``A_SPREAD_BOUND``). Never part of the tests.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--leads", type=int, default=100_000)
    ap.add_argument("--reps", type=int, default=200)
    ap.add_argument("--month-per-day", type=int, default=600)
    ap.add_argument("--month-reps", type=int, default=60)
    ap.add_argument("--json-out", type=Path, help="result file")
    args = ap.parse_args()

    from training.routing import RoutingConfig, route_leads
    from training.routing_month import (
        A_SPREAD_BOUND,
        demo_month_leads,
        demo_routing_config,
        fairness_report,
        simulate_month,
    )

    base = demo_routing_config(n_reps=args.reps, seed=0)
    scale = max(1, -(-args.leads * 12 // 10 // max(1, sum(r.daily_capacity for r in base.reps))))
    reps = [r.model_copy(update={"daily_capacity": r.daily_capacity * scale}) for r in base.reps]
    cfg = RoutingConfig(reps=reps)
    leads = demo_month_leads(days=1, per_day=args.leads, seed=1, start="2025-06-02").drop(columns=["day"])
    load = os.getloadavg()[0]
    t0, c0 = time.perf_counter(), time.process_time()
    res = route_leads(leads, cfg, "2025-06-02")
    route_s, route_cpu = time.perf_counter() - t0, time.process_time() - c0
    placed = int((res.assignments["owner_id"] != "").sum())

    mcfg = demo_routing_config(n_reps=args.month_reps, seed=0)
    mleads = demo_month_leads(days=30, per_day=args.month_per_day, seed=0)
    t1 = time.perf_counter()
    month = simulate_month(mleads, mcfg)
    month_s = time.perf_counter() - t1
    fair = fairness_report(month, mcfg)

    figures = {
        "leads": len(leads),
        "reps": len(reps),
        "route_s": round(route_s, 3),
        "route_cpu_s": round(route_cpu, 3),
        "placed": placed,
        "month_leads": fair["leads"],
        "month_s": round(month_s, 2),
        "month_rep_days_over_capacity": fair["rep_days_over_capacity"],
        "month_max_a_deviation": round(float(fair["max_a_deviation"]), 3),
        "month_a_spread_bound": A_SPREAD_BOUND,
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    out = {
        "benchmark": "routing",
        "params": {"leads": len(leads), "reps": len(reps), "month_reps": args.month_reps},
        "figures": figures,
    }
    print(json.dumps(out, ensure_ascii=False), flush=True)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
