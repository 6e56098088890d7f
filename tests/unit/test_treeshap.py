"""training.treeshap: exact agreement with XGBoost's ``pred_contribs=True`` on small generated models."""

from __future__ import annotations

import json

import numba
import numpy as np
import pandas as pd
import pytest
import xgboost as xgb

from training import treeshap
from training.treeshap import compile_booster, contributions


def _data(n: int, n_features: int, seed: int, nan_frac: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, n_features))
    logit = X[:, 0] - 0.8 * X[:, 1] + X[:, 2 % n_features] * X[:, 3 % n_features] + 0.3 * rng.normal(size=n)
    y = (logit > 0).astype(float)
    if nan_frac:
        X[rng.random(X.shape) < nan_frac] = np.nan
    return X, y


def _train(X: np.ndarray, y: np.ndarray, rounds: int, **params: object) -> xgb.Booster:
    base = {"objective": "binary:logistic", "max_depth": 3, "eta": 0.3, "nthread": 2, "seed": 0}
    return xgb.train({**base, **params}, xgb.DMatrix(X, y), num_boost_round=rounds)


def _reference(booster: xgb.Booster, X: np.ndarray) -> np.ndarray:
    return booster.predict(xgb.DMatrix(X), pred_contribs=True)


def _assert_matches(ours: np.ndarray, ref: np.ndarray) -> None:
    assert ours.shape == ref.shape
    assert ours.dtype == np.float32
    scale = max(1.0, float(np.abs(ref).max()))
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-5 * scale)


def _tree_nodes(booster: xgb.Booster) -> list[dict]:
    return json.loads(booster.save_raw("json"))["learner"]["gradient_booster"]["model"]["trees"]


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 5, 6])
@pytest.mark.parametrize("group_bits", [0, 8, 12])
def test_random_models_match_pred_contribs(depth: int, group_bits: int) -> None:
    X, y = _data(1500, 12, seed=depth, nan_frac=0.05)
    booster = _train(X[:1000], y[:1000], rounds=15, max_depth=depth)
    model = compile_booster(booster, max_group_bits=group_bits)
    n_leaves = int(np.sum(model.left == -1))
    if group_bits == 0:  # every group is a single leaf
        assert len(model.grp_bits) == n_leaves
    elif depth > 1:  # subtrees collapsed into groups of several leaves
        assert len(model.grp_bits) < n_leaves
    _assert_matches(contributions(model, X[1000:]), _reference(booster, X[1000:]))


def test_worst_case_shape_400_trees_depth_6() -> None:
    X, y = _data(5000, 40, seed=7, nan_frac=0.03)
    booster = _train(X[:3000], y[:3000], rounds=400, max_depth=6, eta=0.1)
    trees = _tree_nodes(booster)
    assert len(trees) == 400 and max(len(t["left_children"]) for t in trees) > 64  # depth-6 trees
    model = compile_booster(booster)
    ours = contributions(model, X[3000:])
    _assert_matches(ours, _reference(booster, X[3000:]))
    margin = booster.predict(xgb.DMatrix(X[3000:]), output_margin=True)
    np.testing.assert_allclose(ours.sum(axis=1, dtype=np.float64), margin, rtol=1e-5, atol=1e-4)


def test_rows_sum_to_output_margin_and_bias_is_expected_value() -> None:
    X, y = _data(800, 8, seed=3, nan_frac=0.1)
    booster = _train(X, y, rounds=30, max_depth=5)
    ours = contributions(compile_booster(booster), X)
    margin = booster.predict(xgb.DMatrix(X), output_margin=True)
    np.testing.assert_allclose(ours.sum(axis=1, dtype=np.float64), margin, rtol=1e-5, atol=1e-5)
    ref = _reference(booster, X)
    assert np.all(ours[:, -1] == ours[0, -1])
    assert ours[0, -1] == pytest.approx(float(ref[0, -1]), rel=1e-6, abs=1e-6)


