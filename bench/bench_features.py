"""Benchmark: feature building at scale and the one-lead online path.

    .venv/bin/python bench/bench_features.py --customers 1000000 [--data DIR] [--json-out PATH]

Generates random contract tables (1M customers, 20M interactions, 2M orders, 5M touches by default,
scaled with --customers), writes them as Parquet, then in a fresh subprocess times
`load_tables` + `build_features` and records its peak RSS, overall and per stage (`StageMemory`);
then times `transform_one` for one lead with 200 events. Prints one JSON object
``{"benchmark": "features", "params": {...}, "figures": {...}}`` (also to ``--json-out``);
goals: ≤ 120 s and ≤ 8 GB for the batch, ≤ 2 ms per lead.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

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


class StageMemory:
    """Exact peak RSS per stage: the kernel's high-water mark (VmHWM), reset at every stage boundary.

    Writing ``5`` to ``/proc/self/clear_refs`` resets VmHWM to the current RSS (Linux), so the peak
    read at the next boundary belongs to the stages open in between; nested stages share it.
    """

    def __init__(self) -> None:
        self._stack: list[str] = []
        self._peak: dict[str, float] = {}
        self.max_gb = 0.0  # the whole process's peak (the resets hide it from getrusage)

    @staticmethod
    def hwm_gb() -> float:
        """Peak resident set size since the last reset, in GB."""
        return _status_kb("VmHWM") / 1024**2

    @staticmethod
    def rss_gb() -> float:
        """Current resident set size in GB."""
        return _status_kb("VmRSS") / 1024**2

    def _boundary(self) -> None:
        hwm = _status_kb("VmHWM") / 1024**2
        self.max_gb = max(self.max_gb, hwm)
        for i in range(1, len(self._stack) + 1):
            key = "/".join(self._stack[:i])
            self._peak[key] = round(max(self._peak.get(key, 0.0), hwm), 3)
        try:
            Path("/proc/self/clear_refs").write_text("5")
        except OSError:  # not Linux or not allowed: peaks then cover the whole run so far
            pass

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[None]:
        """Attribute the peak RSS reached inside the block to ``name`` (and to the enclosing stages)."""
        self._boundary()
        self._stack.append(name)
        try:
            yield
        finally:
            self._boundary()
            self._stack.pop()

    def wrap(self, owner: Any, attr: str, label: Callable[..., str] | None = None) -> None:
        """Run ``owner.attr`` inside a stage named after it (or ``label(*args)``), if it exists."""
        fn = getattr(owner, attr, None)
        if fn is None:
            return

        @functools.wraps(fn)
        def inner(*args: Any, **kw: Any) -> Any:
            with self.stage(label(*args, **kw) if label else attr.lstrip("_")):
                return fn(*args, **kw)

        setattr(owner, attr, staticmethod(inner) if isinstance(owner, type) and _is_static(owner, attr) else inner)

    def instrument(self) -> None:
        """Wrap the loader's and the builder's steps (whichever of them exist in this version)."""
        import features.build as b
        import features.io as io

        self.wrap(io, "_read_parquet", lambda path, table, *a, **k: f"read {table}")
        self.wrap(io, "coerce_types", lambda df, table, *a, **k: f"coerce {table}")
        for name in ("_customer_arrays", "_order_arrays", "_interaction_arrays", "_touch_arrays"):
            self.wrap(b, name)
        for name in ("_compute", "_orders", "_interactions", "_touches", "_assemble"):
            self.wrap(b.CRMFeatureBuilder, name)

    def peaks(self) -> dict[str, float]:
        """Peak RSS in GB per stage path, e.g. ``build/compute/interactions``."""
        return dict(self._peak)


def _is_static(owner: type, attr: str) -> bool:
    return isinstance(owner.__dict__.get(attr), staticmethod)


def _status_kb(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


_CHILD = """
import sys, time, json
sys.path.insert(0, {root!r})
sys.path.insert(0, {bench!r})
from bench_features import StageMemory
mem = StageMemory()
mem.instrument()
t0, c0 = time.perf_counter(), time.process_time()
import features.io
from features.build import build_features
# what `crmscore features` reads (load_feature_tables; whole tables before it existed)
load = getattr(features.io, "load_feature_tables", features.io.load_tables)
with mem.stage("load"):
    tables = load({data!r})
