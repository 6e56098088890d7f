"""`crmscore monitor drift` with a real trained model: the top-feature rule, both ways, in one monitor run.

The registry is the integration session's (``crm_registry``: a small XGBoost ``lead_scoring`` trained on
synthetic customers), copied for this module. The recorded rows are the version's own reference sample (so nothing
drifts), with two features shifted for every row the way the issue describes (``x × 4 + 5``): the model's most
important numeric feature and its least important one. The rule judges each feature on its own, so one run
(module fixture: Evidently's report of every column is most of a run's cost) shows both outcomes: the top feature
→ exit 3, an alert naming it, and that alert is the only one; the feature outside the top-k → a warning line and
no alert of its own.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.io import write_parquet_atomic
from tests.integration.conftest import Registry, copy_registry, keep_mlflow_globals

pytestmark = pytest.mark.slow
MODEL = "lead_scoring"
TOP_K = 10


@pytest.fixture(scope="module")
def monitored(crm_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One monitor run on a private copy of the registry: the rows recorded with the top and the least important
    numeric feature shifted; what the run printed and summarised, and the two features."""
    from serving.http.loader import load_scorer_artifact
    from serving.monitoring.importance import feature_importance
    from serving.monitoring.sources import load_reference, resolve_model_version
    from training.registry import configure_tracking

    tmp = tmp_path_factory.mktemp("monitor_importance")
    reg = copy_registry(crm_registry, tmp / "registry")
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", reg.uri)
        mp.setenv("MLFLOW_REGISTRY_URI", reg.uri)
        home = tmp / "home"
        mp.setenv("CRMSCORE_HOME", str(home))
        configure_tracking(reg.uri)
        ref_model = resolve_model_version(MODEL)
        reference = load_reference(ref_model.run_id)
        scorer = load_scorer_artifact(f"models:/{MODEL}/{ref_model.version}")
        ranking = list(feature_importance(scorer, reference))
        top = next(f for f in ranking if _numeric(reference, f))
        low = next(f for f in reversed(ranking) if _numeric(reference, f))
        cfg = tmp / "monitor.yaml"
        cfg.write_text(f"log_to_mlflow: false\nworkspace: {tmp / 'ws'}\ntop_features: {TOP_K}\n", encoding="utf-8")
        _record_shifted(home, reference, [top, low], ref_model.version)
        res, summary = _drift(cfg, tmp / "out")
    return {"ranking": ranking, "top": top, "low": low, "res": res, "summary": summary}


def _record_shifted(home: Path, reference: pd.DataFrame, features: list[str], version: str) -> None:
    """The reference rows as today's records, each of ``features`` × 4 + 5 on every row."""
    rows = reference.copy()
    for feature in features:
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


def test_a_top_feature_shifted_alerts_and_is_named(monitored: dict[str, Any]) -> None:
    top, res, summary = monitored["top"], monitored["res"], monitored["summary"]
    assert monitored["ranking"].index(top) < TOP_K
    assert res.exit_code == 3, res.output
    assert f"strong drift in {top}" in res.output and "ALERT" in res.output
    assert summary["data_drift"]["n_drifted"] / summary["data_drift"]["n_features"] < 0.3  # the share rule alone: ok
    rule = summary["data_drift"]["top_feature_rule"]
    assert rule["applied"] and summary["status"] == "drift"
    # the top feature's alert is the run's only alert: the shifted unimportant feature added none
    assert len(rule["alerts"]) == 1 and rule["alerts"][0].startswith(f"strong drift in {top},"), rule["alerts"]
    assert summary["alerts"] == rule["alerts"]


def test_an_unimportant_feature_shifted_warns_without_alert(monitored: dict[str, Any]) -> None:
    low, res, summary = monitored["low"], monitored["res"], monitored["summary"]
    assert monitored["ranking"].index(low) >= TOP_K
    assert any(line.strip().startswith(f"warning: strong drift in {low} ") for line in res.output.splitlines()), (
        res.output
    )
    assert any(w.startswith(f"strong drift in {low} ") and w.endswith("no alert") for w in summary["warnings"])
    assert not any(a.startswith(f"strong drift in {low},") for a in summary["alerts"]), summary["alerts"]
