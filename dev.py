#!/usr/bin/env python3
"""One-file bootstrap: needs nothing but Python 3.11.

    python3 dev.py demo   # set up .venv from requirements.lock, then run the main job on embedded defaults
    python3 dev.py test   # set up .venv from requirements.lock, then run the test suite

Set-up is idempotent: the venv is rebuilt only when requirements.lock or pyproject.toml changed.
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


def _lock_hash() -> str:
    h = hashlib.sha256()
    for name in ("requirements.lock", "pyproject.toml"):
        h.update((ROOT / name).read_bytes())
    return h.hexdigest()


def _run(cmd: list[str], **kw) -> None:
    print("+", " ".join(str(c) for c in cmd), flush=True)
    subprocess.run(cmd, check=True, **kw)


def setup() -> None:
    """Create the virtual environment and install the exact locked dependency set."""
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"crm-scoring needs Python 3.11, this is {sys.version.split()[0]}")
    want = _lock_hash()
    if STAMP.exists() and STAMP.read_text() == want and (BIN / "crmscore").exists():
        return
    if not (BIN / "python").exists():
        venv.EnvBuilder(with_pip=True).create(VENV)
    py = str(BIN / "python")
    _run([py, "-m", "pip", "install", "-q", "--disable-pip-version-check", "uv>=0.4"])
    env = {**os.environ, "VIRTUAL_ENV": str(VENV)}
    try:
        _run([str(BIN / "uv"), "pip", "sync", "-q", str(ROOT / "requirements.lock")], env=env)
        _run([str(BIN / "uv"), "pip", "install", "-q", "--no-deps", "-e", str(ROOT)], env=env)
    except (subprocess.CalledProcessError, FileNotFoundError):
        # uv unavailable: plain pip installs the same pinned set, only slower
        _run([py, "-m", "pip", "install", "-q", "-r", str(ROOT / "requirements.lock")])
        _run([py, "-m", "pip", "install", "-q", "--no-deps", "-e", str(ROOT)])
    STAMP.write_text(want)


def main(argv: list[str]) -> int:
    """Dispatch `demo`, `test` or `setup`; extra arguments go to the underlying command."""
    if not argv or argv[0] not in {"demo", "test", "setup"}:
        print(__doc__)
        return 2
    setup()
    cmd, rest = argv[0], argv[1:]
    if cmd == "setup":
        return 0
    if cmd == "demo":
        return subprocess.call([str(BIN / "crmscore"), "demo", *rest], cwd=ROOT)
    return subprocess.call([str(BIN / "python"), "-m", "pytest", *(rest or ["-q"])], cwd=ROOT)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
