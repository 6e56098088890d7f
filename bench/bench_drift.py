"""Benchmark of `crmscore monitor drift`: 1M recorded rows against a 100k-row reference (goal ≤ 60 s).

Not a test. It generates rows with the lead model's real feature schema (132 features: 125 numeric,
7 categorical; counts, recencies with a "never" value, money, rates, flags), writes them as
production records (``<home>/records/lead_scoring/date=…/part-….parquet``, 10 files a day over 7 days),
registers a version whose run holds the reference sample in a throwaway SQLite MLflow store, then

1. runs the real command ``crmscore monitor drift --from … --to …`` in a subprocess and reports its
   wall and CPU time (imports included, as cron would see them);
2. times the stages in-process (read records, compare = profiles + Evidently, HTML, workspace, MLflow);
3. with ``--sensitivity``: the smallest mean shift of one feature Evidently flags with the full 1M current
   rows vs the stratified sample (default caps), for the Wasserstein regime (100k reference) and the
   Kolmogorov–Smirnov regime (1,000-row reference), over ``--seeds`` seeds;
4. with ``--false-alarms N``: alarms and flagged features over N runs without any drift (5,000 current
   rows against a 5,000-row and a 1,000-row reference). ``--rows 0`` skips steps 1–3.

Run: ``.venv/bin/python bench/bench_drift.py [--rows 1000000] [--reference-rows 100000] [--sensitivity]
[--false-alarms 10] [--json-out PATH]`` (``--json-out`` writes ``{"benchmark": "drift", "params": {...},
"figures": {...}}``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

MODEL = "lead_scoring"
CATEGORIES = {
    "source_channel": 6,
    "province": 31,
    "industry": 12,
    "company_size": 5,
    "job_title": 10,
    "gender": 3,
    "member_level": 4,
}


def feature_names() -> list[str]:
    """The lead model's feature columns, as the feature builder names them."""
    from features.build import CRMFeatureBuilder

    return [str(c) for c in CRMFeatureBuilder().fit().feature_names_out_]


def generate(n: int, names: list[str], seed: int, shift: float = 0.0) -> pd.DataFrame:
    """``n`` feature rows plus ``probability``; ``shift`` (in std units) moves every tenth numeric feature."""
    r = np.random.default_rng(seed)
    cols: dict[str, object] = {}
    for j, c in enumerate(names):
        if c in CATEGORIES:
            k = CATEGORIES[c]
            p = 1 / np.arange(1, k + 1)
            v = r.choice(np.array([f"{c}_{i}" for i in range(k)], dtype=object), n, p=p / p.sum())
            v[r.random(n) < 0.03] = None
            cols[c] = v
            continue
        if c.startswith("days_since"):
            x = np.where(r.random(n) < 0.3, 3650.0, r.exponential(30 + j, n))
        elif c.startswith(("spend", "avg_order", "points")):
            x = r.gamma(1.5, 80.0 + j, n) * (r.random(n) < 0.6)
        elif c.endswith(("_rate_90d", "_share")):
            x = r.beta(1.5, 6, n)
        elif c in ("marketing_consent", "added_to_cart", "reached_checkout", "claimed_coupon"):
            x = (r.random(n) < 0.3).astype(float)
        elif c in ("age", "tenure_days", "interaction_trend_30d"):
            x = r.normal(40 if c == "age" else 0, 10, n)
        else:
            x = r.poisson(0.2 + (j % 7) * 0.6, n).astype(float)
        if shift and j % 10 == 0:
            x = x + shift * (x.std() or 1.0)
        cols[c] = x
    df = pd.DataFrame(cols)
    df["probability"] = np.clip(r.beta(2, 8, n) + (0.1 * shift), 0.001, 0.999)
    return df


def write_records(home: Path, df: pd.DataFrame, start: pd.Timestamp, days: int, files_per_day: int) -> None:
    """The rows as records in ``serving.http.records`` layout, evenly over ``days`` days."""
    from features.io import write_parquet_atomic

    n = len(df)
    ts = start + pd.to_timedelta(np.linspace(0, days * 86400 - 1, n), unit="s")
    base = pd.DataFrame(
        {
            "ts": ts,
            "model_name": pd.array([MODEL] * n, dtype="string"),
            "model_version": pd.array(["1"] * n, dtype="string"),
            "source": pd.array(np.where(np.arange(n) % 5 == 0, "http", "batch"), dtype="string"),
            "customer_id": pd.array([f"C{i:07d}" for i in range(n)], dtype="string"),
            "probability": df["probability"].to_numpy(),
            "score": np.clip(np.rint(df["probability"].to_numpy() * 100), 1, 99).astype("int64"),
            "grade": pd.array(["C"] * n, dtype="string"),
        }
    )
    feats = df.drop(columns="probability")
    for c in CATEGORIES:
        feats[c] = feats[c].astype("string")
    rec = pd.concat([base, feats], axis=1)
    for day, rows in rec.groupby(rec["ts"].dt.strftime("%Y-%m-%d")):
        for chunk in np.array_split(np.arange(len(rows)), files_per_day):
            path = home / "records" / MODEL / f"date={day}" / f"part-{uuid.uuid4().hex}.parquet"
            write_parquet_atomic(rows.iloc[chunk], path)


