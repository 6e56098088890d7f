"""Fixtures of the browser tests: the session's demo CRM data (``crm_registry``), a copy of its registry with lead,
churn, segment and cross_sell champions, the scoring service started with ``crmscore serve --data DIR``, and
headless Chromium driven by Playwright.

Chromium is Debian's ``/usr/bin/chromium``; when it is missing the set-up installs it with apt-get (as root)
or skips the tests with the reason. Screenshots go to ``test-artifacts/`` at the project root.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import Registry, copy_registry
from tests.integration.conftest import API_KEYS, free_port, keep_mlflow_globals, stop_server

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@dataclass
class ProfileServer:
    """A running service with the profile page, and what it was started from."""

    url: str
    data: Path
    log: Path
    versions: dict[str, str]

    @property
    def headers(self) -> dict[str, str]:
        """Valid auth headers."""
        return {"Authorization": f"Bearer {API_KEYS[0]}"}

    def log_text(self) -> str:
        """What the server wrote so far."""
        return self.log.read_text(encoding="utf-8", errors="replace")


def _install_chromium() -> str | None:
    """Install Debian's chromium (and a CJK font for readable screenshots); None when done, else why not."""
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return "not running as root, so it cannot be installed here: run `apt-get install -y chromium` as root"
    if shutil.which("apt-get") is None:
        return "apt-get is not available to install it"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run(["apt-get", "update", "-qq"], env=env, check=True, capture_output=True, timeout=600)
        subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], env=env, check=True, capture_output=True,
                       timeout=900)
    except (subprocess.SubprocessError, OSError) as e:
        return f"`apt-get install -y chromium` failed: {e}"
    # Chinese names render as boxes in screenshots without a CJK font (optional: the tests do not need it)
    subprocess.run(["apt-get", "install", "-y", "-qq", "fonts-wqy-microhei"], env=env, capture_output=True,
                   timeout=600, check=False)
    return None if CHROMIUM.exists() else "apt-get ran but /usr/bin/chromium is still missing"


@pytest.fixture(scope="session")
def chromium_path() -> Path:
    """``/usr/bin/chromium``, installed with apt-get when missing (as root); skips with the reason otherwise."""
    if not CHROMIUM.exists():
        why = _install_chromium()
        if why is not None:
            pytest.skip(f"Chromium is not installed at {CHROMIUM}; {why}")
    return CHROMIUM


@pytest.fixture(scope="session")
def browser(chromium_path: Path) -> Iterator[Any]:
    """Headless Chromium (Playwright, the system browser)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(chromium_path), args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


@pytest.fixture(scope="session")
def profile_data(crm_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """The session's demo data dir (``crm_registry``: ~1,500 synthetic customers, ``features.synth``) and a copy of
    its MLflow store with the lead and churn champions plus segment and cross_sell champions fitted here (their
    runs and artifacts in this fixture's folder; the session registry stays untouched)."""
    from training.cross_sell import CrossSellConfig
    from training.cross_sell_job import train_cross_sell
    from training.segment import fit_segments

    root = tmp_path_factory.mktemp("profile_page")
    reg = copy_registry(crm_registry, root)
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", reg.uri)
        mp.setenv("MLFLOW_REGISTRY_URI", reg.uri)
        mp.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
        mp.chdir(root)
        fit_segments(reg.data)
        # the page's next-steps section: recommendations from a cross_sell champion (demo order lines)
        train_cross_sell(reg.data, CrossSellConfig())
    return reg.data, reg.uri


@contextlib.contextmanager
def serve_with_data(data: Path, uri: str, workdir: Path, timeout: float = 240) -> Iterator[ProfileServer]:
    """``crmscore serve --data DIR --port FREE`` against the registry ``uri``; stopped (process group) on exit."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = {
        **os.environ,
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_REGISTRY_URI": uri,
        "CRMSCORE_API_KEYS": ",".join(API_KEYS),
        "CRMSCORE_HOME": str(workdir / "home"),
        "BENTOML_HOME": str(workdir / "bentoml"),
        "BENTOML_DO_NOT_TRACK": "true",
        "CRMSCORE_PIN_MODELS": "1",
        # absent at start (no role keys); tests may add keys while the server runs (docs/access.md)
        "CRMSCORE_KEYS_FILE": str(workdir / "keys.yaml"),
    }
    env.pop("CRMSCORE_API_KEYS_FILE", None)
    exe = Path(sys.executable).parent / "crmscore"
    cli = [str(exe)] if exe.exists() else [sys.executable, "-c", "from serving.cli import main; main()"]
    argv = [*cli, "serve"]
    argv += ["--data", str(data), "--port", str(port), "--host", "127.0.0.1"]
    log = workdir / "server.log"
    proc = subprocess.Popen(argv, env=env, cwd=str(workdir), stdout=log.open("wb"), stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    server = ProfileServer(url, data, log, {})
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"server exited with {proc.returncode}:\n{server.log_text()[-3000:]}")
            with contextlib.suppress(httpx.HTTPError):
                if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                    break
            if time.monotonic() > deadline:
                raise TimeoutError(f"server not ready after {timeout}s:\n{server.log_text()[-3000:]}")
            time.sleep(0.25)
        info = httpx.get(f"{url}/model_info", headers=server.headers, timeout=30).json()
        server.versions = {k: m.get("version") for k, m in info["models"].items()}
        yield server
    finally:
        stop_server(proc)


@pytest.fixture(scope="session")
def profile_server(profile_data: tuple[Path, str], tmp_path_factory: pytest.TempPathFactory,
                   chromium_path: Path) -> Iterator[ProfileServer]:
    """The service with the profile page on the demo data (Chromium is checked first: no browser, no server)."""
    data, uri = profile_data
    with serve_with_data(data, uri, tmp_path_factory.mktemp("profile_server")) as s:
        yield s


@pytest.fixture(scope="session")
def artifacts() -> Path:
    """``test-artifacts/`` at the project root (screenshots)."""
    ARTIFACTS.mkdir(exist_ok=True)
    return ARTIFACTS
