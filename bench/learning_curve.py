"""Learning curve of the lead model: out-of-time test AUC against the number of training rows.

    .venv/bin/python bench/learning_curve.py [--customers 150000] [--sizes 10000,30000,100000,300000,1000000]
        [--seeds 2] [--threads 2] [--data DIR | --data-root DIR] [--json-out PATH]

Generates demo data (``crmscore synth``'s generator, seed 3, 365 days) unless ``--data`` is given; with
``--data-root`` it is written to ``DIR/c<customers>`` once and reused by later runs. Builds the
lead training set as ``crmscore train lead`` does (4 cutoffs, the last one is the out-of-time test), then for
each size fits the first XGBoost candidate of the shipped configuration (``training.train.make_candidates``, seed 42,
with its calibration; the same parameters at every size) on a stratified sample of that many train + validation
rows and scores the test cutoff.
Sizes above the rows available are skipped. XGBoost uses ``--threads`` threads. Prints one JSON object (also
written to ``--json-out`` after every size, so a run stopped early keeps its measured points); the figures feed
docs/learning_curve.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=150_000)
    ap.add_argument("--sizes", default="10000,30000,100000,300000,1000000")
    ap.add_argument("--seeds", type=int, default=2, help="samples per size (their mean and spread are shown)")
    ap.add_argument("--data", type=Path, help="an existing demo data dir (default: generate one)")
    ap.add_argument("--data-root", type=Path, help="generate the demo data under DIR/c<customers> once, then reuse it")
    ap.add_argument("--threads", type=int, default=2, help="XGBoost threads")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args()

    from sklearn.metrics import roc_auc_score

    from features.build import CATEGORICAL_FEATURES
    from features.io import load_tables
    from features.labels import build_training_set, latest_labelable_cutoff
    from training.config import TrainConfig
    from training.train import _cap_rows, make_candidates, split_by_cutoff

    t0 = time.perf_counter()
    tmp = tempfile.TemporaryDirectory(prefix="learning_curve_")
    data = args.data
    if data is None:
        from features.synth import generate_crm_data, write_crm_data

        data = (args.data_root / f"c{args.customers}") if args.data_root else Path(tmp.name) / "data"
        done = data / ".complete"  # written last: a dir without it is an interrupted generation
        if done.is_file():
            print(f"reusing the demo data in {data}", file=sys.stderr)
        else:
            write_crm_data(generate_crm_data(args.customers, 365, 3), data)
            done.touch()
            print(f"demo data: {args.customers:,} customers in {data} ({time.perf_counter() - t0:.0f} s)",
                  file=sys.stderr)
    config = TrainConfig(task="lead", candidates=["xgboost"], xgb_threads=args.threads)
    tables = load_tables(data, required=("customers", "orders"))
    as_of = latest_labelable_cutoff(tables, config.labels.horizon_days)
    split = split_by_cutoff(build_training_set(tables, "lead", as_of, config.features, config.labels))
    X, y = split.X_refit, split.y_refit
    prep_s = time.perf_counter() - t0
    print(f"training set: {len(y):,} train+validation rows, {len(split.y_test):,} test rows "
          f"({prep_s:.0f} s)", file=sys.stderr)
    points: list[dict] = []
    params = {"customers": args.customers if args.data is None else None, "data": str(args.data or data),
              "as_of": str(as_of.date()), "rows_available": int(len(y)), "test_rows": int(len(split.y_test)),
              "test_positive_rate": round(float(split.y_test.mean()), 4), "seeds": args.seeds,
              "threads": args.threads, "cores": os.cpu_count()}

    def result() -> dict:
        return {"benchmark": "learning_curve", "params": params,
                "figures": {f"auc_{p['rows']}": p["auc_mean"] for p in points}, "points": points,
                "seconds": round(time.perf_counter() - t0, 1), "load_avg_1m": os.getloadavg()[0]}

    for n in [int(s) for s in args.sizes.split(",")]:
        if n > len(y):
            print(f"{n:,} rows: skipped (only {len(y):,} available)", file=sys.stderr)
            continue
        aucs, secs = [], []
        for seed in range(args.seeds if n < len(y) else 1):
            Xs, ys = _cap_rows(X, y, n, seed) if n < len(y) else (X, y)
            _, model = make_candidates(config, list(CATEGORICAL_FEATURES))[0]  # same parameters at every size
            ts = time.perf_counter()
            model.fit(Xs, ys)
            secs.append(time.perf_counter() - ts)
            aucs.append(float(roc_auc_score(split.y_test, model.predict_proba(split.X_test)[:, 1])))
        point = {"rows": n, "auc_mean": round(float(np.mean(aucs)), 4), "auc_min": round(min(aucs), 4),
                 "auc_max": round(max(aucs), 4), "fit_s_mean": round(float(np.mean(secs)), 1), "samples": len(aucs),
                 "load_avg_1m": round(os.getloadavg()[0], 2)}
        points.append(point)
        print(json.dumps(point), file=sys.stderr)
        if args.json_out:
            args.json_out.write_text(json.dumps(result(), indent=2))
    print(json.dumps(result()))
    tmp.cleanup()


if __name__ == "__main__":
    main()