def register(uri: str, reference: pd.DataFrame, workdir: Path) -> None:
    """lead_scoring v1 (champion) whose run holds ``evaluation/reference.parquet``."""
    import mlflow
    from mlflow import MlflowClient

    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    exp = mlflow.create_experiment("crmscore-lead", artifact_location=(workdir / "artifacts").as_uri())
    ev = workdir / "evaluation"
    ev.mkdir(exist_ok=True)
    reference.to_parquet(ev / "reference.parquet", index=False)
    with mlflow.start_run(experiment_id=exp) as run:
        mlflow.log_artifacts(str(ev), artifact_path="evaluation")
    client = MlflowClient()
    client.create_registered_model(MODEL)
    mv = client.create_model_version(
        MODEL,
        source=f"{run.info.artifact_uri}/evaluation",
        run_id=run.info.run_id,
        tags={"crmscore.run_id": run.info.run_id},
    )
    client.set_registered_model_alias(MODEL, "champion", mv.version)


def cpu_children() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def cpu_self() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


#: Runs `crmscore` (serving.cli:main) and reports the process's own peak RSS: VmHWM of its memory map
#: (``ru_maxrss`` would include the pages of this benchmark process at fork time).
_WRAPPER = (
    "import re, sys\n"
    "from serving.cli import main\n"
    "sys.argv[0] = 'crmscore'\n"
    "try:\n"
    "    main()\n"
    "finally:\n"
    "    hwm = re.search(r'VmHWM:\\s+(\\d+)', open('/proc/self/status').read())\n"
    "    sys.stderr.write(f'PEAK_RSS_KB {hwm.group(1) if hwm else -1}\\n')\n"
)


def time_cli(workdir: Path, env: dict[str, str], start: str, end: str, config: Path) -> dict[str, float]:
    """The real command in a subprocess: wall and CPU seconds (imports included), exit code, peak memory."""
    argv = [sys.executable, "-c", _WRAPPER, "monitor", "drift", "--model", MODEL, "--from", start, "--to", end]
    argv += ["--out", str(workdir / "out"), "--config", str(config)]
    c0, t0 = cpu_children(), time.perf_counter()
    proc = subprocess.run(argv, env={**env, "PYTHONPATH": str(ROOT)}, cwd=workdir, capture_output=True, text=True)
    wall, cpu = time.perf_counter() - t0, cpu_children() - c0
    print(proc.stdout.strip())
    if proc.returncode not in (0, 3):
        print(proc.stderr[-3000:], file=sys.stderr)
    m = re.search(r"PEAK_RSS_KB (\d+)", proc.stderr)
    rss = int(m.group(1)) / 1024 if m else float("nan")
    return {"wall_s": wall, "cpu_s": cpu, "exit_code": proc.returncode, "peak_rss_mb": rss}


def time_stages(home: Path, start: str, end: str, cfg, compare_reader: bool) -> dict[str, float]:
    """Stage times in-process (imports paid first and reported apart)."""
    out: dict[str, float] = {}
    t = time.perf_counter()
    import evidently.presets  # noqa: F401
    import mlflow  # noqa: F401

    out["import_evidently_mlflow_s"] = time.perf_counter() - t
    from serving.monitoring.drift import (
        add_to_workspace,
        compare,
        load_reference,
        read_window_records,
        resolve_model_version,
    )

    ref_model = resolve_model_version(MODEL)
    reference = load_reference(ref_model.run_id)
    since, until = pd.Timestamp(start, tz="UTC"), pd.Timestamp(end, tz="UTC")
    if compare_reader:
        from serving.http.records import read_records

        t = time.perf_counter()
        n = len(read_records(home, MODEL, since=since, until=until, version="1"))
        out["serving_read_records_s"] = time.perf_counter() - t
        out["serving_read_records_rows"] = n
    t = time.perf_counter()
    feats = [c for c in reference.columns if c != "probability"]
    cur, _ = read_window_records(home, MODEL, since, until, feats, version="1")
    out["read_window_records_s"] = time.perf_counter() - t
    out["rows"] = len(cur)
    t, c = time.perf_counter(), cpu_self()
    cmp = compare(cur, reference, cfg)
    out["compare_s"], out["compare_cpu_s"] = time.perf_counter() - t, cpu_self() - c
    t = time.perf_counter()
    cmp.snapshot.save_html(str(home / "bench.html"))
    out["save_html_s"] = time.perf_counter() - t
    t = time.perf_counter()
    add_to_workspace(cmp.snapshot, home / "bench_ws", MODEL)
    out["workspace_s"] = time.perf_counter() - t
    out["html_mb"] = (home / "bench.html").stat().st_size / 1e6
    out["drifted"] = cmp.data_drift["n_drifted"]
    return out


