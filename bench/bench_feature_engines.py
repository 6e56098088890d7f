"""Benchmark: the same point-in-time features computed by NumPy, DuckDB and Polars, against the builder.

    .venv/bin/python bench/bench_feature_engines.py --customers 1000000 [--data DIR] [--threads N] [--json-out PATH]

On the tables of `bench_features.generate` (1M customers, 20M interactions, 2M orders, 5M touches by
default) each engine computes one identical subset of the features as of one cutoff T, reading the
same Parquet files, each in its own fresh subprocess (wall and CPU time from ``wait4``, peak RSS
from the child's own ``VmHWM``):

* RFM: days since the last paid order, paid orders and spend in 30/90/365-day windows, refund share;
* interactions per event type in 7/30/90-day windows (15 types × 3 windows);
* days since the last interaction of each recency event type, distinct channels in 90 days.

Engines: ``builder`` (the project's `load_feature_tables` + `build_features`, all 132 features; the
reference), ``numpy`` (the builder's approach, vectorised NumPy on integer codes, subset only),
``duckdb`` (one SQL query over the Parquet files), ``polars`` (one lazy query). Every engine's columns
must equal the builder's (exactly, or within 1e-9 for float sums); prints and writes one JSON object.
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

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from features.contract import EVENT_TYPES  # noqa: E402

AS_OF = pd.Timestamp("2025-05-31")  # a month before the generated data ends: the cutoff filter matters
RFM_WINDOWS = (30, 90, 365)
EVENT_WINDOWS = (7, 30, 90)
RECENCY_TYPES = ("visit", "browse", "consult", "add_to_cart", "checkout_page", "login", "complaint")
MAX_DAYS = 3650.0
ENGINES = ("builder", "numpy", "duckdb", "polars")


def subset_columns() -> list[str]:
    """The compared feature columns (names as the builder gives them)."""
    cols = ["days_since_last_order"]
    for w in RFM_WINDOWS:
        cols += [f"orders_{w}d", f"spend_{w}d"]
    cols.append("refund_share")
    for w in EVENT_WINDOWS:
        cols += [f"n_{e}_{w}d" for e in EVENT_TYPES]
    cols += [f"days_since_{e}" for e in RECENCY_TYPES]
    cols.append("n_distinct_channels_90d")
    return cols


# ------------------------------------------------------------------------------------------ engines
def run_builder(data: Path, t: pd.Timestamp) -> tuple[pd.DataFrame, dict]:
    """The project's own builder: all features, then the compared subset."""
    from features.build import build_features
    from features.io import load_feature_tables

    t0 = time.perf_counter()
    tables = load_feature_tables(data)
    t1 = time.perf_counter()
    f = build_features(tables, t)[subset_columns()]
    return f, {"load_s": t1 - t0, "compute_s": time.perf_counter() - t1, "threads": 1}


