"""Admission under a burst of small requests that are scored on the event loop (no server needed).

The service scores small requests on the event loop without awaiting anything, so a request admitted and
scored in one go is never seen "in progress" by the next one. These tests run a burst of such requests on one
loop and check, by the order of what happened (no clock), that every request of the burst is admitted, queued
or refused before any of them is scored: the refusals go out first instead of after all the scoring.
"""

from __future__ import annotations

import asyncio
import concurrent.futures

from serving.http.middleware import Admission


def _run(coro):
    """``asyncio.run`` on a thread of its own (the main thread may carry another library's running loop)."""
    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, coro).result()


async def _burst(adm: Admission, n: int) -> list[tuple[str, int]]:
    """``n`` requests started in the same loop pass; each, once admitted, "scores" synchronously (no await)."""
    events: list[tuple[str, int]] = []

    async def request(i: int) -> None:
        why = await adm.acquire()
        if why is not None:
            events.append(("refused", i))
            return
        events.append(("scored", i))  # synchronous work on the loop, as an inline scoring request
        adm.release()

    await asyncio.gather(*(request(i) for i in range(n)))
    return events


def test_a_burst_is_refused_before_any_of_it_is_scored() -> None:
    adm = Admission(max_concurrency=2, max_queue=1, queue_timeout=30)
    events = _run(_burst(adm, 6))
    # two admitted, one queued, three refused at once; the queued one is scored when a turn frees up
    assert events == [("refused", 3), ("refused", 4), ("refused", 5), ("scored", 0), ("scored", 1), ("scored", 2)]
    assert adm.active == 0 and adm.queued == 0


def test_requests_read_together_are_in_progress_together_up_to_the_limit() -> None:
    async def scenario() -> int:
        adm = Admission(max_concurrency=3, max_queue=100, queue_timeout=30)
        peak = 0

        async def request() -> None:
            nonlocal peak
            assert await adm.acquire() is None
            peak = max(peak, adm.active)
            adm.release()

        await asyncio.gather(*(request() for _ in range(20)))
        return peak

    assert _run(scenario()) == 3


def test_a_request_cancelled_during_its_pass_gives_its_turn_back() -> None:
    async def scenario() -> tuple[int, int]:
        adm = Admission(max_concurrency=1, max_queue=1, queue_timeout=30)
        first = asyncio.ensure_future(adm.acquire())
        await asyncio.sleep(0)  # first is admitted and inside its pass
        assert adm.active == 1
        first.cancel()
        await asyncio.gather(first, return_exceptions=True)
        return adm.active, adm.queued

    assert _run(scenario()) == (0, 0)
