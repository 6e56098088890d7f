"""GET /forecast on the real shared server: behind the API key, and a clear 404 while no forecast run exists."""

from __future__ import annotations

import httpx

from tests.integration.conftest import Server


def test_forecast_endpoint_needs_the_key_and_says_when_there_is_no_run(limits_server: Server) -> None:
    r = httpx.get(f"{limits_server.url}/forecast", timeout=60)
    assert r.status_code == 401
    r = httpx.get(f"{limits_server.url}/forecast", headers=limits_server.headers, timeout=60)
    assert r.status_code == 404, r.text
    assert "crmscore forecast" in r.json()["error"]
