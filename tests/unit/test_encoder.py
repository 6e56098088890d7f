"""The one encoder's contract: every input adapter gives the matrix a plain row-by-row reading of the contract
gives, bit for bit, for both encodings; plus scikit-learn's estimator checks and loading older saved models.

Adapters: a frame (training, ``CRMScorer.predict_proba``), feature dicts (``transform_records``), column arrays
with values or with codes into distinct values (batch, Spark), and the HTTP service's request input (checks,
then the encoder).
"""

from __future__ import annotations

import math
import pickle
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.estimator_checks import parametrize_with_checks

from features.build import build_features
from serving.http.postprocess import FeatureInput
from tests.fixtures.crm import make_tables
from training.model import MISSING, TRUSTED_TYPES, UNKNOWN, FeaturePreprocessor

T = pd.Timestamp("2025-06-30")


def _missing(v: Any) -> bool:
    return v is None or (isinstance(v, float) and math.isnan(v))


def _reference(enc: FeaturePreprocessor, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    """The contract, one value at a time: numbers as floats (non-finite or absent → missing; one-hot: missing →
    median, then centred and scaled); a category is its text's position in ``categories_`` (unknown or missing →
    NaN, or all zeros for one-hot). Also the unknown-category mask."""
    onehot = enc.encoding == "onehot"
    out, unknown = [], []
    for r in rows:
        vals: list[float] = []
        for j, c in enumerate(enc.numeric_features_):
            v = r.get(c)
            x = float("nan") if v is None or not math.isfinite(float(v)) else float(v)
            if onehot:
                x = ((enc.medians_[j] if math.isnan(x) else x) - enc.means_[j]) / enc.scales_[j]
            vals.append(x)
        unk = []
        for c in enc.categorical_features_:
            v = r.get(c)
            text = None if _missing(v) else str(v)
            cats = enc.categories_[c]
            unk.append(text is not None and text not in cats)
            if onehot:
                vals += [1.0 if text == k else 0.0 for k in cats]
            else:
                vals.append(float(cats.index(text)) if text in cats else float("nan"))
        out.append(vals)
        unknown.append(unk)
    return np.array(out, dtype="float64"), np.array(unknown, dtype=bool).reshape(len(rows), -1)


@pytest.fixture(scope="module")
def features() -> pd.DataFrame:
    return build_features(make_tables(160, seed=6), T)


def _rows(feats: pd.DataFrame) -> list[dict]:
    """Feature dicts with every edge the contract names: unseen, missing (None and NaN) and non-text categories,
    absent features, infinite numbers."""
    rows = [{k: (None if _missing(v) else v) for k, v in r.items()} for r in feats.to_dict("records")]
    cat = [c for c in feats.columns if not pd.api.types.is_numeric_dtype(feats[c])]
    num = [c for c in feats.columns if c not in cat]
    rows[0][cat[0]] = "火星省"  # unseen
    rows[1][cat[0]] = None
    rows[2][cat[1]] = float("nan")
    rows[3][cat[1]] = 7  # a number given for a category: its text
    del rows[4][num[0]]  # absent: missing
    del rows[4][cat[2]]
    rows[5][num[1]] = float("inf")
    rows[6][num[2]] = None
    rows[7][num[3]] = True  # true/false count as 1/0
    return rows


def _frame_of(enc: FeaturePreprocessor, rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows).reindex(columns=list(enc.feature_names_in_))
    for c in enc.numeric_features_:
        frame[c] = frame[c].astype("float64")
    return frame


def _numeric_block(enc: FeaturePreprocessor, rows: list[dict]) -> np.ndarray:
    return np.array([[r.get(c) for c in enc.numeric_features_] for r in rows], dtype="float64")


def _by_codes(values: list) -> tuple[np.ndarray, np.ndarray]:
    """A column dictionary-encoded as batch reads it: codes into its distinct values, -1 for missing."""
    codes, uniques = pd.factorize(pd.Series(values, dtype=object), use_na_sentinel=True)
    return codes.astype(np.int64), np.asarray(uniques, dtype=object)


ADAPTERS = {
    "frame": lambda enc, rows: (enc.transform(_frame_of(enc, rows)), None),
    "records": lambda enc, rows: enc.transform_records(rows, return_unknown=True),
    "arrays": lambda enc, rows: enc.transform_arrays(
        _numeric_block(enc, rows), {c: [r.get(c) for r in rows] for c in enc.categorical_features_},
        return_unknown=True,
    ),
    "codes": lambda enc, rows: enc.transform_arrays(
        _numeric_block(enc, rows), {c: _by_codes([r.get(c) for r in rows]) for c in enc.categorical_features_},
        return_unknown=True,
    ),
    "http-request": lambda enc, rows: _request(enc, rows),
}


def _request(enc: FeaturePreprocessor, rows: list[dict]) -> tuple[np.ndarray, np.ndarray]:
    Z, unknown, _ = FeatureInput(enc).build(rows)
    mask = np.zeros((len(rows), len(enc.categorical_features_)), dtype=bool)
    for i, names in unknown.items():
        for c in names:
            mask[i, enc.categorical_features_.index(c)] = True
    return Z, mask


@pytest.mark.parametrize("encoding", ["ordinal", "onehot"])
@pytest.mark.parametrize("adapter", list(ADAPTERS))
@pytest.mark.parametrize("n", [1, 5, 160], ids=lambda n: f"{n}rows")
def test_every_adapter_gives_the_contracts_matrix(features: pd.DataFrame, encoding: str, adapter: str, n: int) -> None:
    cat = [c for c in features.columns if not pd.api.types.is_numeric_dtype(features[c])]
    enc = FeaturePreprocessor(categorical=cat, encoding=encoding, min_frequency=5).fit(features)
    rows = _rows(features)
    rows = rows[:n] if n > 8 or n == len(rows) else rows[:8][-n:] if n == 1 else rows[:n]
    want, want_unknown = _reference(enc, rows)
    got, unknown = ADAPTERS[adapter](enc, rows)
    assert got.dtype == np.float64 and got.shape == (len(rows), len(enc.get_feature_names_out()))
    np.testing.assert_array_equal(got, want)  # NaN where NaN, every other value bit for bit
    assert got.tobytes() == np.where(np.isnan(want), got, want).tobytes()
    if unknown is not None:
        np.testing.assert_array_equal(unknown, want_unknown)


def test_codes_mark_unknown_and_missing_apart() -> None:
    enc = FeaturePreprocessor(min_frequency=1).fit(pd.DataFrame({"city": ["a", "b", "a"]}))
    assert enc._category_codes("city", ["b", "zz", None, float("nan"), "a"]).tolist() == [1, UNKNOWN, MISSING,
                                                                                          MISSING, 0]
    assert enc._category_codes("city", ["b", "zz", None] * 40).tolist() == [1, UNKNOWN, MISSING] * 40
    # a long array of strings takes the vectorised path (one hash pass), with the same codes
    many = np.array(["b", "zz", None, "a"] * 400, dtype=object)
    assert enc._category_codes("city", many).tolist() == [1, UNKNOWN, MISSING, 0] * 400


def test_missing_columns_are_an_error_naming_them(features: pd.DataFrame) -> None:
    enc = FeaturePreprocessor().fit(features)
    with pytest.raises(KeyError, match="province"):
        enc.transform(features.drop(columns=["province"]))


def test_feature_names_out_need_a_fitted_encoder_and_check_their_argument(features: pd.DataFrame) -> None:
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        FeaturePreprocessor().get_feature_names_out()
    enc = FeaturePreprocessor(encoding="onehot", min_frequency=5).fit(features)
    names = enc.get_feature_names_out(list(features.columns))
    assert len(names) == enc.transform(features).shape[1] and any("=" in n for n in names)
    with pytest.raises(ValueError):
        enc.get_feature_names_out(["not", "the", "inputs"])


def test_an_encoder_saved_before_the_lookup_tables_loads_and_encodes_the_same(features: pd.DataFrame) -> None:
    """Models already in registries were saved without ``category_codes_`` (and transform_records cached a
    ``_lookup`` in ``__dict__``): loading derives the table, nothing is cached while transforming."""
    enc = FeaturePreprocessor(min_frequency=5).fit(features)
    want = enc.transform(features)
    state = dict(enc.__getstate__())
    del state["category_codes_"]
    old = FeaturePreprocessor.__new__(FeaturePreprocessor)
    old.__setstate__({**state, "_lookup": {}})
    assert old.category_codes_ == enc.category_codes_ and "_lookup" not in old.__dict__
    np.testing.assert_array_equal(old.transform(features), want)
    before = set(old.__dict__)
    old.transform_records(features.to_dict("records")[:3])
    assert set(old.__dict__) == before
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(old)).transform(features), want)


def test_skops_round_trip_with_the_trusted_types(features: pd.DataFrame) -> None:
    import skops.io as sio

    enc = FeaturePreprocessor(encoding="onehot", min_frequency=5).fit(features)
    back = sio.loads(sio.dumps(enc), trusted=TRUSTED_TYPES)
    np.testing.assert_array_equal(back.transform(features), enc.transform(features))


@parametrize_with_checks([FeaturePreprocessor(min_frequency=1)])
def test_sklearn_estimator_checks(estimator: Any, check: Any) -> None:
    """scikit-learn's checks, none expected to fail (the tags declare text input and missing values)."""
    check(estimator)
