"""The run's helper threads: read-ahead, prefetch, an in-order background worker and a joinable job."""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

_T = TypeVar("_T")



def prefetch(items: Iterator[_T], ahead: int = 1, name: str = "crmscore-read") -> Iterator[_T]:
    """``items`` produced by a background thread (:class:`ReadAhead`), up to ``ahead`` items beyond the one
    the consumer holds.

    Reading and cleaning chunk n+1 (pyarrow's CSV reader and casts release the GIL) then overlaps with
    scoring chunk n (XGBoost releases it too), so both cores of a small machine stay busy; with ``ahead=1``
    two chunks are alive at a time (the one being scored, the one being read). An exception of the producer is
    raised in the consumer where the item would have come; when the consumer stops early, the producer stops
    before its next item and its generator is closed (its ``finally`` blocks run).
    """
    reader = ReadAhead(items, ahead, name=name)
    try:
        yield from reader
    finally:
        reader.close()


class ReadAhead(Iterator[_T]):
    """``items`` produced by a background thread that starts at once, up to :attr:`ahead` items before the
    consumer; lowering :attr:`ahead` later (a large buffer while the model loads, one chunk once scoring runs)
    takes effect as the consumer drains the buffer. The producer's exception is raised where its item would
    have come; :meth:`close` stops the producer before its next item and closes its generator.
    """

    def __init__(
        self, items: Iterator[_T], ahead: int, name: str = "crmscore-parse", budget_bytes: int | None = None,
        size: Callable[[Any], int] | None = None,
    ) -> None:
        self.ahead = max(1, ahead)
        #: with ``size`` (an item's bytes): also stop reading ahead once the buffer holds this many bytes (at
        #: least one item is always read ahead)
        self.budget_bytes = budget_bytes
        self._size = size
        self._bytes = 0
        self._items = items
        self._buffer: list[tuple[BaseException | None, Any]] = []
        self._cond = threading.Condition()
        self._stopped = False
        self._done = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while True:
                with self._cond:
                    while self._full() and not self._stopped:
                        self._cond.wait(0.1)
                    if self._stopped:
                        return
                try:
                    x = next(self._items)
                except StopIteration:
                    self._put((None, _END))
                    return
                self._put((None, x))
                del x
        except BaseException as e:  # noqa: BLE001 - handed to the consumer
            self._put((e, None))
        finally:
            close = getattr(self._items, "close", None)
            if close is not None:
                with contextlib.suppress(Exception):
                    close()

    def _full(self) -> bool:
        if len(self._buffer) >= self.ahead:
            return True
        return bool(self._buffer) and self.budget_bytes is not None and self._bytes >= self.budget_bytes

    def _nbytes(self, item: tuple[BaseException | None, Any]) -> int:
        if self._size is None or item[0] is not None or item[1] is _END:
            return 0
        try:
            return int(self._size(item[1]))
        except Exception:  # noqa: BLE001 - a size is only a hint for the budget
            return 0

    def _put(self, item: tuple[BaseException | None, Any]) -> None:
        size = self._nbytes(item)
        with self._cond:
            self._buffer.append(item)
            self._bytes += size
            self._cond.notify_all()

    def __next__(self) -> _T:
        if self._done:
            raise StopIteration
        with self._cond:
            while not self._buffer:
                self._cond.wait(0.1)
            item = self._buffer.pop(0)
            self._bytes = max(0, self._bytes - self._nbytes(item)) if self._buffer else 0
            self._cond.notify_all()
        err, x = item
        if err is not None:
            self._done = True
            raise err
        if x is _END:
            self._done = True
            raise StopIteration
        return x

    def close(self) -> None:
        """Stop the producer (after the item it is reading) and drop what it buffered."""
        with self._cond:
            self._stopped = True
            self._buffer.clear()
            self._cond.notify_all()
        self._done = True
        if threading.current_thread() is not self._thread:
            self._thread.join(timeout=60)
        with self._cond:
            self._buffer.clear()


_END = object()


class BackgroundWorker:
    """Runs submitted calls one at a time, in order, in a background thread; :meth:`submit` waits while the
    previous call still runs (so at most one chunk is being written while the next is scored).

    Used to spill a scored chunk to Parquet while the next one is scored. The first exception of a call is
    raised by the next :meth:`submit` or by :meth:`join`; later calls are skipped then.
    """

    def __init__(self, name: str = "crmscore-write") -> None:
        self._q: queue.Queue[Callable[[], None] | None] = queue.Queue()
        self._idle = threading.Semaphore(1)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            job = self._q.get()
            if job is None:
                return
            try:
                if self._error is None:
                    job()
            except BaseException as e:  # noqa: BLE001 - re-raised in the submitting thread
                self._error = e
            finally:
                del job
                self._idle.release()

    def _check(self) -> None:
        if self._error is not None:
            raise self._error  # kept: later jobs stay skipped

    def submit(self, job: Callable[[], None]) -> None:
        """Run ``job`` next; waits for the previous job; raises the error of an earlier job."""
        self._idle.acquire()
        try:
            self._check()
        except BaseException:
            self._idle.release()
            raise
        self._q.put(job)

    def join(self) -> None:
        """Wait for every submitted job; raise the first error of any."""
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join()
        self._check()

    def abort(self) -> None:
        """Stop after the running job; errors are dropped."""
        if self._thread.is_alive():
            self._q.put(None)
            self._thread.join(timeout=60)
        self._error = None


class _Job:
    """A call run in a daemon thread; :meth:`result` waits and returns its value or raises its exception."""

    def __init__(self, fn: Callable[..., _T], *args: Any, name: str) -> None:
        self._value: Any = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, args=(fn, args), name=name, daemon=True)
        self._thread.start()

    def _run(self, fn: Callable[..., Any], args: tuple[Any, ...]) -> None:
        try:
            self._value = fn(*args)
        except BaseException as e:  # noqa: BLE001 - handed to the caller of result()
            self._error = e

    def result(self) -> Any:
        """The call's return value (or its exception, raised here)."""
        self._thread.join()
        if self._error is not None:
            raise self._error
        return self._value
