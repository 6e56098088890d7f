"""Benchmark: the lead-scoring training job on about a million rows of the lead set.

    .venv/bin/python bench/bench_training.py [--customers 490000] [--json-out PATH]

Generates demo data with `crmscore synth` (490k customers give ~1M lead rows over the 4 cutoffs),
then runs `crmscore train lead` with the shipped config in a fresh process against a throwaway
SQLite store, and reports wall time, rows and peak RSS as one JSON line (and, with ``--json-out``, as
``{"benchmark": "training", "params": {...}, "figures": {...}}``). Goal: ≤ 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CRMSCORE = str(Path(sys.executable).parent / "crmscore")


def main() -> None:
    """Run the benchmark and print one JSON line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=490_000)
    ap.add_argument("--config", default=str(ROOT / "configs" / "lead.yaml"))
    ap.add_argument("--json-out", type=Path, help="write {benchmark, params, figures} JSON here")
    args = ap.parse_args()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    with tempfile.TemporaryDirectory() as tmp:
        t = time.perf_counter()
        subprocess.run(
            [
                CRMSCORE,
                "synth",
                "--customers",
                str(args.customers),
                "--days",
                "365",
                "--seed",
                "3",
                "--out",
                f"{tmp}/data",
            ],
            check=True,
            env=env,
            capture_output=True,
        )
        synth_s = time.perf_counter() - t
        env["MLFLOW_TRACKING_URI"] = f"sqlite:///{tmp}/mlflow.db"
        t = time.perf_counter()
        out = subprocess.run(
            [CRMSCORE, "train", "lead", "--data", f"{tmp}/data", "--config", args.config],
            check=True,
            env=env,
            capture_output=True,
            text=True,
            cwd=tmp,
        )
        train_s = time.perf_counter() - t
        peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024**2
        import sqlite3

        with sqlite3.connect(f"{tmp}/mlflow.db") as db:
            params = dict(db.execute("select key, value from params where key like 'rows_%'").fetchall())
    rows = re.search(r"rows ([\d,]+)", out.stdout)
    auc = re.search(r"ROC-AUC ([\d.]+)", out.stdout)
    result = {
        "benchmark": "training",
        "customers": args.customers,
        "synth_s": synth_s,
        "train_job_s": train_s,
        "test_rows": int(rows.group(1).replace(",", "")) if rows else None,
        "lead_set_rows": sum(int(params.get(k, 0)) for k in ("rows_train", "rows_val", "rows_test")),
        "rows_selection": int(params.get("rows_selection", 0)),
        "test_roc_auc": float(auc.group(1)) if auc else None,
        "peak_rss_gb": peak,
        "cores": os.cpu_count(),
        "load_avg_1m": os.getloadavg()[0],
        "stdout": out.stdout.strip().splitlines()[-4:],
    }
    print(json.dumps(result))
    if args.json_out:
        figures = {k: v for k, v in result.items() if isinstance(v, int | float) and k not in ("cores",)}
        run = {"customers": args.customers, "config": args.config, "cores": os.cpu_count()}
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps({"benchmark": "training", "params": run, "figures": figures}))


if __name__ == "__main__":
    main()
