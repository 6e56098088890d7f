"""Batch scoring benchmark: `crmscore score` on 1M leads vs `mlflow models predict` on the same model and file.

    .venv/bin/python bench/bench_batch.py                          # 1M rows: plain, mlflow, exact reasons
    .venv/bin/python bench/bench_batch.py --rows 200000 --skip-mlflow
    .venv/bin/python bench/bench_batch.py --workdir /tmp/crmscore-bench-batch --runs plain,reasons,records,mlflow

Setup (cached in ``--workdir``, rebuilt with ``--fresh``): synthetic CRM tables for ``--customers`` customers
(``features.synth``), lead models trained with ``training.train.train_crm`` into a SQLite registry there, and
a CSV of ``--rows`` feature rows: the customers' features at cutoffs two weeks apart (ids
``<customer>@<date>``), so the values are real feature distributions. ``--model-kind`` picks the model:

* ``trained`` (default): the champion the default training job (``configs/lead.yaml``, i.e. ``crmscore train
  lead``) registers on this data, registered as ``lead_scoring`` — what users score with;
* ``worst``: XGBoost with the largest trees of the default search (400 trees of depth 6), registered as
  ``lead_scoring_worst`` — the worst scoring cost the default config can produce.

The model's shape (kind, trees, max depth, mean leaves per tree) is part of the output.

    .venv/bin/python bench/bench_batch.py --rows 100000 --json-out /tmp/batch.json     # a quick run
    .venv/bin/python bench/bench_batch.py --model-kind worst --runs plain,mlflow,reasons-subset

Each run is a fresh subprocess; wall time is measured around it and peak memory is the largest max RSS of
its process tree (``resource.getrusage(RUSAGE_CHILDREN)`` in a wrapper process). Python byte code is cached
in ``--workdir`` (``PYTHONPYCACHEPREFIX``) and warmed up once, so import time is the same as in a normal
install for every tool. The load average of the machine is printed with the results (figures in docs/batch.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
#: registered model name per --model-kind
MODEL_NAMES = {"trained": "lead_scoring", "worst": "lead_scoring_worst"}

#: runs: name → (extra crmscore arguments, or None for the MLflow baseline; on the first --subset rows only?)
RUNS: dict[str, tuple[list[str] | None, bool]] = {
    "plain": (["--no-records"], False),
    "reasons": (["--reasons", "3", "--no-records"], False),  # exact TreeSHAP, the default method
    "reasons-subset": (["--reasons", "3", "--no-records"], True),  # the same on the first --subset rows
    "reasons-exact": (["--reasons", "3", "--no-records"], True),  # the earlier name of reasons-subset
    "reasons-approx": (["--reasons", "3", "--reasons-method", "approx", "--no-records"], False),
    "records": ([], False),  # the default: scored rows recorded for drift monitoring
    "mlflow": (None, False),
}
#: default runs per model kind (exact reasons on the whole file for both since training.treeshap)
DEFAULT_RUNS = {"trained": "plain,mlflow,reasons", "worst": "plain,mlflow,reasons"}

_WRAPPER = r"""
import json, resource, subprocess, sys, time
t0 = time.perf_counter()
with open(sys.argv[1], "wb") as log:
    rc = subprocess.run(sys.argv[2:], stdout=log, stderr=subprocess.STDOUT).returncode
