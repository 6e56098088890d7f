"""Erasure, the right to be forgotten (PIPL art. 47, GDPR art. 17): ``crmscore forget``.

:func:`forget` takes the customer's PII values (name, phone, e-mail, address from the customers table, and the
PII columns of the other contract tables, such as the free text of ``feedback``) from the data dir and removes
them from every file crm-scoring wrote: the data dir (tables, ingestion rejects, every CSV/Parquet/JSON/text
file under it), the drift records and summaries under ``$CRMSCORE_HOME``, and every export the audit trail
lists (``crmscore score`` outputs and rejects, audience exports). Cells holding a PII value become empty
(Parquet: null); text files have the value cut out (also in its JSON-escaped form). Rows are kept, so ids,
scores and their aggregate statistics stay as they were. A tombstone (action ``forget``, the customer id and
the fields erased, never the values) closes the job in the audit trail; a running service drops the
customer's PII from its profile index when it sees the tombstone (:class:`TombstoneWatcher`).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from features.messages import M_
from serving.access import audit
from serving.access.roles import Principal

log = logging.getLogger("crmscore.access")

#: File suffixes scrubbed as text (by value) and as Parquet tables.
TEXT_SUFFIXES = (".csv", ".tsv", ".txt", ".json", ".jsonl", ".md", ".html", ".htm", ".yaml", ".yml")
PARQUET_SUFFIXES = (".parquet", ".pq")


class ErasureError(ValueError):
    """The erasure cannot run; the message names the option or file."""


@dataclass
class ErasureReport:
    """What :func:`forget` changed."""

    customer_id: str
    fields: list[str]
    scanned: int = 0
    changed: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    tombstone: dict[str, Any] | None = None


def pii_values(data_dir: Path, customer_id: str) -> dict[str, list[str]]:
    """The customer's PII values in the data dir: ``table.column`` → values (the customers table's name, phone,
    e-mail and address, and the PII columns of any other contract table with a ``customer_id``, e.g. the free
    text of ``feedback``). Values shorter than 3 characters are left out (they would erase unrelated text)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from features.contract import ALL_TABLES

    p = data_dir / "customers.parquet"
    if not p.is_file():
        raise ErasureError(M_("--data {data_dir}: no customers.parquet", data_dir=data_dir))
    out: dict[str, list[str]] = {}
    for name, spec in ALL_TABLES.items():
        f = data_dir / f"{name}.parquet"
        if not spec.pii or not f.is_file():
            continue
        present = pq.read_schema(f).names
        cols = [c for c in spec.pii if c in present]
        if "customer_id" not in present or not cols:
            continue
        t = pq.read_table(f, columns=["customer_id", *cols])
        rows = t.filter(pc.equal(t.column("customer_id").cast("string"), customer_id))
        if name == "customers" and rows.num_rows == 0:
            raise ErasureError(M_(
                "--customer-id {customer_id}: no customer with this id in {path}",
                customer_id=customer_id, path=p,
            ))
        for c in cols:
            vals = sorted({v for v in rows.column(c).to_pylist() if isinstance(v, str) and len(v.strip()) >= 3})
            if vals:
                out[c if name == "customers" else f"{name}.{c}"] = vals
    return out


def exported_files(entries: Iterable[dict[str, Any]]) -> list[Path]:
    """Files the audit trail says crm-scoring exported (``detail.files`` of export lines)."""
    out: list[Path] = []
    for e in entries:
        if str(e.get("action", "")).startswith("export"):
            for f in (e.get("detail") or {}).get("files", []):
                out.append(Path(f))
    return list(dict.fromkeys(out))


def _variants(values: Iterable[str]) -> list[str]:
    """Each value as written in text: itself, neutralised (``'`` prefix) and JSON-escaped (``\\uXXXX``)."""
    out: list[str] = []
    for v in values:
        out += [v, json.dumps(v)[1:-1], json.dumps(v, ensure_ascii=False)[1:-1]]
    return sorted(set(out), key=len, reverse=True)  # longest first: a value inside another is cut after it


def _scrub_text(path: Path, variants: list[str]) -> bool:
    from features.io import write_text_atomic

    raw = path.read_bytes()
    for enc in ("utf-8-sig" if raw.startswith(b"\xef\xbb\xbf") else "utf-8", "gb18030"):
        try:
            text = raw.decode(enc)
            break
        except UnicodeDecodeError:
            continue
    else:
        return False
    new = text
    for v in variants:
        new = new.replace(v, "")
    if new == text:
        return False
    with_bom = enc == "utf-8-sig"
    if enc == "gb18030":
        from features.io import atomic_path

        with atomic_path(path) as tmp:
            tmp.write_bytes(new.encode("gb18030"))
    else:
        write_text_atomic(path, ("\ufeff" if with_bom else "") + new)
    return True


