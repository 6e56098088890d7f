"""Benchmark: member levels + tags at scale (issue 17).

    .venv/bin/python bench/bench_members.py --customers 1000000 [--interactions 0] [--data DIR] [--json-out PATH]

Generates contract tables directly with NumPy (not the simulator): N customers, 2 paid/refunded orders each
over two years with one of 10 categories, optionally K interactions each, plus a 4-level members config, a
100-tag config (70 rule tags over levels, RFM, value tier, P(alive) and profile, 25 product tags, 5 manual
tags) and a manual-tags file. Then, in a fresh subprocess, runs the two commands as a user would —
``crmscore members apply`` and ``crmscore tags apply --members`` — and records wall time (imports, reading,
computing and writing included) and the subprocess's peak RSS. Prints one JSON object
``{"benchmark": "members", "params": {...}, "figures": {...}}`` (also to ``--json-out``) with each command's
wall and CPU seconds (the machine may be shared: the load average before and after is in ``params``);
goal: levels + tags ≤ 60 s and ≤ 4 GB for 1M customers, 2M orders, 4 levels, 100 tags.
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
from typing import Any

import numpy as np
import pandas as pd
import yaml

ROOT = Path(__file__).resolve().parents[1]
END = pd.Timestamp("2025-06-30")
CATEGORIES = [
    "母婴用品",
    "美妆个护",
    "数码电器",
    "食品饮料",
    "服饰鞋包",
    "家居家装",
    "运动户外",
    "图书文具",
    "办公用品",
    "软件服务",
]


def generate(n: int, out: Path, interactions: int = 0, seed: int = 0) -> dict[str, int]:
    """Random but valid tables for ``n`` customers (2 orders each, ``interactions`` events each)."""
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    ids = np.char.add("C", np.char.zfill(np.arange(n).astype("U8"), 8))
    two_years = 2 * 365 * 86400
    pd.DataFrame(
        {
            "customer_id": ids,
            "created_at": (END - pd.to_timedelta(rng.integers(0, two_years, n), unit="s")).to_numpy(),
            "province": rng.choice(["广东省", "浙江省", "北京市", "上海市", "四川省"], n),
            "gender": rng.choice(["M", "F", "U"], n),
            "age": rng.integers(18, 70, n),
            "points_balance": rng.gamma(2, 100, n),
            "marketing_consent": rng.random(n) < 0.7,
            "phone": np.char.add("138", np.char.zfill(np.arange(n).astype("U8"), 8)),
        }
    ).to_parquet(out / "customers.parquet", index=False)
    m = 2 * n
    # skewed buyers (the first 1% place about a fifth of the orders), so all four levels are reached
    who = np.minimum((n * rng.random(m) ** 3).astype(np.int64), n - 1)
    pd.DataFrame(
        {
            "order_id": np.char.add("O", np.arange(m).astype("U9")),
            "customer_id": ids[who],
            "ts": (END + pd.Timedelta(days=30) - pd.to_timedelta(rng.integers(0, two_years, m), unit="s")).to_numpy(),
            "amount": np.round(rng.lognormal(5, 1, m), 2),
            "status": rng.choice(["paid", "refunded", "cancelled"], m, p=[0.9, 0.06, 0.04]),
            "items": rng.integers(1, 5, m),
            "category": rng.choice(CATEGORIES, m),
        }
    ).to_parquet(out / "orders.parquet", index=False)
    rows = {"customers": n, "orders": m}
    if interactions:
        k = interactions * n
        pd.DataFrame(
            {
                "customer_id": ids[rng.integers(0, n, k)],
                "ts": (END - pd.to_timedelta(rng.integers(0, 365 * 86400, k), unit="s")).to_numpy(),
                "channel": rng.choice(["web", "app", "wechat"], k),
                "event_type": rng.choice(["visit", "browse", "add_to_cart", "coupon_claim"], k),
            }
        ).to_parquet(out / "interactions.parquet", index=False)
        rows["interactions"] = k
    manual = pd.DataFrame(
        {
            "customer_id": ids[rng.integers(0, n, 1000)],
            "tag": rng.choice([f"手工{i}" for i in range(5)], 1000),
            "added_by": "ops",
            "added_at": "2025-06-01",
        }
    ).drop_duplicates(["customer_id", "tag"])
    manual.to_csv(out / "manual_tags.csv", index=False)
    return rows


def tags_config() -> dict[str, Any]:
    """100 tags: 70 rule tags, 25 product tags, 5 manual tags."""
    tags: list[dict[str, Any]] = []
    segs = ["Champions", "Loyal", "'Potential loyalist'", "'At risk'", "'Cannot lose them'", "Hibernating", "Lost"]
    levels = ["silver", "gold", "platinum"]
    for i in range(25):
        cats = [CATEGORIES[(i + j) % 10] for j in range(1 + i % 3)]
        tags.append({"name": f"品类{i}", "kind": "product", "categories": cats, "window_days": 30 + 30 * (i % 12)})
    for i in range(5):
        tags.append({"name": f"手工{i}", "kind": "manual"})
    templates = [
        "rfm_segment in [{s1}, {s2}] and p_alive < {p}",
        "member_level >= {lv} and recency_days > {d}",
        "value_tier == important or monetary > {m}",
        "r_score >= {r} and f_score >= {f} and not m_score < 2",
        "level_progress >= {p} and member_level < platinum",
        "tag:品类{k} and member_level >= {lv}",
        "province in [广东省, 浙江省] and age < {a} and marketing_consent",
        "(tag:品类{k} or tag:手工{h}) and window_spend > {m}",
        "frequency >= {f} and tenure_days > {d} and rfm_segment != 'No purchase'",
        "not (member_level == none) and points_balance > {m}",
    ]
    for i in range(70):
        rule = templates[i % len(templates)].format(
            s1=segs[i % 7],
            s2=segs[(i + 3) % 7],
            p=round(0.3 + 0.05 * (i % 10), 2),
            lv=levels[i % 3],
            d=30 + 10 * (i % 20),
            m=200 + 100 * (i % 15),
            r=1 + i % 5,
            f=1 + i % 4,
            k=i % 25,
            h=i % 5,
            a=25 + i % 30,
        )
        tags.append({"name": f"规则{i}", "kind": "rule", "rule": rule})
    assert len(tags) == 100
    return {"tags": tags}


CHILD = r"""
import json, resource, sys, time
from pathlib import Path
t0 = time.perf_counter()
from serving.cli.main import app
data, out, cfgdir, as_of = map(Path, sys.argv[1:5])
def cpu():
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime
def run(args):
    t, c = time.perf_counter(), cpu()
    try:
        app([str(a) for a in args], standalone_mode=False)
    except SystemExit as e:
        if e.code:
            raise
    return time.perf_counter() - t, cpu() - c