def test_missing_values_follow_both_default_directions() -> None:
    rng = np.random.default_rng(11)
    X, y = _data(3000, 6, seed=11)
    # missing in feature 0 where the label is 1 (learned default: the high side), in feature 1 where it is 0
    X[(y == 1) & (rng.random(len(y)) < 0.4), 0] = np.nan
    X[(y == 0) & (rng.random(len(y)) < 0.4), 1] = np.nan
    booster = _train(X[:2000], y[:2000], rounds=20, max_depth=4)
    model = compile_booster(booster)
    internal = model.left != -1
    assert set(np.unique(model.default_left[internal]).tolist()) == {0, 1}
    test = X[2000:].copy()
    test[::7] = np.nan  # rows with every value missing: the default path only
    test[1::7, 2:] = np.nan
    assert np.isnan(test).any()
    _assert_matches(contributions(model, test), _reference(booster, test))


def test_feature_split_twice_on_a_path_is_merged() -> None:
    rng = np.random.default_rng(5)
    x = rng.uniform(-3, 3, size=(2000, 2))
    y = ((np.sin(2 * x[:, 0]) > 0) ^ (x[:, 1] > 0.5)).astype(float)  # needs several splits on each feature
    booster = _train(x[:1500], y[:1500], rounds=10, max_depth=5)
    repeated = False
    for tree in _tree_nodes(booster):
        left, right, feat = tree["left_children"], tree["right_children"], tree["split_indices"]
        stack = [(0, ())]
        while stack:
            nid, path = stack.pop()
            if left[nid] == -1:
                repeated |= len(path) != len(set(path))
                continue
            stack += [(left[nid], (*path, feat[nid])), (right[nid], (*path, feat[nid]))]
    assert repeated
    _assert_matches(contributions(compile_booster(booster), x[1500:]), _reference(booster, x[1500:]))


def test_single_leaf_trees() -> None:
    X, y = _data(600, 5, seed=2)
    booster = _train(X, y, rounds=4, max_depth=3)
    # more rounds that cannot split: each tree is one leaf
    booster = xgb.train(
        {"objective": "binary:logistic", "max_depth": 3, "gamma": 1e9, "nthread": 2}, xgb.DMatrix(X, y), 3,
        xgb_model=booster,
    )  # fmt: skip
    sizes = [len(t["left_children"]) for t in _tree_nodes(booster)]
    assert sizes[-3:] == [1, 1, 1] and max(sizes) > 1
    _assert_matches(contributions(compile_booster(booster), X), _reference(booster, X))
    only_leaves = xgb.train({"objective": "binary:logistic", "gamma": 1e9, "nthread": 2}, xgb.DMatrix(X, y), 2)
    ours = contributions(compile_booster(only_leaves), X)
    assert np.all(ours[:, :-1] == 0)
    _assert_matches(ours, _reference(only_leaves, X))


@pytest.mark.parametrize(
    ("objective", "base_score"),
    [("binary:logistic", 0.2), ("binary:logistic", 0.85), ("binary:logistic", None), ("reg:squarederror", 3.0)],
)
def test_base_score(objective: str, base_score: float | None) -> None:
    X, y = _data(800, 6, seed=4, nan_frac=0.05)
    if objective == "reg:squarederror":
        y = y * 5 + X[:, 0]
        y[np.isnan(y)] = 0
    params: dict[str, object] = {"objective": objective, "max_depth": 4}
    if base_score is not None:
        params["base_score"] = base_score
    booster = _train(X, y, rounds=12, **params)
    model = compile_booster(booster)
    if base_score is not None and objective == "binary:logistic":
        assert model.base_margin == pytest.approx(np.log(base_score / (1 - base_score)), rel=1e-6)
    _assert_matches(contributions(model, X), _reference(booster, X))


def test_float32_threshold_semantics() -> None:
    """Values at a threshold go right, just below go left; float64 values are rounded to float32 first."""
    X, y = _data(1000, 4, seed=9)
    booster = _train(X, y, rounds=5, max_depth=3)
    model = compile_booster(booster)
    internal = model.left != -1
    rows = []
    for f, t in zip(model.feature[internal], model.threshold[internal], strict=True):
        for v in (
            float(t),
            float(np.nextafter(t, np.float32(-np.inf))),
            float(t) - 1e-12,  # below in float64, equal in float32: XGBoost sends it right
            float(np.nextafter(t, np.float32(np.inf))),
        ):
            row = np.zeros(4)
            row[f] = v
            rows.append(row)
    Xt = np.asarray(rows)
    _assert_matches(contributions(model, Xt), _reference(booster, Xt))