def run_numpy(data: Path, t: pd.Timestamp) -> tuple[pd.DataFrame, dict]:
    """Vectorised NumPy on integer codes (the builder's approach), only the compared features."""
    import pyarrow.parquet as pq

    def read(name: str, cols: list[str], dict_cols: list[str]) -> pd.DataFrame:
        return pq.read_table(data / f"{name}.parquet", columns=cols, read_dictionary=dict_cols).to_pandas(
            self_destruct=True, split_blocks=True
        )

    t0 = time.perf_counter()
    cust = read("customers", ["customer_id", "created_at"], [])
    orders = read("orders", ["customer_id", "ts", "amount", "status"], ["customer_id", "status"])
    inter = read(
        "interactions", ["customer_id", "ts", "channel", "event_type"], ["customer_id", "channel", "event_type"]
    )
    t1 = time.perf_counter()
    ts_t = t.value / 1e9
    cust = cust[cust["created_at"] <= t]
    ids = pd.Index(cust["customer_id"].to_numpy(dtype=object))
    n = len(ids)

    def codes(s: pd.Series, vocab: pd.Index) -> np.ndarray:
        per_cat = np.append(vocab.get_indexer(s.cat.categories.to_numpy(dtype=object)), -1).astype(np.int32)
        return per_cat[s.cat.codes.to_numpy()]

    def ages(df: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        secs = df["ts"].to_numpy().view(np.int64) / 1e9
        pos = codes(df["customer_id"], ids)
        keep = (pos >= 0) & (secs <= ts_t)
        return pos[keep], (ts_t - secs[keep]) / 86400.0, keep

    out: dict[str, np.ndarray] = {}
    pos, age, keep = ages(orders)
    status = orders["status"].to_numpy(dtype=object)[keep]
    amount = orders["amount"].to_numpy()[keep]
    amount = np.where(np.isfinite(amount) & (amount > 0), amount, 0.0)
    paid, ref = status == "paid", status == "refunded"
    pp, pa, pm = pos[paid], age[paid], amount[paid]
    last = np.full(n, np.inf)
    np.minimum.at(last, pp, pa)
    out["days_since_last_order"] = np.where(np.isinf(last), MAX_DAYS, last)
    for w in RFM_WINDOWS:
        m = pa < w
        out[f"orders_{w}d"] = np.bincount(pp[m], minlength=n).astype(float)
        out[f"spend_{w}d"] = np.bincount(pp[m], weights=pm[m], minlength=n)
    n_paid = np.bincount(pp, minlength=n).astype(float)
    n_ref = np.bincount(pos[ref], minlength=n).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        out["refund_share"] = np.where(n_paid + n_ref > 0, n_ref / (n_paid + n_ref), 0.0)
    del orders, pos, age, keep, status, amount
    pos, age, keep = ages(inter)
    et = codes(inter["event_type"], pd.Index(list(EVENT_TYPES)))[keep]
    ch = inter["channel"].cat.codes.to_numpy()[keep].astype(np.int64)
    del inter, keep
    n_et = len(EVENT_TYPES)
    for w in EVENT_WINDOWS:
        m = (age < w) & (et >= 0)
        by = np.bincount(pos[m].astype(np.int64) * n_et + et[m], minlength=n * n_et).reshape(n, n_et)
        for j, e in enumerate(EVENT_TYPES):
            out[f"n_{e}_{w}d"] = by[:, j].astype(float)
    for e in RECENCY_TYPES:
        m = et == EVENT_TYPES.index(e)
        last = np.full(n, np.inf)
        np.minimum.at(last, pos[m], age[m])
        out[f"days_since_{e}"] = np.where(np.isinf(last), MAX_DAYS, last)
    m = age < 90
    pairs = np.unique(pos[m].astype(np.int64) * (int(ch.max()) + 2) + ch[m] + 1) if m.any() else np.zeros(0, int)
    out["n_distinct_channels_90d"] = np.bincount(pairs // (int(ch.max()) + 2), minlength=n).astype(float)
    f = pd.DataFrame({c: out[c] for c in subset_columns()}, index=pd.Index(ids, name="customer_id"))
    return f, {"load_s": t1 - t0, "compute_s": time.perf_counter() - t1, "threads": 1}


def _sql_ts(t: pd.Timestamp) -> str:
    return f"TIMESTAMP '{t.strftime('%Y-%m-%d %H:%M:%S')}'"


def run_duckdb(data: Path, t: pd.Timestamp) -> tuple[pd.DataFrame, dict]:
    """One DuckDB query over the Parquet files (FILTER aggregates, one pass per table)."""
    import duckdb

    con = duckdb.connect()
    if os.environ.get("CRMSCORE_DUCKDB_THREADS"):
        con.execute(f"SET threads = {int(os.environ['CRMSCORE_DUCKDB_THREADS'])}")
    threads = int(con.execute("SELECT current_setting('threads')").fetchone()[0])
    T = _sql_ts(t)
    us = f"epoch_us({T})"

    def since(col: str) -> str:  # days from the last event to T; MAX_DAYS when none
        return f"coalesce(({us} - epoch_us({col})) / 86400000000.0, {MAX_DAYS})"

    o_aggs = ["max(ts) FILTER (WHERE status = 'paid') AS last_paid"]
    o_cols = [f"{since('o.last_paid')} AS days_since_last_order"]
    for w in RFM_WINDOWS:
        cond = f"status = 'paid' AND ts > {T} - INTERVAL {w} DAY"
        o_aggs += [
            f"count(*) FILTER (WHERE {cond}) AS orders_{w}d",
            f"sum(CASE WHEN isfinite(amount) AND amount > 0 THEN amount ELSE 0 END) FILTER (WHERE {cond})"
            f" AS spend_{w}d",
        ]
        o_cols += [
            f"coalesce(o.orders_{w}d, 0)::DOUBLE AS orders_{w}d",
            f"coalesce(o.spend_{w}d, 0)::DOUBLE AS spend_{w}d",
        ]
    o_aggs += [
        "count(*) FILTER (WHERE status = 'paid') AS n_paid",
        "count(*) FILTER (WHERE status = 'refunded') AS n_ref",
    ]
    o_cols.append("CASE WHEN o.n_paid + o.n_ref > 0 THEN o.n_ref / (o.n_paid + o.n_ref) ELSE 0 END AS refund_share")
    i_aggs, i_cols = [], []
    for w in EVENT_WINDOWS:
        for e in EVENT_TYPES:
            i_aggs.append(f"count(*) FILTER (WHERE event_type = '{e}' AND ts > {T} - INTERVAL {w} DAY) AS n_{e}_{w}d")
            i_cols.append(f"coalesce(i.n_{e}_{w}d, 0)::DOUBLE AS n_{e}_{w}d")
    for e in RECENCY_TYPES:
        i_aggs.append(f"max(ts) FILTER (WHERE event_type = '{e}') AS last_{e}")
        i_cols.append(f"{since(f'i.last_{e}')} AS days_since_{e}")
    i_aggs.append(f"count(DISTINCT channel) FILTER (WHERE ts > {T} - INTERVAL 90 DAY) AS n_distinct_channels_90d")
    i_cols.append("coalesce(i.n_distinct_channels_90d, 0)::DOUBLE AS n_distinct_channels_90d")
    p = {k: str(data / f"{k}.parquet") for k in ("customers", "orders", "interactions")}
    sql = f"""
        WITH c AS (SELECT customer_id, row_number() OVER () AS k FROM read_parquet('{p["customers"]}')
                   WHERE created_at <= {T}),
        o AS (SELECT customer_id, {", ".join(o_aggs)} FROM read_parquet('{p["orders"]}')
              WHERE ts <= {T} GROUP BY customer_id),
        i AS (SELECT customer_id, {", ".join(i_aggs)} FROM read_parquet('{p["interactions"]}')
              WHERE ts <= {T} GROUP BY customer_id)
        SELECT c.customer_id, {", ".join(o_cols + i_cols)}
        FROM c LEFT JOIN o USING (customer_id) LEFT JOIN i USING (customer_id) ORDER BY c.k
    """
    t0 = time.perf_counter()
    f = con.execute(sql).df().set_index("customer_id")
    return f[subset_columns()], {"load_s": 0.0, "compute_s": time.perf_counter() - t0, "threads": threads}


def run_polars(data: Path, t: pd.Timestamp) -> tuple[pd.DataFrame, dict]:
    """One lazy Polars query over the Parquet files (filtered aggregations per group)."""
    import polars as pl

    T = t.to_pydatetime()
    ts = pl.col("ts")

    def since(col: str) -> pl.Expr:
        d = (pl.lit(T).dt.epoch("us") - pl.col(col).dt.epoch("us")) / 86_400_000_000.0
        return d.fill_null(MAX_DAYS)

    def window(w: int) -> pl.Expr:
        return ts > pl.lit(T) - pl.duration(days=w)

    paid = pl.col("status") == "paid"
    amount = pl.when(pl.col("amount").is_finite() & (pl.col("amount") > 0)).then(pl.col("amount")).otherwise(0.0)
    o_aggs = [ts.filter(paid).max().alias("last_paid"), paid.sum().alias("n_paid")]
    o_aggs.append((pl.col("status") == "refunded").sum().alias("n_ref"))
    for w in RFM_WINDOWS:
        o_aggs += [
            (paid & window(w)).sum().alias(f"orders_{w}d"),
            amount.filter(paid & window(w)).sum().alias(f"spend_{w}d"),
        ]
    i_aggs = []
    for w in EVENT_WINDOWS:
        for e in EVENT_TYPES:
            i_aggs.append(((pl.col("event_type") == e) & window(w)).sum().alias(f"n_{e}_{w}d"))
    for e in RECENCY_TYPES:
        i_aggs.append(ts.filter(pl.col("event_type") == e).max().alias(f"last_{e}"))
    i_aggs.append(pl.col("channel").filter(window(90)).n_unique().alias("n_distinct_channels_90d"))
    cutoff = ts <= pl.lit(T)
    cust = pl.scan_parquet(data / "customers.parquet").filter(pl.col("created_at") <= pl.lit(T)).select("customer_id")
    o = pl.scan_parquet(data / "orders.parquet").filter(cutoff).group_by("customer_id").agg(o_aggs)
    i = pl.scan_parquet(data / "interactions.parquet").filter(cutoff).group_by("customer_id").agg(i_aggs)
    counts = [c for c in subset_columns() if c.startswith(("orders_", "spend_", "n_"))]
    q = (
        cust.join(o, on="customer_id", how="left", maintain_order="left")
        .join(i, on="customer_id", how="left", maintain_order="left")
        .with_columns(
            since("last_paid").alias("days_since_last_order"),
            *[since(f"last_{e}").alias(f"days_since_{e}") for e in RECENCY_TYPES],
            pl.when(pl.col("n_paid") + pl.col("n_ref") > 0)
            .then(pl.col("n_ref") / (pl.col("n_paid") + pl.col("n_ref")))
            .otherwise(0.0)
            .fill_null(0.0)
            .alias("refund_share"),
            *[pl.col(c).fill_null(0).cast(pl.Float64) for c in counts],
        )
        .select("customer_id", *subset_columns())
    )
    t0 = time.perf_counter()
    f = q.collect().to_pandas().set_index("customer_id")
    return f, {"load_s": 0.0, "compute_s": time.perf_counter() - t0, "threads": pl.thread_pool_size()}


RUNNERS = {"builder": run_builder, "numpy": run_numpy, "duckdb": run_duckdb, "polars": run_polars}


# ---------------------------------------------------------------------------------------- harness
def run_engine(engine: str, data: Path, out: Path, threads: int | None) -> dict:
    """Run one engine in a fresh subprocess: wall and CPU time from ``wait4``, peak RSS from the child itself."""
    env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
    if threads:
        env.update({"POLARS_MAX_THREADS": str(threads), "CRMSCORE_DUCKDB_THREADS": str(threads)})
    cmd = [sys.executable, __file__, "--worker", engine, "--data", str(data), "--out", str(out)]
    t = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, env=env, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - t
    stdout = proc.stdout.read() if proc.stdout else ""
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"engine {engine} failed with exit code {proc.returncode}")
    res = json.loads(stdout.strip().splitlines()[-1])
    res.update({"engine": engine, "wall_s": round(wall, 2), "peak_rss_gb": round(res["peak_rss_gb"], 3)})
    res["engine_s"] = round(res["load_s"] + res["compute_s"], 2)  # in-process: without interpreter start and imports
    res["cpu_s"] = round(usage.ru_utime + usage.ru_stime, 2)  # all threads; steadier than wall on a shared machine
    return res


def worker(engine: str, data: Path, out: Path) -> None:
    """Child process: compute one engine's features, write them to ``out``, print its timings."""
    f, info = RUNNERS[engine](data, AS_OF)
    peak = _own_peak_gb()  # before writing the output file, which is the harness's work, not the engine's
    f.reset_index().to_parquet(out, index=False)
    info.update({"rows": len(f), "columns": f.shape[1], "peak_rss_gb": peak})
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in info.items()}))


