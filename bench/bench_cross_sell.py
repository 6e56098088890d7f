"""Cross-sell benchmark (issue 20): rules and model on Online Retail, and ``POST /recommend`` beside ``/score_leads``.

    .venv/bin/python bench/bench_cross_sell.py                        # Online Retail (../shared/data) + serving
    .venv/bin/python bench/bench_cross_sell.py --quick                # demo data, short wrk runs (a smoke test)
    .venv/bin/python bench/bench_cross_sell.py --data data/online_retail --skip-serving --json-out x.json

**Training** (goal: rules and model on the 540k lines ≤ 60 s): the Online Retail file is ingested with
``configs/mapping.online_retail.yaml`` into a temporary data dir (not timed; or ``--data DIR``, an ingested dir),
then timed: loading and joining the lines (``load_lines``), the whole out-of-time evaluation
(``evaluate_split``: validation grid, refit at T, baselines, rules) and the rules alone (``association_rules``
on the lines up to T). ``--quick`` uses the demo generator's order lines instead.

**Serving** (goal: ``/recommend``, one customer per request, ≥ 1,000 req/s with p99 ≤ 20 ms): a lead model on a
demo data dir (``features.synth``, ``--customers``) and a cross-sell model trained on Online Retail (``--quick``:
on the demo data's order lines) in a temporary registry; ``crmscore serve --data DIR`` (the cross-sell data) on
a free loopback port (pinned, one worker); `wrk` at ``-t2 -c16`` for
``--duration`` seconds: ``/recommend`` with a customer id drawn per request from 500 customers with purchases,
then ``/score_leads`` with one lead (precomputed features, reasons) in the same run (each after a 3 s warm-up).
Per endpoint: req/s, p50, p99, errors and the server's CPU ms per request (user + system of all its processes
over the run: the fairer figure on a shared machine), printed side by side at the end. Needs `wrk`.

``--json-out`` writes ``{"benchmark": "cross_sell", "params": {...}, "figures": {...}}`` (what bench/run.py reads).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

RETAIL = "online_retail/online_retail_2010-2011.parquet"

LUA_RECOMMEND = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer API_KEY"
local ids = {IDS}
local n = #ids
local i = 0
request = function()
  i = i % n + 1
  return wrk.format(nil, "/recommend", nil, '{"customer_id": "' .. ids[i] .. '", "k": 10}')
end
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format('BENCH {"requests": %d, "seconds": %f, "socket_errors": %d, "non2xx": %d, ' ..
    '"p50_ms": %f, "p90_ms": %f, "p99_ms": %f, "max_ms": %f}\\n',
    summary.requests, summary.duration / 1e6, e.connect + e.read + e.write + e.timeout, e.status,
    latency:percentile(50) / 1000, latency:percentile(90) / 1000, latency:percentile(99) / 1000,
    latency.max / 1000))
end
"""


def _shared_data() -> Path:
    return Path(os.environ.get("CRMSCORE_SHARED_DATA", ROOT.parent / "shared" / "data"))


def training_figures(data: Path) -> dict[str, float]:
    """Timed load, evaluation (rules included) and rules alone on the data dir ``data``."""
    import pandas as pd

    from training.cross_sell import (
        CrossSellConfig,
        Vocabulary,
        association_rules,
        default_as_of,
        evaluate_split,
        load_lines,
    )

    cfg = CrossSellConfig()
    c0, t0 = time.process_time(), time.perf_counter()
    lines = load_lines(data, cfg.exclude_skus)
    t1 = time.perf_counter()
    ev, model = evaluate_split(lines, cfg)
    c2, t2 = time.process_time(), time.perf_counter()
    t = default_as_of(lines, cfg.horizon_days) if cfg.as_of is None else pd.Timestamp(cfg.as_of)
    train = lines[lines["ts"] <= t]
    vocab = Vocabulary.of(train, cfg.min_item_buyers)
    t3 = time.perf_counter()
    rules = association_rules(train, vocab, cfg.rules)
    t4 = time.perf_counter()
    m = ev.metrics
    return {
        "lines": float(len(lines)),
        "load_seconds": t1 - t0,
        "evaluate_seconds": t2 - t1,
        "rules_seconds": t4 - t3,
        "train_seconds": t2 - t0,  # load + grid + refit + baselines + rules: the goal's "rules and model"
        "train_cpu_seconds": c2 - c0,  # the same in CPU time of this process (a shared machine's wall time varies)
        "rules": float(len(rules)),
        "grid_size": float(len(ev.params["validation_grid"])),  # type: ignore[arg-type]
        "recall_at_10_model": m["item_item"]["recall_at_10_all"],
        "recall_at_10_personal": m["personal_top_frequency"]["recall_at_10_all"],
        "recall_at_10_popularity": m["popularity"]["recall_at_10_all"],
        "recall_at_10_new_model_explore": m["item_item_explore"]["recall_at_10_new"],
        "recall_at_10_new_popularity": m["popularity"]["recall_at_10_new"],
        "n_items": float(len(model.vocab.skus)),
    }


