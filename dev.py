#!/usr/bin/env python3
"""One-file bootstrap: needs nothing but Python 3.11, 3.12 or 3.13.

    python3 dev.py demo    # set up .venv from requirements.lock, then run the main job on embedded defaults
    python3 dev.py test    # set up .venv from requirements-dev.lock, then run the test suite (args go to pytest)
    python3 dev.py lint    # set up .venv from requirements-dev.lock, then ruff check and mypy
    python3 dev.py setup   # set up .venv from requirements-dev.lock only (what CI's audit and a developer use)

Two locks: requirements.lock is the runtime (what `crmscore` needs to run and serve, and all the Bento
installs); requirements-dev.lock is the runtime plus the dev and bench extras, with the same versions of
every runtime package. The venv is built with the Python that runs this file (an existing venv of another
Python minor version is rebuilt) and synced exactly to one lock (`uv pip sync`), then the project is
installed editable without dependencies. A stamp in the venv records the Python, the lock installed and the
hash of that lock and pyproject.toml, so set-up is skipped when nothing changed and re-synced when a lock
or pyproject.toml changed.

Which lock: `test`, `lint` and `setup` need the dev lock. `demo` needs only the runtime lock, but a venv
already synced to the current dev lock is kept as it is (it holds every runtime pin at the same version),
so running `demo` after `test` does not uninstall the test tools and `test` after it does not reinstall
them; a fresh venv or one that is out of date gets the runtime lock. CRMSCORE_VENV puts the venv elsewhere
(e.g. `CRMSCORE_VENV=/tmp/v313 python3.13 dev.py test`).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = Path(os.environ.get("CRMSCORE_VENV", ROOT / ".venv"))
BIN = VENV / "bin"
STAMP = VENV / ".crmscore-lock-hash"
UV = VENV / ".uv" / "bin" / "uv"  # outside site-packages: `uv pip sync` never removes it
SUPPORTED = ((3, 11), (3, 12), (3, 13))
RUNTIME_LOCK = "requirements.lock"
DEV_LOCK = "requirements-dev.lock"
RUFF_PATHS = ["features", "training", "serving", "bench", "tests"]
MYPY_PATHS = ["features", "training", "serving"]


def _check_python() -> None:
    if sys.version_info[:2] not in SUPPORTED:
        names = ", ".join(f"{a}.{b}" for a, b in SUPPORTED)
        sys.exit(
            f"crm-scoring supports Python {names}; this is {sys.version.split()[0]} ({sys.executable}).\n"
            f"Run this file with one of them, e.g. `python3.12 dev.py {' '.join(sys.argv[1:]) or 'demo'}`."
        )


def _stamp(lock: str) -> str:
    """What the venv holds: this Python's minor version, the lock's name and the hash of the lock and pyproject."""
    h = hashlib.sha256()
    for name in (lock, "pyproject.toml"):
        h.update((ROOT / name).read_bytes())
    return f"python {sys.version_info[0]}.{sys.version_info[1]} {lock} {h.hexdigest()}"


def _venv_python_minor() -> str | None:
    """``"3.12"`` for an existing venv (from its pyvenv.cfg), None when there is none."""
    cfg = VENV / "pyvenv.cfg"
    if not cfg.is_file() or not (BIN / "python").exists():
        return None
    for line in cfg.read_text(encoding="utf-8").splitlines():
        key, _, value = line.partition("=")
        if key.strip() in {"version", "version_info"}:
            return ".".join(value.strip().split(".")[:2])
    return None


def _run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def setup(lock: str = DEV_LOCK) -> None:
    """Create the virtual environment and sync it to exactly one lock, then install the project editable.

    ``lock`` is the lock the command needs; a runtime request is satisfied by a venv already synced to the
    current dev lock (see the module docstring)."""
    _check_python()
    current = STAMP.read_text() if STAMP.exists() else ""
    ready = (BIN / "crmscore").exists()
    if ready and current == _stamp(lock):
        return
    if ready and lock == RUNTIME_LOCK and current == _stamp(DEV_LOCK):
        return
    here = f"{sys.version_info[0]}.{sys.version_info[1]}"
    had = _venv_python_minor()
    if had is not None and had != here:
        print(f"{VENV} was made with Python {had}; rebuilding it with Python {here}", flush=True)
    if had != here:
        # clear only a directory that is a venv of another Python, never whatever CRMSCORE_VENV names
        venv.EnvBuilder(with_pip=True, clear=had is not None).create(VENV)
    py = str(BIN / "python")
    STAMP.unlink(missing_ok=True)
    env = {**os.environ, "VIRTUAL_ENV": str(VENV)}
    try:
        if not UV.exists():
            # uv goes into VENV/.uv with the venv's pip (ensurepip puts pip back in a venv that lost it)
            _run([py, "-m", "ensurepip"])
            target = str(UV.parents[1])
            _run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--target", target, "uv>=0.4"])
        # --compile-bytecode: uv does not write .pyc files by default (pip does); without them every process
        # compiles mlflow, bentoml and the rest from source when PYTHONDONTWRITEBYTECODE is set (~8 s each)
        _run([str(UV), "pip", "sync", "-q", "--compile-bytecode", str(ROOT / lock)], env=env)
        _run([str(UV), "pip", "install", "-q", "--no-deps", "--compile-bytecode", "-e", str(ROOT)], env=env)
    except (subprocess.CalledProcessError, FileNotFoundError):
        # uv unavailable: plain pip installs the same pinned set into a fresh venv (pip would not remove
        # packages the lock no longer has), only slower
        print("uv failed; rebuilding the venv with pip", flush=True)
        venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
        _run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "-r", str(ROOT / lock)])
        _run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps", "-e", str(ROOT)])
    # the project's own packages too (an editable install compiles nothing of them)
    _run([py, "-m", "compileall", "-q", *(str(ROOT / d) for d in ("features", "training", "serving", "bench"))])
    STAMP.write_text(_stamp(lock))


def lint() -> int:
    """ruff over the code, benchmarks and tests; mypy over the three packages. Both always run."""
    ruff = subprocess.call([str(BIN / "ruff"), "check", *RUFF_PATHS], cwd=ROOT)
    mypy = subprocess.call([str(BIN / "mypy"), "--cache-dir", str(VENV / ".mypy_cache"), *MYPY_PATHS], cwd=ROOT)
    print(f"lint: ruff {'ok' if ruff == 0 else 'FAILED'}, mypy {'ok' if mypy == 0 else 'FAILED'}", flush=True)
    return ruff or mypy


def main(argv: list[str]) -> int:
    """Dispatch `demo`, `test`, `lint` or `setup`; extra arguments go to the underlying command."""
    if not argv or argv[0] not in {"demo", "test", "lint", "setup"}:
        print(__doc__)
        return 2
    cmd, rest = argv[0], argv[1:]
    setup(RUNTIME_LOCK if cmd == "demo" else DEV_LOCK)
    if cmd == "setup":
        return 0
    if cmd == "demo":
        return subprocess.call([str(BIN / "crmscore"), "demo", *rest], cwd=ROOT)
    if cmd == "lint":
        return lint()
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *(rest or ["-q"])], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
