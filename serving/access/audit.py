"""The audit trail: one append-only JSONL line per profile view, search, export and erasure, hash-chained.

Each line holds when, who (principal, role, team, owner id), the action, the customer ids touched and the
field names shown (whether masked), never a PII value. ``prev`` is the ``hash`` of the line before (64 zeros
for the first) and ``hash`` is the SHA-256 of the line's canonical JSON without ``hash``: editing or removing
a line breaks the chain at the next line, which :func:`verify` reports (``crmscore audit verify``). Truncating
the end leaves a valid shorter chain; ``verify`` prints the last hash so it can be kept elsewhere and compared.

The file is ``$CRMSCORE_AUDIT_FILE``, else ``<CRMSCORE_HOME>/audit/audit.jsonl``. Writers (every worker of the
service, the CLI) append under an exclusive ``flock``, so the chain stays linear across processes.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from features.messages import M_
from serving.access.roles import Principal

GENESIS = "0" * 64
#: Most customer ids written on one line (a larger export records the count and the first ones).
MAX_IDS_PER_LINE = 1000


class AuditError(ValueError):
    """An audit file or query cannot be used; the message names the file, line or option."""


def audit_path() -> Path:
    """``$CRMSCORE_AUDIT_FILE``, else ``<CRMSCORE_HOME>/audit/audit.jsonl``."""
    from serving.settings import crmscore_home

    env = os.environ.get("CRMSCORE_AUDIT_FILE")
    return Path(env) if env else crmscore_home() / "audit" / "audit.jsonl"


def line_hash(entry: dict[str, Any]) -> str:
    """SHA-256 (hex) of the entry's canonical JSON without its ``hash`` field."""
    body = {k: v for k, v in entry.items() if k != "hash"}
    text = json.dumps(body, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def _last_line(fh: Any) -> bytes | None:
    """The last non-empty line of a file opened in binary mode (read backwards in blocks)."""
    fh.seek(0, os.SEEK_END)
    end = fh.tell()
    buf = b""
    pos = end
    while pos > 0:
        step = min(4096, pos)
        pos -= step
        fh.seek(pos)
        buf = fh.read(step) + buf
        stripped = buf.rstrip(b"\n")
        if b"\n" in stripped:
            return stripped.rsplit(b"\n", 1)[1]
    stripped = buf.rstrip(b"\n")
    return stripped or None


def append(
    action: str,
    principal: Principal,
    customers: Sequence[str] = (),
    fields: Sequence[str] = (),
    masked: bool = False,
    path: Path | None = None,
    **detail: Any,
) -> dict[str, Any]:
    """Append one line to the audit trail (chained to the last one) and return it.

    ``customers`` are ids (never names); ``fields`` the field names shown; ``detail`` small non-PII facts
    (counts, an output path, a reason)."""
    return append_parts(action, principal, [list(customers)], fields, masked, path, **detail)[-1]


def append_parts(
    action: str,
    principal: Principal,
    parts: Sequence[Sequence[str]],
    fields: Sequence[str] = (),
    masked: bool = False,
    path: Path | None = None,
    **detail: Any,
) -> list[dict[str, Any]]:
    """Append one line per part of ``customers`` ids (each at most :data:`MAX_IDS_PER_LINE`) under one lock and
    one fsync: a large export's ids, chained like single lines. Returns the lines written."""
    p = path or audit_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    ts = datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    bodies: list[dict[str, Any]] = []
    for k, part in enumerate(parts or [[]]):
        ids = [str(c) for c in part]
        entry: dict[str, Any] = {
            "ts": ts,
            **principal.audit_fields(),
            "action": action,
            "customers": ids[:MAX_IDS_PER_LINE],
            "customers_total": len(ids),
            "fields": list(fields),
            "masked": masked,
        }
        more = {**detail, "part": k + 1, "parts": len(parts)} if len(parts) > 1 else detail
        if more:
            entry["detail"] = more
        bodies.append(entry)
    out: list[dict[str, Any]] = []
    with open(p, "a+b") as fh:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX)
        try:
            last = _last_line(fh)
            if last is None:
                seq, prev = 0, GENESIS
            else:
                try:
                    before = json.loads(last)
                    seq, prev = int(before["seq"]), str(before["hash"])
                except (ValueError, KeyError, TypeError):
                    raise AuditError(M_(
                        "{path}: the last line is not an audit entry; run `crmscore audit verify`",
                        path=p,
                    )) from None
            lines = []
            for body in bodies:
                seq += 1
                entry = {"seq": seq, **body, "prev": prev}
                entry["hash"] = prev = line_hash(entry)
                out.append(entry)
                lines.append(json.dumps(entry, ensure_ascii=False, separators=(",", ":")).encode() + b"\n")
            fh.seek(0, os.SEEK_END)
            fh.write(b"".join(lines))
            fh.flush()
            os.fsync(fh.fileno())
        finally:
            fcntl.flock(fh.fileno(), fcntl.LOCK_UN)
    return out


