"""Soak benchmark: the scoring service at 80% of its measured peak for a fixed time, one lead per request.

    .venv/bin/python bench/soak.py                                # 600 s, 60 s windows, a 400-tree model
    .venv/bin/python bench/soak.py --duration 60 --window 20 --trees 60 --depth 4 --json-out soak.json

Starts ``crmscore serve`` on a free loopback port with a freshly trained registry (like bench_serving.py),
then

1. measures the peak throughput for ``--peak-seconds`` (closed loop, 16 keep-alive connections, each sending
   its next request as soon as the previous answer is in);
2. drives an open-loop constant rate of ``--fraction`` × peak (default 0.8) for ``--duration`` seconds: request
   *i* is due at ``t0 + i / rate`` whatever the server does, and its latency is counted from that due time, so
   a server falling behind shows up as latency instead of a lower rate (no coordinated omission);
3. reports per window: requests, failed requests (non-200, connection errors, timeouts), p50/p99/max latency,
   and the resident memory of the server's whole process tree (/proc) after a warm-up and at the end.

Pass: zero failed requests, every window's p99 ≤ 2 × the first window's p99, RSS growth < 10%.

The load generator is written here (asyncio streams, one pre-encoded HTTP/1.1 request reused), because
Debian's ``wrk`` has no constant-rate mode and only reports whole-run figures; it costs a few tens of µs of
CPU per request and runs on the same machine, so the peak it measures already includes its own cost and
80% of that peak is a rate it can sustain. :func:`run_soak` and :func:`measure_peak` are used by
``tests/integration/test_soak.py`` too, which asserts only the functional criteria (no failed request, RSS
growth < 10%); the p99 criterion is judged here only (tests measure behaviour, benchmarks measure time).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
API_KEY = "bench-key"
#: A request slower than this counts as failed.
TIMEOUT_S = 30.0
#: Most connections the open-loop generator opens when every one is busy (requests wait for one beyond).
MAX_CONNECTIONS = 64


# --------------------------------------------------------------------------------------------------------------
# the load generator
# --------------------------------------------------------------------------------------------------------------


class _Target:
    """Where and what to send: one pre-encoded HTTP/1.1 keep-alive POST."""

    def __init__(self, url: str, headers: dict[str, str], body: bytes) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        path = parts.path or "/"
        if parts.query:
            path += f"?{parts.query}"
        lines = [f"POST {path} HTTP/1.1", f"Host: {self.host}:{self.port}", f"Content-Length: {len(body)}"]
        names = {k.lower() for k in headers}
        if "content-type" not in names:
            lines.append("Content-Type: application/json")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class _Conn:
    """One keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def open(cls, target: _Target) -> _Conn:
        reader, writer = await asyncio.open_connection(target.host, target.port)
        sock = writer.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return cls(reader, writer)

    async def exchange(self, request: bytes) -> tuple[int, bool]:
        """Send the request, read the whole answer; (status, keep the connection open?)."""
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        length, chunked, keep = 0, False, True
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name, value = name.strip().lower(), value.strip().lower()
            if name == "content-length":
                length = int(value)
            elif name == "transfer-encoding" and "chunked" in value:
                chunked = True
            elif name == "connection" and value == "close":
                keep = False
        if chunked:
            while True:
                size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
                await self.reader.readexactly(size + 2)
                if size == 0:
                    break
        elif length:
            await self.reader.readexactly(length)
        return status, keep

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


