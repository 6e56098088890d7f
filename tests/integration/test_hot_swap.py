"""Hot swap: moving the champion alias reaches a running service without dropping a request.

The server runs on a private copy of the session registry (so the other module's server keeps v1);
a second version of ``lead_scoring`` is registered from the same artifacts and made champion while a
thread keeps scoring.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.integration.conftest import Registry, copy_registry, running_server

pytestmark = pytest.mark.slow
POLL_SECONDS = 1.0


def _use_registry(mp: pytest.MonkeyPatch, reg: Registry) -> None:
    from training.registry import configure_tracking

    mp.setenv("MLFLOW_TRACKING_URI", reg.uri)
    mp.setenv("MLFLOW_REGISTRY_URI", reg.uri)
    configure_tracking(reg.uri)


def _register_copy(name: str, version: str) -> str:
    """A new version of ``name`` with the artifacts of ``version`` (registered as challenger)."""
    from mlflow import MlflowClient

    from training.registry import register_challenger

    mv = MlflowClient().get_model_version(name, version)
    tags = {k: v for k, v in (mv.tags or {}).items() if k.startswith("crmscore.") and not k.startswith("crmscore.gate")}
    return register_challenger(name, mv.source, {**tags, "crmscore.trained_at": "2030-01-01T00:00:00+00:00"})


def test_champion_moves_under_load_without_failed_requests(
    crm_registry: Registry, tmp_path: Path, isolated_mlflow: pytest.MonkeyPatch
) -> None:
    monkeypatch = isolated_mlflow
    from training.registry import set_champion

    reg = copy_registry(crm_registry, tmp_path / "registry")
    _use_registry(monkeypatch, reg)
    env = {"CRMSCORE_POLL_SECONDS": str(POLL_SECONDS), "CRMSCORE_PIN_MODELS": "0"}
    with running_server(reg, tmp_path / "svc", env) as server:
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as c:
            info = c.get("/model_info").json()
            names = info["models"]["lead"]["features"]
        body = {"leads": [{"customer_id": "hs-1", "features": {n: 1.0 for n in names[:20]}}], "reasons": True}
        seen: list[tuple[float, int, str | None]] = []
        stop = threading.Event()

        def hammer() -> None:
            with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as c:
                while not stop.is_set():
                    try:
                        r = c.post("/score_leads", json=body)
                        v = r.json().get("model_version") if r.status_code == 200 else None
                        seen.append((time.monotonic(), r.status_code, v))
                    except httpx.HTTPError as e:
                        seen.append((time.monotonic(), -1, repr(e)))

        threads = [threading.Thread(target=hammer) for _ in range(2)]
        for t in threads:
            t.start()
        try:
            time.sleep(1.0)
            old = reg.versions["lead_scoring"]
            new = _register_copy("lead_scoring", old)
            moved_at = time.monotonic()
            set_champion("lead_scoring", new, "hot swap test")
            deadline = moved_at + 60
            while time.monotonic() < deadline and not any(v == new for _, _, v in seen):
                time.sleep(0.1)
            first_new = next((t for t, _, v in seen if v == new), None)
            time.sleep(1.0)  # keep scoring a little after the swap
        finally:
            stop.set()
            for t in threads:
                t.join(30)
        failed = [(s, v) for _, s, v in seen if s != 200]
        assert not failed, failed[:5]
        assert first_new is not None, "the new champion never appeared in responses"
        print(f"new version served {first_new - moved_at:.2f}s after the alias moved; {len(seen)} requests")
        # load time of the new version comes on top of the polling interval
        assert first_new - moved_at < POLL_SECONDS + 30
        versions = [v for _, _, v in seen]
        assert versions[0] == old and versions[-1] == new
        # once a worker serves the new version it never goes back
        assert old not in versions[versions.index(new):]
        with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as c:
            lead = c.get("/model_info").json()["models"]["lead"]
        assert lead["version"] == new and lead["trained_at"].startswith("2030")
        assert "crmscore_model_swaps_total" in httpx.get(f"{server.url}/metrics").text


def test_watcher_keeps_the_old_model_when_the_new_one_fails_and_pin_settings(
    crm_registry: Registry, tmp_path: Path, isolated_mlflow: pytest.MonkeyPatch
) -> None:
    monkeypatch = isolated_mlflow
    import serving.http.loader as loader
    from serving.settings import load_settings
    from training.registry import set_champion

    reg = copy_registry(crm_registry, tmp_path / "registry")
    _use_registry(monkeypatch, reg)
    monkeypatch.setenv("CRMSCORE_PIN_MODELS", "1")
    assert load_settings().pin_models
    monkeypatch.delenv("CRMSCORE_PIN_MODELS")
    settings = load_settings()
    slot = loader.ModelSlot("churn", "churn_risk", "champion")
    slot.swap(loader.load_model("churn", settings))
    old = slot.current
    watcher = loader.ModelWatcher([slot], settings)
    assert watcher.check_once() == []  # nothing moved
    new = _register_copy("churn_risk", old.version)
    set_champion("churn_risk", new, "test")

    def broken(*args: object, **kwargs: object) -> None:
        raise OSError("artifact store unreachable")

    original = loader._from_registry
    monkeypatch.setattr(loader, "_from_registry", broken)
    assert watcher.check_once() == []
    assert slot.current is old  # still serving the old version
    monkeypatch.setattr(loader, "_from_registry", original)
    assert watcher.check_once() == [("churn_risk", new)]
    assert slot.current.version == new and slot.current is not old
