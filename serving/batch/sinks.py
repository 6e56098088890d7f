"""Where results go: atomic file and SQL sinks, the rejects file, drift records, the spill and stale work."""

from __future__ import annotations

import contextlib
import csv
import errno
import os
import re
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import pandas as pd

from features.messages import M_
from serving.access.exports import ExportPolicy
from serving.batch.options import REJECT_COLUMNS, BatchError

#: suffixes of a hidden work directory / temporary output of a run (``.<name>.crmscore-<pid>.<suffix>``)
_WORK_SUFFIX = "tmp"
_PART_SUFFIX = "part"


# ------------------------------------------------------------------------------------------------ output


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _work_name(target: Path, suffix: str) -> Path:
    return target.with_name(f".{target.name}.crmscore-{os.getpid()}.{suffix}")


def remove_stale_work(target: Path) -> list[Path]:
    """Remove work directories and partial outputs that killed runs left beside ``target``."""
    removed: list[Path] = []
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.crmscore-(\d+)\.({_WORK_SUFFIX}|{_PART_SUFFIX}\w*)$")
    if not target.parent.is_dir():
        return removed
    for p in target.parent.iterdir():
        m = pattern.match(p.name)
        if m and not _pid_alive(int(m.group(1))):
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                p.unlink(missing_ok=True)
            removed.append(p)
    return removed


def _check_writable(path: Path, what: str) -> None:
    parent = path.parent
    if path.is_dir():
        raise BatchError(M_("cannot write the {what} {path}: it is a directory", what=what, path=path))
    if not parent.is_dir():
        raise BatchError(M_(
            "cannot write the {what} {path}: directory {parent} does not exist",
            what=what, path=path, parent=parent,
        ))
    if not os.access(parent, os.W_OK | os.X_OK):
        raise BatchError(M_(
            "cannot write the {what} {path}: directory {parent} is not writable",
            what=what, path=path, parent=parent,
        ))
    if path.exists() and not os.access(path, os.W_OK):
        raise BatchError(M_("cannot write the {what} {path}: the file is read-only", what=what, path=path))


def no_space(e: BaseException) -> bool:
    """Whether an error (Python's or pyarrow's) is a full disk or an exhausted quota."""
    return getattr(e, "errno", None) in (errno.ENOSPC, errno.EDQUOT) or "No space left on device" in str(e)


def write_failure(what: str, path: Path | str, e: BaseException) -> BatchError:
    """A failed write as one line naming the file; a full disk says so (and that nothing was left behind)."""
    if no_space(e):
        full = M_(" ({folder} is full)", folder=Path(path).parent) if isinstance(path, Path) else ""
        return BatchError(M_(
            "cannot write the {what} {path}: no space left on device{full}; no output file was written and the "
            "temporary files were removed: free some space or write elsewhere",
            what=what, path=path, full=full,
        ))
    detail = getattr(e, "strerror", None) or (str(e).strip().splitlines() or [type(e).__name__])[0]
    return BatchError(M_("cannot write the {what} {path}: {reason}", what=what, path=path, reason=detail))


class _AtomicFile:
    """A file written under the run's temporary name beside ``path`` and moved into place by :meth:`commit`.

    The project's one atomic writer does the work (``features.io.atomic_path``: fsync, one rename, the
    temporary file removed on any error); the temporary name is the run's ``.<name>.crmscore-<pid>.part``,
    so :func:`remove_stale_work` finds what a killed run left. Subclasses open their writer on ``self.tmp``
    and close it in :meth:`_close`. Write errors become :func:`write_failure` errors naming ``path``.
    """

    what = M_("file")

    def __init__(self, path: Path) -> None:
        from features.io import atomic_path

        self.path = path
        self._stack = contextlib.ExitStack()
        self.tmp = self._stack.enter_context(atomic_path(path, tmp=_work_name(path, _PART_SUFFIX)))
        self._finished = False

    def _close(self) -> None:
        raise NotImplementedError

    def finish(self) -> None:
        """Close the writer (the last bytes reach the file: a full disk shows here at the latest)."""
        if not self._finished:
            try:
                self._close()
            except OSError as e:
                self.abort()
                raise write_failure(self.what, self.path, e) from None
            self._finished = True

    def commit(self) -> None:
        """Finish, sync and move the file onto its name."""
        self.finish()
        try:
            self._stack.close()
        except OSError as e:
            raise write_failure(self.what, self.path, e) from None

    def abort(self) -> None:
        """Drop the temporary file (nothing appears under the file's name)."""
        with contextlib.suppress(Exception):
            self._close()
        with contextlib.suppress(BaseException):  # leaving atomic_path with an error removes its temporary file
            err = BatchError("aborted")
            self._stack.__exit__(BatchError, err, None)