def read_entries(path: Path | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, entry) of every line; a line that is not JSON raises :class:`AuditError` naming it."""
    p = path or audit_path()
    if not p.is_file():
        return
    with open(p, encoding="utf-8") as fh:
        for n, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                yield n, json.loads(line)
            except ValueError:
                raise AuditError(M_("{path}: line {line}: not valid JSON", path=p, line=n)) from None


@dataclass
class Verification:
    """What :func:`verify` found: lines checked, the first broken line (None: the chain is intact), why."""

    path: Path
    lines: int
    last_hash: str
    broken_line: int | None = None
    reason: str | None = None

    @property
    def ok(self) -> bool:
        """Whether the whole chain is intact."""
        return self.broken_line is None


def verify(path: Path | None = None) -> Verification:
    """Check every line's hash and its link to the line before; stops at the first break."""
    p = path or audit_path()
    if not p.is_file():
        raise AuditError(M_("audit file not found: {path}", path=p))
    prev, seq, count = GENESIS, 0, 0
    try:
        for n, e in read_entries(p):
            count += 1
            if not isinstance(e, dict) or "hash" not in e:
                return Verification(p, count, prev, n, "not an audit entry")
            if e.get("prev") != prev:
                return Verification(p, count, prev, n, "does not link to the line before (a line was removed, "
                                    "inserted or edited before it)")
            if line_hash(e) != e["hash"]:
                return Verification(p, count, prev, n, "its content does not match its hash (the line was edited)")
            if e.get("seq") != seq + 1:
                return Verification(p, count, prev, n, f"sequence number {e.get('seq')}, expected {seq + 1}")
            prev, seq = e["hash"], e["seq"]
    except AuditError as err:
        m = re.search(r"line (\d+)", str(err))
        return Verification(p, count, prev, int(m.group(1)) if m else count + 1, "not valid JSON")
    return Verification(p, count, prev)


def parse_since(text: str, now: datetime | None = None) -> datetime:
    """``7d``, ``24h``, ``30m`` (ago) or an ISO date/time → an aware UTC time."""
    now = now or datetime.now(UTC)
    m = re.fullmatch(r"\s*(\d+)\s*([dhm])\s*", text)
    if m:
        n, unit = int(m.group(1)), m.group(2)
        return now - timedelta(**{{"d": "days", "h": "hours", "m": "minutes"}[unit]: n})
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise AuditError(M_(
            "--since {text!r}: use 7d, 24h, 30m or an ISO date such as 2026-01-31",
            text=text,
        )) from None
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def query(
    since: datetime | None = None, who: str | None = None, customer: str | None = None, path: Path | None = None
) -> list[dict[str, Any]]:
    """Entries at or after ``since``, by principal ``who``, touching ``customer``: "who looked at this customer"."""
    out = []
    for _, e in read_entries(path):
        if since is not None:
            ts = datetime.fromisoformat(str(e.get("ts", "")).replace("Z", "+00:00"))
            if ts < since:
                continue
        if who is not None and e.get("principal") != who:
            continue
        if customer is not None and customer not in (e.get("customers") or []):
            continue
        out.append(e)
    return out


def forgotten_ids(entries: Iterable[dict[str, Any]]) -> set[str]:
    """Customer ids with an erasure tombstone among ``entries``."""
    return {c for e in entries if e.get("action") == "forget" for c in e.get("customers") or []}
