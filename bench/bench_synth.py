"""Benchmark: `crmscore synth` at scale.

    .venv/bin/python bench/bench_synth.py [--customers 1000000] [--days 365] [--out DIR] [--messy] [--json-out PATH]

Times `generate_crm_data` and `write_crm_data` separately and prints the row counts, seconds,
peak RSS and the oracle AUCs, then one JSON line. Without --out the files go to a temporary
folder that is removed afterwards; ``--json-out`` also writes ``{"benchmark": "synth", "params": {...},
"figures": {...}}``. Goal: 1M customers (about 20-30M interactions) in minutes.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.synth import generate_crm_data, write_crm_data  # noqa: E402


def run_benchmark(customers: int, days: int, seed: int, out: Path, messy: bool) -> dict:
    """Generate and write one synthetic CRM; return timings, row counts and the oracle AUCs."""
    t0 = time.perf_counter()
    result = generate_crm_data(customers, days, seed)
    t1 = time.perf_counter()
    summary = write_crm_data(result, out, messy=messy)
    t2 = time.perf_counter()
    return {
        "customers": customers,
        "days": days,
        "seed": seed,
        "mode": summary["mode"],
        "rows": result.meta["rows"],
        "rows_written": summary["rows"],
        "generate_s": round(t1 - t0, 1),
        "write_s": round(t2 - t1, 1),
        "total_s": round(t2 - t0, 1),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 2),
        "oracle_auc_convert": result.meta["oracle_auc_convert"],
        "oracle_auc_churn": result.meta["oracle_auc_churn"],
        "convert_rate": result.meta["convert_rate"],
        "churn_rate": result.meta["churn_rate"],
    }


def main() -> None:
    """Parse arguments, run once, print a readable summary and a JSON line."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=None, help="keep the output here (default: temporary folder)")
    ap.add_argument("--messy", action="store_true", help="write the messy CSV/Excel exports instead of Parquet")
    ap.add_argument("--json-out", type=Path, help="write {benchmark, params, figures} JSON here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench_synth_") as tmp:
        out = args.out or Path(tmp)
        res = run_benchmark(args.customers, args.days, args.seed, out, args.messy)
    for name, n in res["rows"].items():
        print(f"{name:>18}: {n:>12,} rows ({res['rows_written'][name]:,} written)")
    print(
        f"generate {res['generate_s']} s, write ({res['mode']}) {res['write_s']} s, "
        f"total {res['total_s']} s, peak RSS {res['peak_rss_gb']} GB"
    )
    print(json.dumps(res))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(contract(res)), encoding="utf-8")


def contract(res: dict) -> dict:
    """The result as ``{"benchmark": "synth", "params": {...}, "figures": {...}}`` (numbers only in figures)."""
    figures = {k: res[k] for k in ("customers", "generate_s", "write_s", "total_s", "peak_rss_gb")}
    figures.update({k: v for k, v in res.items() if k.startswith(("oracle_auc", "convert_rate", "churn_rate"))})
    figures.update({f"rows_{name}": n for name, n in res["rows"].items()})
    params = {k: res[k] for k in ("customers", "days", "seed", "mode")}
    return {"benchmark": "synth", "params": params, "figures": figures}


if __name__ == "__main__":
    main()
