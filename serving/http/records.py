"""Records of every scored lead for drift monitoring: queued in memory, written to Parquet off the hot path.

Layout: ``<home>/records/<model_name>/date=YYYY-MM-DD/part-<uuid>.parquet`` with columns ``ts`` (UTC),
``model_name``, ``model_version``, ``source`` (``http`` | ``batch``), ``customer_id``, ``probability``,
``score``, ``grade`` and the model's input feature columns. PII columns are never written. A scoring
call only appends to a queue (:meth:`RecordSink.record`); a background thread flushes it every
``flush_seconds``, or as soon as a quarter of ``max_queue`` rows is waiting (so bulk traffic is written in
time instead of filling the queue). When the queue is full or a write fails, scoring goes on and the loss is counted in
``RecordSink.dropped`` and the Prometheus counter ``crmscore_records_dropped_total``.

Batch scoring and drift monitoring use the same module: ``RecordSink(source="batch")`` and
:func:`read_records`.
"""

from __future__ import annotations

import errno
import logging
import threading
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.contract import PII_COLUMNS
from features.io import atomic_path

log = logging.getLogger("crmscore.records")

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MICROSECOND = timedelta(microseconds=1)
BASE_COLUMNS = ["ts", "model_name", "model_version", "source", "customer_id", "probability", "score", "grade"]
_counter_lock = threading.Lock()
_dropped_counter: Any = None


def dropped_counter() -> Any:
    """The Prometheus counter ``crmscore_records_dropped_total{model}`` (created on first use)."""
    global _dropped_counter
    with _counter_lock:
        if _dropped_counter is None:
            from prometheus_client import Counter

            _dropped_counter = Counter(
                "crmscore_records_dropped_total",
                "Scored rows that could not be recorded for drift monitoring (queue full or write failed)",
                ["model"],
            )
        return _dropped_counter


@dataclass
class FeatureBlock:
    """Input features of a batch: a float matrix of the numeric ones plus lists of the categorical ones."""

    numeric_names: Sequence[str]
    numeric: np.ndarray
    categorical: Mapping[str, Sequence[Any]] = field(default_factory=dict)

    @classmethod
    def from_frame(cls, frame: pd.DataFrame) -> FeatureBlock:
        """Split a feature frame into numeric and categorical (object/string/category) columns."""
        num = [c for c in frame.columns if pd.api.types.is_numeric_dtype(frame[c]) or frame[c].dtype == bool]
        cat = [c for c in frame.columns if c not in num]
        arr = frame[num].to_numpy(dtype="float64", na_value=np.nan) if num else np.zeros((len(frame), 0))
        return cls(
            [str(c) for c in num],
            arr,
            {str(c): frame[c].astype("object").where(frame[c].notna(), None).tolist() for c in cat},
        )


class _Group:
    """The queued rows of one (model, day, feature shape) as lists of NumPy arrays, one list per column.

    A scored request only appends arrays to these lists: NumPy arrays (object arrays too) and the strings and
    integers in the lists are not tracked by Python's cyclic garbage collector, so the queue adds no object that a
    collection has to scan, however many requests wait for the next flush. (Per-request dataclasses, lists and
    dicts did: every collection of the young generations that found them queued moved them to the oldest one, in
    proportion to the request rate, and those moves are what triggers full collections of the whole worker,
    ~0.25 s each; docs/serving.md, "Where the time goes".)
    """

    __slots__ = ("model_name", "day", "numeric_names", "categorical_names", "sizes", "ts", "versions", "sources",
                 "ids", "probability", "score", "grade", "numeric", "categorical")

    def __init__(self, model_name: str, day: str, numeric_names: tuple[str, ...] | None,
                 categorical_names: tuple[str, ...]) -> None:
        self.model_name = model_name
        self.day = day
        self.numeric_names = numeric_names  # None: the rows were recorded without features
        self.categorical_names = categorical_names
        self.sizes: list[int] = []
        self.ts: list[int] = []  # microseconds since the Unix epoch, one per request
        self.versions: list[str] = []
        self.sources: list[str] = []
        self.ids: list[np.ndarray] = []
        self.probability: list[np.ndarray] = []
        self.score: list[np.ndarray] = []
        self.grade: list[np.ndarray] = []
        self.numeric: list[np.ndarray] = []
        self.categorical: list[np.ndarray] = []  # (rows × categorical features) object arrays

    @property
    def rows(self) -> int:
        """Rows queued in this group."""
        return sum(self.sizes)


