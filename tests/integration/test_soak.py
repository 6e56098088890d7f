"""One-minute soak of the real service (the CI version of bench/soak.py's 10-minute run).

``crmscore serve`` with the session's small trained registry; the peak throughput of one-lead requests with
reasons is measured for a few seconds (closed loop, 16 connections), then a constant open-loop rate of 80% of
it is held for 60 s in 20-second windows. The load generator runs in this process on the same cores as the
server, so the peak it measures includes its own cost and 80% of it is reachable on a 2-core CI machine.

A window's p99 also moves when a neighbouring job takes the cores for a second (an open-loop rate turns a 1.5 s
stall into hundreds of late requests), so when only the p99 criterion fails the minute is run again, up to
twice, and the last run decides; failed requests and memory growth are never retried. A server that really
degrades over time fails every run. (One retry was not enough: on 27 Nov the unchanged service failed the p99
criterion in both of its minutes in one clean-clone CI run of four, with a one-second stall in one window.)
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bench.soak import lead_body, measure_peak, run_soak
from tests.integration.conftest import Registry, running_server

pytestmark = pytest.mark.slow


def test_one_minute_soak_at_80_percent_of_peak(crm_registry: Registry, tmp_path: Path) -> None:
    body = lead_body(crm_registry.data)
    with running_server(crm_registry, tmp_path / "svc", {"CRMSCORE_PIN_MODELS": "1"}) as server:
        url = f"{server.url}/score_leads"
        peak = measure_peak(url, server.headers, body, seconds=5, connections=16)
        assert peak > 0, server.log_text()[-3000:]
        runs: list[str] = []
        for _attempt in range(3):  # p99-only failures: up to two more minutes (module docstring)
            result = run_soak(
                url, server.headers, body, rate=0.8 * peak, duration=60, window=20, server_pid=server.proc.pid, warmup=5
            )
            runs.append(result.table())
            rss_ok = result.rss_growth is not None and result.rss_growth < 0.10
            if not (result.failed == 0 and rss_ok and result.p99_ratio > 2.0):
                break  # passed, or failed on something a retry must not hide
    report = f"peak {peak:.1f} req/s\n" + "\n\nretried:\n".join(runs)
    assert len(result.windows) == 3, report
    assert result.requests == int(0.8 * peak * 60), report
    assert result.failed == 0, report
    assert result.p99_ratio <= 2.0, report
    assert result.rss_growth is not None and result.rss_growth < 0.10, report
