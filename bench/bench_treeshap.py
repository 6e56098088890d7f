"""Exact reasons: ``training.treeshap.contributions`` vs XGBoost's ``pred_contribs=True`` on the worst-case model.

    .venv/bin/python bench/bench_treeshap.py                                   # registry model if present
    .venv/bin/python bench/bench_treeshap.py --model synthetic                 # no registry needed
    .venv/bin/python bench/bench_treeshap.py --rows 20000 --xgb-rows 2000 --rank-rows 20000 --json-out /tmp/ts.json

Models (``--model``):

* ``registry``: ``models:/lead_scoring_worst@champion`` of the batch benchmark's SQLite registry
  (``--workdir``, made by ``bench/bench_batch.py --model-kind worst``), 400 trees of depth 6, on the
  preprocessed rows of ``leads_1000000_head20000.csv`` there;
* ``synthetic``: XGBoost binary:logistic, 400 trees of depth 6 on ``make_classification`` data with 132
  features (5% missing), the same shape without the registry;
* ``auto`` (default): the registry model when its files exist, else the synthetic one.

Figures: rows per CPU-second (process CPU time, all threads) and per wall-second for both, with all
threads and (ours) one thread; the projection to 1M rows; the largest absolute difference to XGBoost and
the largest |row sum − margin|; how often the top-3 features by |contribution| differ from XGBoost's
(``--rank-rows``); single-row latency (one row per call, as the HTTP service calls it) for both; the JIT
times of a cold and of a cached numba cache, each measured in a fresh subprocess with its own cache folder.
The machine's load average is printed: another busy process makes the wall figures (not the CPU ones) worse.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

DEFAULT_WORKDIR = Path("/tmp/crmscore-bench-batch")
MODEL_URI = "models:/lead_scoring_worst@champion"
CSV_NAME = "leads_1000000_head20000.csv"

_JIT_PROBE = r"""
import json, time
t0 = time.perf_counter()
import numpy as np, xgboost as xgb
t1 = time.perf_counter()
from training import treeshap
t2 = time.perf_counter()
rng = np.random.default_rng(0)
X = rng.normal(size=(2000, 8)).astype(np.float32)
y = (X[:, 0] + X[:, 1] * X[:, 2] > 0).astype(float)
b = xgb.train({"objective": "binary:logistic", "max_depth": 4, "nthread": 1}, xgb.DMatrix(X, y), 3)
t3 = time.perf_counter()
m = treeshap.compile_booster(b)
t4 = time.perf_counter()
treeshap.contributions(m, X[:1])
t5 = time.perf_counter()
treeshap.contributions(m, X)
t6 = time.perf_counter()
print(json.dumps({"import_s": t2 - t1, "compile_booster_s": t4 - t3, "first_serial_call_s": t5 - t4,
                  "first_parallel_call_s": t6 - t5, "total_s": (t2 - t1) + (t6 - t3)}))
"""


def jit_times() -> dict[str, float]:
    """JIT cost in fresh processes: an empty numba cache folder (cold), then the same folder again (cached)."""
    out: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="treeshap-numba-cache-") as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache, "PYTHONPATH": str(ROOT)}
        for label in ("cold", "cached"):
            res = subprocess.run(
                [sys.executable, "-c", _JIT_PROBE], env=env, capture_output=True, text=True, check=True, cwd=ROOT
            )
            figures = json.loads(res.stdout.strip().splitlines()[-1])
            for k, v in figures.items():
                out[f"jit_{label}_{k}"] = v
    return out


def load_registry_model(workdir: Path, rows: int, csv_name: str = CSV_NAME) -> tuple[Any, np.ndarray, str]:
    """The worst-case registry model's booster and ``rows`` preprocessed rows of the benchmark CSV."""
    import pandas as pd

    db = workdir / "mlflow.db"
    os.environ.setdefault("MLFLOW_TRACKING_URI", f"sqlite:///{db}")
    os.environ.setdefault("MLFLOW_REGISTRY_URI", f"sqlite:///{db}")
    try:
        import mlflow.sklearn

        scorer = mlflow.sklearn.load_model(MODEL_URI)
    except Exception:  # the sklearn flavour may refuse skops types: the service's trusted loader
        from serving.http.loader import load_scorer_artifact
        from training.registry import configure_tracking

        configure_tracking()
        scorer = load_scorer_artifact(MODEL_URI)
    frame = pd.read_csv(workdir / csv_name, nrows=rows)
    Z = np.asarray(scorer.preprocessor_.transform(frame))
    if len(Z) < rows:  # fewer rows in the file: repeat them
        Z = np.resize(Z, (rows, Z.shape[1]))
    return scorer.estimator_.get_booster(), Z, f"registry {MODEL_URI} ({workdir})"