imports_s = time.perf_counter() - t0
members_s, members_cpu_s = run(["members", "apply", "--data", data, "--as-of", str(as_of), "--out", out / "members",
                                "--config", cfgdir / "members.yaml"])
tags_s, tags_cpu_s = run(["tags", "apply", "--data", data, "--as-of", str(as_of), "--members", out / "members",
                          "--config", cfgdir / "tags.yaml", "--members-config", cfgdir / "members.yaml",
                          "--manual", data / "manual_tags.csv", "--out", out / "tags"])
hwm = next(int(l.split()[1]) for l in Path("/proc/self/status").read_text().splitlines() if l.startswith("VmHWM"))
print(json.dumps({"imports_s": imports_s, "members_s": members_s, "tags_s": tags_s,
                  "members_cpu_s": members_cpu_s, "tags_cpu_s": tags_cpu_s,
                  "total_s": time.perf_counter() - t0, "cpu_s": cpu(), "peak_rss_gb": hwm / 1024**2}))
"""


def main() -> None:
    """Generate (or reuse) the data, time members + tags in a subprocess, print and save one JSON object."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--interactions", type=int, default=0, help="interaction events per customer (issue: 20)")
    ap.add_argument("--data", type=Path, default=None, help="work folder (data reused when present)")
    ap.add_argument("--json-out", type=Path, default=None, help="also write the result object to this file")
    a = ap.parse_args()
    work = a.data or Path(tempfile.mkdtemp(prefix="bench-members-"))
    data = work / f"data-{a.customers}-{a.interactions}"
    t0 = time.perf_counter()
    if not (data / "orders.parquet").is_file():
        rows = generate(a.customers, data, a.interactions)
    else:
        rows = {"customers": a.customers, "orders": 2 * a.customers}
    gen_s = time.perf_counter() - t0
    cfgdir = work / "configs"
    cfgdir.mkdir(parents=True, exist_ok=True)
    (cfgdir / "tags.yaml").write_text(yaml.safe_dump(tags_config(), allow_unicode=True), encoding="utf-8")
    (cfgdir / "members.yaml").write_text(
        (ROOT / "configs" / "members.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    out = work / "out"
    load_before = os.getloadavg()
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), str(out), str(cfgdir), str(END.date())],
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
    figures["levels_plus_tags_s"] = round(figures["members_s"] + figures["tags_s"], 3)
    # CPU seconds of the two commands (all threads): on a shared machine a steadier comparison than wall time
    figures["levels_plus_tags_cpu_s"] = round(figures["members_cpu_s"] + figures["tags_cpu_s"], 3)
    msum = json.loads((out / "members" / "summary.json").read_text(encoding="utf-8"))
    tsum = json.loads((out / "tags" / "summary.json").read_text(encoding="utf-8"))
    figures |= {
        "generate_s": round(gen_s, 1),
        "tag_rows": tsum["rows"],
        "customers_with_a_tag": tsum["customers_with_a_tag"],
        "level_counts": msum["levels"],
    }
    result = {
        "benchmark": "members",
        "params": {
            "customers": a.customers,
            "orders": rows["orders"],
            "interactions": rows.get("interactions", 0),
            "levels": 4,
            "tags": 100,
            "as_of": str(END.date()),
            "cpus": os.cpu_count(),
            "load_average_before": load_before,
            "load_average": os.getloadavg(),
        },
        "figures": figures,
        "goals": {"levels_plus_tags_s<=60": figures["total_s"] <= 60, "peak_rss_gb<=4": figures["peak_rss_gb"] <= 4},
        "subprocess_output": proc.stdout.strip().splitlines()[:-1],
    }
    text = json.dumps(result, ensure_ascii=False)
    print(text)
    if a.json_out:
        a.json_out.parent.mkdir(parents=True, exist_ok=True)
        a.json_out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
