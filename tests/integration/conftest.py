"""Integration fixtures of the scoring service: a small trained registry and a real server per module.

``crm_registry`` (session, in ``tests/conftest.py``: the browser tests build on it too) generates ~1,500 random
customers, writes them as a data dir and trains ``lead_scoring`` and ``churn_risk`` (one small XGBoost each) into
a SQLite MLflow store. The tables are random, so the models have no real signal: enough to serve.
:func:`running_server` starts ``crmscore serve`` on a free port as a subprocess pointed at a registry and stops
it by its process group.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

# re-exported for the integration tests; the session's crm_registry fixture lives in tests/conftest.py (the
# browser tests use it too): it must not be imported here, or pytest would train a second one
from tests.conftest import Registry, copy_registry, keep_mlflow_globals  # noqa: F401

API_KEYS = ("test-key-1", "test-key-2")


@dataclass
class Server:
    """A running service."""

    url: str
    home: Path
    log: Path
    proc: subprocess.Popen

    @property
    def headers(self) -> dict[str, str]:
        """Valid auth headers."""
        return {"Authorization": f"Bearer {API_KEYS[0]}"}

    def log_text(self) -> str:
        """What the server wrote so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")


@pytest.fixture()
def isolated_mlflow(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """``monkeypatch`` that also restores MLflow's global URIs and active experiment after the test."""
    keep_mlflow_globals(monkeypatch)
    return monkeypatch


def stop_server(proc: subprocess.Popen) -> None:
    """SIGTERM the server's process group, SIGKILL it if it has not exited within 30 s."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(10)


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _server_argv(port: int) -> list[str]:
    exe = Path(sys.executable).parent / "crmscore"
    if exe.exists():
        return [str(exe), "serve", "--port", str(port), "--host", "127.0.0.1"]
    return [sys.executable, "-m", "bentoml", "serve", "serving.http.service:CRMScoring", "--port", str(port),
            "--host", "127.0.0.1"]


@contextlib.contextmanager
def running_server(
    reg: Registry,
    workdir: Path,
    env: dict[str, str] | None = None,
    timeout: float = 300,
    ready_path: str = "/readyz",
    argv: list[str] | None = None,
) -> Iterator[Server]:
    """``crmscore serve`` on a free port with the registry ``reg``; stopped (process group) on exit.

    Waits until ``ready_path`` answers 200 (``/livez`` for a server that is expected not to become ready);
    ``argv`` replaces the command (``{port}`` in it is replaced by the port), e.g. ``bentoml serve <bento>``.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    home = workdir / "home"
    full_env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": reg.uri,
        "MLFLOW_REGISTRY_URI": reg.uri,
        "CRMSCORE_API_KEYS": ",".join(API_KEYS),
        "CRMSCORE_HOME": str(home),
        "BENTOML_HOME": str(workdir / "bentoml"),
        "CRMSCORE_RECORDS_FLUSH_SECONDS": "0.3",
        # a neighbour on the shared test machine can stall the cores for a second; load shedding on event-loop
        # lag would then answer 503s in tests about something else. test_overload.py turns it on.
        "CRMSCORE_MAX_LOOP_LAG_SECONDS": "none",
        # likewise a request queued for a turn (more than max_concurrency at once, e.g. the soak's connections)
        # is not refused after the shipped 5 s when such a stall holds the worker
        "CRMSCORE_QUEUE_TIMEOUT_SECONDS": "120",
        "BENTOML_DO_NOT_TRACK": "true",
        **(env or {}),
    }
    full_env.pop("CRMSCORE_API_KEYS_FILE", None)
    log = workdir / "server.log"
    cmd = _server_argv(port) if argv is None else [a.replace("{port}", str(port)) for a in argv]
    proc = subprocess.Popen(cmd, env=full_env, cwd=str(workdir), stdout=log.open("wb"),
                            stderr=subprocess.STDOUT, start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", home, log, proc)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_text()[-3000:]}")
            try:
                if httpx.get(f"{server.url}{ready_path}", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready after {timeout}s:\n{server.log_text()[-3000:]}")
            time.sleep(0.25)
        yield server
    finally:
        stop_server(proc)


def lead_features(reg: Registry, as_of: str, n: int = 5) -> tuple[list[dict], dict]:
    """Feature rows (JSON-ready) of ``n`` customers from the batch builder, and the tables they came from."""
    import json

    from features.build import build_features
    from features.io import load_tables

    tables = load_tables(reg.data)
    feats = build_features(tables, as_of)
    rows = json.loads(feats.head(n).reset_index().to_json(orient="records"))
    return rows, tables


#: Limits of :func:`limits_server`: small, so hostile-input tests stay cheap.
LIMITS_MAX_BATCH = 1000
LIMITS_MAX_BODY_MB = 1.0


@pytest.fixture(scope="session")
def limits_server(crm_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One pinned server shared by the forecast-endpoint, hostile-input, schemathesis, security, service-HTTP and
    soak modules, with small limits (``max_batch`` 1,000 leads, ``max_body_mb`` 1)."""
    env = {
        "CRMSCORE_PIN_MODELS": "1",
        "CRMSCORE_MAX_BATCH": str(LIMITS_MAX_BATCH),
        "CRMSCORE_MAX_BODY_MB": str(LIMITS_MAX_BODY_MB),
    }
    with running_server(crm_registry, tmp_path_factory.mktemp("limits_svc"), env) as s:
        yield s


# ------------------------------------------------------------------------------------------------------ Bento
@dataclass
class BuiltBento:
    """A Bento built once by ``crmscore bento build --json`` from the session registry's champions."""

    bentoml_home: Path
    tag: str
    models: list[str]


@pytest.fixture(scope="session")
def built_bento(crm_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> BuiltBento:
    """``crmscore bento build --json`` (a subprocess) with ``crm_registry``'s champions, once for the session, into
    a ``BENTOML_HOME`` of its own: the fault tests serve it with a dead registry, the service tests load it with
    none. Users treat the store as read-only (``bentoml serve``/``bentoml.load``)."""
    import json

    workdir = tmp_path_factory.mktemp("bento")
    env = {
        **os.environ,
        "BENTOML_HOME": str(workdir / "bentoml"),
        "MLFLOW_TRACKING_URI": crm_registry.uri,
        "MLFLOW_REGISTRY_URI": crm_registry.uri,
        "BENTOML_DO_NOT_TRACK": "true",
    }
    root = Path(__file__).resolve().parents[2]
    crmscore = str(Path(sys.executable).parent / "crmscore")
    build = subprocess.run(
        [crmscore, "bento", "build", "--bentofile", str(root / "bentofile.yaml"), "--json"],
        env=env, cwd=str(workdir), capture_output=True, text=True, timeout=300,
    )
    assert build.returncode == 0, (build.stdout + build.stderr)[-3000:]
    built = json.loads(build.stdout)  # --json: one object
    return BuiltBento(workdir / "bentoml", built["bento"], list(built["models"]))


# ------------------------------------------------------------------------------------------------------ Spark
def java_missing() -> bool:
    """True when no ``java`` is on PATH or under JAVA_HOME."""
    home = os.environ.get("JAVA_HOME")
    return not (shutil.which("java") or (home and (Path(home) / "bin" / "java").exists()))


def skip_without_spark() -> None:
    """Skip the test, with the reason, when pyspark or a Java runtime is missing."""
    import importlib.util

    if importlib.util.find_spec("pyspark") is None:
        pytest.skip("pyspark is not installed (pip install 'crm-scoring[spark]')")
    if java_missing():
        pytest.skip("no Java runtime on PATH or JAVA_HOME: the Spark engine needs Java 17+")


@pytest.fixture(scope="session")
def spark() -> Iterator[Any]:
    """One Spark session on ``local[2]`` for every Spark test of the session (a JVM and its Python workers start
    once, not once per module): the tests' feature and summary jobs run on it, and the engines the tests call
    (``score_batch_spark``, ``crmscore ... --engine spark``) reuse the active session as they reuse a CRM
    team's, and leave it running. Skips when pyspark or Java is missing."""
    skip_without_spark()
    from features.engines.spark_session import spark_session

    session = spark_session("local[2]", "crmscore-tests")
    yield session
    session.stop()


# --------------------------------------------------------------------------------------------- real data
ONLINE_RETAIL = "online_retail/online_retail_2010-2011.parquet"


@pytest.fixture(scope="session")
def online_retail_ingested(shared_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    """UCI Online Retail (541,909 invoice lines) ingested once with ``configs/mapping.online_retail.yaml`` (orders
    and order lines): the output folder and the ``IngestSummary``, shared read-only by the modules that check
    the ingest and use its tables (skips when ../shared/data is absent)."""
    from features.ingest import ingest
    from tests.conftest import ROOT, shared_file

    src = shared_file(shared_data, ONLINE_RETAIL)
    out = tmp_path_factory.mktemp("online_retail")
    summary = ingest(str(src), out, mapping=ROOT / "configs" / "mapping.online_retail.yaml")
    return out, summary


# ------------------------------------------------------------------------------------------------ full disk
@pytest.fixture()
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A real 4 MB tmpfs mounted at ``tmp_path/tmpfs`` (unmounted afterwards), for full-disk tests.

    Mounting needs root (or CAP_SYS_ADMIN); elsewhere the test is skipped and says why.
    """
    where = tmp_path / "tmpfs"
    where.mkdir()
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(where)], capture_output=True,
                          text=True, check=False)
    if done.returncode != 0:
        why = (done.stderr or done.stdout).strip() or f"exit code {done.returncode}"
        pytest.skip(f"cannot mount a tmpfs for the full-disk test (needs root or CAP_SYS_ADMIN): {why}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True, check=False)


def fill_disk(where: Path) -> Path:
    """Write one file in ``where`` until its file system is full (ENOSPC); returns the file."""
    import errno

    filler = where / "filler.bin"
    block = b"\0" * 65536
    with open(filler, "wb") as f:
        try:
            while True:
                f.write(block)
                f.flush()
        except OSError as e:
            assert e.errno == errno.ENOSPC, e
    return filler
