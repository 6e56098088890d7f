"""Serving benchmark: the crmscore BentoML service vs `mlflow models serve` vs a bare Starlette reference.

    .venv/bin/python bench/bench_serving.py                       # trains a small model in a temp registry
    .venv/bin/python bench/bench_serving.py --registry sqlite:////path/mlflow.db --duration 20
    .venv/bin/python bench/bench_serving.py --targets crmscore --variants base,otel,access-log,offload --skip-batch
    .venv/bin/python bench/bench_serving.py --model-kind trained --json-out bench/results/serving.json

Model: ``--model-kind forced`` (default) trains one XGBoost with ``--trees`` × ``--depth`` (the worst case of the
training search space: 400 × 6); ``--model-kind trained`` registers the champion that the default
``crmscore train lead`` picks on the same synthetic data (the model users actually get; its kind, trees and
depth are recorded in the results).

Every server runs on loopback on a free port with the same model (``lead_scoring@champion``) and the same
number of worker processes; `wrk` (apt-get install -y wrk) sends one lead per request at ``-t2 -c16`` and
1,000 leads per request at ``-t2 -c4`` for ``--duration`` seconds each. Prints a Markdown table (requests/s,
leads/s, p50, p99, server CPU per request, errors); ``--out`` writes every run as JSON, ``--json-out`` one
object ``{"benchmark": "serving", "params": {...}, "figures": {...}}`` (medians over rounds; what bench/run.py
reads). Figures are in docs/serving.md.

``--overload 1,2,3`` measures overload protection instead (docs/serving.md, "Overload"): ``crmscore serve`` with
its shipped limits, its capacity measured closed-loop (16 connections, one lead + reasons), then an open-loop
constant rate of 1×, 2× and 3× that capacity over up to ``--overload-connections`` connections, each level for
``--overload-seconds``. Per level: accepted throughput (200s per second, over the time from the first request
to the last answer), shed share (503/429), failed requests
(anything else, connection errors, timeouts), accepted p50/p99 (from each request's due time, so client-side
waiting counts), and the server's RSS before and after. Next to these client figures, the server's own
(``/metrics`` scraped before and after each level, quantiles from the bucket deltas of
``crmscore_scoring_latency_seconds{outcome}``: middleware entry → response sent, accepted and shed apart):
``server_accepted_p50_ms``/``_p99_ms``, ``server_shed_p99_ms``, ``server_admission_lag_p99_ms`` (the event loop's
lag when a request was admitted: roughly its wait before the middleware saw it), ``shed_by_reason``; and
``client_send_wait_p99_ms`` (due time → request written: the generator's own queue), server and generator CPU
ms per request. ``--overload-generators N`` spreads the client over N processes.

    .venv/bin/python bench/bench_serving.py --overload 1,2,3 --trees 200 --depth 6 \
        --json-out bench/results/overload.json
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
API_KEY = "bench-key"

LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer API_KEY"
local f = io.open(os.getenv("BENCH_BODY"), "r"); wrk.body = f:read("*a"); f:close()
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests": %d, "seconds": %f, "socket_errors": %d, "non2xx": %d, ' ..
    '"p50_ms": %f, "p90_ms": %f, "p99_ms": %f, "max_ms": %f}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
""".replace("API_KEY", API_KEY)

#: crmscore variants: what differs from the shipped defaults (see docs/serving.md, "Where the time goes").
VARIANTS: dict[str, dict[str, str]] = {
    "base": {},
    "otel": {"_TRACING_ON_SCORING": "1"},  # OpenTelemetry middleware also on the scoring paths (BentoML default)
    "access-log": {"_ACCESS_LOG": "1"},  # BentoML access log on (BentoML default)
    "offload": {"CRMSCORE_INLINE_MAX_LEADS": "0"},  # always score in a worker thread (like a sync API)
    "inline": {"CRMSCORE_INLINE_MAX_LEADS": "1000000"},  # always score on the event loop
    "no-gc-tuning": {"CRMSCORE_GC_TUNING": "0"},
    "no-records": {"CRMSCORE_RECORDS": "0"},
}


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_registry(workdir: Path, n_customers: int, trees: int, depth: int, kind: str = "forced") -> str:
    """Generate CRM tables and train a lead model into a SQLite registry under ``workdir``; returns its URI.

    ``kind`` ``forced``: one XGBoost candidate with ``trees`` × ``depth``; ``trained``: the default ``crmscore train
    lead`` configuration (every candidate, the shipped search space), whose champion is what users get."""
    sys.path.insert(0, str(ROOT))
    from features.config import LabelConfig
    from features.io import write_parquet_atomic
    from training.config import TrainConfig, XGBSearch
    from training.train import train_crm

    data = workdir / "data"
    try:
        from features.synth import generate_crm_data, write_crm_data

        write_crm_data(generate_crm_data(n_customers, 365, 7), data)
    except ImportError:
        from tests.fixtures.crm import make_tables

        for name, df in make_tables(n_customers, seed=7).items():
            write_parquet_atomic(df, data / f"{name}.parquet")
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = uri
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        if kind == "trained":
            cfg = TrainConfig(task="lead")  # what `crmscore train lead` uses without --config
        else:
            search = XGBSearch(n_trials=1, n_estimators=[trees], max_depth=[depth], learning_rate=[0.06],
                               subsample=[0.8], colsample_bytree=[0.8], min_child_weight=[5.0])
            cfg = TrainConfig(task="lead", candidates=["xgboost"], xgb_search=search,
                              labels=LabelConfig(n_cutoffs=3, horizon_days=60, churn_lookback_days=365))
        train_crm(data, cfg)
    finally:
        os.chdir(cwd)
    return uri