def sensitivity(rows: int, ref_rows: int, seeds: int, cap: int) -> list[dict[str, object]]:
    """Smallest detected mean shift (std units) of one normal feature: all rows vs samples capped at ``cap``."""
    import warnings

    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift

    from serving.monitoring.drift import sample_positions

    warnings.simplefilter("ignore", RuntimeWarning)
    ref_cap = cap
    dd = DataDefinition(numerical_columns=["x"])

    def flagged(cur: np.ndarray, ref: np.ndarray) -> tuple[bool, float, str]:
        snap = Report([ValueDrift(column="x")], include_tests=True).run(
            Dataset.from_pandas(pd.DataFrame({"x": cur}), data_definition=dd),
            Dataset.from_pandas(pd.DataFrame({"x": ref}), data_definition=dd),
        )
        d = snap.dict()
        m = d["metrics"][0]
        return d["tests"][0]["status"] == "FAIL", float(m["value"]), m["config"]["method"]

    out = []
    regimes = (
        ("wasserstein", ref_rows, [0.0, 0.05, 0.08, 0.09, 0.095, 0.1, 0.105, 0.11, 0.12, 0.15]),
        ("ks", 1000, [0.0, 0.05, 0.08, 0.1, 0.12, 0.15, 0.2]),
    )
    for regime, n_ref, shifts in regimes:
        for shift in shifts:
            hits = {"full": 0, "sampled": 0}
            scores = {"full": [], "sampled": []}
            method = ""
            for seed in range(seeds):
                r = np.random.default_rng(1000 + seed)
                ref = r.normal(0, 1, n_ref)
                cur = r.normal(shift, 1, rows)
                prob = r.beta(2, 8, rows)  # the sample is stratified by probability, as in the product
                pos = sample_positions(prob, cap, seed)
                ref_pos = sample_positions(r.beta(2, 8, n_ref), ref_cap, seed)
                ref_s = ref if ref_pos is None else ref[ref_pos]
                for kind, c, rf in (("full", cur, ref), ("sampled", cur[pos], ref_s)):
                    hit, score, method = flagged(c, rf)
                    hits[kind] += hit
                    scores[kind].append(score)
            row = {
                "regime": regime,
                "method": method,
                "reference_rows": n_ref,
                "shift_sd": shift,
                "detected_full": f"{hits['full']}/{seeds}",
                "detected_sampled": f"{hits['sampled']}/{seeds}",
                "score_full": float(np.mean(scores["full"])),
                "score_sampled": float(np.mean(scores["sampled"])),
            }
            print(json.dumps(row))
            out.append(row)
    return out


def false_alarms(seeds: int) -> list[dict[str, object]]:
    """No drift at all: how often the monitor alarms and how many of the 132 features it flags per run."""
    from serving.monitoring.drift import MonitorConfig, compare, evaluate_alerts

    names = feature_names()
    cfg = MonitorConfig()
    out = []
    for label, ref_rows in (
        ("wasserstein (5,000-row reference, the training default)", 5000),
        ("ks/chi-squared (1,000-row reference)", 1000),
    ):
        alarms, flagged, psis = 0, [], []
        for seed in range(seeds):
            ref = generate(ref_rows, names, seed=10_000 + seed)
            cur = generate(5000, names, seed=20_000 + seed)
            c = compare(cur, ref, cfg)
            alarms += bool(evaluate_alerts({"data_drift": c.data_drift, "prediction_drift": c.prediction_drift}, cfg))
            flagged.append(c.data_drift["n_drifted"])
            psis.append(c.prediction_drift["psi"])
        row = {
            "regime": label,
            "seeds": seeds,
            "alarms": alarms,
            "mean_features_flagged": float(np.mean(flagged)),
            "max_features_flagged": int(np.max(flagged)),
            "max_psi": float(np.max(psis)),
        }
        print(json.dumps(row))
        out.append(row)
    return out


