"""The service middleware's parts that need no server: admission, the per-key rate limit, the log redaction."""

from __future__ import annotations

import asyncio
import logging

import pytest

from serving.http.middleware import Admission, ClientErrorRedaction, KeyRateLimiter
from tests.aio import run_async as _run


def test_admission_admits_queues_in_order_and_refuses_beyond_the_queue() -> None:
    async def scenario() -> list[str]:
        adm = Admission(max_concurrency=2, max_queue=2, queue_timeout=30)
        order: list[str] = []
        assert await adm.acquire() is None and await adm.acquire() is None  # two in progress
        waiting = [asyncio.ensure_future(adm.acquire()) for _ in range(2)]  # two queued
        await asyncio.sleep(0)
        assert adm.queued == 2
        assert await adm.acquire() == "queue full"  # the fifth is refused at once
        for i, w in enumerate(waiting):
            w.add_done_callback(lambda _f, i=i: order.append(f"w{i}"))
        adm.release()
        await asyncio.sleep(0)
        adm.release()
        assert [await w for w in waiting] == [None, None]
        await asyncio.sleep(0)
        assert adm.active == 2 and adm.queued == 0
        adm.release()
        adm.release()
        assert adm.active == 0
        return order

    assert _run(scenario()) == ["w0", "w1"]  # arrival order


def test_admission_refuses_a_request_that_waited_too_long_and_keeps_its_counts() -> None:
    async def scenario() -> None:
        adm = Admission(max_concurrency=1, max_queue=5, queue_timeout=0.01)
        assert await adm.acquire() is None
        assert await adm.acquire() == "queue timeout"
        assert adm.active == 1 and adm.queued == 0
        adm.release()
        assert await adm.acquire() is None  # the turn is free again
        cancelled = asyncio.ensure_future(Admission(1, 5, 30).acquire())
        cancelled.cancel()

    _run(scenario())


def test_admission_without_a_limit_never_refuses() -> None:
    async def scenario() -> None:
        adm = Admission(max_concurrency=None, max_queue=0, queue_timeout=1)
        assert all([await adm.acquire() is None for _ in range(1000)])

    _run(scenario())


def test_rate_limit_per_key_with_burst_and_retry_time() -> None:
    lim = KeyRateLimiter(rate=2.0, burst=2)
    assert lim.take(b"a", now=0.0) == 0 and lim.take(b"a", now=0.0) == 0
    assert lim.take(b"a", now=0.0) == pytest.approx(0.5)  # empty: the next token in half a second
    assert lim.take(b"b", now=0.0) == 0  # another key has its own bucket
    assert lim.take(b"a", now=0.6) == 0


def test_pydantic_errors_quote_the_request_body() -> None:
    """The upstream behaviour the redaction exists for: pydantic's message quotes the input (possibly PII),
    and BentoML 1.4 logs it with a traceback; the redaction keeps only the path and the error type."""
    from pydantic import BaseModel, ValidationError

    class Body(BaseModel):
        age: int

    with pytest.raises(ValidationError) as caught:
        Body.model_validate_json(b'{"age": "ZZPII_secret"}')
    assert "ZZPII_secret" in str(caught.value)
    record = logging.LogRecord("bentoml._internal.server.http_app", logging.ERROR, __file__, 1,
                               "Exception on %s [%s]", ("/score_leads", "POST"),
                               (ValidationError, caught.value, None))
    assert ClientErrorRedaction().filter(record)
    text = logging.Formatter().format(record)
    assert "ZZPII_secret" not in text and "/score_leads" in text and record.levelno == logging.WARNING
    other = logging.LogRecord("x", logging.ERROR, __file__, 1, "boom", (), (RuntimeError, RuntimeError("x"), None))
    assert ClientErrorRedaction().filter(other) and other.exc_info is not None  # other errors untouched


def test_loop_lag_sees_a_blocked_event_loop() -> None:
    import time

    from serving.http.middleware import LoopLag

    async def scenario() -> tuple[float, float]:
        lag = LoopLag(interval=0.01)
        lag.start()
        await asyncio.sleep(0.05)
        idle = lag.lag
        time.sleep(0.3)  # what a pile of requests scored on the loop does to it
        for _ in range(3):  # let the late timer run
            await asyncio.sleep(0)
        return idle, lag.lag

    idle, blocked = _run(scenario())
    assert blocked > 0.2 > idle
