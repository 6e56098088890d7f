"""Run every benchmark of the project, write a dated JSON result and regenerate the table in docs/benchmarks.md.

    .venv/bin/python bench/run.py                                   # every benchmark at the sizes of the goals
    .venv/bin/python bench/run.py --quick                           # small sizes, a few minutes: a smoke test
    .venv/bin/python bench/run.py --only serving,batch --repeat 3   # some benchmarks, medians of 3 runs
    .venv/bin/python bench/run.py --report bench/results/2026-11-27T1200.json   # only redo the Markdown

Each benchmark runs as a subprocess (``bench/bench_*.py``, ``bench/soak.py``) with ``--json-out`` (serving:
``--out``), which writes ``{"benchmark": …, "params": {…}, "figures": {name: number, …}}``; scripts that do not
have the option yet are read from what they print or write today. The result, ``bench/results/
YYYY-MM-DDTHHMM.json``, holds the machine's facts (cores, memory, package versions), and per benchmark each
repeat's figures with the load average before and after, the median of each figure, the ratios between
contenders (crmscore vs ``mlflow models serve`` / ``mlflow models predict``) and each goal with whether it is
met. The table between ``<!-- bench:begin -->`` and ``<!-- bench:end -->`` in docs/benchmarks.md is generated
from that JSON (by default after a full run; ``--doc``/``--no-doc`` to choose). Benchmarks are never part of
the test suite's pass/fail.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shlex
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
PACKAGES = ("xgboost", "mlflow", "bentoml", "scikit-learn", "pandas", "numpy", "pyarrow", "evidently")

Figures = dict[str, float]


# --------------------------------------------------------------------------------------------------------------
# what to run
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Goal:
    """A goal of an issue: ``key`` (a median figure or a ratio) compared with ``threshold``."""

    text: str
    key: str
    op: str  # "<=", "<", ">=", ">", "=="
    threshold: float
    unit: str = ""
    sized: bool = True  # only meaningful at the default sizes (not assessed in --quick runs)

    def check(self, value: float | None) -> bool | None:
        """True/False, or None when the figure is missing."""
        if value is None or (isinstance(value, float) and math.isnan(value)):
            return None
        return {
            "<=": value <= self.threshold,
            "<": value < self.threshold,
            ">=": value >= self.threshold,
            ">": value > self.threshold,
            "==": value == self.threshold,
        }[self.op]


@dataclass
class Ratio:
    """A ratio between contenders: median ``num`` / median ``den``."""

    key: str
    text: str
    num: str
    den: str


@dataclass
class Shown:
    """A figure shown in the Markdown table: its key, label and format (``{v:…}``)."""

    key: str
    label: str
    fmt: str = "{v:,.1f}"


@dataclass
class Benchmark:
    """One benchmark script: how to call it at each size and how to read what it gives."""

    name: str
    title: str
    script: str
    full: list[str]
    quick: list[str]
    shown: list[Shown]
    ratios: list[Ratio] = field(default_factory=list)
    goals: list[Goal] = field(default_factory=list)
    workdir_flag: str | None = None  # the script's option for a cache/work folder, given a folder of the run
    workdir_name: str | None = None  # that folder's name when another benchmark's is shared (default: name)
    legacy: Callable[[Any, str], tuple[dict[str, Any], dict[str, Any]]] | None = None  # (json file or None, stdout)
    out_flag: str = "--json-out"  # preferred; "--out" when the script has only that
    estimate_full_s: float = 0.0
    estimate_quick_s: float = 0.0
    ok_codes: tuple[int, ...] = (0,)  # exit codes that are not errors (soak: 1 = a criterion not met)


def _last_json_line(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.strip().splitlines()):
        line = line.strip()
        if line.startswith("{") and line.endswith("}"):
            try:
                return json.loads(line)
            except json.JSONDecodeError:
                continue
    raise ValueError("no JSON line in the output")


def _legacy_serving(obj: Any, stdout: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """bench_serving.py ``--out``: a list of wrk runs (target, variant, payload, round, rps, p99_ms, …)."""
    if not isinstance(obj, list):
        raise ValueError("bench_serving.py --out gave no list of runs")
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in obj:
        if r.get("variant", "base") == "base":
            groups.setdefault((r["target"], r["payload"]), []).append(r)
    figs: dict[str, Any] = {}
    errors = 0
    for (target, payload), rs in groups.items():
        if payload == "1 lead + reasons":
            key = f"{target}_reasons"
        elif payload == "1 lead":
            key = target
        elif "(table)" in payload:
            key = f"{target}_table" + ("_reasons" if "reasons" in payload else "")
        elif "(objects)" in payload:
            key = f"{target}_objects"
        elif "(records)" in payload:
            key = f"{target}_records"
        else:
            key = f"{target}_{payload}".replace(" ", "_")
        batch = rs[0].get("leads_per_request", 1) > 1

        def med(name: str, rs: list[dict[str, Any]] = rs) -> float:
            return statistics.median(float(x[name]) for x in rs)

        if batch:
            figs[f"{key}_leads_per_s"] = med("leads_per_s")
        else:
            figs[f"{key}_rps"] = med("rps")
        figs[f"{key}_p50_ms"] = med("p50_ms")
        figs[f"{key}_p99_ms"] = med("p99_ms")
        if "server_cpu_ms_per_request" in rs[0]:
            figs[f"{key}_cpu_ms_per_request"] = med("server_cpu_ms_per_request")
        errors += sum(int(x.get("socket_errors", 0)) + int(x.get("non2xx", 0)) for x in rs)
    figs["errors"] = errors
    first = obj[0] if obj else {}
    params = {"workers": first.get("workers"), "rounds": 1 + max((int(r.get("round", 0)) for r in obj), default=0)}
    return params, figs


def _legacy_batch(obj: Any, stdout: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """bench_batch.py ``--out``: {rows, runs: {name: run or [runs]}} (figure names as its ``--json-out``)."""
    if not isinstance(obj, dict) or "runs" not in obj:
        raise ValueError("bench_batch.py results have no runs")
    names = {
        "plain": "crmscore_plain",
        "reasons": "crmscore_reasons",
        "reasons-exact": "crmscore_reasons_subset",
        "reasons-subset": "crmscore_reasons_subset",
        "reasons-approx": "crmscore_reasons_approx",
        "records": "crmscore_records",
        "mlflow": "mlflow_predict",
    }
    figs: dict[str, Any] = {}
    for run, ms in obj["runs"].items():
        ms = ms if isinstance(ms, list) else [ms]
        ok = [m for m in ms if m.get("rc") == 0]
        key = names.get(run, run.replace("-", "_"))
        if not ok:
            figs[f"{key}_failed"] = 1
            continue
        best = min(ok, key=lambda m: m["seconds"])
        figs[f"{key}_s"] = best["seconds"]
        figs[f"cpu_s_{key}"] = best["cpu_seconds"]
        figs[f"peak_rss_mb_{key}"] = max(m["max_rss_mb"] for m in ok)
        figs[f"rows_per_s_{key}"] = best["rows"] / best["seconds"]
    return {"rows": obj.get("rows"), "file_mb": obj.get("file_mb")}, figs


def _legacy_features(obj: Any, stdout: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """bench_features.py before ``--json-out``: one JSON line on stdout."""
    d = _last_json_line(stdout)
    figs = {k: v for k, v in d.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    if "online_ms_per_lead_200_events" in figs:
        figs["online_ms_per_lead"] = figs.pop("online_ms_per_lead_200_events")
    if "load_s" in figs and "build_s" in figs:
        figs["total_s"] = figs["load_s"] + figs["build_s"]
    return {"sizes": d.get("sizes")}, figs


#: what both batch benchmarks (trained champion, worst-case model) compare and aim at
_BATCH_RATIO = Ratio(
    "mlflow_over_crmscore_time", "mlflow predict time / crmscore time (no reasons)", "mlflow_predict_s",
    "crmscore_plain_s",
)
#: issue 16: the goals after the clean-up (no process-wide settings); the earlier 5× ratio is retired
_BATCH_TIME_GOALS = [
    Goal("1M leads CSV → CSV ≤ 10 s", "crmscore_plain_s", "<=", 10, " s"),
    Goal("1M leads with exact top-3 reasons ≤ 15 s", "crmscore_reasons_s", "<=", 15, " s"),
]

BENCHMARKS: list[Benchmark] = [
    Benchmark(
        name="synth",
        title="demo data synthesis",
        script="bench_synth.py",
        full=["--customers", "1000000"],
        quick=["--customers", "5000"],
        shown=[
            Shown("customers", "customers", "{v:,.0f}"),
            Shown("total_s", "total s"),
            Shown("generate_s", "generate s"),
            Shown("write_s", "write s"),
            Shown("rows_interactions", "interactions", "{v:,.0f}"),
            Shown("peak_rss_gb", "peak GB", "{v:.2f}"),
        ],
        goals=[Goal("1M customers in minutes (≤ 10 min)", "total_s", "<=", 600, " s")],
        estimate_full_s=120,
        estimate_quick_s=5,
    ),
    Benchmark(
        name="features",
        title="feature building",
        script="bench_features.py",
        full=["--customers", "1000000"],
        quick=["--customers", "20000"],
        shown=[
            Shown("total_s", "load + build s"),
            Shown("peak_rss_gb", "peak GB", "{v:.2f}"),
            Shown("online_ms_per_lead", "online ms/lead (200 events)", "{v:.2f}"),
        ],
        goals=[
            Goal("1M customers load + build ≤ 120 s", "total_s", "<=", 120, " s"),
            Goal("1M customers peak RSS ≤ 8 GB", "peak_rss_gb", "<=", 8, " GB"),
            Goal("one lead with 200 events ≤ 2 ms", "online_ms_per_lead", "<=", 2, " ms", sized=False),
        ],
        legacy=_legacy_features,
        workdir_flag="--data",  # tables cached there: `--workdir DIR` reuses DIR/features (generated untimed)
        estimate_full_s=330,  # generating the tables ~4 min + load/build ~75 s + online
        estimate_quick_s=15,
    ),
    Benchmark(
        name="spark_features",
        title="features on Spark (local[2], 2 GB driver)",
        script="bench_spark_features.py",
        full=["--customers", "250000,500000,1000000"],
        quick=["--customers", "20000"],
        shown=[
            Shown("job_s_1000k", "1M customers s"),
            Shown("jvm_peak_rss_gb_1000k", "1M JVM peak GB", "{v:.2f}"),
            Shown("scaling_vs_linear", "250k→1M time ÷ linear", "{v:.2f}"),
        ],
        goals=[
            Goal("1M customers / 20M interactions on local[2] ≤ 5 min", "job_s_1000k", "<=", 300, " s"),
            Goal("time grows no faster than linearly 250k → 1M", "scaling_vs_linear", "<=", 1.0),
        ],
        workdir_flag="--data-root",  # tables cached there: `--workdir DIR` reuses DIR/spark (generated untimed)
        workdir_name="spark",
        estimate_full_s=1500,  # generating the tables ~6 min + three Spark runs
        estimate_quick_s=90,
    ),
    Benchmark(
        name="training",
        title="lead training job",
        script="bench_training.py",
        full=["--customers", "490000"],
        quick=["--customers", "4000"],
        shown=[
            Shown("lead_set_rows", "lead-set rows", "{v:,.0f}"),
            Shown("train_job_s", "job s"),
            Shown("peak_rss_gb", "peak GB", "{v:.2f}"),
            Shown("test_roc_auc", "out-of-time AUC", "{v:.3f}"),
        ],
        goals=[Goal("~1M lead rows, whole training job ≤ 5 min", "train_job_s", "<=", 300, " s")],
        estimate_full_s=300,  # synth 490k ~50 s + job ~230 s
        estimate_quick_s=45,
    ),
    Benchmark(
        name="batch",
        title="batch scoring vs `mlflow models predict`",
        script="bench_batch.py",
        full=[],
        quick=["--rows", "20000", "--customers", "3000", "--subset", "2000", "--runs", "plain,reasons,mlflow"],
        shown=[
            Shown("crmscore_plain_s", "crmscore s"),
            Shown("crmscore_reasons_s", "crmscore + 3 reasons s"),
            Shown("mlflow_predict_s", "mlflow predict s"),
            Shown("peak_rss_mb_crmscore_plain", "crmscore peak MB", "{v:,.0f}"),
            Shown("peak_rss_mb_mlflow_predict", "mlflow peak MB", "{v:,.0f}"),
        ],
        ratios=[_BATCH_RATIO],
        goals=[
            *_BATCH_TIME_GOALS,
            Goal("peak memory ≤ 2 GB", "peak_rss_mb_crmscore_plain", "<=", 2048, " MB"),
            Goal("≥ 2.5× faster than `mlflow models predict`", "mlflow_over_crmscore_time", ">=", 2.5, "×",
                 sized=False),
        ],
        workdir_flag="--workdir",
        legacy=_legacy_batch,
        estimate_full_s=1500,  # setup (100k customers, training job, 1M-row CSV) ~8 min + runs ~15 min
        estimate_quick_s=150,
    ),
    Benchmark(
        name="batch_worst",
        title="batch scoring, worst-case model of the search (XGBoost 400 trees × depth 6)",
        script="bench_batch.py",
        full=["--model-kind", "worst", "--runs", "plain,reasons,mlflow"],
        quick=["--model-kind", "worst", "--rows", "20000", "--customers", "3000", "--runs", "plain,reasons,mlflow"],
        shown=[
            Shown("crmscore_plain_s", "crmscore s"),
            Shown("crmscore_reasons_s", "crmscore + 3 exact reasons s"),
            Shown("mlflow_predict_s", "mlflow predict s"),
            Shown("peak_rss_mb_crmscore_reasons", "crmscore + reasons peak MB", "{v:,.0f}"),
        ],
        ratios=[_BATCH_RATIO],
        goals=[
            *_BATCH_TIME_GOALS,
            Goal("peak memory ≤ 2 GB", "peak_rss_mb_crmscore_reasons", "<=", 2048, " MB"),
        ],
        workdir_flag="--workdir",
        workdir_name="batch",  # the same data and registry as the batch benchmark (both models are set up there)
        legacy=_legacy_batch,
        estimate_full_s=600,
        estimate_quick_s=150,
    ),
    Benchmark(
        name="drift",
        title="drift monitoring",
        script="bench_drift.py",
        full=["--rows", "1000000", "--reference-rows", "100000"],
        quick=["--rows", "20000", "--reference-rows", "5000"],
        shown=[
            Shown("rows", "records", "{v:,.0f}"),
            Shown("cli_wall_s", "`monitor drift` s"),
            Shown("cli_peak_rss_mb", "peak MB", "{v:,.0f}"),
            Shown("compare_s", "compare s"),
        ],
        goals=[Goal("1M records vs 100k reference ≤ 60 s", "cli_wall_s", "<=", 60, " s")],
        estimate_full_s=240,  # generating 1M records ~2 min + the command ~45 s + stages ~40 s
        estimate_quick_s=60,
    ),
    Benchmark(
        name="serving",
        title="serving vs `mlflow models serve` vs bare Starlette",
        script="bench_serving.py",
        full=["--duration", "10", "--rounds", "3"],
        quick=["--customers", "1500", "--trees", "60", "--depth", "4", "--duration", "3"],
        shown=[
            Shown("crmscore_reasons_rps", "crmscore + reasons req/s"),
            Shown("crmscore_reasons_p99_ms", "p99 ms"),
            Shown("crmscore_rps", "crmscore req/s"),
            Shown("crmscore_p99_ms", "p99 ms"),
            Shown("mlflow_rps", "mlflow req/s"),
            Shown("mlflow_p99_ms", "p99 ms"),
            Shown("reference_rps", "reference req/s"),
            Shown("reference_p99_ms", "p99 ms"),
            Shown("crmscore_table_leads_per_s", "crmscore 1,000-lead leads/s", "{v:,.0f}"),
            Shown("errors", "errors", "{v:,.0f}"),
        ],
        ratios=[
            Ratio(
                "throughput_vs_mlflow_reasons",
                "crmscore (+ reasons) / mlflow throughput",
                "crmscore_reasons_rps",
                "mlflow_rps",
            ),
            Ratio("throughput_vs_mlflow", "crmscore (no reasons) / mlflow throughput", "crmscore_rps", "mlflow_rps"),
            Ratio(
                "p99_mlflow_over_crmscore_reasons",
                "mlflow p99 / crmscore (+ reasons) p99",
                "mlflow_p99_ms",
                "crmscore_reasons_p99_ms",
            ),
            Ratio(
                "p99_mlflow_over_crmscore", "mlflow p99 / crmscore (no reasons) p99", "mlflow_p99_ms", "crmscore_p99_ms"
            ),
            Ratio(
                "throughput_vs_reference",
                "crmscore (no reasons) / reference throughput",
                "crmscore_rps",
                "reference_rps",
            ),
        ],
        goals=[
            Goal(
                "1 lead/request: ≥ 3× mlflow serve's throughput (with reasons)",
                "throughput_vs_mlflow_reasons",
                ">=",
                3,
                "×",
                sized=False,
            ),
            Goal(
                "1 lead/request: p99 ≤ ¼ of mlflow serve's (with reasons)",
                "p99_mlflow_over_crmscore_reasons",
                ">=",
                4,
                "×",
                sized=False,
            ),
            Goal("1,000 leads/request ≥ 50,000 leads/s", "crmscore_table_leads_per_s", ">=", 50_000),
        ],
        workdir_flag="--workdir",
        legacy=_legacy_serving,
        out_flag="--out",
        estimate_full_s=600,  # training 3k customers ~1 min, 3 servers, 3 rounds × 7 wrk runs × 12 s
        estimate_quick_s=150,
    ),
    Benchmark(
        name="profile_page",
        title="profile page",
        script="bench_profile_page.py",
        full=["--customers", "100000", "--profiles", "200"],
        quick=["--customers", "5000", "--profiles", "30"],
        shown=[
            Shown("customers", "customers", "{v:,.0f}"),
            Shown("profile_p50_ms", "profile p50 ms"),
            Shown("profile_p95_ms", "profile p95 ms"),
            Shown("page_p95_ms", "page p95 ms"),
            Shown("index_load_s", "index s"),
        ],
        goals=[
            Goal("100k customers: profile API p95 < 300 ms", "profile_p95_ms", "<", 300, " ms"),
            Goal("100k customers: page load + draw p95 < 300 ms", "page_p95_ms", "<", 300, " ms"),
        ],
        estimate_full_s=240,  # 100k demo customers ~15 s, training small models ~60 s, index, 200 profiles
        estimate_quick_s=70,
    ),
    Benchmark(
        name="cross_sell",
        title="cross-sell",
        script="bench_cross_sell.py",
        full=[],
        quick=["--quick"],
        shown=[
            Shown("lines", "order lines", "{v:,.0f}"),
            Shown("train_seconds", "rules + model s"),
            Shown("rules_seconds", "rules s"),
            Shown("recall_at_10_model", "recall@10 model", "{v:.4f}"),
            Shown("recall_at_10_personal", "recall@10 personal", "{v:.4f}"),
            Shown("recommend_rps", "/recommend req/s"),
            Shown("recommend_p99_ms", "/recommend p99 ms (wrk)"),
            Shown("recommend_probe_p99_ms", "/recommend p99 ms (probe connection)"),
            Shown("recommend_cpu_ms_per_request", "/recommend CPU ms/req", "{v:.2f}"),
            Shown("score_leads_rps", "/score_leads req/s"),
            Shown("score_leads_p99_ms", "/score_leads p99 ms"),
            Shown("score_leads_cpu_ms_per_request", "/score_leads CPU ms/req", "{v:.2f}"),
        ],
        goals=[
            Goal("Online Retail: rules and model ≤ 60 s", "train_seconds", "<=", 60, " s"),
            Goal("/recommend ≥ 1,000 req/s (one customer per request)", "recommend_rps", ">=", 1000, " req/s"),
            Goal("/recommend p99 ≤ 20 ms (wrk's, corrected for coordinated omission)", "recommend_p99_ms", "<=", 20,
                 " ms"),
            Goal("recall@10 above personal top-frequency's", "recall_vs_personal", ">", 1.0, "×"),
        ],
        ratios=[
            Ratio("recall_vs_personal", "model / personal top-frequency recall@10", "recall_at_10_model",
                  "recall_at_10_personal"),
        ],
        estimate_full_s=420,  # ingest ~20 s, evaluation ~60 s, 20k demo customers + 2 models ~150 s, 3 wrk runs
        estimate_quick_s=150,
    ),
    Benchmark(
        name="members",
        title="member levels + tags",
        script="bench_members.py",
        full=["--customers", "1000000", "--interactions", "20"],
        quick=["--customers", "20000", "--interactions", "20"],
        shown=[
            Shown("levels_plus_tags_s", "levels + tags s"),
            Shown("members_s", "levels s"),
            Shown("tags_s", "tags s"),
            Shown("cpu_s", "CPU s"),
            Shown("peak_rss_gb", "peak GB", "{v:.2f}"),
            Shown("tag_rows", "tag rows", "{v:,.0f}"),
        ],
        goals=[
            Goal("1M customers, 20M interactions, 2M orders, 4 levels, 100 tags: levels + tags ≤ 60 s", "total_s", "<=",
                 60, " s"),
            Goal("1M customers levels + tags peak RSS ≤ 4 GB", "peak_rss_gb", "<=", 4, " GB"),
        ],
        workdir_flag="--data",
        estimate_full_s=240,  # generating 1M customers / 2M orders / 20M interactions ~2 min + levels + tags
        estimate_quick_s=30,
    ),
    Benchmark(
        name="uplift",
        title="uplift training on Hillstrom",
        script="bench_uplift.py",
        full=[],
        quick=["--rows", "8000", "--bootstrap", "20"],
        shown=[
            Shown("rows", "rows", "{v:,.0f}"),
            Shown("fit_s", "3 learners + baseline s"),
            Shown("job_s", "job s"),
            Shown("peak_rss_gb", "peak GB", "{v:.2f}"),
            Shown("test_qini_area", "held-out Qini", "{v:+.5f}"),
        ],
        goals=[Goal("Hillstrom (44,800 rows): uplift training job ≤ 60 s", "job_s", "<=", 60, " s")],
        estimate_full_s=90,
        estimate_quick_s=40,
    ),
    Benchmark(
        name="routing",
        title="lead routing",
        script="bench_routing.py",
        full=[],
        quick=["--leads", "10000", "--reps", "50", "--month-per-day", "200", "--month-reps", "30"],
        shown=[
            Shown("leads", "leads", "{v:,.0f}"),
            Shown("reps", "reps", "{v:,.0f}"),
            Shown("route_s", "route s", "{v:.2f}"),
            Shown("month_s", "30-day month s"),
            Shown("month_max_a_deviation", "A-grade max deviation", "{v:.2f}"),
        ],
        goals=[
            Goal("100k leads across 200 reps ≤ 10 s", "route_s", "<=", 10, " s"),
            Goal("a month of demo leads: no rep above capacity", "month_rep_days_over_capacity", "==", 0,
                 sized=False),
            Goal("A-grade spread within the bound (2 leads)", "month_max_a_deviation", "<=", 2, sized=False),
        ],
        estimate_full_s=60,
        estimate_quick_s=20,
    ),
    Benchmark(
        name="report",
        title="CRM report",
        script="bench_report.py",
        full=["--customers", "1000000", "--interactions", "20"],
        quick=["--customers", "20000", "--interactions", "20"],
        shown=[
            Shown("total_s", "report s"),
            Shown("cpu_s", "CPU s"),
            Shown("peak_rss_gb", "peak GB", "{v:.2f}"),
            Shown("html_mb", "HTML MB", "{v:.2f}"),
        ],
        goals=[
            Goal("1M customers, 20M interactions, 2M orders: report ≤ 120 s", "total_s", "<=", 120, " s"),
            Goal("1M customers report peak RSS ≤ 6 GB", "peak_rss_gb", "<=", 6, " GB"),
        ],
        workdir_flag="--data",
        estimate_full_s=400,  # generating 20M interactions ~2 min + the report
        estimate_quick_s=40,
    ),
    Benchmark(
        name="soak",
        title="soak at 80% of peak",
        script="soak.py",
        full=["--duration", "600", "--window", "60"],
        quick=[
            "--duration",
            "30",
            "--window",
            "10",
            "--peak-seconds",
            "4",
            "--warmup",
            "3",
            "--customers",
            "1500",
            "--trees",
            "60",
            "--depth",
            "4",
        ],
        shown=[
            Shown("peak_rps", "peak req/s"),
            Shown("rate_rps", "soak req/s"),
            Shown("requests", "requests", "{v:,.0f}"),
            Shown("failed", "failed", "{v:,.0f}"),
            Shown("first_window_p99_ms", "first p99 ms"),
            Shown("max_window_p99_ms", "worst p99 ms"),
            Shown("rss_growth_pct", "RSS growth %", "{v:+.1f}"),
            Shown("generator_cpu_ms_per_request", "generator CPU ms/request", "{v:.3f}"),
        ],
        goals=[
            Goal("zero failed requests", "failed", "==", 0, sized=False),
            Goal("every window's p99 ≤ 2× the first's", "p99_ratio", "<=", 2, "×", sized=False),
            Goal("server RSS growth < 10%", "rss_growth_pct", "<", 10, " %", sized=False),
        ],
        workdir_flag="--workdir",
        estimate_full_s=700,  # training 3k customers ~1 min + peak 10 s + warm-up 10 s + 600 s
        estimate_quick_s=90,
        ok_codes=(0, 1),
    ),
]
BY_NAME = {b.name: b for b in BENCHMARKS}
if "--browser" not in BY_NAME["profile_page"].full and Path("/usr/bin/chromium").exists():
    BY_NAME["profile_page"].full.append("--browser")


# --------------------------------------------------------------------------------------------------------------
# machine facts
# --------------------------------------------------------------------------------------------------------------


def machine_facts() -> dict[str, Any]:
    """Cores, memory, OS, Python and package versions, git commit, wrk."""
    mem_gb = None
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_gb = round(int(line.split()[1]) / 1024**2, 1)
    except OSError:
        pass
    from importlib import metadata

    versions = {}
    for p in PACKAGES:
        try:
            versions[p] = metadata.version(p)
        except metadata.PackageNotFoundError:
            versions[p] = None
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=ROOT, capture_output=True, text=True
    )
    return {
        "cores": os.cpu_count(),
        "mem_total_gb": mem_gb,
        "platform": platform.platform(),
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": commit.stdout.strip() or None,
        "git_dirty": bool(dirty.stdout.strip()),
        "wrk": shutil.which("wrk"),
    }


def load_average() -> list[float]:
    """The 1, 5 and 15 minute load averages."""
    return [round(x, 2) for x in os.getloadavg()]


# --------------------------------------------------------------------------------------------------------------
# running one benchmark
# --------------------------------------------------------------------------------------------------------------


def _help(script: Path) -> str:
    out = subprocess.run([sys.executable, str(script), "--help"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    return out.stdout + out.stderr


def _numeric(figures: dict[str, Any]) -> Figures:
    """The figures that are numbers (bools and nested values dropped; NaN/inf kept as given)."""
    return {k: float(v) for k, v in figures.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def run_one(b: Benchmark, quick: bool, workroot: Path, logs: Path, rep: int, timeout: float) -> dict[str, Any]:
    """Run the script once; its figures, params, load averages, wall time and log paths."""
    script = BENCH / b.script
    args = list(b.quick if quick else b.full)
    helptext = _help(script)
    json_path = logs / f"{b.name}-{rep}.json"
    json_path.unlink(missing_ok=True)
    flag = "--json-out" if "--json-out" in helptext else (b.out_flag if b.out_flag in helptext else None)
    if flag is None and b.name == "batch" and "--out" in helptext:
        flag = "--out"
    if flag:
        args += [flag, str(json_path)]
    if b.workdir_flag and b.workdir_flag in helptext:
        wd = workroot / (b.workdir_name or b.name)
        wd.mkdir(parents=True, exist_ok=True)
        args += [b.workdir_flag, str(wd)]
    cmd = [sys.executable, str(script), *args]
    log_out, log_err = logs / f"{b.name}-{rep}.out.log", logs / f"{b.name}-{rep}.err.log"
    rec: dict[str, Any] = {
        "command": shlex.join([os.path.relpath(cmd[0], ROOT), *cmd[1:]]).replace(f"{ROOT}/", ""),
        "load_before": load_average(),
    }
    t0 = time.perf_counter()
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "BENTOML_DO_NOT_TRACK": "true"}
    with log_out.open("wb") as fo, log_err.open("wb") as fe:
        try:
            proc = subprocess.run(cmd, stdout=fo, stderr=fe, cwd=ROOT, env=env, timeout=timeout, start_new_session=True)
            rc: int | None = proc.returncode
        except subprocess.TimeoutExpired:
            rc = None
    rec.update(
        {
            "wall_s": round(time.perf_counter() - t0, 1),
            "load_after": load_average(),
            "rc": rc,
            "log": os.path.relpath(log_out, ROOT),
        }
    )
    stdout = log_out.read_text(encoding="utf-8", errors="replace")
    params: dict[str, Any] = {}
    figures: dict[str, Any] = {}
    try:
        obj = json.loads(json_path.read_text(encoding="utf-8")) if json_path.is_file() else None
        if isinstance(obj, dict) and isinstance(obj.get("figures"), dict):
            params, figures = obj.get("params", {}), obj["figures"]
        elif b.legacy is not None:
            params, figures = b.legacy(obj, stdout)
        elif obj is None and rc is not None:
            raise ValueError("no --json-out file")
    except (ValueError, KeyError, TypeError) as e:
        rec["error"] = f"could not read the results: {e}"
    if rc not in b.ok_codes:
        tail = log_err.read_text(encoding="utf-8", errors="replace").strip().splitlines()[-3:]
        rec["error"] = (f"timed out after {timeout:.0f} s" if rc is None else f"exit code {rc}") + (
            f": {' / '.join(tail)[-400:]}" if tail else ""
        )
    rec["params"] = params
    rec["figures"] = figures
    return rec


# --------------------------------------------------------------------------------------------------------------
# aggregation: medians, ratios, goals
# --------------------------------------------------------------------------------------------------------------


def _fmt_num(v: float) -> str:
    if math.isinf(v):
        return "∞"
    if abs(v) >= 100:
        return f"{v:,.0f}"
    if abs(v) >= 10:
        return f"{v:.1f}"
    return f"{v:.2f}"


def aggregate(name: str, repeats: list[dict[str, Any]], quick: bool) -> dict[str, Any]:
    """Median of each numeric figure over the repeats that gave it, the ratios and each goal's verdict."""
    b = BY_NAME.get(name)
    values: dict[str, list[float]] = {}
    for r in repeats:
        for k, v in _numeric(r.get("figures", {})).items():
            values.setdefault(k, []).append(v)
    median = {k: statistics.median(v) for k, v in values.items()}
    ratios: dict[str, dict[str, Any]] = {}
    for ratio in b.ratios if b else []:
        num, den = median.get(ratio.num), median.get(ratio.den)
        if num is not None and den:
            ratios[ratio.key] = {"text": ratio.text, "value": num / den}
    ours = [r["value"] for r in ratios.values()]
    for k, v in median.items():  # ratios the script computed itself, unless one of ours (or its inverse)
        if not k.startswith("ratio_") or k in ratios:
            continue
        if any(math.isclose(v, x, rel_tol=0.01) or math.isclose(v * x, 1.0, rel_tol=0.01) for x in ours):
            continue
        ratios[k] = {"text": k.removeprefix("ratio_").replace("_", " "), "value": v}
    goals = []
    for g in b.goals if b else []:
        value = ratios[g.key]["value"] if g.key in ratios else median.get(g.key)
        met = g.check(value)
        status = "not measured" if met is None else ("met" if met else "not met")
        if quick and g.sized and met is not None:
            status = "not assessed (quick sizes)"
        goals.append({"goal": g.text, "key": g.key, "value": value, "unit": g.unit, "met": met, "status": status})
    return {"median": median, "ratios": ratios, "goals": goals}