class _Pool:
    """Idle connections, used in turn (FIFO, so none sits idle long enough for the server's keep-alive timeout);
    opens new ones while fewer than ``limit`` exist, else waits for one. Failures are counted by kind."""

    def __init__(self, target: _Target, limit: int) -> None:
        self.target = target
        self.limit = limit
        self.idle: asyncio.Queue[_Conn] = asyncio.Queue()
        self.count = 0
        self.failures: dict[str, int] = {}
        self.reconnects = 0

    async def fill(self, n: int) -> None:
        """Open ``n`` connections up front (so connecting is not measured)."""
        conns = await asyncio.gather(*(_Conn.open(self.target) for _ in range(n)))
        self.count += len(conns)
        for c in conns:
            self.idle.put_nowait(c)

    async def _get(self) -> _Conn:
        while True:
            if self.idle.empty() and self.count < self.limit:
                self.count += 1
                try:
                    return await _Conn.open(self.target)
                except OSError:
                    self.count -= 1
                    raise
            conn = await self.idle.get()
            if not conn.reader.at_eof():
                return conn
            conn.close()  # closed by the server while idle: not a failed request
            self.count -= 1
            self.reconnects += 1

    def _fail(self, kind: str) -> bool:
        self.failures[kind] = self.failures.get(kind, 0) + 1
        return False

    async def request(self) -> bool:
        """One request on an idle (or new) connection; True when answered 200."""
        status = await self.request_status()
        return status == 200 or (status is not None and self._fail(f"HTTP {status}"))

    async def request_status(self, sent: list[float] | None = None) -> int | None:
        """One request on an idle (or new) connection; its HTTP status, None when it failed (counted by kind).
        ``sent``, if given, gets the loop time at which the request had its connection and was written (what
        the time from its due time to then, the generator's own queue, is measured from)."""
        try:
            conn = await self._get()
        except OSError as e:
            self._fail(f"connect: {type(e).__name__}")
            return None
        if sent is not None:
            sent.append(asyncio.get_running_loop().time())
        try:
            status, keep = await asyncio.wait_for(conn.exchange(self.target.request), TIMEOUT_S)
        except (TimeoutError, OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError) as e:
            conn.close()
            self.count -= 1
            self._fail(type(e).__name__)
            return None
        if keep:
            self.idle.put_nowait(conn)
        else:
            conn.close()
            self.count -= 1
        return status

    def close(self) -> None:
        """Close every idle connection."""
        while not self.idle.empty():
            self.idle.get_nowait().close()


async def _closed_loop(target: _Target, seconds: float, connections: int) -> tuple[int, int, float]:
    pool = _Pool(target, connections)
    await pool.fill(connections)
    ok = failed = 0
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    end = t0 + seconds

    async def worker() -> None:
        nonlocal ok, failed
        while loop.time() < end:
            if await pool.request():
                ok += 1
            else:
                failed += 1

    await asyncio.gather(*(worker() for _ in range(connections)))
    elapsed = loop.time() - t0
    pool.close()
    return ok, failed, elapsed