def synthetic_model(rows: int, n_features: int = 132, seed: int = 0) -> tuple[Any, np.ndarray, str]:
    """XGBoost binary:logistic, 400 trees of depth 6, on ``make_classification`` data with 5% missing."""
    import xgboost as xgb
    from sklearn.datasets import make_classification

    n_train = 20000
    X, y = make_classification(
        n_samples=n_train + rows, n_features=n_features, n_informative=40, n_redundant=20, random_state=seed
    )
    X[np.random.default_rng(seed).random(X.shape) < 0.05] = np.nan
    params = {"objective": "binary:logistic", "max_depth": 6, "eta": 0.1, "nthread": os.cpu_count() or 1}
    booster = xgb.train(params, xgb.DMatrix(X[:n_train], y[:n_train]), num_boost_round=400)
    return booster, X[n_train:], f"synthetic make_classification ({n_features} features, 400 trees, depth 6)"


def model_shape(booster: Any) -> dict[str, float]:
    """Trees, mean leaves per tree and the deepest leaf."""
    dump = json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]
    leaves = [sum(1 for c in t["left_children"] if c == -1) for t in dump]
    return {"trees": len(dump), "mean_leaves_per_tree": float(np.mean(leaves)), "max_leaves_per_tree": max(leaves)}


def timed(fn: Any) -> tuple[Any, float, float]:
    """``fn()``'s result, wall seconds and process CPU seconds (all threads)."""
    c0, w0 = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.perf_counter() - w0, time.process_time() - c0


def latency(fn: Any, reps: int) -> dict[str, float]:
    """Median and p99 of ``reps`` calls, in milliseconds (after 5 warm-up calls)."""
    for _ in range(5):
        fn()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    times.sort()
    return {"median_ms": statistics.median(times), "p99_ms": times[min(len(times) - 1, int(0.99 * len(times)))]}