class _FileSink(_AtomicFile):
    """Streams Arrow tables into a temporary CSV or Parquet file, moved into place by :meth:`commit`."""

    what = M_("output")
    #: formula neutralisation (CSV) and PII masking (serving.access.exports); set by the run
    policy = ExportPolicy()

    def __init__(self, path: Path, kind: str, bom: bool = False) -> None:
        super().__init__(path)
        self.kind = kind
        self.bom = bom
        self._writer: Any = None
        self._fh: Any = None
        self.schema: Any = None

    def write(self, table: Any) -> None:
        """Append ``table`` (cast to the first table's schema)."""
        import pyarrow.csv as pcsv
        import pyarrow.parquet as pq

        table = self.policy.arrow(table, csv=self.kind != "parquet")
        try:
            if self._writer is None:
                self.schema = table.schema
                if self.kind == "parquet":
                    self._writer = pq.ParquetWriter(self.tmp, self.schema)
                else:
                    self._fh = open(self.tmp, "wb")  # noqa: SIM115 - closed in _close
                    if self.bom:
                        self._fh.write(b"\xef\xbb\xbf")
                    self._writer = pcsv.CSVWriter(self._fh, self.schema)
            self._writer.write_table(table.cast(self.schema) if table.schema != self.schema else table)
        except OSError as e:
            self.abort()
            raise write_failure(self.what, self.path, e) from None

    def finish_with(self, empty_schema: Any) -> None:
        """:meth:`finish`, writing an empty file of ``empty_schema`` when no table came."""
        if self.schema is None and not self._finished:  # nothing came: an empty file with the columns
            self.write(empty_schema.empty_table())
        self.finish()

    def commit(self, empty_schema: Any = None) -> None:
        """Finish (an empty file of ``empty_schema`` when nothing was written), sync and move into place."""
        if empty_schema is not None:
            self.finish_with(empty_schema)
        super().commit()

    def _close(self) -> None:
        writer, fh = self._writer, self._fh
        self._writer = self._fh = None
        try:
            if writer is not None:
                writer.close()
        finally:
            if fh is not None:
                fh.close()


def _sql_first_line(e: Exception) -> str:
    return str(getattr(e, "orig", None) or e).splitlines()[0]


class _SqlSink:
    """Appends chunks to a temporary table, renamed to the target table (replacing it) in one transaction."""

    #: PII masking (serving.access.exports; no formula neutralisation in a database); set by the run
    policy = ExportPolicy()

    def __init__(self, url: str, table: str) -> None:
        from sqlalchemy import create_engine

        self.url = url
        self.table = table
        self.tmp = f"{table}__crmscore_{os.getpid()}"
        self.engine = create_engine(url)
        self._created = False

    def write(self, table: Any) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        df = self.policy.arrow(table, csv=False).to_pandas()
        try:
            df.to_sql(self.tmp, self.engine, if_exists="append" if self._created else "replace", index=False,
                      chunksize=50_000)
        except SQLAlchemyError as e:
            raise BatchError(M_(
                "{source}: cannot write: {reason}",
                source=self._label(), reason=_sql_first_line(e),
            )) from None
        self._created = True

    def _label(self) -> str:
        from features.readers import mask_url

        return f"{mask_url(self.url)} table {self.table}"

    def commit(self, empty_schema: Any) -> None:
        from sqlalchemy import text
        from sqlalchemy.exc import SQLAlchemyError

        if not self._created:
            self.write(empty_schema.empty_table())
        try:
            with self.engine.begin() as conn:
                q = conn.dialect.identifier_preparer.quote
                conn.execute(text(f"DROP TABLE IF EXISTS {q(self.table)}"))
                conn.execute(text(f"ALTER TABLE {q(self.tmp)} RENAME TO {q(self.table)}"))
        except SQLAlchemyError as e:
            raise BatchError(M_(
                "{source}: cannot replace the table: {reason}",
                source=self._label(), reason=_sql_first_line(e),
            )) from None
        self.engine.dispose()

    def abort(self) -> None:
        from sqlalchemy import text

        with contextlib.suppress(Exception):
            with self.engine.begin() as conn:
                conn.execute(text(f"DROP TABLE IF EXISTS {conn.dialect.identifier_preparer.quote(self.tmp)}"))
        with contextlib.suppress(Exception):
            self.engine.dispose()


@dataclass
class OutputTarget:
    """Where results go: a CSV or Parquet file, or a SQL table; plus the rejects and summary files."""

    label: str
    kind: str  # csv | parquet | sql
    path: Path | None
    url: str | None
    table: str | None
    rejects: Path
    summary: Path
    work_parent: Path

    def sink(self, bom: bool = False) -> _FileSink | _SqlSink:
        """A fresh writer for the results."""
        if self.kind == "sql":
            if self.url is None or self.table is None:
                raise ValueError(f"SQL output {self.label!r} has no URL or table")
            return _SqlSink(self.url, self.table)
        if self.path is None:
            raise ValueError(f"file output {self.label!r} has no path")
        return _FileSink(self.path, self.kind, bom=bom)