def make_payloads(workdir: Path, uri: str, n: int = 1000) -> dict[str, Path]:
    """Request bodies: 1 and ``n`` leads with precomputed features (crmscore / reference and mlflow formats)."""
    import mlflow

    from features.build import build_features
    from features.io import load_tables
    from training.registry import configure_tracking

    configure_tracking(uri)
    scorer = mlflow.sklearn.load_model("models:/lead_scoring@champion")
    (workdir / "model.json").write_text(json.dumps(describe_model(scorer)))
    data = workdir / "data"
    tables = load_tables(data) if data.is_dir() else None
    names = list(scorer.feature_names_in_)
    if tables is not None:
        orders = tables["orders"]["ts"]
        feats = build_features(tables, orders.max()).reset_index()
    else:  # an external registry: read the reference sample logged with the model
        raise SystemExit("--registry needs --data DIR too (to build realistic feature rows)")
    recs = json.loads(feats.head(n).to_json(orient="records"))
    leads = [{"customer_id": str(r["customer_id"]), "features": {k: r.get(k) for k in names}} for r in recs]
    while len(leads) < n:
        leads += leads[: n - len(leads)]
    table = {"customer_ids": [x["customer_id"] for x in leads[:n]], "columns": names,
             "rows": [[x["features"][c] for c in names] for x in leads[:n]]}
    out = {}
    for key, body in {
        "one": {"leads": leads[:1]},
        "one_noreasons": {"leads": leads[:1], "reasons": False},
        "many": {"leads": leads[:n]},
        "many_noreasons": {"leads": leads[:n], "reasons": False},
        "table": {"table": table},
        "table_noreasons": {"table": table, "reasons": False},
        "mlflow_one": {"dataframe_records": [lead["features"] for lead in leads[:1]]},
        "mlflow_many": {"dataframe_records": [lead["features"] for lead in leads[:n]]},
    }.items():
        p = workdir / f"{key}.json"
        p.write_text(json.dumps(body))
        out[key] = p
    return out


def describe_model(scorer: Any) -> dict[str, Any]:
    """What the served champion is: estimator, trees, depth, input features (recorded with the figures)."""
    est = scorer.estimator_
    out: dict[str, Any] = {"estimator": type(est).__name__, "n_features": len(scorer.feature_names_in_),
                           "calibration": scorer.calibration}
    if hasattr(est, "get_booster"):
        params = est.get_params()
        out.update(trees=int(est.get_booster().num_boosted_rounds()), depth=params.get("max_depth"),
                   learning_rate=params.get("learning_rate"))
    return out


