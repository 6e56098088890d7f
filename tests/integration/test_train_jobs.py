"""Training jobs end to end into a throwaway SQLite tracking store and registry."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from features.config import LabelConfig
from features.contract import PII_COLUMNS
from features.io import write_parquet_atomic
from tests.fixtures.crm import make_tables
from training.config import TrainConfig, XGBSearch
from training.registry import CHALLENGER, CHAMPION, get_alias_version, rollback, set_champion
from training.train import train_crm

LABELS = LabelConfig(n_cutoffs=3, cutoff_step_days=30, horizon_days=60, churn_lookback_days=365)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("crm")
    for name, df in make_tables(1200, seed=11).items():
        write_parquet_atomic(df, d / f"{name}.parquet")
    return d


def _cfg(**kw) -> TrainConfig:
    base = dict(task="churn", labels=LABELS, xgb_search=XGBSearch(n_trials=1), candidates=["logreg", "xgboost"])
    return TrainConfig(**{**base, **kw})


def test_train_logs_children_registers_and_gates(data_dir, tracking_uri):
    first = train_crm(data_dir, _cfg())
    assert first.promoted and first.version == "1"
    assert get_alias_version("churn_risk", CHAMPION) == "1"
    client = MlflowClient()
    parent = client.get_run(first.run_id)
    for key in ("rows_train", "rows_test", "data_hash", "split.test_cutoff"):
        assert key in parent.data.params
    for key in (
        "test_roc_auc",
        "test_pr_auc",
        "test_log_loss",
        "test_brier",
        "test_ks",
        "test_lift_top_decile",
        "test_capture_top10",
        "test_capture_top20",
        "test_ece",
    ):
        assert key in parent.data.metrics
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{first.run_id}'"
    )
    assert {c.data.params["candidate"] for c in children} == {"logreg", "xgboost_1"}
    arts = {a.path for a in client.list_artifacts(first.run_id, "evaluation")}
    for a in (
        "gain_chart.png",
        "calibration.png",
        "shap_summary.png",
        "rate_per_score_band.csv",
        "grade_thresholds.json",
        "reference.parquet",
        "feature_importance.png",
    ):
        assert f"evaluation/{a}" in arts
    ref = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path="evaluation/reference.parquet")
    )
    assert "probability" in ref.columns and not set(ref.columns) & PII_COLUMNS
    # no PII in params either
    assert not any(p in json.dumps(parent.data.params) for p in ("张三", "@example.com"))

    # the same job again is not better by the margin: registered as challenger, champion stays
    second = train_crm(data_dir, _cfg())
    assert second.version == "2" and not second.promoted
    assert get_alias_version("churn_risk", CHAMPION) == "1"
    assert get_alias_version("churn_risk", CHALLENGER) == "2"
    tags = client.get_model_version("churn_risk", "2").tags
    assert tags["crmscore.gate.promote"] == "false" and "margin" in tags["crmscore.gate.reason"]

    # manual promotion then rollback
    set_champion("churn_risk", "2", "manual")
    assert get_alias_version("churn_risk", CHAMPION) == "2"
    assert rollback("churn_risk") == "1"
    assert get_alias_version("churn_risk", CHAMPION) == "1"


def test_logged_model_loads_with_skops_in_a_fresh_process(crm_registry, isolated_mlflow, tmp_path):
    """The session registry's XGBoost lead champion (``crm_registry``, trained by ``train_crm`` as here) loads in a
    fresh process and predicts what it predicts in this one."""
    isolated_mlflow.setenv("MLFLOW_TRACKING_URI", crm_registry.uri)
    isolated_mlflow.setenv("MLFLOW_REGISTRY_URI", crm_registry.uri)
    mlflow.set_tracking_uri(crm_registry.uri)
    mlflow.set_registry_uri(crm_registry.uri)
    run_id = MlflowClient().get_model_version_by_alias("lead_scoring", CHAMPION).run_id
    (tmp_path / "ref").mkdir()
    feats = (
        pd.read_parquet(
            mlflow.artifacts.download_artifacts(
                run_id=run_id, artifact_path="evaluation/reference.parquet", dst_path=str(tmp_path / "ref")
            )
        )
        .drop(columns="probability")
        .head(20)
    )
    feats.to_parquet(tmp_path / "x.parquet")
    expected = mlflow.pyfunc.load_model("models:/lead_scoring@champion").predict(feats)
    code = (
        "import sys, mlflow, pandas as pd, numpy as np\n"
        "m = mlflow.pyfunc.load_model('models:/lead_scoring@champion')\n"
        f"np.save(sys.argv[1], np.asarray(m.predict(pd.read_parquet('{tmp_path / 'x.parquet'}'))))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.npy")], check=True, cwd=tmp_path)
    got = np.load(tmp_path / "p.npy")
    np.testing.assert_allclose(got, np.asarray(expected), rtol=1e-9)
    assert got.shape == (20, 2)


def test_untrusted_type_is_refused(tmp_path):
    from sklearn.pipeline import Pipeline

    from training.model import TRUSTED_TYPES

    class Sneaky(Pipeline):
        pass

    assert "tests.integration.test_train_jobs.Sneaky" not in TRUSTED_TYPES
    with pytest.raises(Exception, match="(?i)untrusted"):
        mlflow.sklearn.save_model(Sneaky([("x", "passthrough")]), str(tmp_path / "m"), serialization_format="skops")


def test_better_challenger_is_promoted_on_the_same_out_of_time_rows(tracking_uri, tmp_path):
    from features.synth import generate_crm_data, write_crm_data

    data = tmp_path / "demo"
    write_crm_data(generate_crm_data(3000, 365, 5), data)
    weak = XGBSearch(n_trials=1, n_estimators=[2], max_depth=[1], learning_rate=[0.03])
    base = dict(task="lead", candidates=["xgboost"], labels=LabelConfig(n_cutoffs=3))
    first = train_crm(data, TrainConfig(**base, xgb_search=weak))
    second = train_crm(
        data,
        TrainConfig(**base, xgb_search=XGBSearch(n_trials=1, n_estimators=[200], max_depth=[3], learning_rate=[0.06])),
    )
    assert first.promoted and second.promoted
    assert second.test_metrics["roc_auc"] > first.test_metrics["roc_auc"] + 0.002
    assert get_alias_version("lead_scoring", CHAMPION) == second.version
    tags = MlflowClient().get_model_version("lead_scoring", second.version).tags
    assert tags["crmscore.gate.promote"] == "true" and tags["crmscore.gate.champion_version"] == first.version
    assert "test_auc_share_of_oracle" in second.test_metrics  # demo data: compared with the oracle