t1, c1 = time.perf_counter(), time.process_time()
resident = {{k: round(v.memory_usage(deep=True).sum() / 1e9, 3) for k, v in tables.items()}}
rss_loaded = round(mem.rss_gb(), 3)
with mem.stage("build"):
    f = build_features(tables, "2025-06-30")
t2, c2 = time.perf_counter(), time.process_time()
print(json.dumps({{"load_s": t1 - t0, "build_s": t2 - t1, "load_cpu_s": c1 - c0, "build_cpu_s": c2 - c1,
                  "rows": len(f), "columns": f.shape[1],
                  "tables_gb": resident, "rss_after_load_gb": rss_loaded,
                  "output_gb": round(f.memory_usage(deep=True).sum() / 1e9, 3), "stages_peak_gb": mem.peaks(),
                  "peak_gb": max(mem.max_gb, mem.hwm_gb())}}))
"""


def bench_batch(data: Path) -> dict:
    """Time load + build in a fresh process and read its own peak RSS (whole run and per stage)."""
    t = time.perf_counter()
    out = subprocess.run(
        [sys.executable, "-c", _CHILD.format(root=str(ROOT), bench=str(ROOT / "bench"), data=str(data))],
        check=True,
        capture_output=True,
        text=True,
        env={**os.environ, "OMP_WAIT_POLICY": "PASSIVE"},
    )
    wall = time.perf_counter() - t
    res = json.loads(out.stdout.strip().splitlines()[-1])
    # the child's own high-water mark, not getrusage: a child's ru_maxrss starts from the parent's peak at
    # fork/exec (Linux), so it used to include generating the tables (the 8.24 GB of the first measurement)
    res.update({"wall_s": wall, "peak_rss_gb": res["peak_gb"]})
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
    t, c = time.perf_counter(), time.process_time()
    for _ in range(repeats):
        builder.transform_one(profile, events, END)
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    # CPU time as well: on a shared machine it moves less with the load than wall time
    return {
        "online_ms_per_lead_200_events": wall / repeats * 1000,
        "online_cpu_ms_per_lead_200_events": cpu / repeats * 1000,
    }


def main() -> None:
    """Run the feature benchmarks, print one JSON line and optionally write it to ``--json-out``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=None, help="reuse generated tables here (generated if absent)")
    ap.add_argument("--json-out", type=Path, default=None, help="also write the result object to this file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "data"
        t = time.perf_counter()
        sizes = generate(args.customers, data) if not (data / "customers.parquet").exists() else _sizes(data)
        gen_s = time.perf_counter() - t
        batch = bench_batch(data)
        online = bench_online()
    figures = {
        "load_s": round(batch["load_s"], 2),
        "build_s": round(batch["build_s"], 2),
        "total_s": round(batch["load_s"] + batch["build_s"], 2),
        "wall_s": round(batch["wall_s"], 2),
        # CPU seconds of the child: steadier than wall time on a shared machine
        "load_cpu_s": round(batch["load_cpu_s"], 2),
        "build_cpu_s": round(batch["build_cpu_s"], 2),
        "peak_rss_gb": round(batch["peak_rss_gb"], 3),
        "online_ms_per_lead": round(online["online_ms_per_lead_200_events"], 4),
        "online_cpu_ms_per_lead": round(online["online_cpu_ms_per_lead_200_events"], 4),
        "rss_after_load_gb": batch["rss_after_load_gb"],
        "tables_gb": batch["tables_gb"],
        "output_gb": batch["output_gb"],
        "stages_peak_gb": batch["stages_peak_gb"],
        "rows": batch["rows"],
        "columns": batch["columns"],
        "generate_s": round(gen_s, 1),
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    result = {
        "benchmark": "features",
        "params": {"customers": args.customers, "sizes": sizes, "as_of": str(END.date()), "cores": os.cpu_count()},
        "figures": figures,
    }
    line = json.dumps(result, ensure_ascii=False)
    print(line)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n", encoding="utf-8")


def _sizes(data: Path) -> dict[str, int]:
    import pyarrow.parquet as pq

    return {p.stem: pq.ParquetFile(p).metadata.num_rows for p in sorted(data.glob("*.parquet"))}


if __name__ == "__main__":
    main()
