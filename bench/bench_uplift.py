"""Benchmark of uplift training on Hillstrom (`crmscore train uplift-table`): goal ≤ 60 s.

    .venv/bin/python bench/bench_uplift.py                       # the whole 44,800-row Hillstrom sample
    .venv/bin/python bench/bench_uplift.py --rows 8000 --bootstrap 20   # a quick run
    .venv/bin/python bench/bench_uplift.py --json-out bench/results/uplift.json

Two timings on women's e-mail vs no e-mail, outcome visit: ``fit_s``, the four learners (T-, class-transformation,
X- and S-learner) and the response baseline fitted on the 60% training part, no MLflow; ``job_s``, the whole job
(`training.uplift.train_uplift_table`: split, the four learners as MLflow child runs, held-out figures, bootstrap
intervals, plot, skops logging, registration and the gate) into a fresh SQLite store. Also CPU seconds, peak RSS
and the held-out Qini area. Never part of the tests.
"""

from __future__ import annotations

import argparse
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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", type=Path, default=SHARED / "hillstrom" / "hillstrom.csv")
    ap.add_argument("--rows", type=int, default=0, help="rows sampled from the table (0: all)")
    ap.add_argument("--bootstrap", type=int, default=200, help="bootstrap resamples of the job")
    ap.add_argument("--json-out", type=Path, help="result file")
    args = ap.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
    if not args.table.is_file():
        print(f"skipped: {args.table} is absent")
        return
    import mlflow
    import pandas as pd

    from training.tabular import TableFeaturizer
    from training.uplift import (
        LEARNERS,
        UpliftModel,
        _stratified_split,
        fit_response_model,
        prepare_uplift_table,
        train_uplift_table,
    )

    frame = pd.read_csv(args.table)
    if args.rows and args.rows < len(frame):
        frame = frame.sample(args.rows, random_state=0).reset_index(drop=True)
    opts = {"control": "No E-Mail", "treated": ["Womens E-Mail"], "exclude": ["conversion", "spend"]}
    load = os.getloadavg()[0]

    t0, c0 = time.perf_counter(), time.process_time()
    X, t, y, _, _ = prepare_uplift_table(frame, "segment", "visit", **opts)
    tr, _, _ = _stratified_split(t * 2 + y, 42)
    feat = TableFeaturizer(exclude=tuple(opts["exclude"])).fit(X.iloc[tr])
    fit_times = {}
    for learner in LEARNERS:
        s = time.perf_counter()
        UpliftModel(learner, seed=42).fit(X.iloc[tr], t[tr], y[tr], feat)
        fit_times[f"fit_{learner}_s"] = round(time.perf_counter() - s, 2)
    fit_response_model(X.iloc[tr], y[tr], feat, 42)
    fit_s, fit_cpu = time.perf_counter() - t0, time.process_time() - c0

    with tempfile.TemporaryDirectory() as tmp:
        uri = f"sqlite:///{Path(tmp) / 'mlflow.db'}"
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)
        os.chdir(tmp)
        t1, c1 = time.perf_counter(), time.process_time()
        res = train_uplift_table(frame, "segment", "visit", n_boot=args.bootstrap, source=args.table.name, **opts)
        job_s, job_cpu = time.perf_counter() - t1, time.process_time() - c1

    figures = {
        "rows": len(frame),
        "fit_s": round(fit_s, 2),
        "fit_cpu_s": round(fit_cpu, 2),
        **fit_times,
        "job_s": round(job_s, 2),
        "job_cpu_s": round(job_cpu, 2),
        "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2, 3),
        "test_qini_area": round(res.test_metrics["qini_area"], 5),
        "test_qini_area_by_response": round(res.test_metrics["qini_area_by_response"], 5),
        "test_uplift_top30": round(res.test_metrics["uplift_top30"], 4),
        "ate": round(res.test_metrics["ate"], 4),
        "load_before": round(load, 2),
        "load_after": round(os.getloadavg()[0], 2),
    }
    out = {
        "benchmark": "uplift",
        "params": {"rows": len(frame), "bootstrap": args.bootstrap, "best_learner": res.best_learner},
        "figures": figures,
    }
    print(json.dumps(out, ensure_ascii=False), flush=True)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(out, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
