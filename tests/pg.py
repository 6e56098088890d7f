"""A throwaway PostgreSQL cluster for tests: initdb in a temporary directory, on a free loopback port.

PostgreSQL refuses to run as root, so as root the server runs as the `postgres` user. Tests that
need it skip with the reason when no PostgreSQL binaries are installed (`.ci/run` installs them).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path


def find_pg_bin() -> Path | None:
    """The directory holding initdb and pg_ctl, or None."""
    for pattern in ("/usr/lib/postgresql/*/bin", "/usr/local/pgsql/bin"):
        for d in sorted(glob.glob(pattern), reverse=True):
            if Path(d, "initdb").exists() and Path(d, "pg_ctl").exists():
                return Path(d)
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class PostgresCluster:
    """Start and stop one temporary cluster; ``url(db)`` gives SQLAlchemy URLs."""

    def __init__(self, bindir: Path) -> None:
        self.bindir = bindir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="crmscore-pg-"))
        self.data = self.root / "data"
        self.as_root = os.geteuid() == 0

    def _run(self, *args: str) -> None:
        cmd = [str(a) for a in args]
        if self.as_root:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        subprocess.run(cmd, check=True, capture_output=True, text=True, timeout=120)

    def start(self) -> PostgresCluster:
        """initdb, start on the free port with the socket in the temp dir, create the test databases."""
        if self.as_root:
            shutil.chown(self.root, "postgres", "postgres")
        self._run(self.bindir / "initdb", "-D", self.data, "-U", "postgres", "--auth=trust", "-E", "UTF8")
        opts = f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 -c max_connections=200 -c fsync=off"
        self._run(self.bindir / "pg_ctl", "-D", self.data, "-o", opts, "-l", self.root / "log", "-w", "start")
        for db in ("mlflow", "crm"):
            self._run(self.bindir / "createdb", "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres", db)
        return self

    def url(self, db: str) -> str:
        """SQLAlchemy URL of one database."""
        return f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/{db}"

    def stop(self) -> None:
        """Stop the server and remove its directory."""
        try:
            self._run(self.bindir / "pg_ctl", "-D", self.data, "-m", "fast", "-w", "stop")
        except subprocess.SubprocessError:
            pass
        time.sleep(0.1)
        shutil.rmtree(self.root, ignore_errors=True)
