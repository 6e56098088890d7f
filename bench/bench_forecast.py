"""Benchmark and backtest figures of `crmscore forecast` (forecast + 4-origin backtest, the same code as the CLI).

    .venv/bin/python bench/bench_forecast.py                       # Online Retail and Superstore from ../shared/data
    .venv/bin/python bench/bench_forecast.py --data data/demo --as-of 2025-05-31   # a contract data dir as well
    .venv/bin/python bench/bench_forecast.py --json-out bench/results/forecast.json
    .venv/bin/python bench/bench_forecast.py --no-eval     # timings and backtest figures only

Per data set: wall and CPU time of one ``run_forecast`` (weekly history, the three forecasts, the rolling backtest
and the rolling evaluation the method is chosen on, with ``--by`` the backtest per group, the files; MLflow logging
off so the store's start-up is not timed), peak RSS of the process, and the backtest figures (WAPE of each method
and of the baseline, 80% / 95% coverage, which baseline, ``rolling_*``: the calibrated forecasts out of time,
and per group with ``--by``). Goal: forecast ≤ 60 s. Never part of the tests.

Then, untimed, the out-of-time check of the calibrated intervals on Online Retail and Superstore
(:func:`training.forecast_calibrate.rolling_evaluation`: at each backtest origin, the interval ``crmscore forecast``
would have printed there, from a backtest before it, scored on the weeks after it), for the horizon-matched
residuals (``sqrt``, the default) and the earlier pooled ones (``none``): coverage, mean width, WAPE and weighted
interval score per method (bottom-up, top-down, combined); the choice rules out of time
(:func:`training.forecast_calibrate.choice_evaluation`: the method each rule would have reported at each origin
from what was known there, and that forecast's figures); and the groups' calibrated intervals with ``--by
segment`` on Superstore (:func:`training.forecast_groups.rolling_groups`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
SHARED = Path(os.environ.get("CRMSCORE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def one(name: str, tables: dict, as_of: str, by: str | None = None) -> dict:
    """Time one forecast + backtest and return its figures."""
    from training.forecast_run import run_forecast

    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        t0, c0 = time.perf_counter(), time.process_time()
        res = run_forecast(None, as_of, tmp, horizon_weeks=13, by=by, origins=4, tables=tables, log_mlflow=False)
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        summary = json.loads((Path(tmp) / "summary.json").read_text(encoding="utf-8"))
    m = res.backtest.metrics if res.backtest else {}
    out = {
        "dataset": name,
        "as_of": as_of,
        "by": by,
        "seconds": round(secs, 2),
        "cpu_seconds": round(cpu, 2),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
        "selected": res.selected,
        "selected_on": summary.get("selected_on"),
        "baseline": res.backtest.baseline if res.backtest else None,
        "origins": [str(o.date()) for o in res.backtest.origins] if res.backtest else [],
        **{k: round(float(v), 4) for k, v in m.items()},
        "notes": res.notes,
    }
    if summary.get("groups_backtest"):
        out["groups_backtest"] = [
            {k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
            for r in summary["groups_backtest"]["metrics"]
        ]
    print(json.dumps(out, ensure_ascii=False), flush=True)
    return out


def evaluate(name: str, orders, as_of: str) -> list[dict]:
    """Rolling out-of-time coverage and width of the calibrated intervals, per horizon scale (not timed)."""
    import pandas as pd

    from training.forecast import ForecastConfig
    from training.forecast_calibrate import rolling_evaluation

    out = []
    for scale in ("sqrt", "none"):
        ev = rolling_evaluation(orders, pd.Timestamp(as_of), ForecastConfig(horizon_scale=scale))
        row = {
            "dataset": name,
            "as_of": as_of,
            "horizon_scale": scale,
            "origins": [str(o.date()) for o in ev.origins],
            **{k: round(float(v), 4) for k, v in ev.metrics.items()},
            "notes": ev.notes,
        }
        print(json.dumps(row, ensure_ascii=False), flush=True)
        out.append(row)
    return out


def evaluate_choice(name: str, orders, as_of: str) -> list[dict]:
    """The reported forecast out of time: at each backtest origin, the method each choice rule picks from what
    was known there, scored on the weeks after it (not timed)."""
    import pandas as pd

    from training.forecast import ForecastConfig
    from training.forecast_calibrate import choice_evaluation

    out = []
    for rule in ("wis80", "wis", "wape"):
        ce = choice_evaluation(orders, pd.Timestamp(as_of), ForecastConfig(select_on=rule))
        row = {
            "dataset": name,
            "as_of": as_of,
            "select_on": rule,
            "choices": [
                {"origin": str(r["origin"].date()), "method": r["method"], "chosen_on": r["chosen_on"]}
                for r in ce.choices.to_dict("records")
            ],
            **{k: round(float(v), 4) for k, v in ce.metrics.items()},
        }
        print(json.dumps(row, ensure_ascii=False), flush=True)
        out.append(row)
    return out


def evaluate_groups(name: str, tables: dict, as_of: str, by: str = "segment") -> dict:
    """Rolling out-of-time WAPE and coverage of each group's calibrated intervals (not timed)."""
    import pandas as pd

    from training.forecast import ForecastConfig, one_blas_thread, paid_orders
    from training.forecast_groups import rolling_groups
    from training.forecast_run import customer_groups

    t = pd.Timestamp(as_of)
    paid = paid_orders(tables["orders"], t)
    with one_blas_thread():
        _, res = rolling_groups(
            paid, t, pd.Timestamp(paid["ts"].min()), ForecastConfig(), lambda o: customer_groups(tables, by, o)
        )
    row = {
        "dataset": name,
        "as_of": as_of,
        "by": by,
        "groups_rolling": [{k: round(v, 4) if isinstance(v, float) else v for k, v in r.items()}
                           for r in res.to_dict("records")],  # fmt: skip
    }
    print(json.dumps(row, ensure_ascii=False), flush=True)
    return row


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, help="a contract data dir to time as well")
    ap.add_argument("--as-of", help="cutoff for --data")
    ap.add_argument("--json-out", type=Path, help="result file (default bench/results/forecast-<time>.json)")
    ap.add_argument("--no-eval", action="store_true", help="skip the rolling evaluation of the intervals")
    args = ap.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

    import statsmodels.tsa.statespace.sarimax  # noqa: F401  (imported once, outside the timed runs)

    from training.forecast_data import online_retail_orders, superstore_orders

    results = []
    evaluations: list[dict] = []
    choice_evaluations: list[dict] = []
    retail = SHARED / "online_retail" / "online_retail_2010-2011.parquet"
    if retail.is_file():
        retail_orders = online_retail_orders(retail)
        results.append(one("online_retail", {"orders": retail_orders}, "2011-12-10"))
    else:
        print(f"skipped Online Retail: {retail} is absent")
    store = SHARED / "superstore" / "superstore.csv"
    if store.is_file():
        orders, customers = superstore_orders(store)
        results.append(one("superstore", {"orders": orders, "customers": customers}, "2022-12-31"))
        results.append(one("superstore", {"orders": orders, "customers": customers}, "2022-12-31", by="segment"))
    else:
        print(f"skipped Superstore: {store} is absent")
    if not args.no_eval:
        if retail.is_file():
            evaluations += evaluate("online_retail", retail_orders, "2011-12-10")
            choice_evaluations += evaluate_choice("online_retail", retail_orders, "2011-12-10")
        if store.is_file():
            evaluations += evaluate("superstore", orders, "2022-12-31")
            choice_evaluations += evaluate_choice("superstore", orders, "2022-12-31")
            evaluations.append(evaluate_groups("superstore", {"orders": orders, "customers": customers}, "2022-12-31"))
    if args.data:
        from features.io import load_tables

        if not args.as_of:
            ap.error("--data needs --as-of")
        results.append(one(args.data.name, load_tables(args.data, required=("orders",)), args.as_of))

    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    figures = {}
    for r in results:
        key = f"{r['dataset']}{'_by_' + r['by'] if r['by'] else ''}"
        figures |= {f"{key}_seconds": r["seconds"], f"{key}_cpu_seconds": r["cpu_seconds"]}
    doc = {
        "benchmark": "forecast",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cores": os.cpu_count(),
        "params": {"horizon_weeks": 13, "origins": 4, "origin_step_weeks": 4},
        "figures": figures | {"peak_rss_mb": round(peak_mb, 1)},
        "goal": "forecast (with its 4-origin backtest) <= 60 s",
        "runs": results,
        "interval_evaluation": evaluations,
        "choice_evaluation": choice_evaluations,
    }
    out = args.json_out or ROOT / "bench" / "results" / f"forecast-{dt.datetime.now(dt.UTC):%Y-%m-%dT%H%M}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(doc, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
