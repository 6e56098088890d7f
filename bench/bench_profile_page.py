"""Profile page benchmark: start-up indexing and one profile's load time on a large demo data dir.

    .venv/bin/python bench/bench_profile_page.py                          # 100,000 demo customers
    .venv/bin/python bench/bench_profile_page.py --data DIR --registry sqlite:////path/mlflow.db
    .venv/bin/python bench/bench_profile_page.py --customers 20000 --profiles 100 --browser

Generates the demo data (``features.synth``, 365 days, unless ``--data``), trains small lead, churn and segment
champions on a 2,000-customer demo set (unless ``--registry``: the model does not depend on the data size),
starts ``crmscore serve --data DIR`` and measures, one request at a time: ``POST /ui/api/profile`` for
``--profiles`` random customers (round trip and the server's own time), ``POST /ui/api/search`` by id and by a
part of a name, and with ``--browser`` the page itself (search typed → profile drawn, headless Chromium).
Prints a Markdown table (figures are in docs/profile-page.md); ``--json-out PATH`` also writes
``{"benchmark": "profile_page", "params": {...}, "figures": {...}}``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
API_KEY = "bench-key"


def make_data(out: Path, n_customers: int, seed: int) -> Path:
    """Demo CRM tables (``features.synth``) in ``out``."""
    from features.synth import generate_crm_data, write_crm_data

    t0 = time.perf_counter()
    write_crm_data(generate_crm_data(n_customers, 365, seed), out)
    print(f"generated {n_customers:,} demo customers in {time.perf_counter() - t0:.0f} s → {out}", flush=True)
    return out


def make_registry(workdir: Path) -> str:
    """Small lead, churn and segment champions trained on 2,000 demo customers; returns the registry URI."""
    from features.config import LabelConfig
    from training.config import TrainConfig, XGBSearch
    from training.segment import fit_segments
    from training.train import train_crm

    data = make_data(workdir / "train-data", 2000, 11)
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    os.environ["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_REGISTRY_URI"] = uri
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        search = XGBSearch(n_trials=1, n_estimators=[60], max_depth=[4])
        for task in ("lead", "churn"):
            train_crm(
                data,
                TrainConfig(
                    task=task,
                    xgb_search=search,
                    candidates=["xgboost"],
                    labels=LabelConfig(n_cutoffs=3, horizon_days=60),
                ),
            )
        fit_segments(data)
    finally:
        os.chdir(cwd)
    return uri


@contextlib.contextmanager
def serve(data: Path, uri: str, workdir: Path) -> Any:
    """``crmscore serve --data DIR`` on a free port (bench/soak.py's server, records off); yields (url, seconds
    until ready)."""
    from soak import serve as serve_crmscore  # bench/ is on sys.path when this script runs

    env = {"CRMSCORE_API_KEYS": API_KEY, "CRMSCORE_RECORDS": "0"}
    t0 = time.perf_counter()
    with serve_crmscore(uri, workdir, extra_env=env, extra_args=("--data", str(data))) as (url, _proc):
        yield url, time.perf_counter() - t0


def _stats(ms: list[float]) -> str:
    q = statistics.quantiles(ms, n=20) if len(ms) >= 2 else ms * 19
    return f"{statistics.median(ms):.0f} | {q[18]:.0f} | {max(ms):.0f}"


def measure_api(url: str, ids: list[str], names: list[str]) -> list[tuple[str, list[float]]]:
    """Round-trip milliseconds of profile and search calls (one at a time), and the server's own profile time."""
    rows: list[tuple[str, list[float]]] = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {API_KEY}"}, timeout=60) as c:
        c.post("/ui/api/profile", json={"customer_id": ids[0]}).raise_for_status()  # warm-up
        trip, server = [], []
        for cid in ids:
            t0 = time.perf_counter()
            r = c.post("/ui/api/profile", json={"customer_id": cid})
            trip.append((time.perf_counter() - t0) * 1000)
            r.raise_for_status()
            server.append(r.json()["took_ms"])
        rows += [("profile (round trip)", trip), ("profile (server: index + scoring + segment)", server)]
        for label, queries in (("search by id", ids[:50]), ("search by part of a name", names)):
            ms = []
            for q in queries:
                t0 = time.perf_counter()
                c.post("/ui/api/search", json={"q": q}).raise_for_status()
                ms.append((time.perf_counter() - t0) * 1000)
            rows.append((label, ms))
    return rows