def resolve_output(output: str, output_table: str | None, rejects: str | None) -> OutputTarget:
    """Check the output, rejects and summary locations are writable before any work is done."""
    from features.readers import is_sql_url, mask_url

    if is_sql_url(output):
        from sqlalchemy.engine import make_url

        try:
            u = make_url(output)
        except Exception as e:  # noqa: BLE001
            raise BatchError(M_(
                "--output is not a valid SQLAlchemy URL: {url} ({error})",
                url=mask_url(output), error=e,
            )) from None
        table = output_table or "scores"
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", table):
            raise BatchError(M_("--output-table {table!r}: use letters, digits and underscores", table=table))
        if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
            db = Path(u.database)
            _check_writable(db, M_("output database"))
            base = db.with_name(f"{db.name}.{table}")
        else:
            base = Path.cwd() / table
        target = OutputTarget(mask_url(output) + f" table {table}", "sql", None, output, table,
                              Path(rejects) if rejects else base.with_name(base.name + ".rejects.csv"),
                              base.with_name(base.name + ".summary.json"), base.parent)
    else:
        if output_table:
            raise BatchError(M_("--output-table is for a SQL --output (e.g. sqlite:///scores.db)"))
        p = Path(output)
        suffix = p.suffix.lower()
        kind = "parquet" if suffix in (".parquet", ".pq") else "csv" if suffix in (".csv", ".txt", ".tsv") else None
        if kind is None:
            raise BatchError(M_(
                "--output {path}: use a .csv or .parquet file, or a SQL URL with --output-table",
                path=p,
            ))
        _check_writable(p, M_("output"))
        target = OutputTarget(str(p), kind, p, None, None,
                              Path(rejects) if rejects else p.with_name(p.name + ".rejects.csv"),
                              p.with_name(p.name + ".summary.json"), p.parent)
    _check_writable(target.rejects, M_("rejects file"))
    _check_writable(target.summary, M_("summary file"))
    return target


class _RejectsSink(_AtomicFile):
    """Rejected rows appended to a temporary CSV (UTF-8 with BOM, as ingestion's rejects), then moved into place."""

    what = M_("rejects file")
    #: formula neutralisation and PII masking (serving.access.exports); set by the run
    policy = ExportPolicy()

    def __init__(self, path: Path, id_col: str) -> None:
        super().__init__(path)
        self.id_col = id_col
        self.count = 0
        self.reasons: dict[str, int] = {}
        try:
            fh = open(self.tmp, "w", encoding="utf-8-sig", newline="")  # noqa: SIM115 - closed in _close
            self._fh: TextIO | None = fh
            self._w = csv.writer(fh)
            self._w.writerow(["row", id_col, "column", "value", "reason"])
        except OSError as e:
            self.abort()
            raise write_failure(self.what, self.path, e) from None

    def write(self, rejects: pd.DataFrame) -> None:
        """Append rejected rows (columns :data:`REJECT_COLUMNS`) and count their reasons."""
        if len(rejects) == 0:
            return
        rejects = self.policy.rejects(rejects)
        try:
            self._w.writerows(rejects[list(REJECT_COLUMNS)].itertuples(index=False, name=None))
        except OSError as e:
            self.abort()
            raise write_failure(self.what, self.path, e) from None
        self.count += len(rejects)
        for r in rejects["reason"]:
            for part in str(r).split("; "):
                key = re.sub(r"^row has \d+ fields", "row has a wrong number of fields", part)
                self.reasons[key] = self.reasons.get(key, 0) + 1

    def _close(self) -> None:
        fh, self._fh = getattr(self, "_fh", None), None
        if fh is not None:
            fh.close()

# ------------------------------------------------------------------------------------------------ records


def _records_sink(enabled: bool) -> tuple[Any, str]:
    """``serving.http.records.RecordSink(source="batch")`` when recording is on and the module exists."""
    if not enabled:
        return None, "off"
    import importlib.util

    if importlib.util.find_spec("serving.http.records") is None:
        return None, "unavailable (serving.http.records is not installed)"
    try:
        from serving.http.records import RecordSink

        return RecordSink(source="batch", max_queue=10**9), "written"
    except Exception as e:  # noqa: BLE001 - recording never stops a batch run
        return None, f"failed: {type(e).__name__}: {str(e)[:200]}"


# -------------------------------------------------------------------------------------------------- spill


@dataclass
class _Spill:
    """Per-chunk results on disk, with the few columns ranking needs kept in memory."""

    dir: Path
    #: the output the spill is for: a write error names it
    output: Path | str = ""
    files: list[Path] = field(default_factory=list)
    ids: list[Any] = field(default_factory=list)  # pyarrow string arrays
    probs: list[np.ndarray] = field(default_factory=list)
    rows: list[np.ndarray] = field(default_factory=list)

    def add(self, table: Any, ids: Any, probability: np.ndarray, rows: np.ndarray) -> None:
        """Spill ``table``; keep its ids (the table's id column, a chunked array), probabilities and rows."""
        import pyarrow.feather as feather

        f = self.dir / f"chunk-{len(self.files):06d}.arrow"
        try:
            feather.write_feather(table, f, compression="uncompressed")  # read back once: no encoding work
        except OSError as e:
            f.unlink(missing_ok=True)
            raise write_failure(M_("output"), self.output or f, e) from None
        self.files.append(f)
        self.ids.extend(ids.chunks)  # pa.chunked_array(self.ids) takes arrays, not chunked arrays
        self.probs.append(probability)
        self.rows.append(rows)