def _own_peak_gb() -> float:
    """This process's own peak RSS (``VmHWM``) in GB.

    Not ``getrusage``/``wait4``: a child's ``ru_maxrss`` starts from its parent's peak at fork/exec
    (Linux), so a parent that generated the tables or read earlier results would inflate it.
    """
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024**2
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024**2


def compare(reference: pd.DataFrame, other: pd.DataFrame, tol: float = 1e-9) -> dict:
    """Largest absolute difference per engine and whether every column agrees within ``tol``."""
    other = other.reindex(reference.index)
    worst, exact = 0.0, True
    for c in reference.columns:
        a, b = reference[c].to_numpy(float), other[c].to_numpy(float)
        if np.isnan(a).any() or np.isnan(b).any():
            worst = max(worst, np.inf if not np.array_equal(np.isnan(a), np.isnan(b)) else 0.0)
            a, b = np.nan_to_num(a), np.nan_to_num(b)
        diff = float(np.max(np.abs(a - b))) if len(a) else 0.0
        exact &= diff == 0.0
        worst = max(worst, diff)
    same_rows = len(other.dropna(how="all")) == len(reference)
    return {"max_abs_diff": worst, "exact": exact, "agrees": bool(same_rows and worst <= tol)}


def main() -> None:
    """Run every engine on the same data, check them against the builder, print one JSON object."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--data", type=Path, default=None, help="reuse generated tables here (generated if absent)")
    ap.add_argument("--engines", default=",".join(ENGINES))
    ap.add_argument("--threads", type=int, default=None, help="cap DuckDB and Polars threads (default: all cores)")
    ap.add_argument("--json-out", type=Path, default=None)
    ap.add_argument("--worker", choices=ENGINES, help=argparse.SUPPRESS)
    ap.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        worker(args.worker, args.data, args.out)
        return
    from bench_features import _sizes, generate

    engines = [e for e in args.engines.split(",") if e]
    with tempfile.TemporaryDirectory() as tmp:
        data = args.data or Path(tmp) / "data"
        sizes = generate(args.customers, data) if not (data / "customers.parquet").exists() else _sizes(data)
        results: dict[str, dict] = {}
        for e in engines:
            results[e] = run_engine(e, data, Path(tmp) / f"{e}.parquet", args.threads)
            results[e]["load_avg_1m"] = round(os.getloadavg()[0], 2)
            print(json.dumps(results[e]), file=sys.stderr)
        frames = {e: pd.read_parquet(Path(tmp) / f"{e}.parquet").set_index("customer_id") for e in engines}
        if "builder" in frames:
            for e in engines:
                results[e].update(compare(frames["builder"], frames[e]))
    figures = {
        "engines": results,
        "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    for e, r in results.items():
        figures[f"{e}_total_s"] = r["engine_s"]
        figures[f"{e}_wall_s"] = r["wall_s"]
        figures[f"{e}_peak_rss_gb"] = r["peak_rss_gb"]
        figures[f"{e}_cpu_s"] = r["cpu_s"]
    result = {
        "benchmark": "feature_engines",
        "params": {
            "customers": args.customers,
            "sizes": sizes,
            "as_of": str(AS_OF.date()),
            "features": len(subset_columns()),
            "cores": os.cpu_count(),
            "threads_cap": args.threads,
            "versions": _versions(),
        },
        "figures": figures,
    }
    line = json.dumps(result, ensure_ascii=False)
    print(line)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(line + "\n", encoding="utf-8")


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {}
    for pkg in ("numpy", "pandas", "pyarrow", "duckdb", "polars"):
        try:
            out[pkg] = version(pkg)
        except PackageNotFoundError:
            out[pkg] = "absent"
    return out


if __name__ == "__main__":
    main()
