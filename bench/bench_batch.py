"""Batch scoring benchmark: `crmscore score` on 1M leads vs `mlflow models predict` on the same model and file.

    .venv/bin/python bench/bench_batch.py                          # 1M rows, reasons 0 and 3, mlflow baseline
    .venv/bin/python bench/bench_batch.py --rows 200000 --skip-mlflow
    .venv/bin/python bench/bench_batch.py --workdir /tmp/crmscore-bench-batch --runs plain,reasons,records,mlflow

Setup (cached in ``--workdir``, rebuilt with ``--fresh``): synthetic CRM tables for ``--customers`` customers
(``features.synth``), a lead model trained with ``training.train.train_crm`` into a SQLite registry there
(XGBoost with the largest trees of the default search, 400 trees of depth 6, so scoring cost is the worst
case the default config can produce), and a CSV of ``--rows`` feature rows: the customers' features at
cutoffs two weeks apart (ids ``<customer>@<date>``), so the values are real feature distributions.

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
MODEL = "lead_scoring@champion"

#: runs: name → (extra crmscore arguments, or None for the MLflow baseline; on the first --subset rows only?)
RUNS: dict[str, tuple[list[str] | None, bool]] = {
    "plain": (["--no-records"], False),
    "reasons": (["--reasons", "3", "--reasons-method", "approx", "--no-records"], False),
    "reasons-exact": (["--reasons", "3", "--reasons-method", "exact", "--no-records"], True),
    "records": ([], False),  # the default: scored rows recorded for drift monitoring
    "mlflow": (None, False),
}

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


def setup(workdir: Path, customers: int, rows: int, fresh: bool) -> Path:
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
    done = workdir / "trained.json"
    if fresh or not done.is_file():
        from features.config import load_config
        from training.config import TrainConfig, XGBSearch
        from training.train import train_crm

        os.environ.update({k: env[k] for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "OMP_WAIT_POLICY")})
        cwd = os.getcwd()
        os.chdir(workdir)
        try:
            cfg = load_config(ROOT / "configs" / "lead.yaml", TrainConfig).model_copy(
                update={"candidates": ["xgboost"], "xgb_search": XGBSearch(n_trials=1, n_estimators=[400],
                                                                            max_depth=[6])}
            )
            t = time.perf_counter()
            r = train_crm(data, cfg)
        finally:
            os.chdir(cwd)
        done.write_text(json.dumps({"version": r.version, "auc": r.test_metrics["roc_auc"]}))
        print(f"setup: trained {r.model_name} v{r.version} in {time.perf_counter() - t:.0f} s", flush=True)
    csv_path = workdir / f"leads_{rows}.csv"
    if fresh or not csv_path.is_file():
        import mlflow

        from features.build import CRMSnapshot
        from features.io import load_tables
        from training.registry import configure_tracking

        configure_tracking(env["MLFLOW_TRACKING_URI"])
        builder = mlflow.sklearn.load_model(f"models:/{MODEL}").builder
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


def main() -> None:
    """Set up, run each variant, print a Markdown table, write JSON."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--customers", type=int, default=100_000)
    ap.add_argument("--workdir", type=Path, default=Path("/tmp/crmscore-bench-batch"))
    ap.add_argument("--runs", default="plain,reasons,reasons-exact,records,mlflow",
                    help=f"comma-separated from {', '.join(RUNS)}")
    ap.add_argument("--subset", type=int, default=20_000, help="rows of the runs too slow for the whole file")
    ap.add_argument("--threads", type=int, default=2, help="XGBoost threads of crmscore score")
    ap.add_argument("--fresh", action="store_true", help="rebuild data, model and CSV")
    ap.add_argument("--skip-mlflow", action="store_true")
    ap.add_argument("--out", type=Path, default=None, help="results JSON (default WORKDIR/results.json)")
    args = ap.parse_args()

    workdir = args.workdir.resolve()
    src = setup(workdir, args.customers, args.rows, args.fresh)
    env = child_env(workdir)
    crmscore = str(BIN / "crmscore")
    runs = [r.strip() for r in args.runs.split(",") if r.strip() and not (args.skip_mlflow and r.strip() == "mlflow")]

    # warm-up: compiles and caches byte code of every package both tools import
    small = workdir / "warmup.csv"
    subset = workdir / f"leads_{args.subset}.csv"
    with src.open("r", encoding="utf-8") as fh:
        head = [fh.readline() for _ in range(args.subset + 1)]
    small.write_text("".join(head[:1001]), encoding="utf-8")
    subset.write_text("".join(head), encoding="utf-8")
    measure([crmscore, "score", "--model", MODEL, "--input", str(small), "--output", str(workdir / "w.csv"),
             "--reasons", "3"], env, workdir / "warmup.log")

    results: dict[str, Any] = {"rows": args.rows, "file_mb": round(src.stat().st_size / 1e6, 1),
                               "cpus": os.cpu_count(), "runs": {}}
    for name in runs:
        extra, on_subset = RUNS[name]
        inp, n_rows = (subset, args.subset) if on_subset else (src, args.rows)
        if extra is None:
            out = workdir / "mlflow_out.json"
            cmd = [str(BIN / "mlflow"), "models", "predict", "-m", f"models:/{MODEL}", "-i", str(inp), "-t", "csv",
                   "-o", str(out), "--env-manager", "local"]
        else:
            out = workdir / f"scored_{name}.csv"
            cmd = [crmscore, "score", "--model", MODEL, "--input", str(inp), "--output", str(out),
                   "--threads", str(args.threads), *extra]
        before = load_average()
        print(f"run {name}: {' '.join(cmd[1:4])} … (load {before})", flush=True)
        m = measure(cmd, env, workdir / f"{name}.log")
        m.update({"command": " ".join(cmd), "rows": n_rows, "load_before": before, "load_after": load_average()})
        if m["rc"] != 0:
            m["log_tail"] = (workdir / f"{name}.log").read_text(errors="replace")[-2000:]
        elif extra is not None:
            m["summary"] = json.loads(Path(str(out) + ".summary.json").read_text(encoding="utf-8"))
        results["runs"][name] = m
        print(f"  rc {m['rc']}, {m['seconds']:.1f} s (CPU {m['cpu_seconds']:.1f} s), "
              f"{n_rows / m['seconds']:,.0f} rows/s, peak RSS {m['max_rss_mb']:,.0f} MB", flush=True)

    print(f"\n{args.rows:,} rows, {results['file_mb']:,} MB CSV, {os.cpu_count()} CPUs\n")
    print("| run | rows | wall s | CPU s | rows/s | peak RSS (MB) | load before → after |")
    print("|---|---:|---:|---:|---:|---:|---|")
    for name, m in results["runs"].items():
        print(f"| {name} | {m['rows']:,} | {m['seconds']:.1f} | {m['cpu_seconds']:.1f} | "
              f"{m['rows'] / m['seconds']:,.0f} | {m['max_rss_mb']:,.0f} | {m['load_before']} → {m['load_after']} |")
    if "mlflow" in results["runs"] and "plain" in results["runs"]:
        ratio = results["runs"]["mlflow"]["seconds"] / results["runs"]["plain"]["seconds"]
        results["speedup_vs_mlflow"] = round(ratio, 2)
        print(f"\ncrmscore score (no reasons) is {ratio:.1f}× faster than mlflow models predict")
    path = args.out or workdir / "results.json"
    path.write_text(json.dumps(results, indent=2))
    print(f"results in {path}")


if __name__ == "__main__":
    main()
