"""Benchmark: feature building at scale and the one-lead online path.

    .venv/bin/python bench/bench_features.py --customers 1000000 [--out bench/results]

Generates random contract tables (1M customers, 20M interactions, 2M orders, 5M touches by default,
scaled with --customers), writes them as Parquet, then in a fresh subprocess times
`load_tables` + `build_features` and records its peak RSS; then times `transform_one` for one lead
with 200 events. Prints a JSON line; goals: ≤ 120 s and ≤ 8 GB for the batch, ≤ 2 ms per lead.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from features.contract import CHANNELS, EVENT_TYPES, TOUCH_CHANNELS  # noqa: E402

END = pd.Timestamp("2025-06-30")


def generate(n: int, out: Path, seed: int = 0) -> dict[str, int]:
    """Write random but valid contract tables for ``n`` customers (20 interactions, 2 orders, 5 touches each)."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    ids = np.char.add("C", np.arange(n).astype("U8"))
    year = 365 * 86400

    def ts(k: int) -> np.ndarray:
        return (END - pd.to_timedelta(rng.integers(0, year, k), unit="s")).to_numpy()

    pd.DataFrame(
        {
            "customer_id": ids,
            "created_at": (END - pd.to_timedelta(rng.integers(year, 2 * year, n), unit="s")).to_numpy(),
            "source_channel": rng.choice(["web", "app", "wechat", "referral"], n),
            "province": rng.choice(["广东省", "浙江省", "北京市", "上海市", "四川省"], n),
            "industry": rng.choice(["retail", "finance", "education", "manufacturing"], n),
            "company_size": rng.choice(["1-10", "11-50", "51-200", "201-1000"], n),
            "job_title": rng.choice(["manager", "engineer", "owner", "buyer"], n),
            "gender": rng.choice(["M", "F", "U"], n),
            "age": rng.integers(18, 70, n),
            "member_level": rng.choice(["none", "silver", "gold"], n),
            "points_balance": rng.gamma(2, 100, n),
            "marketing_consent": rng.random(n) < 0.7,
        }
    ).to_parquet(out / "customers.parquet", index=False)
    k = 20 * n
    pd.DataFrame(
        {
            "customer_id": ids[rng.integers(0, n, k)],
            "ts": ts(k),
            "channel": rng.choice(list(CHANNELS), k),
            "event_type": rng.choice(list(EVENT_TYPES), k),
        }
    ).to_parquet(out / "interactions.parquet", index=False)
    m = 2 * n
    pd.DataFrame(
        {
            "order_id": np.char.add("O", np.arange(m).astype("U9")),
            "customer_id": ids[rng.integers(0, n, m)],
            "ts": ts(m),
            "amount": rng.lognormal(4, 1, m),
            "status": rng.choice(["paid", "paid", "paid", "refunded", "cancelled"], m),
            "items": rng.integers(1, 5, m),
            "category": rng.choice(["a", "b", "c"], m),
        }
    ).to_parquet(out / "orders.parquet", index=False)
    q = 5 * n
    sent = ts(q)
    opened = rng.random(q) < 0.4
    clicked = opened & (rng.random(q) < 0.3)
    pd.DataFrame(
        {
            "touch_id": np.char.add("T", np.arange(q).astype("U9")),
            "customer_id": ids[rng.integers(0, n, q)],
            "campaign_id": rng.choice(["c1", "c2", "c3"], q),
            "channel": rng.choice(list(TOUCH_CHANNELS), q),
            "sent_at": sent,
            "opened_at": pd.Series(sent + np.timedelta64(3600, "s")).where(opened),
            "clicked_at": pd.Series(sent + np.timedelta64(7200, "s")).where(clicked),
            "coupon_claimed": clicked & (rng.random(q) < 0.5),
            "responded": clicked & (rng.random(q) < 0.5),
        }
    ).to_parquet(out / "marketing_touches.parquet", index=False)
    return {"customers": n, "interactions": k, "orders": m, "marketing_touches": q}


_CHILD = """
import sys, time, json
sys.path.insert(0, {root!r})
t0 = time.perf_counter()
from features.io import load_tables
from features.build import build_features
tables = load_tables({data!r})
t1 = time.perf_counter()
f = build_features(tables, "2025-06-30")
t2 = time.perf_counter()
print(json.dumps({{"load_s": t1 - t0, "build_s": t2 - t1, "rows": len(f), "columns": f.shape[1]}}))
"""


def bench_batch(data: Path) -> dict:
    """Time load + build in a fresh process and read its peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(root=str(ROOT), data=str(data))],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    wall = time.perf_counter() - t
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    res = json.loads(out.stdout.strip().splitlines()[-1])
    res.update({"wall_s": wall, "peak_rss_gb": max(peak_kb, before) / 1024**2})
    return res


def bench_online(repeats: int = 2000) -> dict:
    """Milliseconds per lead for the online path with 200 events."""
    from features.build import CRMFeatureBuilder

    rng = np.random.default_rng(1)
    builder = CRMFeatureBuilder().fit()

    def iso(sec: int) -> str:
        return (END - pd.Timedelta(seconds=int(sec))).isoformat()

    events = {
        "interactions": [
            {"ts": iso(s), "channel": str(rng.choice(CHANNELS)), "event_type": str(rng.choice(EVENT_TYPES))}
            for s in rng.integers(0, 90 * 86400, 150)
        ],
        "orders": [{"ts": iso(i * 7 * 86400), "amount": 100.0, "status": "paid"} for i in range(20)],
        "marketing_touches": [
            {"sent_at": iso(i * 86400), "channel": "sms", "opened_at": iso(i * 86400 - 60)} for i in range(30)
        ],
    }
    profile = {"customer_id": "x", "created_at": "2024-01-01", "source_channel": "web", "age": 30}
    for _ in range(20):
        builder.transform_one(profile, events, END)
    t = time.perf_counter()
    for _ in range(repeats):
        builder.transform_one(profile, events, END)
    return {"online_ms_per_lead_200_events": (time.perf_counter() - t) / repeats * 1000}


def main() -> None:
    """Run the feature benchmarks and print one JSON line."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=None, help="reuse generated tables here")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "data"
        t = time.perf_counter()
        sizes = generate(args.customers, data) if not (data / "customers.parquet").exists() else {}
        gen_s = time.perf_counter() - t
        result = {"benchmark": "features", "sizes": sizes, "generate_s": gen_s, "cores": os.cpu_count()}
        result.update(bench_batch(data))
        result.update(bench_online())
        result["load_avg_1m"] = os.getloadavg()[0]
        print(json.dumps(result))


if __name__ == "__main__":
    main()
