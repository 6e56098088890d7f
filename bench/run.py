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
from pathlib import Path
from typing import Any

if __package__:  # imported as bench.run (tests/unit/test_bench_report.py)
    from bench.catalogue import BENCHMARKS, BY_NAME, Benchmark
else:  # run as a script: bench/ itself is on sys.path
    from catalogue import BENCHMARKS, BY_NAME, Benchmark

ROOT = Path(__file__).resolve().parents[1]
BENCH = ROOT / "bench"
DOC = ROOT / "docs" / "benchmarks.md"
BEGIN, END = "<!-- bench:begin -->", "<!-- bench:end -->"
PACKAGES = ("xgboost", "mlflow", "bentoml", "scikit-learn", "pandas", "numpy", "pyarrow", "evidently")

Figures = dict[str, float]


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