def _object_array(values: Sequence[Any], shape: tuple[int, ...] | None = None) -> np.ndarray:
    """An object array of ``values`` with ``shape`` (default: 1-D), whatever the values are (a value that is itself
    a sequence stays one object)."""
    shape = (len(values),) if shape is None else shape
    out = np.array(values, dtype=object)
    if out.shape != shape:  # values that numpy took for another dimension: place them one by one
        out = np.empty(shape, dtype=object)
        for index in np.ndindex(*shape):
            item: Any = values
            for i in index:
                item = item[i]
            out[index] = item
    return out


class RecordSink:
    """In-memory queue of scored rows flushed to Parquet by a background thread (never blocks scoring)."""

    def __init__(
        self,
        home: str | Path | None = None,
        source: str = "http",
        flush_seconds: float = 10.0,
        max_queue: int = 200_000,
    ) -> None:
        from serving.settings import crmscore_home

        self.root = Path(home if home is not None else crmscore_home()) / "records"
        self.source = source
        self.flush_seconds = flush_seconds
        self.max_queue = max_queue
        self.dropped = 0
        self.written = 0
        self.files = 0
        self.dropped_by_reason: dict[str, int] = {}
        self.last_error: str | None = None
        self._groups: dict[tuple, _Group] = {}  # queued rows by (model, day, feature shape), in arrival order
        self._pending = 0
        self._lock = threading.Lock()
        self._flush_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    @classmethod
    def for_service(cls, home: str | Path, settings: Any) -> RecordSink | None:
        """The started sink of the HTTP service per its settings, or None when recording is off."""
        if not settings.records_enabled:
            return None
        return cls(home, "http", settings.records_flush_seconds, settings.records_max_queue).start()

    # ------------------------------------------------------------------------------------- producer
    def record(
        self,
        model_name: str,
        model_version: str,
        customer_ids: Sequence[str],
        probability: np.ndarray | Sequence[float],
        score: np.ndarray | Sequence[int],
        grade: Sequence[str],
        features: FeatureBlock | pd.DataFrame | None = None,
        source: str | None = None,
    ) -> bool:
        """Queue one scored batch; False (and counted as dropped) when the queue is full. Never raises.

        The batch is kept as NumPy arrays appended to its group's columns (:class:`_Group`): nothing queued is
        an object the cyclic garbage collector scans."""
        try:
            n = len(customer_ids)
            if isinstance(features, pd.DataFrame):
                features = FeatureBlock.from_frame(features)
            now = datetime.now(UTC)
            if features is None:
                shape: tuple = (None, ())
                numeric = categorical = None
            else:
                cat_names = tuple(features.categorical)
                shape = (tuple(features.numeric_names), cat_names)
                numeric = np.asarray(features.numeric, dtype="float64")
                categorical = _object_array([features.categorical[c] for c in cat_names], (len(cat_names), n)).T
            ids = _object_array(customer_ids)
            prob = np.asarray(probability, dtype="float64")
            sc = np.asarray(score)
            grades = _object_array(grade)
            key = (model_name, now.date().isoformat(), *shape)
            with self._lock:
                if self._pending + n > self.max_queue:
                    full = True
                else:
                    full = False
                    group = self._groups.get(key)
                    if group is None:
                        group = self._groups[key] = _Group(model_name, key[1], shape[0], shape[1])
                    group.sizes.append(n)
                    group.ts.append((now - _EPOCH) // _MICROSECOND)
                    group.versions.append(str(model_version))
                    group.sources.append(source or self.source)
                    group.ids.append(ids)
                    group.probability.append(prob)
                    group.score.append(sc)
                    group.grade.append(grades)
                    if numeric is not None and categorical is not None:
                        group.numeric.append(numeric)
                        group.categorical.append(categorical)
                    self._pending += n
                    if self._pending * 4 >= self.max_queue:
                        self._wake.set()  # flush early: bulk traffic would fill the queue before the timer
            if full:
                self._count_dropped(model_name, n, "queue full")
                return False
            return True
        except Exception as e:  # noqa: BLE001 - recording must never break scoring
            self._count_dropped(model_name, len(customer_ids), type(e).__name__)
            return False

    def _count_dropped(self, model_name: str, n: int, why: str, reason: str | None = None) -> None:
        self.dropped += n
        key = reason or why
        self.dropped_by_reason[key] = self.dropped_by_reason.get(key, 0) + n
        try:
            dropped_counter().labels(model=model_name).inc(n)
        except Exception:  # noqa: BLE001 - metrics are best effort
            pass
        log.warning("dropped %d record row(s) of %s: %s; %s", n, model_name, why, self.describe())

    # ------------------------------------------------------------------------------------- consumer
    def start(self) -> RecordSink:
        """Start the background flusher (idempotent)."""
        if self._thread is None or not self._thread.is_alive():
            self._stop.clear()
            self._thread = threading.Thread(target=self._run, name="crmscore-record-sink", daemon=True)
            self._thread.start()
        return self

    def _run(self) -> None:
        while not self._stop.is_set():
            self._wake.wait(self.flush_seconds)
            self._wake.clear()
            if self._stop.is_set():
                break
            self.flush()

    def flush(self) -> int:
        """Write everything queued; returns the rows written. Failures are counted, never raised."""
        with self._flush_lock:
            with self._lock:
                groups = self._groups
                self._groups = {}
                self._pending = 0
            written = 0
            for group in groups.values():
                n = group.rows
                try:
                    self._write(group)
                    written += n
                    self.files += 1
                except Exception as e:  # noqa: BLE001 - disk full, permissions...: count and go on
                    reason = _reason(e)
                    self.last_error = f"{type(e).__name__}: {str(e)[:200]}"
                    self._count_dropped(group.model_name, n, f"write failed ({self.last_error})",
                                        f"write failed: {reason}")
            self.written += written
            return written

    def summary(self) -> dict[str, Any]:
        """What this sink did: rows written (and files), rows dropped per reason, the last write error."""
        return {"written_rows": self.written, "files": self.files, "dropped_rows": self.dropped,
                "dropped_by_reason": dict(self.dropped_by_reason), "last_error": self.last_error,
                "pending_rows": self._pending}

    def describe(self) -> str:
        """:meth:`summary` as one log line."""
        s = self.summary()
        why = ", ".join(f"{k}: {v:,}" for k, v in s["dropped_by_reason"].items()) or "none"
        return (f"records so far: {s['written_rows']:,} row(s) written in {s['files']:,} file(s), "
                f"{s['dropped_rows']:,} dropped ({why})")

    def _write(self, group: _Group) -> Path:
        """One Parquet part file of a (model, day) group, built with pyarrow directly (no pandas on this path)."""
        import pyarrow as pa

        sizes = np.array(group.sizes)
        n = int(sizes.sum())
        ids = np.concatenate(group.ids)
        grades = np.concatenate(group.grade)
        cols: dict[str, pa.Array] = {
            "ts": pa.array(np.repeat(np.array(group.ts, dtype="int64").astype("datetime64[us]"), sizes),
                           type=pa.timestamp("us", tz="UTC")),
            "model_name": pa.array(np.full(n, group.model_name, dtype=object), type=pa.string()),
            "model_version": pa.array(np.repeat(np.array(group.versions, dtype=object), sizes), type=pa.string()),
            "source": pa.array(np.repeat(np.array(group.sources, dtype=object), sizes), type=pa.string()),
            "customer_id": _text_array(ids),
            "probability": pa.array(np.concatenate(group.probability), type=pa.float64()),
            "score": pa.array(np.concatenate(group.score).astype("int64"), type=pa.int64()),
            "grade": _text_array(grades),
        }
        if group.numeric_names is not None:
            # no stacked copy of the whole queue: each request's block becomes one Arrow array over its memory in
            # column-major order (a copy only for a row-major block) and a column is one slice of it per request
            blocks = [(pa.array(f.ravel(order="F"), type=pa.float64()), len(f)) for f in _column_major(group.numeric)]
            for j, c in enumerate(group.numeric_names):
                if c not in PII_COLUMNS and c not in cols:
                    cols[c] = pa.chunked_array([a.slice(j * m, m) for a, m in blocks], type=pa.float64())
            cat = np.concatenate(group.categorical) if group.categorical_names else None
            for j, c in enumerate(group.categorical_names):
                if c not in PII_COLUMNS and c not in cols:
                    assert cat is not None
                    cols[c] = _text_array(cat[:, j])
        table = pa.Table.from_pydict(cols)
        path = self.root / group.model_name / f"date={group.day}" / f"part-{uuid.uuid4().hex}.parquet"
        return _write_atomic(table, path)

    def close(self, timeout: float = 10.0) -> None:
        """Stop the flusher and write what is left."""
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
        self.flush()
        log.info("record sink closed; %s", self.describe())

    @property
    def pending(self) -> int:
        """Rows queued and not yet written."""
        return self._pending


#: A queued block of at least this many rows becomes a chunk of its own in the Parquet columns; smaller ones (one-lead
#: requests) are stacked with their neighbours first, so a flush of many small requests writes few chunks.
_CHUNK_ROWS = 256


def _column_major(blocks: Sequence[np.ndarray]) -> list[np.ndarray]:
    """``blocks`` (in order) as column-major arrays: a large block as it is (copied only when row-major), runs of
    small ones stacked into one."""
    out: list[np.ndarray] = []
    small: list[np.ndarray] = []
    for b in blocks:
        if len(b) < _CHUNK_ROWS:
            small.append(b)
            continue
        if small:
            out.append(np.asfortranarray(np.concatenate(small)))
            small = []
        out.append(np.asfortranarray(b))
    if small:
        out.append(np.asfortranarray(np.concatenate(small)))
    return out


def _text_array(values: np.ndarray) -> Any:
    """An object array of strings and None as an Arrow string array (None → null; any other value as its text)."""
    import pyarrow as pa

    if set(map(type, values)) <= TEXT_TYPES:
        return pa.array(values, type=pa.string(), from_pandas=False)  # one C++ pass
    return pa.array([None if v is None else str(v) for v in values], type=pa.string())


#: The types of a categorical value as recorded (a string or missing).
TEXT_TYPES = frozenset({str, type(None)})


def _write_atomic(table: Any, path: Path) -> Path:
    """Write a pyarrow table with :func:`features.io.atomic_path` (readers never see half a file; on a full
    disk the temporary file is removed and the error propagates to :meth:`RecordSink.flush`)."""
    import pyarrow.parquet as pq

    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)
    return path