def _run_async(coro: Any) -> Any:
    """``asyncio.run(coro)``, in a thread of its own when this thread already runs an event loop (a caller
    inside a test runner or a notebook that left one running)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(coro)
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


def measure_peak(
    url: str, headers: dict[str, str], body: bytes | dict[str, Any], seconds: float = 5.0, connections: int = 16
) -> float:
    """Closed-loop peak throughput (successful requests per second) with ``connections`` connections."""
    target = _Target(url, headers, _encode(body))
    ok, _failed, elapsed = _run_async(_closed_loop(target, seconds, connections))
    return ok / elapsed if elapsed > 0 else 0.0


async def _open_loop(
    target: _Target, rate: float, seconds: float, connections: int
) -> tuple[list[tuple[float, float, bool]], dict[str, int]]:
    """(due time from start, latency from due time, ok) of every request of a constant-rate run, and the failures
    by kind."""
    pool = _Pool(target, max(MAX_CONNECTIONS, connections))
    await pool.fill(connections)
    loop = asyncio.get_running_loop()
    out: list[tuple[float, float, bool]] = []
    n = int(rate * seconds)
    t0 = loop.time() + 0.05

    async def one(due: float) -> None:
        ok = await pool.request()
        out.append((due - t0, loop.time() - due, ok))

    tasks: set[asyncio.Task[None]] = set()
    for i in range(n):
        due = t0 + i / rate
        delay = due - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(due))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.wait(set(tasks), timeout=TIMEOUT_S + 5)
    for task in list(tasks):  # still unanswered: failed
        task.cancel()
    pool.close()
    done = len(out)
    if done < n:
        out.extend((i / rate, math.inf, False) for i in range(done, n))
        pool.failures["unanswered"] = pool.failures.get("unanswered", 0) + n - done
    return out, pool.failures


# --------------------------------------------------------------------------------------------------------------
# results
# --------------------------------------------------------------------------------------------------------------


@dataclass
class Window:
    """Figures of one window of the soak (requests grouped by their due time)."""

    start_s: float
    requests: int
    failed: int
    p50_ms: float
    p99_ms: float
    max_ms: float


@dataclass
class SoakResult:
    """What a soak run measured and whether it passed."""

    rate: float
    duration_s: float
    window_s: float
    requests: int
    failed: int
    windows: list[Window]
    rss_start_mb: float | None = None
    rss_end_mb: float | None = None
    max_p99_ratio: float = 2.0
    max_rss_growth: float = 0.10
    elapsed_s: float = 0.0
    failure_kinds: dict[str, int] = field(default_factory=dict)
    generator_cpu_ms_per_request: float = math.nan

    @property
    def p99_ratio(self) -> float:
        """Largest window p99 over the first window's p99."""
        if not self.windows or self.windows[0].p99_ms <= 0:
            return math.inf
        return max(w.p99_ms for w in self.windows) / self.windows[0].p99_ms

    @property
    def rss_growth(self) -> float | None:
        """(end − start) / start resident memory of the server's process tree; None if not measured."""
        if not self.rss_start_mb or self.rss_end_mb is None:
            return None
        return (self.rss_end_mb - self.rss_start_mb) / self.rss_start_mb

    def criteria(self) -> dict[str, bool]:
        """Each pass criterion and whether it is met (RSS is met when not measured only if no pid was given)."""
        growth = self.rss_growth
        return {
            "zero failed requests": self.failed == 0,
            f"every window's p99 ≤ {self.max_p99_ratio:g}× the first's": self.p99_ratio <= self.max_p99_ratio,
            f"RSS growth < {self.max_rss_growth:.0%}": growth is None or growth < self.max_rss_growth,
        }

    @property
    def passed(self) -> bool:
        """All criteria met."""
        return all(self.criteria().values())

    def figures(self) -> dict[str, float]:
        """Flat numeric figures (the bench JSON contract)."""
        out: dict[str, float] = {
            "rate_rps": self.rate,
            "requests": self.requests,
            "failed": self.failed,
            "first_window_p99_ms": self.windows[0].p99_ms if self.windows else math.nan,
            "max_window_p99_ms": max((w.p99_ms for w in self.windows), default=math.nan),
            "p99_ratio": self.p99_ratio,
            "passed": float(self.passed),
            "generator_cpu_ms_per_request": self.generator_cpu_ms_per_request,
        }
        if self.rss_start_mb is not None:
            out["rss_start_mb"] = self.rss_start_mb
        if self.rss_end_mb is not None:
            out["rss_end_mb"] = self.rss_end_mb
        if self.rss_growth is not None:
            out["rss_growth_pct"] = self.rss_growth * 100
        return out

    def table(self) -> str:
        """Markdown table of the windows and the verdict."""
        lines = ["| window | requests | failed | p50 ms | p99 ms | max ms |", "|---|---:|---:|---:|---:|---:|"]
        for w in self.windows:
            lines.append(
                f"| {w.start_s:.0f}–{w.start_s + self.window_s:.0f} s | {w.requests} | {w.failed} | "
                f"{w.p50_ms:.1f} | {w.p99_ms:.1f} | {w.max_ms:.1f} |"
            )
        rss = (
            f"RSS {self.rss_start_mb:.0f} → {self.rss_end_mb:.0f} MB ({self.rss_growth:+.1%})"
            if self.rss_growth is not None
            else "RSS not measured"
        )
        lines += [
            "",
            f"{self.rate:.1f} req/s for {self.duration_s:.0f} s: {self.requests} requests, {self.failed} "
            f"failed; p99 ratio {self.p99_ratio:.2f}; {rss}; load generator "
            f"{self.generator_cpu_ms_per_request:.3f} ms CPU/request",
        ]
        if self.failure_kinds:
            lines.append("failures by kind: " + ", ".join(f"{k} {v}" for k, v in self.failure_kinds.items()))
        lines += [f"- {name}: {'met' if ok else 'NOT met'}" for name, ok in self.criteria().items()]
        return "\n".join(lines)


