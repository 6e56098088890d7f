"""CRMScorer's serving fast paths give exactly what the scikit-learn API gives."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

xgb = pytest.importorskip("xgboost")

from training.explain import iteration_range  # noqa: E402
from training.model import CRMScorer, FeaturePreprocessor, _plain_binary_xgb  # noqa: E402


def _data(n: int = 400, seed: int = 0) -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n), "c": rng.choice(["x", "y", None], n)})
    X.loc[rng.random(n) < 0.1, "a"] = np.nan
    y = (X["a"].fillna(0) + rng.normal(size=n) > 0).astype(int).to_numpy()
    return X, y


@pytest.mark.parametrize("calibration", ["sigmoid", "isotonic", None])
def test_probabilities_and_contributions_equal_the_sklearn_api(calibration: str | None) -> None:
    X, y = _data()
    est = xgb.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1)
    sc = CRMScorer(est, FeaturePreprocessor(categorical=["c"], min_frequency=1), calibration=calibration).fit(X, y)
    assert _plain_binary_xgb(sc.estimator_)
    Z = sc.preprocessor_.transform(_data(50, seed=1)[0])
    raw = sc.estimator_.predict_proba(Z)[:, 1]
    np.testing.assert_array_equal(sc._raw_proba(Z), raw)
    p = sc.predict_proba_matrix(Z)
    # contributions (every path: training.explain → training.treeshap) are XGBoost's pred_contribs within
    # float32 rounding
    want = sc.estimator_.get_booster().predict(xgb.DMatrix(Z), pred_contribs=True)
    np.testing.assert_allclose(sc.contributions_matrix(Z), want, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(sc.predict_proba(_data(50, seed=1)[0])[:, 1], p)


def test_early_stopping_uses_the_best_iteration_like_predict_proba() -> None:
    X, y = _data(600)
    Z = FeaturePreprocessor(categorical=["c"], min_frequency=1).fit(X).transform(X)
    est = xgb.XGBClassifier(n_estimators=200, max_depth=4, learning_rate=0.5, early_stopping_rounds=2, n_jobs=1)
    est.fit(Z[:400], y[:400], eval_set=[(Z[400:], y[400:])], verbose=False)
    assert iteration_range(est) == (0, est.best_iteration + 1) and est.best_iteration + 1 < 200
    got = est.get_booster().inplace_predict(Z, iteration_range=iteration_range(est))
    np.testing.assert_array_equal(got, est.predict_proba(Z)[:, 1])


def test_logistic_regression_keeps_the_sklearn_path() -> None:
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    sc = CRMScorer(LogisticRegression(), FeaturePreprocessor(categorical=["c"], encoding="onehot", min_frequency=1))
    sc.fit(X, y)
    Z = sc.preprocessor_.transform(X)
    contribs = sc.contributions_matrix(Z)
    np.testing.assert_array_equal(sc.predict_proba(X)[:, 1], sc.predict_proba_matrix(Z))
    np.testing.assert_allclose(contribs.sum(axis=1), sc.margin_matrix(Z), atol=1e-9)


@pytest.mark.parametrize("kind", ["xgboost", "logreg"])
def test_a_rows_probability_and_reasons_do_not_depend_on_how_many_rows_are_scored(kind: str) -> None:
    """The HTTP service scores one lead at a time or thousands, batch a chunk: a row's numbers must be the same."""
    from sklearn.linear_model import LogisticRegression

    X, y = _data()
    X["d"] = np.random.default_rng(4).gamma(2, 30, len(X))
    est = xgb.XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1) if kind == "xgboost" else LogisticRegression()
    pre = FeaturePreprocessor(categorical=["c"], encoding="ordinal" if kind == "xgboost" else "onehot", min_frequency=1)
    sc = CRMScorer(est, pre).fit(X, y)
    Z = sc.preprocessor_.transform(X)
    p_all = sc.predict_proba_matrix(Z)
    np.testing.assert_array_equal(p_all, np.concatenate([sc.predict_proba_matrix(Z[i : i + 1]) for i in range(len(Z))]))
    folder = sc.reason_folder()
    folded = folder.fold(sc.contributions_matrix(Z))
    one_by_one = np.vstack([folder.fold(sc.contributions_matrix(Z[i : i + 1])) for i in range(len(Z))])
    np.testing.assert_array_equal(folded, one_by_one)
    if kind == "logreg":  # the sklearn model's own numbers, to the last bit or so
        np.testing.assert_allclose(sc._raw_proba(Z), sc.estimator_.predict_proba(Z)[:, 1], rtol=1e-12, atol=1e-15)