def summarise(result: dict[str, Any]) -> dict[str, Any]:
    """``result`` with the medians, ratios and goals of every benchmark recomputed from its repeats."""
    for name, br in result["benchmarks"].items():
        br.update(aggregate(name, br["repeats"], bool(result.get("quick"))))
    return result


# --------------------------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------------------------


def _value(v: float | None, unit: str) -> str:
    if v is None:
        return "—"
    if unit == "×":
        return f"{v:.2f}×"
    if float(v).is_integer():
        return f"{v:,.0f}{unit}"
    return f"{_fmt_num(v)}{unit}"


def _last_result_with(name: str, folder: Path = BENCH / "results") -> str | None:
    """The newest dated result JSON of ``bench/run.py`` in ``folder`` that holds benchmark ``name``."""
    for path in sorted(folder.glob("20*.json"), reverse=True):
        try:
            benchmarks = json.loads(path.read_text(encoding="utf-8")).get("benchmarks", {})
        except (OSError, ValueError):
            continue
        if isinstance(benchmarks, dict) and benchmarks.get(name, {}).get("repeats"):
            return os.path.relpath(path, ROOT)
    return None


def render_markdown(result: dict[str, Any]) -> str:
    """The generated part of docs/benchmarks.md: provenance, a figures table and a goals table."""
    m = result["machine"]
    pk = m.get("packages", {})
    when = result["date"].replace("T", " ")[:16]
    kind = "quick run (smoke-test sizes: the sized goals are not assessed)" if result.get("quick") else "full run"
    lines = [
        f"Generated by `{result['command']}` on {when} UTC, {kind}; "
        f"{result['repeat']} repeat(s) per benchmark, medians shown. Machine: {m.get('cores')} cores, "
        f"{m.get('mem_total_gb')} GB, Python {m.get('python')}, xgboost {pk.get('xgboost')}, mlflow "
        f"{pk.get('mlflow')}, bentoml {pk.get('bentoml')}; commit {m.get('git_commit')}"
        + (" (with local changes)" if m.get("git_dirty") else "")
        + f". Raw results: `{result.get('json_path', 'bench/results/')}`.",
        "",
        "| benchmark | figures (median) | ratios | load avg before → after | wall s |",
        "|---|---|---|---|---:|",
    ]
    for name, br in result["benchmarks"].items():
        b = BY_NAME.get(name)
        reps = br["repeats"]
        med = br["median"]
        shown = []
        for s in b.shown if b else []:
            if s.key in med:
                shown.append(f"{s.label} {s.fmt.format(v=med[s.key])}")
        figs = ", ".join(shown) or "—"
        errors = [r["error"] for r in reps if r.get("error")]
        if errors:
            figs += f" (**{len(errors)} of {len(reps)} run(s) failed**: {errors[0][:160]})"
        ratios = ", ".join(f"{r['text']} {r['value']:.2f}×" for r in br["ratios"].values()) or "—"
        loads = "; ".join(f"{r['load_before'][0]:.1f} → {r['load_after'][0]:.1f}" for r in reps)
        wall = statistics.median(r["wall_s"] for r in reps) if reps else 0
        title = b.title if b else name
        lines.append(f"| {name}: {title} | {figs} | {ratios} | {loads} | {wall:,.0f} |")
    lines += ["", "| benchmark | goal | measured | status |", "|---|---|---:|---|"]
    for name, br in result["benchmarks"].items():
        for g in br["goals"]:
            lines.append(f"| {name} | {g['goal']} | {_value(g['value'], g['unit'])} | {g['status']} |")
    missing = [b.name for b in BENCHMARKS if b.name not in result["benchmarks"]]
    if missing:
        earlier = [f"{n} (`{f}`)" if (f := _last_result_with(n)) else n for n in missing]
        lines += ["", f"Not measured in this run: {', '.join(earlier)}; their last figures are in those files."]
    lines.append("")
    lines.append("Commands of this run (each repeat the same):")
    lines.append("")
    for name, br in result["benchmarks"].items():
        if br["repeats"]:
            lines.append(f"- {name}: `{br['repeats'][0]['command'].replace(f'{ROOT}/', '')}`")
    return "\n".join(lines)