def retail_dir(workdir: Path) -> Path:
    """Online Retail ingested with its mapping (orders and order lines) into ``workdir``."""
    from features.ingest import ingest

    src = _shared_data() / RETAIL
    if not src.is_file():
        raise SystemExit(f"{src} is absent: give --data DIR (an ingested Online Retail dir) or --quick")
    out = workdir / "online_retail"
    ingest(str(src), out, mapping=ROOT / "configs" / "mapping.online_retail.yaml")
    return out


def demo_registry(workdir: Path, customers: int, xs_data: Path | None = None) -> tuple[str, Path]:
    """Demo data (with order lines) and a lead model in a SQLite registry, plus a cross-sell model trained on
    ``xs_data`` (default: the demo data); returns the registry URI and the data dir the cross-sell model serves."""
    from bench_serving import make_registry

    from training.cross_sell import CrossSellConfig
    from training.cross_sell_job import train_cross_sell

    uri = make_registry(workdir, customers, 200, 6)
    data = xs_data or workdir / "data"
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        train_cross_sell(data, CrossSellConfig())
    finally:
        os.chdir(cwd)
    return uri, data


def serving_figures(workdir: Path, customers: int, duration: int, xs_data: Path | None = None) -> dict[str, float]:
    """wrk on /recommend (one customer per request) and /score_leads (one lead) against one server; the
    cross-sell model and the purchase histories come from ``xs_data`` (Online Retail) when given."""
    from bench_serving import API_KEY, LUA, free_port, make_payloads, run_wrk, start_target

    from training.cross_sell import CrossSellConfig, load_lines

    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not installed (apt-get install -y wrk); or run with --skip-serving")
    uri, data = demo_registry(workdir, customers, xs_data)
    bodies = make_payloads(workdir, uri, n=10)
    # the service's own reading of the lines (non-product codes left out): a customer who only paid postage is
    # not in its data (404)
    ids = list(dict.fromkeys(load_lines(data, CrossSellConfig().exclude_skus)["customer_id"].astype(str)))[:500]
    lua_rec = workdir / "recommend.lua"
    lua_rec.write_text(
        LUA_RECOMMEND.replace("API_KEY", API_KEY).replace("{IDS}", "{" + ", ".join(f'"{i}"' for i in ids) + "}")
    )
    lua_one = workdir / "score.lua"
    lua_one.write_text(LUA)
    port = free_port()
    os.environ["CRMSCORE_DATA_DIR"] = str(data)
    server = start_target("crmscore", "base", port, 1, uri, workdir)
    try:
        server.wait_ready()
        url = f"http://127.0.0.1:{port}"
        import httpx

        check = httpx.post(f"{url}/recommend", json={"customer_id": ids[0]},
                           headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60)
        if check.status_code != 200:
            raise RuntimeError(f"/recommend answered {check.status_code}: {check.text[:300]}")
        run_wrk(f"{url}/recommend", bodies["one"], 3, 2, 16, lua_rec)  # warm-up
        run_wrk(f"{url}/score_leads", bodies["one"], 3, 2, 16, lua_one)
        runs = {name: _timed_wrk(server, f"{url}{path}", bodies["one"], duration, lua,
                                 probe=ids if name == "recommend" else None)
                for name, path, lua in (("recommend", "/recommend", lua_rec), ("score_leads", "/score_leads", lua_one))}
    finally:
        server.stop()
    out: dict[str, float] = {}
    for name, r in runs.items():
        out.update({
            f"{name}_rps": r["rps"],
            f"{name}_p50_ms": r["p50_ms"],
            f"{name}_p99_ms": r["p99_ms"],
            f"{name}_cpu_ms_per_request": r["server_cpu_ms_per_request"],
            f"{name}_errors": float(r["socket_errors"] + r["non2xx"]),
        })
        if "probe" in r:
            out.update({f"{name}_probe_{k}": v for k, v in r["probe"].items()})
    return out


def _timed_wrk(server: Any, url: str, body: Path, duration: int, lua: Path,
               probe: list[str] | None = None) -> dict[str, Any]:
    """One wrk run at ``-t2 -c16`` with the server's CPU time per request (all its processes, user + system);
    with ``probe`` (customer ids), also one probe connection beside wrk (:func:`_probe`)."""
    import threading

    from bench_serving import run_wrk

    stop = threading.Event()
    probed: dict[str, float] = {}
    thread = None
    if probe:
        thread = threading.Thread(target=_probe, args=(url, probe, stop, probed), daemon=True)
        thread.start()
    cpu0 = server.cpu_seconds()
    try:
        r = run_wrk(url, body, duration, 2, 16, lua)
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=30)
    r["server_cpu_ms_per_request"] = (server.cpu_seconds() - cpu0) * 1e3 / max(r["requests"], 1)
    if probed:
        r["probe"] = probed
    return r


