"""`crmscore monitor drift` with a real trained model: the top-feature rule, both ways.

The registry is the integration session's (``crm_registry``: a small XGBoost ``lead_scoring`` trained on
synthetic customers), copied per test. The recorded rows are the version's own reference sample (so nothing
drifts), with one feature shifted for every row the way the issue describes (``x × 4 + 5``): the model's most
important feature → exit 3 and the feature named; a feature outside the top-k → exit 0 and a warning line.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.io import write_parquet_atomic
from tests.integration.conftest import Registry, copy_registry

pytestmark = pytest.mark.slow
MODEL = "lead_scoring"
TOP_K = 10


@pytest.fixture()
def monitored(crm_registry: Registry, tmp_path: Path, isolated_mlflow: pytest.MonkeyPatch):
    """(home, reference sample, importance ranking, config path) on a private copy of the registry."""
    from serving.http.loader import load_scorer_artifact
    from serving.monitoring.importance import feature_importance
    from serving.monitoring.sources import load_reference, resolve_model_version
    from training.registry import configure_tracking

    reg = copy_registry(crm_registry, tmp_path / "registry")
    isolated_mlflow.setenv("MLFLOW_TRACKING_URI", reg.uri)
    isolated_mlflow.setenv("MLFLOW_REGISTRY_URI", reg.uri)
    home = tmp_path / "home"
    isolated_mlflow.setenv("CRMSCORE_HOME", str(home))
    configure_tracking(reg.uri)
    ref_model = resolve_model_version(MODEL)
    reference = load_reference(ref_model.run_id)
    scorer = load_scorer_artifact(f"models:/{MODEL}/{ref_model.version}")
    ranking = feature_importance(scorer, reference)
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(f"log_to_mlflow: false\nworkspace: {tmp_path / 'ws'}\ntop_features: {TOP_K}\n", encoding="utf-8")
    return home, reference, ranking, cfg, ref_model.version


def _record_shifted(home: Path, reference: pd.DataFrame, feature: str, version: str) -> None:
    """The reference rows as today's records, ``feature`` × 4 + 5 on every row."""
    rows = reference.copy()
    rows[feature] = pd.to_numeric(rows[feature]) * 4 + 5
    now = pd.Timestamp.now(tz="UTC").floor("s")
    base = pd.DataFrame({
        "ts": [now - pd.Timedelta(seconds=i % 3600) for i in range(len(rows))],
        "model_name": MODEL, "model_version": version, "source": "http",
        "customer_id": [f"C{i}" for i in range(len(rows))],
        "probability": rows["probability"].to_numpy(),
        "score": np.clip(np.rint(rows["probability"].to_numpy() * 100), 1, 99).astype("int64"), "grade": "C",
    })
    rec = pd.concat([base, rows.drop(columns="probability").reset_index(drop=True)], axis=1)
    day = now.strftime("%Y-%m-%d")
    write_parquet_atomic(rec, home / "records" / MODEL / f"date={day}" / f"part-{uuid.uuid4().hex}.parquet")


def _numeric(reference: pd.DataFrame, name: str) -> bool:
    s = pd.to_numeric(reference[name], errors="coerce")
    return bool(s.notna().mean() > 0.9 and s.std() > 0)


def _drift(cfg: Path, out: Path):
    from serving.cli import app

    res = CliRunner().invoke(app, ["monitor", "drift", "--model", MODEL, "--since", "1d", "--out", str(out),
                                   "--config", str(cfg)])
    summary = json.loads((out / "drift_summary.json").read_text(encoding="utf-8")) if out.is_dir() else None
    return res, summary


def test_a_top_feature_shifted_alerts_and_is_named(monitored, tmp_path: Path) -> None:
    home, reference, ranking, cfg, version = monitored
    top = next(f for f in ranking if _numeric(reference, f))
    assert list(ranking).index(top) < TOP_K
    _record_shifted(home, reference, top, version)
    res, summary = _drift(cfg, tmp_path / "out")
    assert res.exit_code == 3, res.output
    assert f"strong drift in {top}" in res.output and "ALERT" in res.output
    assert summary["data_drift"]["n_drifted"] / summary["data_drift"]["n_features"] < 0.3  # the share rule alone: ok
    rule = summary["data_drift"]["top_feature_rule"]
    assert rule["applied"] and any(top in a for a in rule["alerts"]) and summary["status"] == "drift"


def test_an_unimportant_feature_shifted_warns_without_alert(monitored, tmp_path: Path) -> None:
    home, reference, ranking, cfg, version = monitored
    low = next(f for f in reversed(ranking) if _numeric(reference, f))
    assert list(ranking).index(low) >= TOP_K
    _record_shifted(home, reference, low, version)
    res, summary = _drift(cfg, tmp_path / "out")
    assert res.exit_code == 0, res.output
    assert "status: ok" in res.output
    assert any(line.strip().startswith(f"warning: strong drift in {low}") for line in res.output.splitlines())
    assert summary["data_drift"]["top_feature_rule"]["alerts"] == []