wall = time.perf_counter() - t0
ru = resource.getrusage(resource.RUSAGE_CHILDREN)
cpu = ru.ru_utime + ru.ru_stime
print(json.dumps({"rc": rc, "seconds": wall, "cpu_seconds": cpu, "max_rss_mb": ru.ru_maxrss / 1024}))
"""


def child_env(workdir: Path) -> dict[str, str]:
    """Environment of every measured process: the bench registry, passive OpenMP, a byte-code cache."""
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    env.update(
        {
            "PYTHONPYCACHEPREFIX": str(workdir / "pycache"),
            "MLFLOW_TRACKING_URI": f"sqlite:///{workdir / 'mlflow.db'}",
            "MLFLOW_REGISTRY_URI": f"sqlite:///{workdir / 'mlflow.db'}",
            "OMP_WAIT_POLICY": "PASSIVE",
            "CRMSCORE_HOME": str(workdir / "home"),
            "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
        }
    )
    return env


def train_model(workdir: Path, data: Path, kind: str, env: dict[str, str], fresh: bool) -> None:
    """Train and register the ``kind`` model into the bench registry (skipped when done before)."""
    from features.config import load_config
    from training.config import TrainConfig, XGBSearch
    from training.train import train_crm

    done = workdir / f"trained_{kind}.json"
    if done.is_file() and not fresh:
        return
    os.environ.update({k: env[k] for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "OMP_WAIT_POLICY")})
    cfg = load_config(ROOT / "configs" / "lead.yaml", TrainConfig)
    if kind == "worst":
        cfg = cfg.model_copy(update={"model_name": MODEL_NAMES["worst"], "candidates": ["xgboost"],
                                     "xgb_search": XGBSearch(n_trials=1, n_estimators=[400], max_depth=[6])})
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        t = time.perf_counter()
        r = train_crm(data, cfg)
    finally:
        os.chdir(cwd)
    done.write_text(json.dumps({"version": r.version, "candidate": r.best_candidate,
                                "auc": r.test_metrics["roc_auc"]}))
    print(f"setup: trained {r.model_name} v{r.version} ({r.best_candidate}) in {time.perf_counter() - t:.0f} s",
          flush=True)


def model_shape(workdir: Path, kind: str) -> dict[str, Any]:
    """The registered champion's classifier: type and, for XGBoost, trees, max depth and mean leaves per tree."""
    import mlflow

    from training.registry import configure_tracking

    configure_tracking(f"sqlite:///{workdir / 'mlflow.db'}")
    scorer = mlflow.sklearn.load_model(f"models:/{MODEL_NAMES[kind]}@champion")
    est = scorer.estimator_
    out: dict[str, Any] = {"kind": kind, "model": f"{MODEL_NAMES[kind]}@champion", "classifier": type(est).__name__,
                           "n_features": len(scorer.preprocessor_.get_feature_names_out())}
    if hasattr(est, "get_booster"):
        dump = est.get_booster().get_dump(with_stats=False)
        leaves = [d.count("leaf=") for d in dump]
        depths = [max(len(line) - len(line.lstrip("\t")) for line in d.splitlines()) for d in dump]
        out.update({"trees": len(dump), "max_depth": max(depths), "mean_leaves": round(sum(leaves) / len(leaves), 1),
                    "params": {k: v for k, v in est.get_params().items()
                               if k in ("n_estimators", "max_depth", "learning_rate", "subsample",
                                        "colsample_bytree", "min_child_weight")}})
    return out


def setup(workdir: Path, customers: int, rows: int, fresh: bool, model_kind: str = "trained",
          kind_all: bool = False) -> Path:
    """Data dir, trained registry and the feature CSV (each step skipped when its output exists)."""
    import pandas as pd
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pcsv

    sys.path.insert(0, str(ROOT))
    workdir.mkdir(parents=True, exist_ok=True)
    data = workdir / "data"
    if fresh or not (data / "customers.parquet").is_file():
        from features.synth import generate_crm_data, write_crm_data

        t = time.perf_counter()
        write_crm_data(generate_crm_data(customers, 400, 7), data)
        print(f"setup: {customers:,} customers generated in {time.perf_counter() - t:.0f} s", flush=True)
    env = child_env(workdir)
    for kind in ("trained", "worst") if kind_all else (model_kind,):
        train_model(workdir, data, kind, env, fresh)
    csv_path = workdir / f"leads_{rows}.csv"
    if fresh or not csv_path.is_file():
        import mlflow

        from features.build import CRMSnapshot
        from features.io import load_tables
        from training.registry import configure_tracking

        configure_tracking(env["MLFLOW_TRACKING_URI"])
        builder = mlflow.sklearn.load_model(f"models:/{MODEL_NAMES[model_kind]}@champion").builder
        tables = load_tables(data)
        end = tables["interactions"]["ts"].max().normalize()
        parts, n, k = [], 0, 0
        t = time.perf_counter()
        while n < rows:
            as_of = end - pd.Timedelta(days=14 * k)
            f = builder.transform(CRMSnapshot(tables, as_of)).reset_index()
            if len(f) == 0:
                raise SystemExit(f"not enough customers for {rows:,} rows; raise --customers")
            f["customer_id"] = f["customer_id"].astype(str) + f"@{as_of.date()}"
            parts.append(f)
            n += len(f)
            k += 1
        frame = pd.concat(parts, ignore_index=True).head(rows)
        num = frame.select_dtypes("number").columns
        frame[num] = frame[num].round(4)
        table = pa.Table.from_pandas(frame, preserve_index=False)
        # `mlflow models predict` refuses a column pandas reads as int64 ("Can not safely convert int64 to
        # float64"), so whole-number columns are written as 12.0 (crmscore score reads either)
        for name in num:
            col = frame[name]
            if col.notna().all() and (col == col.round()).all():
                text = pc.binary_join_element_wise(pc.cast(pa.array(col.to_numpy().astype("int64")), pa.string()),
                                                   pa.scalar(".0"), "")
                table = table.set_column(table.schema.get_field_index(name), name, text)
        tmp = csv_path.with_suffix(".tmp")
        pcsv.write_csv(table, tmp)
        tmp.replace(csv_path)
        size = csv_path.stat().st_size / 1e6
        print(f"setup: {rows:,} rows × {frame.shape[1]} columns from {k} cutoffs, {size:,.0f} MB, "
              f"{time.perf_counter() - t:.0f} s", flush=True)
        del frame, parts, table
    return csv_path


