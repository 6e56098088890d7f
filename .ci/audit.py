#!/usr/bin/env python3
"""Audit the pinned dependency set (requirements.lock) for known vulnerabilities.

Two sources, in order:

1. ``pip-audit -r requirements.lock --no-deps --disable-pip -s pypi`` (the standard tool; it asks PyPI's
   per-release JSON API, ``/pypi/<name>/<version>/json``, for each pin's advisories);
2. for every pin pip-audit could not audit, PyPI's per-project JSON API (``/pypi/<name>/json``): it lists
   the advisories of the project's *latest* release, so it audits a pin exactly when the pin is the latest
   release. (The package registry this project's machines reach serves only that API, so pip-audit skips
   every package there; see docs/security.md.)

Known exceptions live in ``.ci/audit-exceptions.txt`` (one ``<advisory id> <package> <why>`` per line).
Exit 1 when a pin has an advisory that is not an exception, 0 otherwise; pins that neither source could
audit are listed with the reason, never passed over silently. Needs nothing but Python and, optionally,
pip-audit from the project's venv.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", re.M)


def read_pins(lock: Path) -> dict[str, str]:
    """``{normalised name: version}`` of every ``name==version`` line of a lock file."""
    return {re.sub(r"[-_.]+", "-", n).lower(): v for n, v in PIN.findall(lock.read_text(encoding="utf-8"))}


def read_exceptions(path: Path) -> dict[str, str]:
    """``{advisory id: why}`` from the exceptions file (``#`` comments and blank lines ignored)."""
    out: dict[str, str] = {}
    if path.is_file():
        for line in path.read_text(encoding="utf-8").splitlines():
            line = line.split("#", 1)[0].strip()
            if line:
                adv, _, rest = line.partition(" ")
                out[adv] = rest.strip()
    return out


def run_pip_audit(lock: Path, venv_bin: Path) -> tuple[dict[str, list[str]], set[str]]:
    """(advisories per audited package, names pip-audit audited); empty when pip-audit is unavailable."""
    exe = venv_bin / "pip-audit" if (venv_bin / "pip-audit").exists() else shutil.which("pip-audit")
    if exe is None:
        return {}, set()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        cmd = [
            str(exe),
            "-r",
            str(lock),
            "--no-deps",
            "--disable-pip",
            "-s",
            "pypi",
            "--progress-spinner",
            "off",
            "-f",
            "json",
            "-o",
            str(out),
        ]
        try:
            subprocess.run(cmd, capture_output=True, timeout=600, check=False)
            data = json.loads(out.read_text(encoding="utf-8"))
        except (OSError, ValueError, subprocess.TimeoutExpired):
            return {}, set()
    found: dict[str, list[str]] = {}
    audited: set[str] = set()
    for dep in data.get("dependencies", []):
        if dep.get("skip_reason"):
            continue
        name = re.sub(r"[-_.]+", "-", dep["name"]).lower()
        audited.add(name)
        found[name] = [v["id"] for v in dep.get("vulns", [])]
    return found, audited


def project_advisories(name: str, version: str, index: str) -> tuple[list[str] | None, str]:
    """Advisories of ``name==version`` from the per-project JSON API, or (None, why it can't tell)."""
    try:
        with urllib.request.urlopen(f"{index}/pypi/{name}/json", timeout=30) as r:
            data = json.load(r)
    except (urllib.error.URLError, OSError, ValueError) as e:
        return None, f"registry not reachable ({type(e).__name__})"
    latest = data.get("info", {}).get("version")
    if latest != version:
        return None, f"pinned {version}, latest {latest}: advisories of older releases are not served here"
    vulns = data.get("vulnerabilities") or []
    return [v.get("id", "?") for v in vulns if not v.get("withdrawn")], ""


def main() -> int:
    """Audit the lock file; print a summary; exit 1 on an advisory that is not a written-down exception."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--lock", type=Path, default=ROOT / "requirements.lock")
    ap.add_argument("--exceptions", type=Path, default=ROOT / ".ci" / "audit-exceptions.txt")
    ap.add_argument("--index", default="https://pypi.org")
    ap.add_argument("--no-pip-audit", action="store_true", help="only the per-project JSON API")
    args = ap.parse_args()

    pins = read_pins(args.lock)
    exceptions = read_exceptions(args.exceptions)
    found, audited = ({}, set()) if args.no_pip_audit else run_pip_audit(args.lock, ROOT / ".venv" / "bin")
    rest = sorted(set(pins) - audited)
    unaudited: dict[str, str] = {}
    with cf.ThreadPoolExecutor(8) as pool:
        for name, (advs, why) in zip(
            rest, pool.map(lambda n: project_advisories(n, pins[n], args.index), rest), strict=True
        ):
            if advs is None:
                unaudited[name] = why
            else:
                found[name] = advs
    bad = [(n, a) for n, advs in sorted(found.items()) for a in advs if a not in exceptions]
    excused = [(n, a) for n, advs in sorted(found.items()) for a in advs if a in exceptions]
    print(
        f"audit: {len(pins)} pins; audited {len(found)} (pip-audit {len(audited)}, latest-release API "
        f"{len(found) - len(audited)}); not auditable here {len(unaudited)}; advisories {len(bad)} "
        f"(+{len(excused)} written-down exceptions)"
    )
    for n, a in excused:
        print(f"  exception {a} in {n}=={pins[n]}: {exceptions[a]}")
    for n, why in sorted(unaudited.items()):
        print(f"  not audited {n}: {why}")
    for n, a in bad:
        print(f"  VULNERABLE {n}=={pins[n]}: {a}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
