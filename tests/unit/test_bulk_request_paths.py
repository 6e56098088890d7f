"""The cheaper bulk paths of a scoring request give what the plain paths give.

* the encoder's category codes: an array long enough to be hashed (``_VECTOR_MIN``) and the same values as a
  list or tuple (looked up one by one) give the same codes;
* ``FeatureInput.build_table``: a table of at least ``_FAST_TABLE_ROWS`` rows (taken row by row in C, converted
  by pyarrow) and the same rows scored in small slices (the careful path) give the same matrix, unknown
  categories and recorded features, for columns in any order;
* the drift records: a group of requests written column by column from each request's block reads back as the
  rows that were queued.
"""

from __future__ import annotations

import random

import numpy as np
import pandas as pd
import pytest

from serving.http.postprocess import _FAST_TABLE_ROWS, FeatureInput
from serving.http.records import FeatureBlock, RecordSink, read_records
from training.model import _VECTOR_MIN, FeaturePreprocessor

_TRAIN = pd.DataFrame({
    "n1": [1.0, 2.0, None] * 20,
    "c1": ["a", "b", None] * 20,
    "n2": [0.5, None, 3.0] * 20,
    "c2": ["x", "y", "x"] * 20,
    "n3": [1.0] * 60,
})


@pytest.fixture(params=["ordinal", "onehot"])
def encoder(request: pytest.FixtureRequest) -> FeaturePreprocessor:
    return FeaturePreprocessor(min_frequency=1, encoding=request.param).fit(_TRAIN)


def test_array_and_list_give_the_same_codes(encoder: FeaturePreprocessor) -> None:
    pool = [None, np.nan, pd.NA, "a", "b", "zz", 1, 2.5, True, np.str_("a"), "nan"]
    rng = random.Random(3)
    for n in (_VECTOR_MIN - 1, _VECTOR_MIN, 3 * _VECTOR_MIN):
        for values in ([rng.choice(pool) for _ in range(n)], [rng.choice(["a", "b", None, "zz"]) for _ in range(n)]):
            one_by_one = encoder._category_codes("c1", values)
            assert encoder._category_codes("c1", tuple(values)).tolist() == one_by_one.tolist()
            hashed = encoder._category_codes("c1", np.array(values, dtype=object))
            assert hashed.dtype == one_by_one.dtype and hashed.tolist() == one_by_one.tolist()


def _value(column: str, rng: random.Random) -> object:
    if column.startswith("n"):
        return rng.choice([None, 1, 2.5, True, False, 0, -3.25])
    return rng.choice([None, "a", "b", "x", "y", "zz"])


def test_bulk_table_equals_the_careful_path(encoder: FeaturePreprocessor) -> None:
    inputs = FeatureInput(encoder)
    rng = random.Random(5)
    for _ in range(40):
        columns = rng.sample(["n1", "c1", "n2", "c2", "n3"], rng.randint(1, 5))
        rows = [[_value(c, rng) for c in columns] for _ in range(3 * _FAST_TABLE_ROWS)]
        Z, unknown, block = inputs.build_table(columns, rows)
        step = _FAST_TABLE_ROWS - 1  # below the bulk path's threshold
        parts = [inputs.build_table(columns, rows[i : i + step]) for i in range(0, len(rows), step)]
        np.testing.assert_array_equal(Z, np.vstack([p[0] for p in parts]))
        want_unknown = {i + k * step: names for k, p in enumerate(parts) for i, names in p[1].items()}
        assert unknown == want_unknown
        np.testing.assert_array_equal(block.numeric, np.vstack([p[2].numeric for p in parts]))
        for c in inputs.categorical:
            assert list(block.categorical[c]) == [v for p in parts for v in p[2].categorical[c]]


def test_bulk_objects_equal_small_batches(encoder: FeaturePreprocessor) -> None:
    inputs = FeatureInput(encoder)
    rng = random.Random(7)
    for _ in range(20):
        columns = rng.sample(["n1", "c1", "n2", "c2", "n3"], rng.randint(1, 5))
        rows = [{c: _value(c, rng) for c in columns} for _ in range(3 * _FAST_TABLE_ROWS)]
        rows[5]["n1"] = 2**53 + 1  # not exactly a float64: pyarrow refuses it, the plain path rounds it
        Z, unknown, block = inputs.build(rows)
        step = _FAST_TABLE_ROWS - 1
        parts = [inputs.build(rows[i : i + step]) for i in range(0, len(rows), step)]
        np.testing.assert_array_equal(Z, np.vstack([p[0] for p in parts]))
        np.testing.assert_array_equal(block.numeric, np.vstack([p[2].numeric for p in parts]))
        assert unknown == {i + k * step: names for k, p in enumerate(parts) for i, names in p[1].items()}
    rows = [{"n1": 1.0, "c1": "a"} for _ in range(2 * _FAST_TABLE_ROWS)]
    rows[50]["n1"] = "2"
    from serving.http.postprocess import RequestError

    with pytest.raises(RequestError, match=r"leads\[50\]\.features\.n1: must be a number"):
        inputs.build(rows)


def test_bulk_table_refuses_what_the_careful_path_refuses(encoder: FeaturePreprocessor) -> None:
    from serving.http.postprocess import RequestError

    inputs = FeatureInput(encoder)
    rows: list[list[object]] = [[1.0, "a"] for _ in range(2 * _FAST_TABLE_ROWS)]
    rows[40][0] = "2"
    with pytest.raises(RequestError, match=r"table\.rows\[40\]\.n1: must be a number"):
        inputs.build_table(["n1", "c1"], rows)
    rows[40] = [1.0, 7]  # a number for a categorical feature: recorded and encoded as its text
    _, _, block = inputs.build_table(["n1", "c1"], rows)
    assert block.categorical["c1"][40] == "7" and block.categorical["c1"][0] == "a"


def test_records_written_by_column_read_back_as_queued(tmp_path: object) -> None:
    sink = RecordSink(tmp_path, "http")  # type: ignore[arg-type]
    rng = np.random.default_rng(0)
    sent = []
    for k, n in enumerate([1, 40, 300, 2]):
        num = rng.random((n, 3))
        num[rng.random((n, 3)) < 0.2] = np.nan
        if k % 2:
            num = np.asfortranarray(num)  # the table path's blocks are column-major, the objects path's are not
        cats = {"c1": [None if i % 3 == 0 else f"v{i % 4}" for i in range(n)], "c2": [i if i % 2 else None
                                                                                    for i in range(n)]}
        ids = [f"C{k}-{i}" for i in range(n)]
        assert sink.record("m", "1", ids, rng.random(n), np.arange(n) % 99 + 1, ["A"] * n,
                           FeatureBlock(["n1", "n2", "phone"], num, cats))
        sent.append(pd.DataFrame({"customer_id": ids, "n1": num[:, 0], "n2": num[:, 1], "c1": cats["c1"],
                                  "c2": [None if v is None else str(v) for v in cats["c2"]]}))
    assert sink.flush() == 343
    got = read_records(tmp_path, "m")  # type: ignore[arg-type]
    assert "phone" not in got.columns  # PII never written
    want = pd.concat(sent, ignore_index=True)
    pd.testing.assert_frame_equal(
        got[want.columns].astype(object).where(got[want.columns].notna(), None),
        want.astype(object).where(want.notna(), None),
    )