def measure(cmd: list[str], env: dict[str, str], log: Path) -> dict[str, Any]:
    """Run ``cmd`` in a wrapper process; wall seconds, exit code and peak RSS of its process tree."""
    out = subprocess.run([sys.executable, "-c", _WRAPPER, str(log), *cmd], env=env, capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


def _figures(results: dict[str, Any]) -> dict[str, Any]:
    """Flat figures of the runs for ``--json-out`` (best wall time of each run over the repeats)."""
    fig: dict[str, Any] = {}
    names = {"plain": "crmscore_plain", "reasons": "crmscore_reasons", "reasons-subset": "crmscore_reasons_subset",
             "reasons-approx": "crmscore_reasons_approx", "records": "crmscore_records", "mlflow": "mlflow_predict"}
    for run, ms in results["runs"].items():
        ok = [m for m in ms if m["rc"] == 0]
        key = names.get(run, run.replace("-", "_"))
        if not ok:
            fig[f"{key}_failed"] = True
            continue
        best = min(ok, key=lambda m: m["seconds"])
        fig[f"{key}_s"] = round(best["seconds"], 2)
        fig[f"cpu_s_{key}"] = round(min(m["cpu_seconds"] for m in ok), 2)
        fig[f"peak_rss_mb_{key}"] = round(max(m["max_rss_mb"] for m in ok), 1)
        fig[f"rows_per_s_{key}"] = round(best["rows"] / best["seconds"], 1)
        fig[f"load_{key}"] = f"{best['load_before']} → {best['load_after']}"
        if run == "reasons-subset" and "summary" in best:
            # start-up once, then the scoring time of the subset scaled to the whole file
            s = best["summary"]
            scoring = s["seconds"] - (s.get("model_load_seconds") or 0.0)
            scale = results["rows"] / best["rows"] - 1
            fig["crmscore_reasons_projected_s"] = round(best["seconds"] + scoring * scale)
            fig["crmscore_reasons_subset_rows_per_scoring_s"] = round(best["rows"] / scoring, 1)
    if "mlflow_predict_s" in fig and "crmscore_plain_s" in fig:
        fig["ratio_mlflow_over_crmscore"] = round(fig["mlflow_predict_s"] / fig["crmscore_plain_s"], 2)
        fig["ratio_cpu_mlflow_over_crmscore"] = round(fig["cpu_s_mlflow_predict"] / fig["cpu_s_crmscore_plain"], 2)
    return fig


def main() -> None:
    """Set up, run each variant (interleaved over ``--repeat``), print a Markdown table, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000, help="rows of the benchmark CSV (e.g. 100000 to be quick)")
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/crmscore-bench-batch"))
    ap.add_argument("--model-kind", choices=sorted(MODEL_NAMES), default="trained",
                    help="trained: the default training job's champion; worst: 400 trees of depth 6")
    ap.add_argument("--runs", default=None,
                    help=f"comma-separated from {', '.join(RUNS)} (default: {DEFAULT_RUNS['trained']} for trained, "
                    f"{DEFAULT_RUNS['worst']} for worst)")
    ap.add_argument("--repeat", type=int, default=1, help="run the list this many times, interleaved (best kept)")
    ap.add_argument("--subset", type=int, default=20_000, help="rows of the runs too slow for the whole file")
    ap.add_argument("--threads", type=int, default=None, help="XGBoost threads of crmscore score (default: its own)")
    ap.add_argument("--fresh", action="store_true", help="rebuild data, model and CSV")
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--setup-only", action="store_true", help="build data, both models and the CSV, then stop")
    ap.add_argument("--out", type=Path, default=None, help="full results JSON (default WORKDIR/results.json)")
    ap.add_argument("--json-out", type=Path, default=None,
                    help='one JSON object {"benchmark": "batch", "params": {...}, "figures": {...}}')
    args = ap.parse_args()

    workdir = args.workdir.resolve()
    src = setup(workdir, args.customers, args.rows, args.fresh, args.model_kind, kind_all=args.setup_only)
    if args.setup_only:
        return
    env = child_env(workdir)
    model = f"{MODEL_NAMES[args.model_kind]}@champion"
    shape = model_shape(workdir, args.model_kind)
    print(f"model: {json.dumps(shape)}", flush=True)
    crmscore = str(BIN / "crmscore")
    names = [r.strip() for r in (args.runs or DEFAULT_RUNS[args.model_kind]).split(",") if r.strip()]
    unknown = [r for r in names if r not in RUNS]
    if unknown:
        raise SystemExit(f"unknown run(s) {', '.join(unknown)}; use {', '.join(RUNS)}")
    runs = [r for r in names if not (args.skip_mlflow and r == "mlflow")]
    threads = ["--threads", str(args.threads)] if args.threads else []

    # warm-up: compiles and caches byte code of every package both tools import
    small = workdir / "warmup.csv"
    subset_rows = min(args.subset, args.rows)
    subset = workdir / f"leads_{args.rows}_head{subset_rows}.csv"
    with src.open("r", encoding="utf-8") as fh:
        head = [fh.readline() for _ in range(subset_rows + 1)]
    small.write_text("".join(head[:1001]), encoding="utf-8")
    subset.write_text("".join(head), encoding="utf-8")
    del head
    measure([crmscore, "score", "--model", model, "--input", str(small), "--output", str(workdir / "w.csv"),
             "--reasons", "3"], env, workdir / "warmup.log")
    measure([str(BIN / "mlflow"), "models", "predict", "-m", f"models:/{model}", "-i", str(small), "-t", "csv",
             "-o", str(workdir / "w.json"), "--env-manager", "local"], env, workdir / "warmup_mlflow.log")

    results: dict[str, Any] = {"rows": args.rows, "file_mb": round(src.stat().st_size / 1e6, 1),
                               "cpus": os.cpu_count(), "model": shape, "runs": {}}
    for rep in range(args.repeat):
        for name in runs:
            extra, on_subset = RUNS[name]
            inp, n_rows = (subset, subset_rows) if on_subset else (src, args.rows)
            if extra is None:
                out = workdir / "mlflow_out.json"
                cmd = [str(BIN / "mlflow"), "models", "predict", "-m", f"models:/{model}", "-i", str(inp), "-t",
                       "csv", "-o", str(out), "--env-manager", "local"]
            else:
                out = workdir / f"scored_{name}.csv"
                cmd = [crmscore, "score", "--model", model, "--input", str(inp), "--output", str(out), *threads,
                       *extra]
            before = load_average()
            print(f"run {name} #{rep + 1}: {' '.join(cmd[1:4])} … (load {before})", flush=True)
            m = measure(cmd, env, workdir / f"{name}.log")
            m.update({"command": " ".join(cmd), "rows": n_rows, "load_before": before, "load_after": load_average()})
            if m["rc"] != 0:
                m["log_tail"] = (workdir / f"{name}.log").read_text(errors="replace")[-2000:]
            elif extra is not None:
                m["summary"] = json.loads(Path(str(out) + ".summary.json").read_text(encoding="utf-8"))
            results["runs"].setdefault(name, []).append(m)
            print(f"  rc {m['rc']}, {m['seconds']:.1f} s (CPU {m['cpu_seconds']:.1f} s), "
                  f"{n_rows / m['seconds']:,.0f} rows/s, peak RSS {m['max_rss_mb']:,.0f} MB", flush=True)

    print(f"\n{args.rows:,} rows, {results['file_mb']:,} MB CSV, {os.cpu_count()} CPUs, model {shape}\n")
    print("| run | rows | wall s | CPU s | rows/s | peak RSS (MB) | load before → after |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, ms in results["runs"].items():
        for m in ms:
            print(f"| {name} | {m['rows']:,} | {m['seconds']:.1f} | {m['cpu_seconds']:.1f} | "
                  f"{m['rows'] / m['seconds']:,.0f} | {m['max_rss_mb']:,.0f} | {m['load_before']} → "
                  f"{m['load_after']} |")
    figures = _figures(results)
    results["figures"] = figures
    if "ratio_mlflow_over_crmscore" in figures:
        print(f"\ncrmscore score (no reasons) is {figures['ratio_mlflow_over_crmscore']:.1f}× faster than mlflow "
              f"models predict in wall time, {figures['ratio_cpu_mlflow_over_crmscore']:.1f}× in CPU time")
    path = args.out or workdir / "results.json"
    path.write_text(json.dumps(results, indent=2, ensure_ascii=False))
    print(f"results in {path}")
    if args.json_out:
        params = {"rows": args.rows, "customers": args.customers, "model_kind": args.model_kind, "model": shape,
                  "runs": runs, "repeat": args.repeat, "subset": subset_rows, "threads": args.threads,
                  "cpus": os.cpu_count(), "file_mb": results["file_mb"]}
        args.json_out.write_text(json.dumps({"benchmark": "batch", "params": params, "figures": figures},
                                            ensure_ascii=False, indent=2))
        print(f"figures in {args.json_out}")


if __name__ == "__main__":
    main()