def measure_browser(url: str, ids: list[str]) -> tuple[list[float], list[float]]:
    """Milliseconds from submitting an id in the page's search box to the profile drawn (headless Chromium, as
    Playwright sees it), and the page's own measure of the profile request plus drawing it."""
    from playwright.sync_api import sync_playwright

    args = [
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ]
    ms, own = [], []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = b.new_page(viewport={"width": 1280, "height": 900})
        page.goto(f"{url}/ui")
        page.fill("#key", API_KEY)
        page.click("#keyform button")
        page.wait_for_selector("#searchbox:not([hidden])")
        for cid in ids:
            page.fill("#q", cid)
            t0 = time.perf_counter()
            page.click("#searchform button")
            page.wait_for_selector(f"#profile[data-customer-id='{cid}']:not([hidden]) [data-testid=lead-score]")
            ms.append((time.perf_counter() - t0) * 1000)
            own.append(page.evaluate("performance.getEntriesByName('profile').at(-1).duration"))
        b.close()
    return ms, own


def main() -> None:
    """Parse options, prepare data and models, serve, measure, print."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=100_000, help="demo customers to generate (without --data)")
    ap.add_argument("--data", type=Path, help="an existing data dir to serve")
    ap.add_argument("--registry", help="an MLflow registry URI with the champions (default: train small ones)")
    ap.add_argument("--profiles", type=int, default=200, help="random customers to load")
    ap.add_argument("--browser", action="store_true", help="also time the page in headless Chromium")
    ap.add_argument("--seed", type=int, default=5)
    ap.add_argument("--json-out", type=Path, help="write {benchmark, params, figures} JSON here")
    a = ap.parse_args()
    sys.path.insert(0, str(ROOT))
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        work = Path(tmp)
        data = a.data or make_data(work / "data", a.customers, a.seed)
        uri = a.registry or make_registry(work)
        with serve(data, uri, work) as (url, ready_s):
            status = httpx.get(f"{url}/ui/api/status", headers={"Authorization": f"Bearer {API_KEY}"}).json()
            from features.io import load_tables

            cust = load_tables(data)["customers"]
            rng = random.Random(a.seed)
            ids = rng.sample(cust["customer_id"].astype(str).tolist(), min(a.profiles, len(cust)))
            names = [n[: max(1, len(n) // 2)] for n in rng.sample(cust["name"].dropna().tolist(), 50)]
            rows = measure_api(url, ids, names)
            if a.browser:
                seen, own = measure_browser(url, ids[:30])
                rows += [
                    ("page: search typed → profile drawn (Chromium, via Playwright)", seen),
                    ("page: profile request + drawing (the page's performance.measure)", own),
                ]
    ev = ", ".join(f"{k} {v:,}" for k, v in status["events"].items())
    print(
        f"\n{status['customers']:,} customers ({ev}); index built in {status['load_seconds']} s; "
        f"server ready {ready_s:.0f} s after `crmscore serve` started\n"
    )
    print("| call | n | p50 ms | p95 ms | max ms |\n|---|---|---|---|---|")
    for label, ms in rows:
        print(f"| {label} | {len(ms)} | {_stats(ms)} |")
    if a.json_out:
        figures: dict[str, float] = {
            "customers": status["customers"],
            "index_load_s": status["load_seconds"],
            "ready_s": round(ready_s, 1),
        }
        keys = ["profile", "profile_server", "search_id", "search_name", "page", "page_own"]
        for key, (_label, ms) in zip(keys, rows, strict=False):
            q = statistics.quantiles(ms, n=20) if len(ms) >= 2 else ms * 19
            figures.update({f"{key}_p50_ms": statistics.median(ms), f"{key}_p95_ms": q[18], f"{key}_max_ms": max(ms)})
        params = {
            "customers": a.customers,
            "data": str(a.data) if a.data else None,
            "profiles": a.profiles,
            "browser": a.browser,
            "seed": a.seed,
        }
        a.json_out.parent.mkdir(parents=True, exist_ok=True)
        a.json_out.write_text(json.dumps({"benchmark": "profile_page", "params": params, "figures": figures}))


if __name__ == "__main__":
    main()