def replace_block(text: str, block: str) -> str:
    """``text`` with the part between the markers replaced by ``block`` (markers added before "## Model quality",
    or at the end, when absent)."""
    new = f"{BEGIN}\n{block.strip()}\n{END}"
    if BEGIN in text and END in text:
        head, _, rest = text.partition(BEGIN)
        _, _, tail = rest.partition(END)
        return head + new + tail
    anchor = "## Model quality"
    section = f"## Latest `bench/run.py` run (generated)\n\n{new}\n\n"
    if anchor in text:
        head, _, tail = text.partition(anchor)
        return head + section + anchor + tail
    return text.rstrip("\n") + "\n\n" + section


def write_doc(result: dict[str, Any], path: Path = DOC) -> None:
    """Regenerate the block of ``path`` from ``result``."""
    path.write_text(replace_block(path.read_text(encoding="utf-8"), render_markdown(result)), encoding="utf-8")


# --------------------------------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------------------------------


def ensure_wrk() -> None:
    """Install Debian's ``wrk`` (the serving benchmark's load generator) when it is missing and we can."""
    if shutil.which("wrk"):
        return
    if os.geteuid() == 0 and shutil.which("apt-get"):
        print("installing wrk (Debian package) for the serving benchmark", flush=True)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-qq"], check=False, env=env)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=False, env=env)
    if not shutil.which("wrk"):
        print("warning: wrk is not installed (apt-get install wrk); the serving benchmark needs it", flush=True)