def _probe(url: str, ids: list[str], stop: Any, out: dict[str, float]) -> None:
    """One keep-alive connection asking ``/recommend`` in a closed loop while wrk runs: each request's own time
    from sending to the whole answer (p50, p99, max ms, requests).

    wrk's percentiles are not that: after a run wrk adds, for every request slower than a connection's mean
    interval, synthetic samples as if requests had kept arriving during the stall (its correction for
    coordinated omission, ``stats_correct``), so one 300 ms pause of the worker counts as ~300 samples, not 16.
    The probe shows what each request met; wrk's figure is what an open-loop caller at that rate would meet.
    """
    import http.client
    from urllib.parse import urlsplit

    from bench_serving import API_KEY
    from soak import _percentile

    parts = urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {API_KEY}"}
    lat: list[float] = []
    i = 0
    try:
        while not stop.is_set():
            body = json.dumps({"customer_id": ids[i % len(ids)], "k": 10})
            i += 1
            t0 = time.perf_counter()
            conn.request("POST", parts.path, body=body, headers=headers)
            resp = conn.getresponse()
            resp.read()
            if resp.status == 200:
                lat.append(time.perf_counter() - t0)
    except OSError:  # the server stopped first: the samples so far stand
        pass
    finally:
        conn.close()
    if lat:
        a = sorted(lat)
        out.update({"p50_ms": _percentile(a, 50) * 1e3, "p99_ms": _percentile(a, 99) * 1e3, "max_ms": a[-1] * 1e3,
                    "requests": float(len(a))})


def serving_table(figures: dict[str, float]) -> str:
    """The two endpoints side by side (Markdown): req/s, p50, p99, server CPU ms per request, errors."""
    rows = ["| endpoint | req/s | p50 ms | p99 ms | server CPU ms/request | errors |", "|---|---|---|---|---|---|"]
    for name in ("recommend", "score_leads"):
        f = {k[len(name) + 1:]: v for k, v in figures.items() if k.startswith(name + "_")}
        rows.append(f"| /{name} | {f['rps']:,.0f} | {f['p50_ms']:.1f} | {f['p99_ms']:.1f} | "
                    f"{f['cpu_ms_per_request']:.2f} | {f['errors']:.0f} |")
    if "recommend_probe_p99_ms" in figures:
        rows.append(f"\nprobe connection beside wrk on /recommend: {figures['recommend_probe_requests']:,.0f} "
                    f"requests, p50 {figures['recommend_probe_p50_ms']:.1f} ms, p99 "
                    f"{figures['recommend_probe_p99_ms']:.1f} ms, max {figures['recommend_probe_max_ms']:.1f} ms")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> int:
    """Run the training and serving parts; print the figures; write ``--json-out``."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, help="an ingested Online Retail data dir (default: ingest ../shared/data)")
    ap.add_argument("--quick", action="store_true", help="demo data instead of Online Retail, 5 s wrk runs")
    ap.add_argument("--customers", type=int, default=None, help="demo customers of the serving part (20,000)")
    ap.add_argument("--duration", type=int, default=None, help="seconds per wrk run (20)")
    ap.add_argument("--skip-training", action="store_true")
    ap.add_argument("--skip-serving", action="store_true")
    ap.add_argument("--json-out", type=Path)
    args = ap.parse_args(argv)
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
    customers = args.customers or (3000 if args.quick else 20_000)
    duration = args.duration or (5 if args.quick else 20)
    figures: dict[str, float] = {}
    params: dict[str, Any] = {"quick": args.quick, "customers": customers, "duration": duration}
    with tempfile.TemporaryDirectory(prefix="bench_cross_sell_") as tmp:
        work = Path(tmp)
        if not args.skip_training:
            if args.data is not None:
                data = args.data
            elif args.quick:
                from features.synth import generate_crm_data, write_crm_data

                data = work / "demo_train"
                write_crm_data(generate_crm_data(customers, 365, 5), data)
            else:
                data = retail_dir(work)
            params["training_data"] = str(data) if args.data else ("demo" if args.quick else "online_retail")
            figures.update(training_figures(data))
            print(json.dumps({k: round(v, 4) for k, v in figures.items()}), flush=True)
        if not args.skip_serving:
            serve_dir = work / "serve"
            serve_dir.mkdir()
            # full size: /recommend serves the Online Retail model and histories; --quick: the demo data's
            xs_data = args.data
            if xs_data is None and not args.quick:
                xs_data = work / "online_retail" if (work / "online_retail").is_dir() else retail_dir(work)
            params["serving_data"] = "demo" if xs_data is None else "online_retail"
            figures.update(serving_figures(serve_dir, customers, duration, xs_data))
    print(json.dumps({k: round(v, 4) for k, v in figures.items()}, indent=1))
    if "recommend_rps" in figures:
        print(serving_table(figures))
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        out = {"benchmark": "cross_sell", "params": params, "figures": figures}
        args.json_out.write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
