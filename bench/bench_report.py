"""Benchmark: `crmscore report` at scale (issue 19).

    .venv/bin/python bench/bench_report.py --customers 1000000 [--interactions 20] [--data DIR] [--json-out PATH]

Generates contract tables with NumPy (``bench_members.generate``: N customers with province, 2 orders each over
two years with one of 10 categories and a status, K interactions each; plus one marketing touch per customer
over 20 campaigns), then runs ``crmscore report --data DIR --as-of T --out DIR`` in a fresh subprocess
as a user would (MLflow logging into a throwaway SQLite store in the work folder) and records wall time
(imports, reading, every section, charts, HTML, CSVs and the MLflow run included) and the subprocess's peak
RSS. Prints ``{"benchmark": "report", "params": {...}, "figures": {...}}`` (also to ``--json-out``);
goal: ≤ 120 s and ≤ 6 GB for 1M customers / 20M interactions / 2M orders.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_members import END, generate  # noqa: E402 - the same generated tables as the members benchmark

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from serving.cli.main import app
data, out, as_of = sys.argv[1], sys.argv[2], sys.argv[3]
imports_s = time.perf_counter() - t0
t = time.perf_counter()
try:
    app(["report", "--data", data, "--as-of", as_of, "--out", out], standalone_mode=False)
except SystemExit as e:
    if e.code:
        raise
report_s = time.perf_counter() - t
hwm = next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM"))
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"imports_s": imports_s, "report_s": report_s, "total_s": time.perf_counter() - t0,
                  "cpu_s": ru.ru_utime + ru.ru_stime, "peak_rss_gb": hwm / 1024**2}))
"""


def add_touches(n: int, out: Path, seed: int = 1) -> int:
    """One marketing touch per customer over 20 campaigns in the last year (opens, clicks, coupon claims)."""
    rng = np.random.default_rng(seed)
    ids = np.char.add("C", np.char.zfill(np.arange(n).astype("U8"), 8))
    sent = END - pd.to_timedelta(rng.integers(0, 365 * 86400, n), unit="s")
    opened = rng.random(n) < 0.3
    clicked = opened & (rng.random(n) < 0.3)
    pd.DataFrame(
        {
            "touch_id": np.char.add("T", np.arange(n).astype("U9")),
            "customer_id": ids,
            "campaign_id": np.char.add("K", rng.integers(0, 20, n).astype("U2")),
            "channel": rng.choice(["sms", "email", "wechat", "app"], n),
            "sent_at": sent.to_numpy(),
            "opened_at": np.where(opened, (sent + pd.Timedelta(hours=2)).to_numpy(), np.datetime64("NaT")),
            "clicked_at": np.where(clicked, (sent + pd.Timedelta(hours=3)).to_numpy(), np.datetime64("NaT")),
            "coupon_claimed": clicked & (rng.random(n) < 0.5),
            "responded": clicked,
        }
    ).to_parquet(out / "marketing_touches.parquet", index=False)
    return n


def add_profile(out: Path, seed: int = 2) -> None:
    """Source channel and city on the generated customers (the funnel, channel and region sections read them)."""
    from features.contract import SOURCE_CHANNELS

    rng = np.random.default_rng(seed)
    customers = pd.read_parquet(out / "customers.parquet")
    n = len(customers)
    customers["source_channel"] = rng.choice(list(SOURCE_CHANNELS), n)
    customers["city"] = customers["province"].str.replace("省", "").str.replace("市", "") + rng.choice(["一", "二"], n)
    customers.to_parquet(out / "customers.parquet", index=False)


def main() -> None:
    """Generate (or reuse) the data, time the report in a subprocess, print and save one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--interactions", type=int, default=20, help="interaction events per customer")
    ap.add_argument("--data", type=Path, default=None, help="work folder (data reused when present)")
    ap.add_argument("--json-out", type=Path, default=None, help="also write the result object to this file")
    a = ap.parse_args()
    work = a.data or Path(tempfile.mkdtemp(prefix="bench-report-"))
    data = work / f"data-{a.customers}-{a.interactions}"
    t0 = time.perf_counter()
    if not (data / "marketing_touches.parquet").is_file():
        rows = generate(a.customers, data, a.interactions)
        rows["marketing_touches"] = add_touches(a.customers, data)
        add_profile(data)
    else:
        rows = {"customers": a.customers, "orders": 2 * a.customers, "interactions": a.interactions * a.customers}
    gen_s = time.perf_counter() - t0
    out = work / "report"
    uri = f"sqlite:///{work / 'mlflow.db'}"
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT), "MLFLOW_TRACKING_URI": uri,
           "MLFLOW_REGISTRY_URI": uri}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), str(out), str(END.date())],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    if proc.returncode != 0:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(proc.returncode)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    figures = {k: round(v, 3) for k, v in json.loads(lines[-1]).items()}
    figures["generate_s"] = round(gen_s, 1)
    figures["html_mb"] = round((out / "report.html").stat().st_size / 1e6, 2)
    result = {
        "benchmark": "report",
        "params": {
            "customers": a.customers,
            "orders": rows["orders"],
            "interactions": rows.get("interactions", 0),
            "as_of": str(END.date()),
            "cpus": os.cpu_count(),
            "load_average": os.getloadavg(),
        },
        "figures": figures,
        "goals": {"report_s<=120": figures["total_s"] <= 120, "peak_rss_gb<=6": figures["peak_rss_gb"] <= 6},
        "subprocess_output": proc.stdout.strip().splitlines()[:-1],
    }
    text = json.dumps(result, ensure_ascii=False)
    print(text)
    if a.json_out:
        a.json_out.parent.mkdir(parents=True, exist_ok=True)
        a.json_out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
