"""The benchmarks ``bench/run.py`` knows: how to call each script at the goals' sizes and in a ``--quick`` run, which
figures its table shows, the ratios between contenders and each issue's goals (with the figure that judges it).

Add a benchmark here (a :class:`Benchmark` in :data:`BENCHMARKS`); ``run.py`` runs, aggregates and renders them.
"""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


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
