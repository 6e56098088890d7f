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


def test_scoring_latency_buckets_are_fine_from_1_ms_to_30_s() -> None:
    from serving.http.middleware import SCORING_LATENCY_BUCKETS as b

    assert b[0] == 0.001 and b[-1] == 30.0 and list(b) == sorted(set(b))
    assert max(hi / lo for lo, hi in zip(b, b[1:], strict=False)) <= 1.28


def test_accepted_and_shed_requests_are_timed_apart(monkeypatch: pytest.MonkeyPatch) -> None:
    """A real GuardMiddleware in front of a tiny ASGI app: one request admitted, the next shed (queue full);
    each lands in its own ``outcome`` series of ``crmscore_scoring_latency_seconds``."""
    from prometheus_client import REGISTRY

    from serving.http.middleware import GuardMiddleware
    from serving.settings import ServingSettings

    def count(outcome: str) -> float:
        labels = {"endpoint": "/score_leads", "outcome": outcome}
        return REGISTRY.get_sample_value("crmscore_scoring_latency_seconds_count", labels) or 0.0

    release = asyncio.Event()

    async def app(scope: dict, receive: object, send: object) -> None:
        await release.wait()  # the first request stays in progress until the second was refused
        await send({"type": "http.response.start", "status": 200, "headers": []})  # type: ignore[operator]
        await send({"type": "http.response.body", "body": b"{}"})  # type: ignore[operator]

    async def scenario() -> list[int]:
        guard = GuardMiddleware(app, ServingSettings(max_concurrency=1, max_queue=0, max_loop_lag_seconds=None))
        statuses: list[int] = []

        async def call() -> None:
            scope = {"type": "http", "path": "/score_leads", "method": "POST", "query_string": b"",
                     "headers": [(b"authorization", b"Bearer unit-key"), (b"content-type", b"application/json")]}

            async def receive() -> dict:
                return {"type": "http.request", "body": b"{}", "more_body": False}

            async def send(msg: dict) -> None:
                if msg["type"] == "http.response.start":
                    statuses.append(msg["status"])
                    if msg["status"] == 503:
                        release.set()

            await guard(scope, receive, send)

        await asyncio.gather(call(), call())
        return statuses

    monkeypatch.setenv("CRMSCORE_API_KEYS", "unit-key")
    for var in ("CRMSCORE_KEYS_FILE", "CRMSCORE_API_KEYS_FILE"):
        monkeypatch.delenv(var, raising=False)
    before = {o: count(o) for o in ("accepted", "shed")}
    statuses = _run(scenario())
    assert sorted(statuses) == [200, 503]
    assert count("accepted") - before["accepted"] == 1 and count("shed") - before["shed"] == 1
