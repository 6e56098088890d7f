"""Benchmark: the Spark feature engine (``crmscore features --engine spark``) at 250k / 500k / 1M customers.

    .venv/bin/python bench/bench_spark_features.py [--customers 250000,500000,1000000] [--master local[2]]
        [--driver-memory 2g] [--data-root DIR] [--prepare-only] [--json-out PATH]

Per size: random contract tables from ``bench_features.generate`` (20 interactions, 2 orders, 5 touches per
customer; generated once into ``--data-root``/c<customers>, outside any timing, and reused by later runs;
``--prepare-only`` generates them and stops, so a later timed run on a quiet machine only runs Spark), then a
fresh process that starts Spark on ``--master`` with the driver
heap capped at ``--driver-memory``, builds every feature as of 2025-05-31 and writes them as partitioned
Parquet (the job ``crmscore features --engine spark`` runs). Recorded: wall seconds of the job (session start
excluded), the JVM's CPU seconds and its peak RSS (``VmHWM``, heap + off-heap), and the Python driver's peak
RSS. In ``local`` mode the driver JVM also runs the tasks, so the JVM figure is an upper bound of what the
driver needs. Prints one JSON object ``{"benchmark": "spark_features", "params": …, "figures": …}``; goals:
1M customers ≤ 300 s with a 2 GB driver, time growing no faster than linearly from 250k to 1M.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

AS_OF = "2025-05-31"


def _status_kb(pid: int | str, field: str) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    return 0


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_one(data: Path, master: str, driver_memory: str) -> dict[str, float]:
    """Build and write the features of ``data`` once (in this process); the figures of the run."""
    from features.engines.spark_features import build_features_spark, write_partitioned
    from features.engines.spark_session import spark_session

    t0 = time.perf_counter()
    spark = spark_session(master, "bench-spark-features", conf={"spark.driver.memory": driver_memory})
    start_s = time.perf_counter() - t0
    jvm = int(spark.sparkContext._jvm.ProcessHandle.current().pid())
    cpu0 = _cpu_seconds(jvm)
    with tempfile.TemporaryDirectory(prefix="bench_spark_") as tmp:
        t1 = time.perf_counter()
        rows = write_partitioned(build_features_spark(spark, data, AS_OF), Path(tmp) / "features",
                                 spark.sparkContext.defaultParallelism)
        job_s = time.perf_counter() - t1
    return {
        "rows": rows,
        "session_start_s": round(start_s, 2),
        "job_s": round(job_s, 2),
        "jvm_cpu_s": round(_cpu_seconds(jvm) - cpu0, 2),
        "jvm_peak_rss_gb": round(_status_kb(jvm, "VmHWM") / 2**20, 3),
        "python_peak_rss_gb": round(_status_kb("self", "VmHWM") / 2**20, 3),
        "load_avg_1m": os.getloadavg()[0],
    }


def _cached_tables(n: int, root: Path, generate: Callable[[int, Path], object]) -> Path:
    """The contract tables of ``n`` customers under ``root``: generated on first use, reused afterwards."""
    data = root / f"c{n}"
    done = data / ".complete"  # written after the last table: a dir without it is an interrupted generation
    if done.is_file():
        print(f"{n:>9,} customers: reusing the tables in {data}", file=sys.stderr)
        return data
    t0 = time.perf_counter()
    generate(n, data)
    done.touch()
    print(f"{n:>9,} customers: tables generated in {data} ({time.perf_counter() - t0:.0f} s)", file=sys.stderr)
    return data


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", default="250000,500000,1000000", help="comma-separated sizes")
    ap.add_argument("--master", default="local[2]")
    ap.add_argument("--driver-memory", default="2g")
    ap.add_argument("--data-root", type=Path, default=Path(tempfile.gettempdir()) / "crmscore_bench_spark")
    ap.add_argument("--prepare-only", action="store_true", help="generate (or check) the cached tables, run nothing")
    ap.add_argument("--json-out", type=Path)
    ap.add_argument("--run", type=Path, help=argparse.SUPPRESS)  # child: one measured run on this data dir
    args = ap.parse_args()
    if args.run is not None:
        print(json.dumps(run_one(args.run, args.master, args.driver_memory)))
        return
    from bench_features import generate

    figures: dict[str, float] = {}
    sizes = [int(s) for s in args.customers.split(",") if s.strip()]
    datas = {n: _cached_tables(n, args.data_root, generate) for n in sizes}
    if args.prepare_only:
        return
    for n, data in datas.items():
        env = {**os.environ, "OMP_WAIT_POLICY": "PASSIVE"}
        done = subprocess.run(
            [sys.executable, __file__, "--run", str(data), "--master", args.master, "--driver-memory",
             args.driver_memory], capture_output=True, text=True, env=env, check=False,
        )
        if done.returncode != 0:
            raise SystemExit(f"the run at {n:,} customers failed:\n{done.stderr[-3000:]}")
        res = json.loads(done.stdout.strip().splitlines()[-1])
        print(f"{n:>9,} customers: {json.dumps(res)}", file=sys.stderr)
        for k, v in res.items():
            figures[f"{k}_{n // 1000}k"] = v
    if len(sizes) > 1:
        lo, hi = sizes[0], sizes[-1]
        # > 1 means slower than linear growth (time per customer rising with size)
        figures["scaling_vs_linear"] = round(
            (figures[f"job_s_{hi // 1000}k"] / figures[f"job_s_{lo // 1000}k"]) / (hi / lo), 3
        )
    out = {"benchmark": "spark_features", "params": {"customers": sizes, "master": args.master,
                                                     "driver_memory": args.driver_memory, "as_of": AS_OF,
                                                     "data_root": str(args.data_root)},
           "figures": figures}
    if args.json_out:
        args.json_out.write_text(json.dumps(out, indent=2))
    print(json.dumps(out))


if __name__ == "__main__":
    main()
