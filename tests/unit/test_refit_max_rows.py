"""`refit_max_rows`: the training job refits the winner on a stratified sample of at most that many rows.

docs/learning_curve.md: the job samples to where the learning curve is flat. One small generated training set
(the synthetic CRM, a few hundred customers, three cutoffs), one logistic-regression candidate, a throwaway
SQLite registry; the number of rows the winner was refitted on is the run's ``rows_refit`` parameter.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pytest

from training.train import Split


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory):
    """One throwaway SQLite tracking store and registry for the module (MLflow's globals restored after)."""
    from tests.conftest import keep_mlflow_globals

    root = tmp_path_factory.mktemp("refit")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_REGISTRY_URI", uri)
        mp.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
        mp.chdir(root)
        yield uri


@pytest.fixture(scope="module")
def split() -> tuple[Split, object]:
    """An out-of-time lead split of generated data and the fitted feature builder."""
    from features.build import CRMFeatureBuilder
    from features.config import LabelConfig
    from features.labels import build_training_set, latest_labelable_cutoff
    from features.synth import generate_crm_data
    from training.train import split_by_cutoff

    synth = generate_crm_data(400, 300, 5)
    tables = {t: getattr(synth, t) for t in ("customers", "interactions", "orders", "marketing_touches")}
    labels = LabelConfig(n_cutoffs=3, horizon_days=60, churn_lookback_days=365)
    as_of = latest_labelable_cutoff(tables, labels.horizon_days)
    ds = build_training_set(tables, "lead", as_of, labels=labels)
    return split_by_cutoff(ds), CRMFeatureBuilder().fit()


def _train(split: Split, builder, refit_max_rows: int | None) -> dict[str, str]:
    from training.config import TrainConfig
    from training.train import fit_log_register

    cfg = TrainConfig(task="lead", candidates=["logreg"], refit_max_rows=refit_max_rows, xgb_threads=1)
    result = fit_log_register(split, cfg, categorical=list(builder.categorical_features_), builder=builder)
    return mlflow.MlflowClient().get_run(result.run_id).data.params


def test_refit_uses_exactly_refit_max_rows_when_there_are_more(split, store):
    s, builder = split
    n_refit = len(s.y_refit)
    assert n_refit > 100 and 0 < s.y_refit.mean() < 1
    cap = 60
    params = _train(s, builder, cap)
    assert int(params["rows_refit"]) == cap
    assert int(params["rows_train"]) + int(params["rows_val"]) == n_refit  # the split itself is not cut

    # the sample is stratified: both classes, in about the share of all refit rows
    from training.train import _cap_rows

    X, y = _cap_rows(s.X_refit, s.y_refit, cap, 42)
    assert len(y) == len(X) == cap and abs(y.mean() - s.y_refit.mean()) <= 1 / cap + 1e-9
    assert set(np.unique(y)) == {0, 1}


def test_refit_uses_all_rows_when_there_are_fewer(split, store):
    s, builder = split
    n_refit = len(s.y_refit)
    assert int(_train(s, builder, n_refit)["rows_refit"]) == n_refit  # exactly as many: no sampling