def contract(result: dict) -> dict:
    """The result as ``{"benchmark": "drift", "params": {...}, "figures": {...}}`` (numbers only in figures)."""
    figures: dict[str, float] = {f"cli_{k}": v for k, v in result["cli"].items()}
    figures.update({k: v for k, v in result["stages"].items() if isinstance(v, int | float)})
    figures.update({k: result[k] for k in ("rows", "reference_rows", "features")})
    params = {k: result[k] for k in ("rows", "reference_rows", "max_rows")}
    params["load_average"] = list(result["load_average"])
    return {"benchmark": "drift", "params": params, "figures": figures}


def main() -> None:
    """Generate records and a reference, time the command and its stages, print (and write) the results."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=1_000_000)
    ap.add_argument("--reference-rows", type=int, default=100_000)
    ap.add_argument("--days", type=int, default=7)
    ap.add_argument("--files-per-day", type=int, default=10)
    ap.add_argument("--shift", type=float, default=0.0, help="shift every tenth numeric feature (std units)")
    ap.add_argument("--sensitivity", action="store_true", help="also measure the sampling's sensitivity cost")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--false-alarms", type=int, default=0, help="also count alarms over N no-drift runs")
    ap.add_argument("--max-rows", type=int, default=None, help="sample caps (default: configs/monitor.yaml)")
    ap.add_argument("--keep", action="store_true", help="keep the work folder")
    ap.add_argument("--compare-reader", action="store_true", help="also time serving.http.records.read_records")
    ap.add_argument("--json-out", type=Path, help="write {benchmark, params, figures} JSON here")
    args = ap.parse_args()

    load = os.getloadavg()
    print(f"machine: {os.cpu_count()} CPUs, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    if args.rows <= 0:
        if args.false_alarms:
            print(json.dumps({"false_alarms": false_alarms(args.false_alarms)}))
        return
    work = Path(tempfile.mkdtemp(prefix="bench_drift_"))
    try:
        home = work / "home"
        uri = f"sqlite:///{work / 'mlflow.db'}"
        t = time.perf_counter()
        names = feature_names()
        reference = generate(args.reference_rows, names, seed=1)
        current = generate(args.rows, names, seed=2, shift=args.shift)
        start = pd.Timestamp("2025-06-02", tz="UTC")
        write_records(home, current, start, args.days, args.files_per_day)
        del current
        register(uri, reference, work)
        print(
            f"data: {args.rows:,} records × {len(names)} features, reference {len(reference):,} rows "
            f"({time.perf_counter() - t:.0f} s to generate)"
        )
        from serving.monitoring.drift import load_monitor_config

        cfg = load_monitor_config(ROOT / "configs" / "monitor.yaml")
        if args.max_rows:
            cfg = cfg.model_copy(update={"max_current_rows": args.max_rows, "max_reference_rows": args.max_rows})
        config = work / "monitor.yaml"
        config.write_text(json.dumps(cfg.model_dump()), encoding="utf-8")  # JSON is YAML
        print(f"sample caps: current {cfg.max_current_rows:,}, reference {cfg.max_reference_rows:,}")
        env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "MLFLOW_REGISTRY_URI": uri, "CRMSCORE_HOME": str(home)}
        s, e = str(start.date()), str((start + pd.Timedelta(days=args.days - 1)).date())
        cli = time_cli(work, env, s, e, config)
        verdict = "within" if cli["wall_s"] <= 60 else "OVER"
        print(
            f"crmscore monitor drift (subprocess): wall {cli['wall_s']:.1f} s ({verdict} the 60 s goal), "
            f"CPU {cli['cpu_s']:.1f} s, exit {cli['exit_code']}, peak RSS {cli['peak_rss_mb']:.0f} MB"
        )
        os.environ.update({k: env[k] for k in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI", "CRMSCORE_HOME")})
        from training.registry import configure_tracking

        configure_tracking(uri)
        stages = time_stages(home, s, str((pd.Timestamp(e) + pd.Timedelta(days=1)).date()), cfg, args.compare_reader)
        print("stages: " + ", ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}" for k, v in stages.items()))
        result = {
            "max_rows": cfg.max_current_rows,
            "cli": cli,
            "stages": stages,
            "rows": args.rows,
            "reference_rows": args.reference_rows,
            "features": len(names),
            "load_average": load,
        }
        if args.sensitivity:
            result["sensitivity"] = sensitivity(args.rows, args.reference_rows, args.seeds, cfg.max_current_rows)
        if args.false_alarms:
            result["false_alarms"] = false_alarms(args.false_alarms)
        print(json.dumps(result, default=float))
        if args.json_out:
            args.json_out.parent.mkdir(parents=True, exist_ok=True)
            args.json_out.write_text(json.dumps(contract(result), default=float), encoding="utf-8")
    finally:
        if args.keep:
            print(f"kept {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