def test_threads_give_identical_results_and_one_row_equals_batch() -> None:
    if numba.config.NUMBA_NUM_THREADS < 2:
        pytest.skip("numba has one thread")
    X, y = _data(3000, 10, seed=6, nan_frac=0.05)
    booster = _train(X, y, rounds=40, max_depth=6)
    model = compile_booster(booster)
    one = contributions(model, X, n_threads=1)
    two = contributions(model, X, n_threads=2)
    assert np.array_equal(one, two)
    for i in (0, 17, 2999):
        assert np.array_equal(contributions(model, X[i : i + 1]), one[i : i + 1])
    assert numba.get_num_threads() == numba.config.NUMBA_NUM_THREADS  # restored after the call


def test_iteration_range_matches_predict() -> None:
    X, y = _data(600, 6, seed=8)
    booster = _train(X, y, rounds=10, max_depth=3)
    model = compile_booster(booster, iteration_range=(0, 4))
    assert model.n_trees == 4
    ref = booster.predict(xgb.DMatrix(X), pred_contribs=True, iteration_range=(0, 4))
    _assert_matches(contributions(model, X), ref)


def test_input_shapes() -> None:
    X, y = _data(300, 5, seed=1)
    model = compile_booster(_train(X, y, rounds=3))
    assert contributions(model, X[:0]).shape == (0, 6)
    with pytest.raises(ValueError, match="columns"):
        contributions(model, X[:, :4])
    frame = pd.DataFrame(X)
    assert np.array_equal(contributions(model, frame), contributions(model, X))


def test_unsupported_models_raise_value_error() -> None:
    X, y = _data(400, 5, seed=12)
    dm = xgb.DMatrix(X, y)
    with pytest.raises(ValueError, match="gblinear"):
        compile_booster(xgb.train({"booster": "gblinear", "objective": "binary:logistic"}, dm, 2))
    with pytest.raises(ValueError, match="dart"):
        compile_booster(xgb.train({"booster": "dart", "objective": "binary:logistic"}, dm, 2))
    multi = xgb.DMatrix(X, (np.nan_to_num(X[:, 0]) > 0).astype(int) + (np.nan_to_num(X[:, 1]) > 0))
    with pytest.raises(ValueError, match="more than one output"):
        compile_booster(xgb.train({"objective": "multi:softprob", "num_class": 3}, multi, 2))
    frame = pd.DataFrame({"c": pd.Categorical(np.where(X[:, 0] > 0, "a", "b")), "x": X[:, 1]})
    cat = xgb.DMatrix(frame, y, enable_categorical=True)
    cat_booster = xgb.train({"objective": "binary:logistic", "tree_method": "hist", "max_cat_to_onehot": 1}, cat, 3)
    with pytest.raises(ValueError, match="categorical"):
        compile_booster(cat_booster)
    with pytest.raises(ValueError, match="cannot read"):
        compile_booster(object())
    with pytest.raises(ValueError, match="objective"):
        compile_booster(xgb.train({"objective": "binary:hinge"}, dm, 2))


def test_table_budget_raises() -> None:
    X, y = _data(500, 8, seed=13)
    booster = _train(X, y, rounds=5, max_depth=6)
    with pytest.raises(ValueError, match="bytes"):
        compile_booster(booster, max_table_bytes=1000)
    assert treeshap.MAX_TABLE_BYTES > 1000


def test_concurrent_calls_from_python_threads() -> None:
    """The service calls from several threads: one-row (serial) and batch (parallel) calls at once agree."""
    from concurrent.futures import ThreadPoolExecutor

    X, y = _data(2000, 8, seed=14, nan_frac=0.05)
    model = compile_booster(_train(X, y, rounds=20, max_depth=5))
    expected = contributions(model, X, n_threads=1)
    jobs = [(i, i + 1) for i in range(0, 2000, 97)] + [(0, 2000), (100, 1900), (0, 2000)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda span: contributions(model, X[span[0] : span[1]]), jobs))
    for (lo, hi), got in zip(jobs, results, strict=True):
        assert np.array_equal(got, expected[lo:hi])
