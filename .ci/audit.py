#!/usr/bin/env python3
"""Audit the pinned dependency sets (requirements.lock, requirements-dev.lock) for known vulnerabilities.

requirements.lock is the runtime lock (what the Bento ships); requirements-dev.lock adds the dev and bench
extras. Both are audited; an advisory names the locks its pin is in. The two must agree: a runtime pin
missing from the dev lock or pinned there at another version fails the audit too (`dev.py demo` relies
on the dev lock holding every runtime pin).

Two sources, in order:

1. ``pip-audit -r <lock> ... --no-deps --disable-pip -s pypi`` (the standard tool; it asks PyPI's
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
import os
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCKS = (ROOT / "requirements.lock", ROOT / "requirements-dev.lock")
VENV = Path(os.environ.get("CRMSCORE_VENV", ROOT / ".venv"))  # the venv dev.py made, for pip-audit
PIN = re.compile(r"^([A-Za-z0-9_.\-]+)==([^\s;]+)", re.M)


def read_pins(lock: Path) -> set[tuple[str, str]]:
    """``(normalised name, version)`` of every ``name==version`` line of a lock file (a universal lock may
    pin one name at two versions under different markers)."""
    return {(re.sub(r"[-_.]+", "-", n).lower(), v) for n, v in PIN.findall(lock.read_text(encoding="utf-8"))}


def lock_drift(runtime: set[tuple[str, str]], dev: set[tuple[str, str]]) -> list[str]:
    """Runtime pins that the dev lock lacks or pins at another version, as readable lines."""
    dev_versions: dict[str, set[str]] = {}
    for n, v in dev:
        dev_versions.setdefault(n, set()).add(v)
    return [
        f"{n}=={v} (dev lock: {', '.join(sorted(dev_versions[n])) if n in dev_versions else 'absent'})"
        for n, v in sorted(runtime - dev)
    ]


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


def run_pip_audit(locks: list[Path], venv_bin: Path) -> tuple[dict[tuple[str, str], list[str]], set[tuple[str, str]]]:
    """(advisories per audited pin, pins pip-audit audited); empty when pip-audit is unavailable."""
    exe = venv_bin / "pip-audit" if (venv_bin / "pip-audit").exists() else shutil.which("pip-audit")
    if exe is None:
        return {}, set()
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "audit.json"
        cmd = [
            str(exe),
            *(a for lock in locks for a in ("-r", str(lock))),
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
    found: dict[tuple[str, str], list[str]] = {}
    audited: set[tuple[str, str]] = set()
    for dep in data.get("dependencies", []):
        if dep.get("skip_reason"):
            continue
        pin = (re.sub(r"[-_.]+", "-", dep["name"]).lower(), dep.get("version", ""))
        audited.add(pin)
        found[pin] = [v["id"] for v in dep.get("vulns", [])]
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
    """Audit the locks; print a summary; exit 1 on an advisory that is not a written-down exception, or when
    the runtime lock and the dev lock disagree."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--lock",
        type=Path,
        action="append",
        help=f"lock file (repeatable; default: {', '.join(p.name for p in LOCKS)})",
    )
    ap.add_argument("--exceptions", type=Path, default=ROOT / ".ci" / "audit-exceptions.txt")
    ap.add_argument("--index", default="https://pypi.org")
    ap.add_argument("--no-pip-audit", action="store_true", help="only the per-project JSON API")
    args = ap.parse_args()
    locks: list[Path] = [p.resolve() for p in args.lock] if args.lock else list(LOCKS)

    per_lock = {lock: read_pins(lock) for lock in locks}
    where: dict[tuple[str, str], list[str]] = {}
    for lock, pins in per_lock.items():
        for pin in pins:
            where.setdefault(pin, []).append(lock.name)
    drift = lock_drift(per_lock[LOCKS[0]], per_lock[LOCKS[1]]) if set(LOCKS) <= set(per_lock) else []
    exceptions = read_exceptions(args.exceptions)
    found, audited = ({}, set()) if args.no_pip_audit else run_pip_audit(locks, VENV / "bin")
    rest = sorted(set(where) - audited)
    unaudited: dict[tuple[str, str], str] = {}
    with cf.ThreadPoolExecutor(8) as pool:
        for pin, (advs, why) in zip(rest, pool.map(lambda p: project_advisories(*p, args.index), rest), strict=True):
            if advs is None:
                unaudited[pin] = why
            else:
                found[pin] = advs
    bad = [(p, a) for p, advs in sorted(found.items()) for a in advs if a not in exceptions]
    excused = [(p, a) for p, advs in sorted(found.items()) for a in advs if a in exceptions]
    sizes = ", ".join(f"{lock.name} {len(pins)}" for lock, pins in per_lock.items())
    print(
        f"audit: {len(where)} pins ({sizes}); audited {len(found)} (pip-audit {len(audited)}, latest-release API "
        f"{len(found) - len(audited)}); not auditable here {len(unaudited)}; advisories {len(bad)} "
        f"(+{len(excused)} written-down exceptions)"
    )
    for (n, v), a in excused:
        print(f"  exception {a} in {n}=={v} ({', '.join(where[n, v])}): {exceptions[a]}")
    for (n, v), why in sorted(unaudited.items()):
        print(f"  not audited {n}=={v} ({', '.join(where[n, v])}): {why}")
    for (n, v), a in bad:
        print(f"  VULNERABLE {n}=={v} ({', '.join(where[n, v])}): {a}", file=sys.stderr)
    for line in drift:
        print(f"  LOCK DRIFT {LOCKS[0].name} pins {line}", file=sys.stderr)
    return 1 if bad or drift else 0


if __name__ == "__main__":
    sys.exit(main())