def _reason(e: BaseException) -> str:
    """A short, stable reason for a failed write (the errno name for OS errors, e.g. ``ENOSPC``)."""
    if isinstance(e, OSError) and e.errno is not None:
        return errno.errorcode.get(e.errno, str(e.errno))
    return type(e).__name__


def _as_utc(t: Any) -> pd.Timestamp | None:
    if t is None:
        return None
    ts = pd.Timestamp(t)
    return ts.tz_localize("UTC") if ts.tzinfo is None else ts.tz_convert("UTC")


def read_records(
    home: str | Path,
    model_name: str,
    since: Any = None,
    until: Any = None,
    version: str | None = None,
) -> pd.DataFrame:
    """Recorded rows of ``model_name`` with ``since <= ts < until`` (naive times are UTC), optionally one version.

    Empty frame with the base columns when nothing was recorded. Sorted by ``ts``.
    """
    root = Path(home) / "records" / model_name
    lo, hi = _as_utc(since), _as_utc(until)
    frames = []
    if root.is_dir():
        for d in sorted(root.glob("date=*")):
            try:
                day = pd.Timestamp(d.name.split("=", 1)[1]).tz_localize("UTC")
            except ValueError:
                continue
            if (lo is not None and day + pd.Timedelta(days=1) <= lo) or (hi is not None and day >= hi):
                continue
            for f in sorted(d.glob("part-*.parquet")):
                frames.append(pd.read_parquet(f))
    if not frames:
        return pd.DataFrame({c: pd.Series(dtype="object") for c in BASE_COLUMNS})
    df = pd.concat(frames, ignore_index=True)
    for c in ("model_name", "model_version", "source", "customer_id", "grade"):
        df[c] = df[c].astype("string")
    mask = np.ones(len(df), dtype=bool)
    if lo is not None:
        mask &= (df["ts"] >= lo).to_numpy()
    if hi is not None:
        mask &= (df["ts"] < hi).to_numpy()
    if version is not None:
        mask &= (df["model_version"] == str(version)).fillna(False).to_numpy(dtype=bool)
    return df.loc[mask].sort_values("ts", kind="stable").reset_index(drop=True)