def main(argv: list[str] | None = None) -> int:
    """Run the chosen benchmarks, write the JSON, print and (optionally) write the Markdown."""
    names = [b.name for b in BENCHMARKS]
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help=f"comma-separated subset of {','.join(names)}")
    ap.add_argument("--skip", help="comma-separated benchmarks to leave out")
    ap.add_argument("--repeat", type=int, default=1, help="runs of each benchmark (medians over them)")
    ap.add_argument("--quick", action="store_true", help="small sizes and short durations (a smoke test)")
    ap.add_argument("--out", type=Path, default=BENCH / "results", help="folder of the dated JSON results")
    ap.add_argument("--workdir", type=Path, help="work/cache folder of the scripts (default: a temporary one)")
    ap.add_argument(
        "--doc",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="regenerate the table in docs/benchmarks.md (default: after full runs only)",
    )
    ap.add_argument("--doc-path", type=Path, default=DOC, help=argparse.SUPPRESS)
    ap.add_argument("--timeout", type=float, help="seconds per benchmark run (default 15 min quick, 3 h full)")
    ap.add_argument("--report", type=Path, help="only render the Markdown of an existing result JSON")
    ap.add_argument("--estimate", action="store_true", help="print the expected duration of each benchmark")
    args = ap.parse_args(argv)

    chosen = [n.strip() for n in (args.only or ",".join(names)).split(",") if n.strip()]
    chosen = [n for n in chosen if n not in (args.skip or "").split(",")]
    unknown = [n for n in chosen if n not in BY_NAME]
    if unknown:
        ap.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(names)}")
    if args.estimate:
        total = 0.0
        for n in chosen:
            s = (BY_NAME[n].estimate_quick_s if args.quick else BY_NAME[n].estimate_full_s) * args.repeat
            total += s
            print(f"{n:<13} ~{s / 60:5.1f} min")
        print(f"{'total':<13} ~{total / 60:5.1f} min (on 2 quiet cores)")
        return 0
    if args.report:
        result = summarise(json.loads(args.report.read_text(encoding="utf-8")))
        print(render_markdown(result))
        if args.doc:
            write_doc(result, args.doc_path)
        return 0
    if "serving" in chosen:
        ensure_wrk()

    started = dt.datetime.now(dt.UTC)
    stamp = started.strftime("%Y-%m-%dT%H%M")
    args.out.mkdir(parents=True, exist_ok=True)
    json_path = args.out / f"{stamp}{'-quick' if args.quick else ''}.json"  # quick results are not kept in git
    logs = args.out / "logs" / json_path.stem
    logs.mkdir(parents=True, exist_ok=True)
    workroot = args.workdir or Path(tempfile.mkdtemp(prefix="crmscore-bench-run-"))
    workroot.mkdir(parents=True, exist_ok=True)
    timeout = args.timeout or (900 if args.quick else 3 * 3600)
    command = "bench/run.py " + shlex.join(argv if argv is not None else sys.argv[1:])
    result: dict[str, Any] = {
        "date": started.strftime("%Y-%m-%dT%H:%M:%S"),
        "command": command.strip(),
        "quick": args.quick,
        "repeat": args.repeat,
        "machine": machine_facts(),
        "json_path": os.path.relpath(json_path, ROOT),
        "benchmarks": {},
    }
    try:
        for name in chosen:
            b = BY_NAME[name]
            reps = []
            for rep in range(1, args.repeat + 1):
                print(f"== {name} ({rep}/{args.repeat}): {b.script} …", flush=True)
                rec = run_one(b, args.quick, workroot, logs, rep, timeout)
                reps.append(rec)
                status = rec.get("error") or "ok"
                print(
                    f"   {rec['wall_s']:.0f} s, load {rec['load_before'][0]} → {rec['load_after'][0]}: {status}",
                    flush=True,
                )
                result["benchmarks"][name] = {"title": b.title, "repeats": reps, **aggregate(name, reps, args.quick)}
                json_path.write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    finally:
        if args.workdir is None:
            shutil.rmtree(workroot, ignore_errors=True)
    result["finished"] = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S")
    json_path.write_text(json.dumps(result, indent=1, ensure_ascii=False, default=str), encoding="utf-8")
    md = render_markdown(result)
    print("\n" + md + "\n")
    print(f"results in {os.path.relpath(json_path, ROOT)}, logs in {os.path.relpath(logs, ROOT)}")
    if args.doc if args.doc is not None else not args.quick:
        write_doc(result, args.doc_path)
        print(f"table regenerated in {os.path.relpath(args.doc_path, ROOT)}")
    failed = [n for n, br in result["benchmarks"].items() if any(r.get("error") for r in br["repeats"])]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
