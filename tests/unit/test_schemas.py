"""Request models and service settings: what is accepted, what is refused and how."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest
from pydantic import ValidationError

from serving.http.schemas import Customer, Lead, ScoreRequest, ScoreResponse
from serving.settings import ServingSettings, load_api_keys, load_settings


def _errors(body: bytes | dict) -> list[dict]:
    with pytest.raises(ValidationError) as e:
        if isinstance(body, bytes):
            ScoreRequest.model_validate_json(body)
        else:
            ScoreRequest.model_validate(body)
    return e.value.errors(include_input=False)


def test_lead_needs_exactly_one_source() -> None:
    assert Lead.model_validate({"customer_id": "a", "features": {"age": 3}}).id == "a"
    assert Lead.model_validate({"profile": {"customer_id": "b"}}).id == "b"
    for bad, why in [
        ({"customer_id": "a"}, "either"),
        ({"customer_id": "a", "features": {}, "profile": {"customer_id": "a"}}, "either"),
        ({"features": {"age": 3}}, "'customer_id' is required"),
        ({"customer_id": "a", "features": {}, "events": {}}, "'events' go with a 'profile'"),
        ({"customer_id": "z", "profile": {"customer_id": "b"}}, "differs"),
    ]:
        with pytest.raises(ValidationError, match=why):
            Lead.model_validate(bad)


def test_feature_values_types() -> None:
    lead = ScoreRequest.model_validate_json(
        b'{"leads": [{"customer_id": "a", "features": {"n": 3, "f": 2.5, "b": true, "s": "web", "m": null}}]}'
    ).leads[0]
    assert lead.features == {"n": 3.0, "f": 2.5, "b": True, "s": "web", "m": None}
    assert isinstance(lead.features["n"], float) and lead.features["b"] is True
    for literal in (b"NaN", b"Infinity", b"-Infinity", b"1e999"):
        errs = _errors(b'{"leads": [{"customer_id": "a", "features": {"x": ' + literal + b"}}]}")
        assert errs[0]["loc"][:4] == ("leads", 0, "features", "x")
        assert errs[0]["type"] == "finite_number"
    assert _errors({"leads": [{"customer_id": "a", "features": {"x": [1]}}]})[0]["loc"][:4] == (
        "leads", 0, "features", "x")


def test_profile_accepts_pii_refuses_unknown_fields_and_checks_ranges() -> None:
    p = Lead.model_validate(
        {"profile": {"customer_id": "a", "name": "张三", "phone": "138", "email": "a@b.c", "address": "x"}}
    ).profile
    assert p.name == "张三"
    errs = _errors({"leads": [{"profile": {"customer_id": "a", "shoe": 1}}]})
    assert errs[0]["type"] == "extra_forbidden" and errs[0]["loc"] == ("leads", 0, "profile", "shoe")
    assert _errors({"leads": [{"profile": {"customer_id": "a", "age": 200}}]})[0]["loc"][-1] == "age"
    assert _errors({"leads": [{"profile": {"customer_id": ""}}]})[0]["loc"][-1] == "customer_id"
    errs = _errors({"leads": [{"profile": {"customer_id": "a"}, "events": {"orders": [
        {"ts": "2025-01-01", "amount": -5, "status": "paid"}]}}]})
    assert errs[0]["loc"] == ("leads", 0, "events", "orders", 0, "amount")


def test_timestamps_with_an_offset_become_naive_utc() -> None:
    lead = Lead.model_validate({
        "profile": {"customer_id": "a", "created_at": "2025-06-01T08:00:00+08:00"},
        "events": {"interactions": [{"ts": "2025-06-02T00:00:00Z", "channel": "web", "event_type": "visit"}]},
        "as_of": "2025-06-30T12:00:00",
    })
    assert lead.profile.created_at == datetime(2025, 6, 1, 0, 0)
    assert lead.events.interactions[0].ts == datetime(2025, 6, 2) and lead.as_of.tzinfo is None


def test_request_shapes() -> None:
    assert _errors({"leads": []})[0]["type"] == "too_short"
    assert _errors(b'{"leads": [')[0]["type"] == "json_invalid"
    assert ScoreRequest.model_validate({"leads": [{"customer_id": "a", "features": {}}]}).reasons is True
    with pytest.raises(ValidationError, match="'customer_id' is required"):
        Customer.model_validate({"summary": {"frequency": 1.0}})
    schema = ScoreRequest.model_json_schema()
    assert "example" in schema["$defs"]["Lead"] and schema["properties"]["leads"]["description"]
    assert ScoreResponse.model_json_schema()["properties"]["results"]


def test_settings_defaults_file_and_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from features.config import ConfigError
    from serving.settings import ENV_OVERRIDES

    for var in ("CRMSCORE_SERVING_CONFIG", *ENV_OVERRIDES):
        monkeypatch.delenv(var, raising=False)
    assert load_settings() == ServingSettings()
    shipped = Path(__file__).resolve().parents[2] / "configs" / "serving.yaml"
    assert load_settings(shipped) == ServingSettings()  # the shipped file equals the embedded defaults
    cfg = tmp_path / "serving.yaml"
    cfg.write_text("max_batch: 500\npoll_interval_seconds: 5\n")
    monkeypatch.setenv("CRMSCORE_SERVING_CONFIG", str(cfg))
    monkeypatch.setenv("CRMSCORE_PIN_MODELS", "yes")
    monkeypatch.setenv("CRMSCORE_POLL_SECONDS", "2.5")
    s = load_settings()
    assert (s.max_batch, s.poll_interval_seconds, s.pin_models) == (500, 2.5, True)
    monkeypatch.setenv("CRMSCORE_MAX_BATCH", "0")
    with pytest.raises(ConfigError, match="CRMSCORE_MAX_BATCH"):
        load_settings()
    cfg.write_text("max_batchh: 5\n")
    monkeypatch.delenv("CRMSCORE_MAX_BATCH")
    with pytest.raises(ConfigError, match="max_batchh"):
        load_settings()


def test_api_keys_from_env_and_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CRMSCORE_API_KEYS_FILE", raising=False)
    monkeypatch.setenv("CRMSCORE_API_KEYS", " k1, ,k2 ")
    assert load_api_keys() == {"k1", "k2"}
    f = tmp_path / "keys"
    f.write_text("# team keys\nk3\n\nk4  # ops\n")
    monkeypatch.setenv("CRMSCORE_API_KEYS_FILE", str(f))
    assert load_api_keys() == {"k1", "k2", "k3", "k4"}
    monkeypatch.delenv("CRMSCORE_API_KEYS")
    monkeypatch.setenv("CRMSCORE_API_KEYS_FILE", str(tmp_path / "missing"))
    with pytest.raises(FileNotFoundError, match="CRMSCORE_API_KEYS_FILE"):
        load_api_keys()