class Server:
    """A server subprocess in its own process group (stopped by that group id)."""

    def __init__(self, argv: list[str], env: dict[str, str], ready_url: str, log: Path) -> None:
        self.log = log
        self.ready_url = ready_url
        self.proc = subprocess.Popen(argv, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT,
                                     start_new_session=True, cwd=str(log.parent))

    def wait_ready(self, timeout: float = 300) -> None:
        """Poll the readiness URL until 200."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); see {self.log}")
            try:
                if httpx.get(self.ready_url, timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.5)
        raise TimeoutError(f"server not ready after {timeout}s; see {self.log}")

    def cpu_seconds(self) -> float:
        """User + system CPU time used so far by the server process and all its descendants."""
        return tree_cpu_seconds(self.proc.pid)

    def stop(self) -> None:
        """SIGTERM the process group, SIGKILL after 20 s."""
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        except ProcessLookupError:
            pass


def run_wrk(url: str, body: Path, duration: int, threads: int, conns: int, lua: Path) -> dict[str, Any]:
    """One wrk run; the parsed figures."""
    env = {**os.environ, "BENCH_BODY": str(body)}
    cmd = ["wrk", f"-t{threads}", f"-c{conns}", f"-d{duration}s", "--timeout", "30s", "-s", str(lua), url]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=duration + 90).stdout
    line = next((x for x in out.splitlines() if x.startswith("BENCH ")), None)
    if line is None:
        raise RuntimeError(f"wrk gave no result:\n{out}")
    r = json.loads(line[6:])
    r["rps"] = r["requests"] / r["seconds"] if r["seconds"] else 0.0
    return r


def start_target(target: str, variant: str, port: int, workers: int, uri: str, workdir: Path,
                 records_flush_seconds: float = 2.0) -> Server:
    """Start one server on ``port``."""
    env = {**os.environ, "MLFLOW_TRACKING_URI": uri, "PATH": f"{BIN}:{os.environ.get('PATH', '')}",
           "OMP_NUM_THREADS": "1", "CRMSCORE_RECORDS_FLUSH_SECONDS": str(records_flush_seconds)}
    log = workdir / f"{target}-{variant}.log"
    if target == "crmscore":
        extra = dict(VARIANTS[variant])
        env.update({"CRMSCORE_API_KEYS": API_KEY, "CRMSCORE_HOME": str(workdir / f"home-{variant}"),
                    "BENTOML_HOME": str(workdir / "bentoml"), "CRMSCORE_PIN_MODELS": "1"})
        argv = [str(BIN / "crmscore"), "serve", "--port", str(port), "--workers", str(workers)]
        if extra.pop("_ACCESS_LOG", None):
            argv.append("--access-log")
        if extra.pop("_TRACING_ON_SCORING", None):
            tracing = {"tracing": {"excluded_urls": []}}
            env["BENTOML_CONFIG_OVERRIDES"] = json.dumps({"services": {"CRMScoring": tracing}})
        env.update(extra)
        return Server(argv, env, f"http://127.0.0.1:{port}/readyz", log)
    if target == "mlflow":
        argv = [str(BIN / "mlflow"), "models", "serve", "-m", "models:/lead_scoring@champion", "--env-manager",
                "local", "-w", str(workers), "-p", str(port), "-h", "127.0.0.1"]
        return Server(argv, env, f"http://127.0.0.1:{port}/ping", log)
    argv = [str(BIN / "uvicorn"), "bench.reference_app:app", "--workers", str(workers), "--port", str(port),
            "--host", "127.0.0.1", "--no-access-log", "--log-level", "warning"]
    env["PYTHONPATH"] = str(ROOT)
    return Server(argv, env, f"http://127.0.0.1:{port}/ping", log)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", help="MLflow tracking URI with lead_scoring@champion (default: train one)")
    ap.add_argument("--data", type=Path, help="data dir to build request rows from (with --registry)")
    ap.add_argument("--customers", type=int, default=3000, help="customers of the generated data")
    ap.add_argument("--model-kind", choices=["forced", "trained"], default="forced",
                    help="forced: one XGBoost of --trees × --depth; trained: the champion of the default "
                    "`crmscore train lead` on the synthetic data")
    ap.add_argument("--trees", type=int, default=400, help="trees of the forced model")
    ap.add_argument("--depth", type=int, default=6, help="depth of the forced model")
    ap.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--targets", default="crmscore,mlflow,reference")
    ap.add_argument("--variants", default="base", help=f"crmscore variants: {','.join(VARIANTS)}")
    ap.add_argument("--batch", type=int, default=1000, help="leads per request of the batch runs")
    ap.add_argument("--skip-batch", action="store_true", help="only the one-lead runs")
    ap.add_argument("--batch-reasons", action="store_true", help="also a batch run with reasons (slow: TreeSHAP)")
    ap.add_argument("--one-reasons", choices=["on", "off", "both"], default="both",
                    help="one-lead runs with reasons, without, or both")
    ap.add_argument("--rounds", type=int, default=1, help="interleaved rounds; the table shows medians")
    ap.add_argument("--workdir", type=Path, help="keep models, logs and payloads here")
    ap.add_argument("--records-flush-seconds", type=float, default=2.0,
                    help="crmscore's drift-record flush interval (shipped: 10 s); short, so that each run pays for "
                    "writing its own records instead of the previous run's")
    ap.add_argument("--out", type=Path, help="write every run as JSON (a list)")
    ap.add_argument("--json-out", type=Path, help="write {benchmark, params, figures} (medians) as JSON")
    ap.add_argument("--overload", help="instead of the wrk runs: offered load as multiples of the measured "
                    "capacity, e.g. 1,2,3 (open loop, one lead + reasons; see overload_main)")
    ap.add_argument("--overload-seconds", type=float, default=20, help="seconds per overload level")
    ap.add_argument("--overload-connections", type=int, default=256, help="client connections of the overload runs")
    ap.add_argument("--overload-env", action="append", default=[], metavar="NAME=VALUE",
                    help="environment of the overload runs' server (repeatable), e.g. "
                    "CRMSCORE_MAX_LOOP_LAG_SECONDS=off")
    ap.add_argument("--overload-generators", type=int, default=1,
                    help="load-generator processes of the overload runs (each sends its share of the rate over its "
                    "share of the connections), so one Python event loop is not the bottleneck")
    args = ap.parse_args(argv)
    if args.overload:
        return overload_main(args)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crmscore-bench-"))
    if args.model_kind == "trained" and not args.registry:
        workdir = workdir / "trained"  # its own registry, never mixed with a forced model's
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    if args.registry:
        uri = args.registry
        if args.data:
            (workdir / "data").exists() or (workdir / "data").symlink_to(args.data.resolve())
    elif (workdir / "mlflow.db").exists():
        uri = f"sqlite:///{workdir / 'mlflow.db'}"
    else:
        what = f"{args.trees} trees, depth {args.depth}"
        if args.model_kind == "trained":
            what = "the default `crmscore train lead` champion"
        print(f"training a lead model ({what}) in {workdir} ...", flush=True)
        uri = make_registry(workdir, args.customers, args.trees, args.depth, args.model_kind)
    bodies = make_payloads(workdir, uri, args.batch)
    lua = workdir / "post.lua"
    lua.write_text(LUA)
    variants = args.variants.split(",")
    plan = [(t, v) for t in args.targets.split(",") for v in (variants if t == "crmscore" else ["base"])]
    servers: dict[tuple[str, str], tuple[Server, str]] = {}
    results: list[dict[str, Any]] = []
    try:
        # every server up at once, then the runs interleaved round by round: a busy neighbour on a shared
        # machine then slows all variants alike instead of whichever happened to run at that moment
        for target, variant in plan:
            port = free_port()
            print(f"== starting {target} ({variant}), {args.workers} workers, port {port}", flush=True)
            server = start_target(target, variant, port, args.workers, uri, workdir, args.records_flush_seconds)
            server.wait_ready()
            path = "/invocations" if target == "mlflow" else "/score_leads"
            servers[(target, variant)] = (server, f"http://127.0.0.1:{port}{path}")
        for rnd in range(args.rounds):
            for (target, variant), (server, url) in servers.items():
                for label, body, conns, n in _runs(target, args):
                    run_wrk(url, bodies[body], 2, 2, conns, lua)  # warm-up
                    cpu0 = server.cpu_seconds()
                    r = run_wrk(url, bodies[body], args.duration, 2, conns, lua)
                    r["server_cpu_ms_per_request"] = (server.cpu_seconds() - cpu0) * 1e3 / max(r["requests"], 1)
                    r.update(target=target, variant=variant, payload=label, leads_per_request=n, round=rnd,
                             leads_per_s=r["rps"] * n, workers=args.workers, connections=conns)
                    results.append(r)
                    print(f"   r{rnd} {target:<9} {variant:<12} {label:<28} {r['rps']:8.1f} req/s "
                          f"{r['leads_per_s']:9.0f} leads/s  p50 {r['p50_ms']:7.2f}  p99 {r['p99_ms']:8.2f} ms  "
                          f"CPU {r['server_cpu_ms_per_request']:7.2f} ms/req  err {r['socket_errors']}+{r['non2xx']}",
                          flush=True)
    finally:
        for server, _ in servers.values():
            server.stop()
    print(summarise(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(results, indent=1))
    if args.json_out:
        model = json.loads((workdir / "model.json").read_text()) if (workdir / "model.json").exists() else {}
        params = {
            "model_kind": args.model_kind if not args.registry else "registry",
            "model": model,
            "customers": args.customers,
            "workers": args.workers,
            "duration_s": args.duration,
            "rounds": args.rounds,
            "batch": args.batch,
            "connections": {"one_lead": 16, "batch": 4},
            "wrk_threads": 2,
            "records_flush_seconds": args.records_flush_seconds,
            "targets": args.targets.split(","),
            "variants": variants,
            "cores": os.cpu_count(),
            "load_avg_before": list(load_before),
            "load_avg_after": list(os.getloadavg()),
        }
        doc = {"benchmark": "serving", "params": params, "figures": figures(results, args.batch), "runs": results}
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(doc, indent=1))
    return 0


def figures(results: list[dict[str, Any]], batch: int = 1000) -> dict[str, float]:
    """Median figures of the ``base`` variant over the rounds, named for bench/run.py.

    ``{target}_1lead[_reasons]_{rps,p50_ms,p99_ms,cpu_ms}``, ``{target}_{batch}_{table,objects,records}[_reasons]_
    {leads_per_s,p99_ms,cpu_ms}``, ``reference_{batch}_leads_per_s`` (its table run), the ratios of crmscore (one
    lead with reasons) over mlflow serve (goals: rps ≥ 3, p99 ≤ 0.25), and ``errors``; plus the names bench/run.py
    derived from ``--out`` before this option existed (``crmscore_reasons_rps``, ``crmscore_table_leads_per_s``, ...).
    """
    import statistics

    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in results:
        if r.get("variant", "base") == "base":
            groups.setdefault((r["target"], r["payload"]), []).append(r)
    out: dict[str, float] = {}
    errors = 0
    for (target, payload), rs in groups.items():
        def med(name: str, rs: list[dict[str, Any]] = rs) -> float:
            return float(statistics.median(float(x[name]) for x in rs))

        errors += sum(int(x["socket_errors"]) + int(x["non2xx"]) for x in rs)
        reasons = "reasons" in payload
        if rs[0]["leads_per_request"] == 1:
            key, legacy = f"{target}_1lead" + ("_reasons" if reasons else ""), target + ("_reasons" if reasons else "")
            out[f"{key}_rps"] = out[f"{legacy}_rps"] = med("rps")
        else:
            form = next((f for f in ("table", "objects", "records") if f"({f})" in payload), "batch")
            key = f"{target}_{batch}_{form}" + ("_reasons" if reasons else "")
            legacy = f"{target}_{form}" + ("_reasons" if reasons else "")
            out[f"{key}_leads_per_s"] = out[f"{legacy}_leads_per_s"] = med("leads_per_s")
        out[f"{key}_p50_ms"] = out[f"{legacy}_p50_ms"] = med("p50_ms")
        out[f"{key}_p99_ms"] = out[f"{legacy}_p99_ms"] = med("p99_ms")
        out[f"{key}_cpu_ms"] = out[f"{legacy}_cpu_ms_per_request"] = med("server_cpu_ms_per_request")
    if f"reference_{batch}_table_leads_per_s" in out:
        out[f"reference_{batch}_leads_per_s"] = out[f"reference_{batch}_table_leads_per_s"]
    c, m = out.get("crmscore_1lead_reasons_rps"), out.get("mlflow_1lead_rps")
    if c and m:
        out["ratio_rps_crmscore_over_mlflow"] = c / m
        out["ratio_p99_crmscore_over_mlflow"] = out["crmscore_1lead_reasons_p99_ms"] / out["mlflow_1lead_p99_ms"]
    if out.get("crmscore_1lead_rps") and m:
        out["ratio_rps_crmscore_noreasons_over_mlflow"] = out["crmscore_1lead_rps"] / m
        out["ratio_p99_crmscore_noreasons_over_mlflow"] = out["crmscore_1lead_p99_ms"] / out["mlflow_1lead_p99_ms"]
    out["errors"] = float(errors)
    return out


def _runs(target: str, args: argparse.Namespace) -> list[tuple[str, str, int, int]]:
    """(label, body, connections, leads per request) of the runs of one target."""
    if target == "mlflow":
        runs = [("1 lead", "mlflow_one", 16, 1)]
    elif target == "reference":
        runs = [("1 lead", "one_noreasons", 16, 1)]
    else:
        runs = []
        if args.one_reasons in ("on", "both"):
            runs.append(("1 lead + reasons", "one", 16, 1))
        if args.one_reasons in ("off", "both"):
            runs.append(("1 lead", "one_noreasons", 16, 1))
    if not args.skip_batch:
        if target == "mlflow":
            runs.append((f"{args.batch} leads (records)", "mlflow_many", 4, args.batch))
        else:
            runs.append((f"{args.batch} leads (objects)", "many_noreasons", 4, args.batch))
            runs.append((f"{args.batch} leads (table)", "table_noreasons", 4, args.batch))
            if target == "crmscore" and args.batch_reasons:
                runs.append((f"{args.batch} leads (table) + reasons", "table", 4, args.batch))
    return runs


def summarise(results: list[dict[str, Any]]) -> str:
    """Markdown table of the median of each (target, variant, payload) over the rounds."""
    import statistics

    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for r in results:
        groups.setdefault((r["target"], r["variant"], r["payload"]), []).append(r)
    lines = ["", "| target | variant | payload | runs | req/s | leads/s | p50 ms | p99 ms | server CPU ms/req "
             "| errors |", "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"]
    for (target, variant, payload), rs in groups.items():
        def med(key: str, rs: list[dict[str, Any]] = rs) -> float:
            return statistics.median(x[key] for x in rs)

        errors = sum(x["socket_errors"] + x["non2xx"] for x in rs)
        lines.append(f"| {target} | {variant} | {payload} | {len(rs)} | {med('rps'):.1f} | {med('leads_per_s'):.0f} | "
                     f"{med('p50_ms'):.2f} | {med('p99_ms'):.2f} | {med('server_cpu_ms_per_request'):.2f} | {errors} |")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------------------------
# overload: open loop at multiples of the measured capacity
# --------------------------------------------------------------------------------------------------------------


async def _overload_loop(
    target: Any, rate: float, seconds: float, connections: int, start_at: float | None = None
) -> tuple[list[tuple[float, int | None, float]], float, float, list[float]]:
    """(latency from due time, status or None, due time to request written) of every request of a constant-rate
    run of ``seconds`` from wall time ``start_at`` (default: now); the seconds from the first due time to the last
    answer (what the accepted throughput is divided by), this generator's CPU seconds over the run, and its own
    event-loop lag (how late a 20 ms timer fired, every tick)."""
    import asyncio

    from bench.soak import TIMEOUT_S, _Pool

    pool = _Pool(target, connections)
    await pool.fill(min(connections, 64))
    loop = asyncio.get_running_loop()
    if start_at is not None:
        await asyncio.sleep(max(0.0, start_at - time.time()))
    out: list[tuple[float, int | None, float]] = []
    n = int(rate * seconds)
    cpu0 = time.process_time()
    t0 = loop.time() + 0.05

    async def one(due: float) -> None:
        sent: list[float] = []
        status = await pool.request_status(sent)
        now = loop.time()
        out.append((now - due, status, (sent[0] if sent else now) - due))

    lags: list[float] = []

    async def watch() -> None:  # the generator's own loop lag: an answer read late counts as latency too
        while True:
            due = loop.time() + 0.02
            await asyncio.sleep(0.02)
            lags.append(loop.time() - due)

    watcher = asyncio.create_task(watch())
    tasks: set[asyncio.Task[None]] = set()
    for i in range(n):
        due = t0 + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=TIMEOUT_S + 5)
    for task in list(tasks):
        task.cancel()
    watcher.cancel()
    pool.close()
    elapsed = loop.time() - t0
    out.extend((math.inf, None, math.inf) for _ in range(n - len(out)))  # unanswered: failed
    return out, elapsed, time.process_time() - cpu0, lags


def _generator(job: tuple[str, dict[str, str], bytes, float, float, int, float]) -> tuple[list, float, float, list]:
    """One load-generator process (``--overload-generators``): its share of the rate on its own event loop."""
    import asyncio

    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from bench.soak import _Target

    url, headers, body, rate, seconds, connections, start_at = job
    return asyncio.run(_overload_loop(_Target(url, headers, body), rate, seconds, connections, start_at))


def scrape_metrics(base_url: str) -> dict[tuple[str, ...], float]:
    """The service's ``/metrics`` (all workers): sample (name, label values sorted by label name) → value, for
    the histograms and counters :func:`server_figures` reads."""
    from prometheus_client.parser import text_string_to_metric_families

    wanted = ("crmscore_scoring_latency_seconds", "crmscore_loop_lag_at_admission_seconds",
              "crmscore_requests_shed_total")
    text = httpx.get(f"{base_url}/metrics", timeout=30).text
    out: dict[tuple[str, ...], float] = {}
    for fam in text_string_to_metric_families(text):
        if fam.name.removesuffix("_total") not in {w.removesuffix("_total") for w in wanted}:
            continue
        for smp in fam.samples:
            out[(smp.name, *(f"{k}={v}" for k, v in sorted(smp.labels.items())))] = smp.value
    return out


def histogram_quantile(buckets: list[tuple[float, float]], q: float) -> float:
    """Quantile ``q`` (0–1) of a histogram given as sorted (upper bound, cumulative count) pairs, interpolated
    linearly inside its bucket (like Prometheus' ``histogram_quantile``); the last finite bound when it falls in
    the ``+Inf`` bucket; NaN without observations."""
    total = buckets[-1][1] if buckets else 0.0
    if total <= 0:
        return math.nan
    rank = q * total
    lower, below = 0.0, 0.0
    for upper, cum in buckets:
        if cum >= rank:
            if math.isinf(upper):
                return lower
            inside = cum - below
            return lower + (upper - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = upper, cum
    return lower


def _delta_buckets(before: dict[tuple[str, ...], float], after: dict[tuple[str, ...], float], name: str,
                   labels: tuple[str, ...]) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of histogram ``name`` with ``labels`` (``k=v``, plus ``le``) between two
    scrapes, summed over every other label."""
    counts: dict[float, float] = {}
    for key, value in after.items():
        if key[0] != f"{name}_bucket" or not all(lb in key[1:] for lb in labels):
            continue
        le = next(float(x[3:]) for x in key[1:] if x.startswith("le="))
        counts[le] = counts.get(le, 0.0) + value - before.get(key, 0.0)
    return sorted(counts.items())


def server_figures(before: dict[tuple[str, ...], float], after: dict[tuple[str, ...], float],
                   endpoint: str) -> dict[str, Any]:
    """Server-side figures of one level from two scrapes of ``/metrics``: accepted and shed counts and p50/p99
    (middleware entry → response sent, ``crmscore_scoring_latency_seconds``), the event-loop lag at admission
    (p50/p99), and the shed requests by reason."""
    out: dict[str, Any] = {}
    ep = f"endpoint={endpoint}"
    for outcome in ("accepted", "shed"):
        b = _delta_buckets(before, after, "crmscore_scoring_latency_seconds", (ep, f"outcome={outcome}"))
        out[f"server_{outcome}"] = int(b[-1][1]) if b else 0
        for q in (50, 99):
            out[f"server_{outcome}_p{q}_ms"] = histogram_quantile(b, q / 100) * 1000
    lag = _delta_buckets(before, after, "crmscore_loop_lag_at_admission_seconds", (ep,))
    for q in (50, 99):
        out[f"server_admission_lag_p{q}_ms"] = histogram_quantile(lag, q / 100) * 1000
    reasons: dict[str, int] = {}
    for key, value in after.items():
        if key[0] == "crmscore_requests_shed_total" and ep in key[1:]:
            reason = next(x[7:] for x in key[1:] if x.startswith("reason="))
            reasons[reason] = int(value - before.get(key, 0.0))
    out["shed_by_reason"] = reasons
    return out


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds used so far by process ``pid`` and its descendants."""
    import psutil

    try:
        root = psutil.Process(pid)
        procs = [root, *root.children(recursive=True)]
    except psutil.Error:
        return 0.0
    total = 0.0
    for proc in procs:
        try:
            t = proc.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            continue
    return total


def run_overload(url: str, headers: dict[str, str], body: dict[str, Any], rate: float, seconds: float,
                 connections: int, server_pid: int, generators: int = 1) -> dict[str, Any]:
    """One overload level: figures of an open-loop run at ``rate`` requests/s, sent by ``generators`` processes
    (each its share of the rate and of the connections), with the server's own figures from ``/metrics``."""
    import asyncio
    import concurrent.futures
    import multiprocessing

    from bench.soak import _encode, _percentile, _Target, tree_rss_mb

    base = url.rsplit("/", 1)[0]
    endpoint = "/" + url.rsplit("/", 1)[1]
    rss0 = tree_rss_mb(server_pid)
    scrape0, cpu0 = scrape_metrics(base), tree_cpu_seconds(server_pid)
    if generators <= 1:
        samples, elapsed, gen_cpu, gen_lags = asyncio.run(
            _overload_loop(_Target(url, headers, _encode(body)), rate, seconds, connections))
    else:
        start_at = time.time() + 3.0  # every process connected and waiting by then
        conns = max(1, connections // generators)
        jobs = [(url, headers, _encode(body), rate / generators, seconds, conns, start_at + k / rate)
                for k in range(generators)]
        ctx = multiprocessing.get_context("spawn")
        with concurrent.futures.ProcessPoolExecutor(generators, mp_context=ctx) as pool:
            parts = list(pool.map(_generator, jobs))
        samples = [x for part in parts for x in part[0]]
        elapsed = max(part[1] for part in parts)
        gen_cpu = sum(part[2] for part in parts)
        gen_lags = [x for part in parts for x in part[3]]
    server_cpu = tree_cpu_seconds(server_pid) - cpu0
    scrape1 = scrape_metrics(base)
    rss1 = tree_rss_mb(server_pid)
    accepted = sorted(lat * 1000 for lat, st, _w in samples if st == 200)
    shed = sorted(lat * 1000 for lat, st, _w in samples if st in (429, 503))
    waits = sorted(w * 1000 for _lat, st, w in samples if st is not None)
    in_flight = sorted((lat - w) * 1000 for lat, st, w in samples if st == 200)  # written → answer read
    n = len(samples)
    return {
        "offered_rps": rate,
        "requests": n,
        "accepted_rps": len(accepted) / elapsed,
        "elapsed_s": elapsed,
        "shed_share": len(shed) / n if n else math.nan,
        "failed": n - len(accepted) - len(shed),
        "accepted_p50_ms": _percentile(accepted, 50),
        "accepted_p99_ms": _percentile(accepted, 99),
        "shed_p99_ms": _percentile(shed, 99),
        "client_send_wait_p50_ms": _percentile(waits, 50),
        "client_send_wait_p99_ms": _percentile(waits, 99),
        "client_loop_lag_p99_ms": _percentile(sorted(x * 1000 for x in gen_lags), 99),
        "client_accepted_in_flight_p99_ms": _percentile(in_flight, 99),
        "handled_rps": sum(st is not None for _lat, st, _w in samples) / elapsed,
        **server_figures(scrape0, scrape1, endpoint),
        "server_cpu_ms_per_request": server_cpu * 1000 / n if n else math.nan,
        "generator_cpu_ms_per_request": gen_cpu * 1000 / n if n else math.nan,
        "generators": generators,
        "rss_start_mb": rss0,
        "rss_end_mb": rss1,
        "load_avg_after": list(os.getloadavg()),
    }


def overload_main(args: argparse.Namespace) -> int:
    """``--overload``: train (or reuse) a model, serve it with the shipped limits, measure its capacity, then
    drive each multiple of it; print a table, write ``--json-out``."""
    if str(ROOT) not in sys.path:  # run as a script: make bench.soak importable
        sys.path.insert(0, str(ROOT))
    from bench.soak import lead_body, measure_peak, serve
    from bench.soak import make_registry as soak_registry

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crmscore-overload-"))
    workdir.mkdir(parents=True, exist_ok=True)
    load_before = os.getloadavg()
    uri, data = soak_registry(workdir, args.customers, args.trees, args.depth)
    body = lead_body(data)
    headers = {"Authorization": f"Bearer {API_KEY}"}
    multiples = [float(x) for x in args.overload.split(",")]
    levels = []
    server_env = dict(kv.split("=", 1) for kv in args.overload_env)
    with serve(uri, workdir, args.workers, server_env) as (url, proc):
        endpoint = f"{url}/score_leads"
        measure_peak(endpoint, headers, body, 3, 16)  # warm-up
        scrape0, cpu0, gen0 = scrape_metrics(url), tree_cpu_seconds(proc.pid), time.process_time()
        capacity = measure_peak(endpoint, headers, body, 10, 16)
        gen_cpu = time.process_time() - gen0
        cap = server_figures(scrape0, scrape_metrics(url), "/score_leads")
        served = max(1, cap["server_accepted"] + cap["server_shed"])
        cap["server_cpu_ms_per_request"] = (tree_cpu_seconds(proc.pid) - cpu0) * 1000 / served
        cap["generator_cpu_ms_per_request"] = gen_cpu * 1000 / served
        print(f"capacity {capacity:.1f} req/s (closed loop, 16 connections, 10 s; server: {cap['server_accepted']} "
              f"accepted, shed {cap['shed_by_reason']}, p99 {cap['server_accepted_p99_ms']:.1f} ms, CPU "
              f"{cap['server_cpu_ms_per_request']:.2f} ms/req (generator {cap['generator_cpu_ms_per_request']:.2f}), "
              f"load {os.getloadavg()[0]:.1f})", flush=True)
        for m in multiples:
            r = run_overload(endpoint, headers, body, m * capacity, args.overload_seconds,
                             args.overload_connections, proc.pid, args.overload_generators)
            r["multiple"] = m
            levels.append(r)
            print(f"  {m:g}× ({r['offered_rps']:.0f} req/s offered): accepted {r['accepted_rps']:.1f} req/s, "
                  f"shed {r['shed_share']:.1%} {r['shed_by_reason']}, failed {r['failed']}\n"
                  f"     client: accepted p50 {r['accepted_p50_ms']:.1f} / p99 {r['accepted_p99_ms']:.1f} ms, "
                  f"shed p99 {r['shed_p99_ms']:.1f} ms, send wait p99 {r['client_send_wait_p99_ms']:.1f} ms, "
                  f"loop lag p99 {r['client_loop_lag_p99_ms']:.1f} ms, accepted written → read p99 "
                  f"{r['client_accepted_in_flight_p99_ms']:.1f} ms, handled {r['handled_rps']:.1f} req/s\n"
                  f"     server: accepted p50 {r['server_accepted_p50_ms']:.1f} / p99 "
                  f"{r['server_accepted_p99_ms']:.1f} ms, shed p99 {r['server_shed_p99_ms']:.1f} ms, loop lag at "
                  f"admission p99 {r['server_admission_lag_p99_ms']:.1f} ms, CPU {r['server_cpu_ms_per_request']:.2f}"
                  f" ms/req (generator {r['generator_cpu_ms_per_request']:.2f}), RSS {r['rss_start_mb']:.0f} → "
                  f"{r['rss_end_mb']:.0f} MB, load {r['load_avg_after'][0]:.1f}", flush=True)
    if args.json_out:
        from serving.settings import ServingSettings

        s = ServingSettings()
        doc = {
            "benchmark": "overload",
            "params": {"workers": args.workers, "trees": args.trees, "depth": args.depth,
                       "customers": args.customers, "seconds_per_level": args.overload_seconds,
                       "connections": args.overload_connections, "generators": args.overload_generators,
                       "payload": "1 lead + reasons", "server_env": server_env,
                       "limits_per_worker": {"max_concurrency": s.max_concurrency, "max_queue": s.max_queue,
                                             "queue_timeout_seconds": s.queue_timeout_seconds,
                                             "max_loop_lag_seconds": s.max_loop_lag_seconds},
                       "cores": os.cpu_count(), "load_avg_before": list(load_before),
                       "load_avg_after": list(os.getloadavg())},
            "figures": {"capacity_rps": capacity, "capacity_server_p99_ms": cap["server_accepted_p99_ms"],
                        "capacity_server_cpu_ms_per_request": cap["server_cpu_ms_per_request"],
                        **{f"{lv['multiple']:g}x_{k}": v for lv in levels for k, v in lv.items()
                           if isinstance(v, int | float) and k not in ("multiple", "generators")}},
            "capacity_run": cap,
            "levels": levels,
        }
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(doc, indent=1, default=str), encoding="utf-8")
    return 0 if all(lv["failed"] == 0 for lv in levels) else 1


if __name__ == "__main__":
    sys.exit(main())