def _scrub_parquet(path: Path, values: list[str]) -> bool:
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    from features.io import atomic_path

    t = pq.read_table(path)
    changed = False
    for i, f in enumerate(t.schema):
        typ = f.type.value_type if pa.types.is_dictionary(f.type) else f.type
        if not (pa.types.is_string(typ) or pa.types.is_large_string(typ)):
            continue
        col = t.column(i).cast(typ)
        hit = None
        for v in values:
            m = pc.match_substring(col, v)
            hit = m if hit is None else pc.or_(hit, m)
        if hit is None or not pc.any(hit).as_py():
            continue
        t = t.set_column(i, pa.field(f.name, typ, True, f.metadata), pc.if_else(hit, pa.scalar(None, typ), col))
        changed = True
    if changed:
        with atomic_path(path) as tmp:
            pq.write_table(t, tmp)
    return changed


def _candidates(roots: Iterable[Path]) -> list[Path]:
    out: list[Path] = []
    for root in roots:
        if root.is_file():
            out.append(root)
        elif root.is_dir():
            for dirpath, _, files in os.walk(root):
                out += [Path(dirpath) / f for f in files if not f.startswith(".")]
    return list(dict.fromkeys(out))


def forget(
    customer_id: str, data_dir: str | Path, principal: Principal, home: str | Path | None = None,
    extra: Iterable[str | Path] = (), audit_file: Path | None = None,
) -> ErasureReport:
    """Erase the customer's PII from the data dir, ``home`` (records, drift), the audited exports and ``extra``
    paths, then write the tombstone. See the module docstring."""
    from serving.settings import crmscore_home

    d = Path(data_dir)
    if not d.is_dir():
        raise ErasureError(M_("--data {data_dir}: not a directory", data_dir=d))
    values = pii_values(d, customer_id)
    report = ErasureReport(customer_id, sorted(values))
    home_dir = Path(home) if home is not None else crmscore_home()
    audit_p = audit_file or audit.audit_path()
    exports = exported_files(e for _, e in audit.read_entries(audit_p))
    roots = [d, home_dir / "records", home_dir / "drift", *exports, *(Path(x) for x in extra)]
    vals = sorted({v for vs in values.values() for v in vs}, key=len, reverse=True)
    variants = _variants(vals)
    for f in _candidates(roots):
        if f.resolve() == audit_p.resolve():
            continue  # the audit trail holds ids and field names, never values
        report.scanned += 1
        suffix = f.suffix.lower()
        try:
            if suffix in PARQUET_SUFFIXES:
                changed = _scrub_parquet(f, vals)
            elif suffix in TEXT_SUFFIXES:
                changed = _scrub_text(f, variants)
            else:
                report.skipped.append(str(f))
                continue
        except OSError as e:
            raise ErasureError(M_(
                "{file}: cannot rewrite it: {reason}",
                file=f, reason=e.strerror or type(e).__name__,
            )) from None
        if changed:
            report.changed.append(str(f))
    report.tombstone = audit.append(
        "forget", principal, [customer_id], report.fields, path=audit_p,
        files_changed=len(report.changed), files_scanned=report.scanned,
    )
    return report


class TombstoneWatcher:
    """Follows the audit trail for ``forget`` tombstones (reads only what was appended since the last call)."""

    def __init__(self, path: Path) -> None:
        import threading

        self.path = path
        self._offset = 0
        self._lock = threading.Lock()

    def new_ids(self) -> set[str]:
        """Customer ids forgotten since the last call (thread-safe)."""
        with self._lock:
            return self._read_new()

    def _read_new(self) -> set[str]:
        try:
            size = self.path.stat().st_size
        except FileNotFoundError:
            return set()
        if size < self._offset:
            self._offset = 0
        if size == self._offset:
            return set()
        with open(self.path, "rb") as fh:
            fh.seek(self._offset)
            chunk = fh.read(size - self._offset)
        end = chunk.rfind(b"\n") + 1
        self._offset += end
        out: set[str] = set()
        for line in chunk[:end].splitlines():
            if b'"forget"' not in line:
                continue
            try:
                e = json.loads(line)
            except ValueError:
                continue
            out |= audit.forgotten_ids([e])
        return out


def drop_from_index(index: Any, ids: Iterable[str]) -> int:
    """Blank the PII of the forgotten customers in a loaded profile index; how many rows changed."""
    import pandas as pd

    from features.contract import PII_COLUMNS

    n = 0
    cols = [c for c in index.customers.columns if c in PII_COLUMNS]
    for cid in ids:
        row = index.row_of(cid)
        if row is None:
            continue
        for c in cols:
            index.customers.iloc[row, index.customers.columns.get_loc(c)] = pd.NA
        index._names[row] = ""
        n += 1
    return n