def top3_mismatch(a: np.ndarray, b: np.ndarray) -> tuple[int, int, int]:
    """Rows whose top-3 features by |contribution| (bias excluded) differ: in order, as a set; and the
    rows where the differing order is only a near-tie (|Δ| ≤ 1e-5 · row scale) in XGBoost's own values."""
    fa = np.abs(a[:, :-1])
    fb = np.abs(b[:, :-1])
    ta = np.argsort(-fa, axis=1, kind="stable")[:, :3]
    tb = np.argsort(-fb, axis=1, kind="stable")[:, :3]
    ordered = np.any(ta != tb, axis=1)
    as_set = np.array([set(x) != set(y) for x, y in zip(ta, tb, strict=True)])
    # ties: where the orders differ, XGBoost's values at our top-3 equal its own top-3 values within tolerance
    va = np.take_along_axis(fb, ta, axis=1)
    vb = np.take_along_axis(fb, tb, axis=1)
    scale = np.abs(b).max(axis=1, keepdims=True)
    tie = ordered & np.all(np.abs(va - vb) <= 1e-5 * np.maximum(scale, 1.0), axis=1)
    return int(ordered.sum()), int(as_set.sum()), int(tie.sum())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", choices=("auto", "registry", "synthetic"), default="auto")
    ap.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR, help="the batch benchmark's folder")
    ap.add_argument("--csv", default=CSV_NAME, help="leads CSV in --workdir for the registry model (rows repeat)")
    ap.add_argument("--rows", type=int, default=20000, help="rows for ours")
    ap.add_argument("--xgb-rows", type=int, default=2000, help="rows for XGBoost's pred_contribs")
    ap.add_argument("--rank-rows", type=int, default=0, help="rows for the top-3 comparison (XGBoost on them)")
    ap.add_argument("--threads", type=int, default=None, help="threads for both (default: all cores)")
    ap.add_argument("--latency-reps", type=int, default=300)
    ap.add_argument("--skip-jit", action="store_true", help="do not measure cold/cached JIT in subprocesses")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args(argv)

    import numba
    import xgboost as xgb

    from training import treeshap

    threads = args.threads or numba.config.NUMBA_NUM_THREADS
    n_rows = max(args.rows, args.xgb_rows, args.rank_rows)
    use_registry = args.model == "registry" or (
        args.model == "auto" and (args.workdir / "mlflow.db").exists() and (args.workdir / args.csv).exists()
    )
    if use_registry:
        booster, Z, source = load_registry_model(args.workdir, n_rows, args.csv)
    else:
        booster, Z, source = synthetic_model(n_rows)
    booster.set_param({"nthread": threads})
    Z = np.ascontiguousarray(Z, dtype=np.float32)
    figures: dict[str, float] = {"load_avg_1m_before": os.getloadavg()[0], **model_shape(booster)}
    print(f"model: {source}; {figures['trees']} trees, {figures['mean_leaves_per_tree']:.1f} leaves/tree (mean)")
    print(f"rows: {Z.shape[0]} × {Z.shape[1]} columns; threads {threads}; load average {os.getloadavg()[0]:.2f}")

    if not args.skip_jit:
        figures.update(jit_times())
        print(
            "JIT (fresh process, import + compile_booster + first 1-row + first 2000-row call): "
            f"cold cache {figures['jit_cold_total_s']:.2f} s, cached {figures['jit_cached_total_s']:.2f} s"
        )

    model, wall, _cpu = timed(lambda: treeshap.compile_booster(booster))
    figures["compile_booster_s"] = wall
    figures["table_mb"] = model.nbytes / 1e6
    print(f"compile_booster: {wall:.2f} s, arrays {model.nbytes / 1e6:.1f} MB")
    treeshap.contributions(model, Z[:2000], n_threads=threads)  # warm (JIT loaded)
    treeshap.contributions(model, Z[:10], n_threads=1)

    X_ours = Z[: args.rows]
    ours, wall, cpu = timed(lambda: treeshap.contributions(model, X_ours, n_threads=threads))
    figures.update(ours_rows_per_cpu_s=len(X_ours) / cpu, ours_rows_per_wall_s=len(X_ours) / wall)
    _, wall1, cpu1 = timed(lambda: treeshap.contributions(model, X_ours, n_threads=1))
    figures.update(ours_1thread_rows_per_cpu_s=len(X_ours) / cpu1, ours_1thread_rows_per_wall_s=len(X_ours) / wall1)

    X_xgb = Z[: args.xgb_rows]
    ref, wall, cpu = timed(lambda: booster.predict(xgb.DMatrix(X_xgb), pred_contribs=True))
    figures.update(xgb_rows_per_cpu_s=len(X_xgb) / cpu, xgb_rows_per_wall_s=len(X_xgb) / wall)
    margin = booster.predict(xgb.DMatrix(X_ours), output_margin=True)
    n_cmp = min(len(X_xgb), len(X_ours))
    diff = np.abs(ours[:n_cmp].astype(np.float64) - ref[:n_cmp])
    figures.update(
        max_abs_diff=float(diff.max()),
        max_abs_contribution=float(np.abs(ref).max()),
        max_abs_sum_minus_margin=float(np.abs(ours.sum(axis=1, dtype=np.float64) - margin).max()),
        allclose_rtol1e5=float(np.allclose(ours[:n_cmp], ref[:n_cmp], rtol=1e-5, atol=1e-5 * np.abs(ref).max())),
        bit_identical_fraction=float(np.mean(ours[:n_cmp] == ref[:n_cmp])),
        speedup_cpu=figures["ours_rows_per_cpu_s"] / figures["xgb_rows_per_cpu_s"],
    )
    if args.rank_rows:
        X_rank = Z[: args.rank_rows]
        ref_rank = ref if args.rank_rows <= len(ref) else booster.predict(xgb.DMatrix(X_rank), pred_contribs=True)
        ours_rank = treeshap.contributions(model, X_rank, n_threads=threads)
        ordered, as_set, ties = top3_mismatch(ours_rank, ref_rank[: args.rank_rows])
        rank_diff = float(np.abs(ours_rank.astype(np.float64) - ref_rank[: args.rank_rows]).max())
        figures.update(
            rank_rows=args.rank_rows, top3_order_differs=ordered, top3_set_differs=as_set, top3_differs_tie=ties,
            rank_rows_max_abs_diff=rank_diff,
        )  # fmt: skip

    one = Z[:1].copy()
    lat_ours = latency(lambda: treeshap.contributions(model, one), args.latency_reps)
    lat_xgb = latency(lambda: booster.predict(xgb.DMatrix(one), pred_contribs=True), args.latency_reps)
    figures.update({f"ours_1row_{k}": v for k, v in lat_ours.items()})
    figures.update({f"xgb_1row_{k}": v for k, v in lat_xgb.items()})
    figures["load_avg_1m_after"] = os.getloadavg()[0]

    mil = 1_000_000
    print(f"{'':28s}{'rows/CPU-s':>12s}{'rows/wall-s':>13s}{'1M rows CPU-s':>15s}{'1M rows wall-s':>16s}")
    rows_table = (("ours, all threads", "ours"), ("ours, 1 thread", "ours_1thread"), ("xgboost pred_contribs", "xgb"))
    for label, key in rows_table:
        c, w = figures[f"{key}_rows_per_cpu_s"], figures[f"{key}_rows_per_wall_s"]
        print(f"{label:28s}{c:12.0f}{w:13.0f}{mil / c:15.1f}{mil / w:16.1f}")
    print(f"speed-up per CPU-second: {figures['speedup_cpu']:.1f}×")
    print(
        f"max |ours − xgboost| {figures['max_abs_diff']:.3g}"
        f" (max |contribution| {figures['max_abs_contribution']:.3g},"
        f" rtol/atol 1e-5 {'ok' if figures['allclose_rtol1e5'] else 'FAILED'}); bit-identical entries "
        f"{100 * figures['bit_identical_fraction']:.1f}%;"
        f" max |row sum − margin| {figures['max_abs_sum_minus_margin']:.3g}"
    )
    if args.rank_rows:
        print(
            f"top-3 |contribution| on {args.rank_rows} rows: order differs in {figures['top3_order_differs']} rows "
            f"({figures['top3_differs_tie']} of them float32 near-ties), set differs in {figures['top3_set_differs']}"
        )
    print(
        f"one row per call: ours median {lat_ours['median_ms']:.3f} ms (p99 {lat_ours['p99_ms']:.3f}), "
        f"xgboost median {lat_xgb['median_ms']:.3f} ms (p99 {lat_xgb['p99_ms']:.3f})"
    )
    print(f"compile_booster {figures['compile_booster_s']:.2f} s; load average after {os.getloadavg()[0]:.2f}")
    report = {
        "benchmark": "treeshap",
        "params": {"model": source, "csv": args.csv if use_registry else None, "rows": args.rows,
                   "xgb_rows": args.xgb_rows, "rank_rows": args.rank_rows, "threads": threads},
        "figures": figures,
    }  # fmt: skip
    if args.json_out:
        args.json_out.write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