def _percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of sorted values (q in 0–100)."""
    if not sorted_values:
        return math.nan
    k = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return sorted_values[k]


def windows_of(samples: list[tuple[float, float, bool]], duration: float, window: float) -> list[Window]:
    """Group (due, latency, ok) samples into windows of ``window`` seconds by due time (a last window shorter than
    half a window is merged into the one before)."""
    n = max(1, int(duration // window))
    if duration - n * window >= window / 2:
        n += 1
    buckets: list[list[tuple[float, bool]]] = [[] for _ in range(n)]
    for due, latency, ok in samples:
        buckets[min(n - 1, int(due // window))].append((latency, ok))
    out = []
    for i, bucket in enumerate(buckets):
        lat = sorted(x[0] * 1000 for x in bucket)
        out.append(
            Window(
                start_s=i * window,
                requests=len(bucket),
                failed=sum(not ok for _, ok in bucket),
                p50_ms=_percentile(lat, 50),
                p99_ms=_percentile(lat, 99),
                max_ms=lat[-1] if lat else math.nan,
            )
        )
    return out


# --------------------------------------------------------------------------------------------------------------
# memory of the server's process tree
# --------------------------------------------------------------------------------------------------------------


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its descendants (from /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="utf-8") as fh:
                stat = fh.read()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_rss_mb(pid: int) -> float:
    """Sum of the resident memory (VmRSS) of ``pid`` and its descendants, in MB."""
    total_kb = 0
    for p in process_tree(pid):
        try:
            with open(f"/proc/{p}/status", encoding="utf-8") as fh:
                for line in fh:
                    if line.startswith("VmRSS:"):
                        total_kb += int(line.split()[1])
                        break
        except OSError:
            continue
    return total_kb / 1024


# --------------------------------------------------------------------------------------------------------------
# the soak
# --------------------------------------------------------------------------------------------------------------


def _encode(body: bytes | str | dict[str, Any]) -> bytes:
    if isinstance(body, bytes):
        return body
    if isinstance(body, str):
        return body.encode("utf-8")
    return json.dumps(body).encode("utf-8")


def run_soak(
    url: str,
    headers: dict[str, str],
    body: bytes | str | dict[str, Any],
    rate: float,
    duration: float,
    window: float,
    *,
    server_pid: int | None = None,
    warmup: float = 5.0,
    connections: int = 16,
    max_p99_ratio: float = 2.0,
    max_rss_growth: float = 0.10,
) -> SoakResult:
    """Send ``body`` to ``url`` at a constant ``rate`` (requests/s, open loop) for ``duration`` seconds.

    A ``warmup`` seconds run at the same rate comes first and is not counted; the server's process-tree RSS
    (``server_pid``, optional) is read after it and at the end. Latency is measured from each request's due time.
    """
    target = _Target(url, headers, _encode(body))
    t_start = time.perf_counter()
    if warmup > 0:
        _run_async(_open_loop(target, rate, warmup, connections))
    rss_start = tree_rss_mb(server_pid) if server_pid else None
    cpu0 = time.process_time()
    samples, failures = _run_async(_open_loop(target, rate, duration, connections))
    cpu_ms = (time.process_time() - cpu0) * 1000 / max(len(samples), 1)
    rss_end = tree_rss_mb(server_pid) if server_pid else None
    wins = windows_of(samples, duration, window)
    return SoakResult(
        rate=rate,
        duration_s=duration,
        window_s=window,
        requests=len(samples),
        failed=sum(not ok for _, _, ok in samples),
        windows=wins,
        rss_start_mb=rss_start,
        rss_end_mb=rss_end,
        max_p99_ratio=max_p99_ratio,
        max_rss_growth=max_rss_growth,
        elapsed_s=time.perf_counter() - t_start,
        failure_kinds=failures,
        generator_cpu_ms_per_request=cpu_ms,
    )


# --------------------------------------------------------------------------------------------------------------
# standalone: a trained registry and a real server
# --------------------------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_registry(workdir: Path, customers: int, trees: int, depth: int) -> tuple[str, Path]:
    """Demo data and a lead model (``trees`` × depth ``depth``) in a SQLite registry under ``workdir``."""
    sys.path.insert(0, str(ROOT))
    from features.config import LabelConfig
    from features.synth import generate_crm_data, write_crm_data
    from training.config import TrainConfig, XGBSearch
    from training.train import train_crm

    data = workdir / "data"
    uri = f"sqlite:///{workdir / 'mlflow.db'}"
    if (workdir / "trained").exists():
        return uri, data
    write_crm_data(generate_crm_data(customers, 365, 7), data)
    os.environ["MLFLOW_TRACKING_URI"] = os.environ["MLFLOW_REGISTRY_URI"] = uri
    os.environ.setdefault("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
    cwd = os.getcwd()
    os.chdir(workdir)
    try:
        search = XGBSearch(
            n_trials=1,
            n_estimators=[trees],
            max_depth=[depth],
            learning_rate=[0.06],
            subsample=[0.8],
            colsample_bytree=[0.8],
            min_child_weight=[5.0],
        )
        cfg = TrainConfig(
            task="lead",
            candidates=["xgboost"],
            xgb_search=search,
            labels=LabelConfig(n_cutoffs=3, horizon_days=60, churn_lookback_days=365),
        )
        train_crm(data, cfg)
    finally:
        os.chdir(cwd)
    (workdir / "trained").write_text("ok")
    return uri, data


def lead_body(data: Path) -> dict[str, Any]:
    """A one-lead request (precomputed features of the first customer at the last order date, reasons on)."""
    sys.path.insert(0, str(ROOT))
    from features.build import build_features
    from features.io import load_tables

    tables = load_tables(data)
    feats = build_features(tables, tables["orders"]["ts"].max()).reset_index()
    row = json.loads(feats.head(1).to_json(orient="records"))[0]
    cid = str(row.pop("customer_id"))
    return {"leads": [{"customer_id": cid, "features": row}]}


@contextlib.contextmanager
def serve(
    uri: str,
    workdir: Path,
    workers: int | None = None,
    extra_env: dict[str, str] | None = None,
    extra_args: tuple[str, ...] = (),
) -> Any:
    """``crmscore serve`` on a free loopback port; yields (url, process) once /readyz answers 200. Stopped by its
    process group. Also used by bench_profile_page.py (with ``--data`` and records off)."""
    port = _free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_REGISTRY_URI": uri,
        "CRMSCORE_API_KEYS": API_KEY,
        "CRMSCORE_HOME": str(workdir / "home"),
        "BENTOML_HOME": str(workdir / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "CRMSCORE_PIN_MODELS": "1",
        "OMP_NUM_THREADS": "1",
    }
    env.update(extra_env or {})
    env.pop("CRMSCORE_API_KEYS_FILE", None)
    log = workdir / "server.log"
    argv = [str(BIN / "crmscore"), "serve", "--port", str(port), "--host", "127.0.0.1", *extra_args]
    if workers is not None:
        argv += ["--workers", str(workers)]
    proc = subprocess.Popen(
        argv, env=env, cwd=workdir, stdout=log.open("wb"), stderr=subprocess.STDOUT, start_new_session=True
    )
    url = f"http://127.0.0.1:{port}"
    try:
        import httpx

        deadline = time.monotonic() + 300
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"server exited ({proc.returncode}); see {log}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise SystemExit(f"server not ready after 300 s; see {log}")
            time.sleep(0.25)
        yield url, proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def main(argv: list[str] | None = None) -> int:
    """Train, serve, measure the peak, soak at a fraction of it; print the table; exit 1 if a criterion fails."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--duration", type=float, default=600, help="seconds of the constant-rate run")
    ap.add_argument("--window", type=float, default=60, help="seconds per window")
    ap.add_argument("--peak-seconds", type=float, default=10, help="seconds of the closed-loop peak measurement")
    ap.add_argument("--fraction", type=float, default=0.8, help="soak rate as a fraction of the peak")
    ap.add_argument("--rate", type=float, help="soak at this rate (requests/s) instead of measuring the peak")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--warmup", type=float, default=10, help="seconds at the soak rate before the RSS baseline")
    ap.add_argument("--workers", type=int, default=2, help="server worker processes")
    ap.add_argument("--customers", type=int, default=3000)
    ap.add_argument("--trees", type=int, default=400)
    ap.add_argument("--depth", type=int, default=6)
    ap.add_argument("--no-reasons", action="store_true", help="requests without reasons")
    ap.add_argument("--workdir", type=Path, help="keep data, registry and server log here (reused if trained)")
    ap.add_argument("--json-out", type=Path, help="write {benchmark, params, figures} JSON here")
    args = ap.parse_args(argv)

    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="crmscore-soak-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"model: {args.trees} trees × depth {args.depth} on {args.customers:,} customers in {workdir}", flush=True)
    uri, data = make_registry(workdir, args.customers, args.trees, args.depth)
    body = lead_body(data)
    if args.no_reasons:
        body["reasons"] = False
    headers = {"Authorization": f"Bearer {API_KEY}"}
    with serve(uri, workdir, args.workers) as (url, proc):
        endpoint = f"{url}/score_leads"
        peak = None
        if args.rate:
            rate = args.rate
        else:
            peak = measure_peak(endpoint, headers, body, args.peak_seconds, args.connections)
            rate = args.fraction * peak
            print(
                f"peak {peak:.1f} req/s (closed loop, {args.connections} connections, {args.peak_seconds:g} s) → "
                f"soak at {rate:.1f} req/s",
                flush=True,
            )
        result = run_soak(
            endpoint,
            headers,
            body,
            rate,
            args.duration,
            args.window,
            server_pid=proc.pid,
            warmup=args.warmup,
            connections=args.connections,
        )
    print(result.table(), flush=True)
    if args.json_out:
        figures = result.figures()
        if peak is not None:
            figures["peak_rps"] = peak
        params = {
            "duration_s": args.duration,
            "window_s": args.window,
            "fraction": args.fraction,
            "connections": args.connections,
            "workers": args.workers,
            "trees": args.trees,
            "depth": args.depth,
            "reasons": not args.no_reasons,
            "generator": "asyncio (bench/soak.py)",
        }
        out = {
            "benchmark": "soak",
            "params": params,
            "figures": figures,
            "windows": [asdict(w) for w in result.windows],
            "criteria": result.criteria(),
            "failure_kinds": result.failure_kinds,
        }
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        args.json_out.write_text(json.dumps(out, indent=1, default=str), encoding="utf-8")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
