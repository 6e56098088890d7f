"""Serving's plain functions without a server: request checks before the encoder, reasons vs a plain sort,
scores and grades, error messages, online feature assembly, and the drift record sink."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from serving.http.postprocess import (
    FeatureInput,
    RequestError,
    build_lead_results,
    check_batch_size,
    clean_value,
    field_path,
    format_validation_errors,
    score_and_grade,
    tables_for_leads,
)
from serving.http.records import FeatureBlock, RecordSink, read_records
from tests.heap import tracked_reachable
from training.explain import ReasonFolder
from training.model import FeaturePreprocessor
from training.scores import readable_label, to_grade, to_score


def _frame(n: int = 300, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "tenure_days": rng.gamma(2, 50, n),
            "age": np.where(rng.random(n) < 0.2, np.nan, rng.integers(18, 70, n)),
            "n_visit_7d": rng.poisson(2, n).astype(float),
            "marketing_consent": rng.random(n) < 0.5,
            "province": rng.choice(["广东省", "浙江省", "北京市", "rare"], n, p=[0.4, 0.3, 0.29, 0.01]),
            "member_level": pd.Series(rng.choice(["gold", "none", None], n), dtype="object"),
        }
    )
    df["marketing_consent"] = df["marketing_consent"].astype(float)
    return df


def _rows(df: pd.DataFrame) -> list[dict]:
    out = []
    for r in df.to_dict("records"):
        out.append({k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in r.items()})
    return out


@pytest.mark.parametrize("encoding", ["ordinal", "onehot"])
def test_feature_input_encodes_with_the_models_encoder(encoding: str) -> None:
    train = _frame()
    pp = FeaturePreprocessor(categorical=["province", "member_level"], encoding=encoding, min_frequency=5).fit(train)
    test = _frame(50, seed=1)
    test.loc[0, "province"] = "火星省"  # unknown category
    test.loc[1, "member_level"] = None
    test.loc[2, "age"] = np.nan
    rows = _rows(test)
    del rows[3]["n_visit_7d"]  # absent feature = missing
    test.loc[3, "n_visit_7d"] = np.nan
    mb = FeatureInput(pp)
    Z, unknown, block = mb.build(rows)
    assert Z.shape == (50, len(pp.get_feature_names_out()))  # the values: tests/unit/test_encoder.py
    assert "province" in unknown[0] and "rare" not in pp.categories_["province"]
    odd = {i for i, p in enumerate(test["province"]) if p in ("rare", "火星省")}
    assert {i for i, u in unknown.items() if "province" in u} == odd
    assert list(block.numeric_names) == mb.numeric and block.numeric.shape == (50, len(mb.numeric))
    assert block.categorical["province"][0] == "火星省"


@pytest.mark.parametrize("encoding", ["ordinal", "onehot"])
def test_table_input_builds_the_same_matrix(encoding: str) -> None:
    pp = FeaturePreprocessor(categorical=["province", "member_level"], encoding=encoding, min_frequency=5)
    pp.fit(_frame())
    test = _frame(30, seed=2)
    rows = _rows(test)
    mb = FeatureInput(pp)
    columns = list(test.columns)[::-1]  # any column order
    table = [[r[c] for c in columns] for r in rows]
    Z1, u1, b1 = mb.build(rows)
    Z2, u2, b2 = mb.build_table(columns, table)
    np.testing.assert_array_equal(Z1, Z2)
    assert u1 == u2 and b1.categorical == b2.categorical
    np.testing.assert_array_equal(b1.numeric, b2.numeric)
    Z3, _, _ = mb.build_table(["age"], [[30], [None]])  # absent columns are missing features
    np.testing.assert_array_equal(Z3, mb.build([{"age": 30}, {}])[0])


@pytest.mark.parametrize(
    ("columns", "rows", "message"),
    [
        (["age"], [[1.0], [float("inf")]], "table.rows[1].age: must be a finite number"),
        (["age"], [["3"]], "table.rows[0].age: must be a number"),
        (["age", "province"], [[1, [1, 2]]], "table.rows[0].province: must be a string"),
        (["age", "province"], [[[1, 2], [3, 4]]], "table.rows[0].age: must be a number"),
        (["agee"], [[1]], "table.columns: unknown feature(s) agee"),
    ],
)
def test_table_input_refuses_bad_values(columns: list, rows: list, message: str) -> None:
    mb = FeatureInput(FeaturePreprocessor(categorical=["province", "member_level"]).fit(_frame()))
    with pytest.raises(RequestError) as e:
        mb.build_table(columns, rows)
    assert e.value.status == 422 and e.value.message.startswith(message)


def test_feature_input_refuses_unknown_features_and_strings_for_numbers() -> None:
    pp = FeaturePreprocessor(categorical=["province", "member_level"]).fit(_frame())
    mb = FeatureInput(pp)
    with pytest.raises(RequestError) as e:
        mb.check([{"age": 3}, {"agee": 3}])
    assert e.value.status == 422 and e.value.message.startswith("leads[1].features: unknown feature(s) agee")
    with pytest.raises(RequestError) as e:
        mb.build([{"age": 3.0}, {"age": 4.0, "tenure_days": "12"}])
    assert e.value.message.startswith("leads[1].features.tenure_days: must be a number")
    Z, _, _ = mb.build([{"age": True, "province": 5}])  # bool as 1, a number as its category string
    assert Z[0, mb.numeric.index("age")] == 1.0


def _groups(n_cols: int, multi: bool) -> list[tuple[str, list[int]]]:
    if not multi:
        return [(f"f{i}", [i]) for i in range(n_cols)]
    return [("a", [0]), ("b", [1, 2, 3]), ("c", [4]), ("d", [5, 6]), ("e", list(range(7, n_cols)))]


def _sorted_reasons(contribs: np.ndarray, groups: list, X: pd.DataFrame, top: int) -> list[dict]:
    """Reasons row by row with a full stable sort (what the selection must equal)."""
    names = [g for g, _ in groups]
    folded = np.column_stack([contribs[:, idx].sum(axis=1) for _, idx in groups])
    order = np.argsort(-folded, axis=1, kind="stable")
    out = []
    for r in range(len(folded)):
        row = folded[r]

        def reason(j: int, r: int = r, row: np.ndarray = row) -> dict:
            v = X.iloc[r][names[j]]
            return {"feature": names[j], "label": readable_label(names[j]), "value": None if pd.isna(v) else v,
                    "contribution": float(row[j])}

        out.append({"positive": [reason(j) for j in order[r, :top] if row[j] > 0],
                    "negative": [reason(j) for j in order[r, ::-1][:top] if row[j] < 0]})
    return out


@pytest.mark.parametrize("multi", [False, True])
def test_reason_folder_selects_as_a_stable_sort(multi: bool) -> None:
    rng = np.random.default_rng(3)
    n_cols = 10
    contribs = rng.normal(size=(40, n_cols + 1))
    contribs[5, :] = 0.0  # no reasons at all
    contribs[6, :4] = 0.25  # ties
    groups = _groups(n_cols, multi)
    names = [g for g, _ in groups]
    X = pd.DataFrame(rng.normal(size=(40, len(names))), columns=names)
    X.iloc[0, 0] = np.nan
    ref = _sorted_reasons(contribs, groups, X, 3)
    got = ReasonFolder(groups, n_cols).reasons(contribs, X.to_dict("records"), 3)
    assert len(got) == len(ref)
    for g, r in zip(got, ref, strict=True):
        for side in ("positive", "negative"):
            assert [x["feature"] for x in g[side]] == [x["feature"] for x in r[side]]
            assert [x["label"] for x in g[side]] == [x["label"] for x in r[side]]
            assert [x["value"] for x in g[side]] == [x["value"] for x in r[side]]
            np.testing.assert_allclose([x["contribution"] for x in g[side]], [x["contribution"] for x in r[side]])
    assert got[5] == {"positive": [], "negative": []}


def test_scores_grades_and_results() -> None:
    p = np.array([0.001, 0.2, 0.5, 0.995])
    scores, grades = score_and_grade(p, [60, 40, 20])
    assert scores.tolist() == to_score(p).tolist() == [1, 20, 50, 99]
    assert grades.tolist() == to_grade(scores, [60, 40, 20]).tolist() == ["D", "C", "B", "A"]
    res = build_lead_results(["a", "b", "c", "d"], p, [60, 40, 20], None, {1: ["province"]}, "m", "7")
    assert res[1] == {"customer_id": "b", "probability": 0.2, "score": 20, "grade": "C", "reasons": None,
                      "unknown_categories": ["province"], "model": "m", "model_version": "7"}
    assert list(res[0]["unknown_categories"]) == []
    json.dumps(res)  # plain JSON types only


def test_validation_errors_name_the_field_and_never_echo_values() -> None:
    errors = [
        {"type": "finite_number", "loc": ("leads", 0, "features", "age", "float"), "msg": "Input should be finite"},
        {"type": "bool_type", "loc": ("leads", 0, "features", "age", "bool"), "msg": "Input should be a bool"},
        {"type": "string_type", "loc": ("leads", 0, "features", "age", "str"), "msg": "Input should be a string"},
        {"type": "extra_forbidden", "loc": ("leads", 2, "profile", "shoe"), "msg": "Extra inputs are not permitted"},
        {"type": "missing", "loc": ("leads",), "msg": "Field required"},
        {"type": "value_error", "loc": ("leads", 1), "msg": "Value error, give either 'features' or 'profile'"},
    ]
    status, message, items = format_validation_errors(errors)
    assert status == 422
    assert message == "leads[0].features.age: must be a finite number (NaN and infinity are not accepted) (and 3 more)"
    assert [i["field"] for i in items] == ["leads[0].features.age", "leads[2].profile.shoe", "leads", "leads[1]"]
    assert items[3]["reason"] == "give either 'features' or 'profile'"
    status, message, _ = format_validation_errors([{"type": "json_invalid", "loc": (), "msg": "Invalid JSON: EOF"}])
    assert status == 400 and message == "body: not valid JSON (EOF)"
    assert field_path(()) == "body" and field_path(("a", 0, "b", 1)) == "a[0].b[1]"


def test_batch_size_limits() -> None:
    check_batch_size(1, 10)
    check_batch_size(10, 10)
    with pytest.raises(RequestError) as e:
        check_batch_size(0, 10)
    assert e.value.status == 422 and e.value.message.startswith("leads: empty")
    with pytest.raises(RequestError) as e:
        check_batch_size(11, 10, "customers")
    assert e.value.status == 413 and e.value.message.startswith("customers: 11 items exceed the limit of 10")


def test_clean_value() -> None:
    assert clean_value(np.float64("nan")) is None and clean_value(float("inf")) is None
    assert clean_value(np.int64(3)) == 3 and isinstance(clean_value(np.int64(3)), int)
    assert clean_value(pd.NA) is None and clean_value(pd.NaT) is None
    assert clean_value("广东省") == "广东省" and clean_value(True) is True


def test_tables_for_leads_equals_tables_from_records() -> None:
    from features.build import tables_from_records

    as_of = pd.Timestamp("2025-06-30")
    profiles = [
        {"customer_id": "a", "created_at": pd.Timestamp("2025-01-02"), "age": 30, "province": "广东省"},
        {"customer_id": "b", "created_at": None, "marketing_consent": True},
        {"customer_id": "c", "created_at": pd.Timestamp("2026-01-01")},  # after as_of: new at as_of
    ]
    events = [
        {"interactions": [{"ts": pd.Timestamp("2025-06-01"), "channel": "web", "event_type": "visit"}]},
        {"orders": [{"order_id": None, "ts": pd.Timestamp("2025-05-01"), "amount": 5.0, "status": "paid"}]},
        {},
    ]
    together = tables_for_leads(profiles, events, as_of)
    for name in ("customers", "interactions", "orders", "marketing_touches"):
        parts = [tables_from_records(p, e, as_of)[name] for p, e in zip(profiles, events, strict=True)]
        expected = pd.concat(parts, ignore_index=True)
        pd.testing.assert_frame_equal(together[name].reset_index(drop=True), expected, check_dtype=True)


# ------------------------------------------------------------------------------------------- records
def _block(n: int) -> FeatureBlock:
    return FeatureBlock(["tenure_days", "age"], np.arange(2 * n, dtype=float).reshape(n, 2),
                        {"province": ["广东省"] * n, "email": ["x@y.z"] * n})


def test_record_sink_writes_partitioned_parquet_and_reads_back(tmp_path: Path) -> None:
    sink = RecordSink(tmp_path, "batch", flush_seconds=60)
    assert sink.record("lead_scoring", "3", ["a", "b"], [0.1, 0.9], [10, 90], ["D", "A"], _block(2))
    assert sink.record("lead_scoring", "4", ["c"], [0.5], [50], ["B"], _block(1), source="http")
    assert sink.record("churn_risk", "1", ["d"], [0.2], [20], ["C"], pd.DataFrame({"x": [1.0], "name": ["秘密"]}))
    assert sink.pending == 4
    assert sink.flush() == 4 and sink.pending == 0
    files = sorted(tmp_path.rglob("*.parquet"))
    assert all(f.parent.name.startswith("date=") and f.name.startswith("part-") for f in files)
    assert {f.parent.parent.name for f in files} == {"lead_scoring", "churn_risk"}
    df = read_records(tmp_path, "lead_scoring")
    assert list(df.columns[:8]) == ["ts", "model_name", "model_version", "source", "customer_id", "probability",
                                    "score", "grade"]
    assert str(df["ts"].dt.tz) == "UTC"
    assert df["customer_id"].tolist() == ["a", "b", "c"] and df["source"].tolist() == ["batch", "batch", "http"]
    assert "email" not in df.columns and df["province"].tolist() == ["广东省"] * 3
    assert read_records(tmp_path, "lead_scoring", version="4")["customer_id"].tolist() == ["c"]
    later = pd.Timestamp.now(tz="UTC") + pd.Timedelta(minutes=1)
    assert read_records(tmp_path, "lead_scoring", since=later).empty
    assert len(read_records(tmp_path, "lead_scoring", until=later.tz_convert(None))) == 3
    assert "name" not in read_records(tmp_path, "churn_risk").columns
    assert read_records(tmp_path, "nothing").empty


def test_queued_records_add_no_object_the_garbage_collector_scans(tmp_path: Path) -> None:
    """A queued request is NumPy arrays appended to its group's columns: the objects the cyclic collector scans
    do not grow with the number of queued requests (per-request lists and dicts made each collection of the young
    generations move them to the oldest, which triggered a full collection of the worker about every second at
    ~1,000 requests/s)."""
    sink = RecordSink(tmp_path, flush_seconds=600)
    sink.record("m", "1", ["a0"], [0.1], [10], ["D"], _block(1))
    before = tracked_reachable(sink)
    for i in range(1, 500):
        assert sink.record("m", "1", [f"a{i}"], [0.1], [10], ["D"], _block(1))
    assert tracked_reachable(sink) == before
    assert sink.pending == 500 and sink.flush() == 500
    df = read_records(tmp_path, "m")
    assert df["customer_id"].tolist() == [f"a{i}" for i in range(500)]
    assert df["province"].tolist() == ["广东省"] * 500 and df["age"].tolist() == [1.0] * 500


def test_queued_values_keep_their_shape() -> None:
    """A value numpy would take for another dimension (a list) stays one value of the object array."""
    from serving.http.records import _object_array

    assert _object_array(["a", None]).tolist() == ["a", None]
    nested = _object_array([["a", "b"], ["c", "d"]])
    assert nested.shape == (2,) and nested[0] == ["a", "b"]
    assert _object_array([["x", "y"], ["z", None]], (2, 2)).T.tolist() == [["x", "z"], ["y", None]]


def test_record_sink_counts_losses_and_never_raises(tmp_path: Path) -> None:
    full = RecordSink(tmp_path / "a", max_queue=2, flush_seconds=60)
    assert full.record("m", "1", ["a", "b"], [0.1, 0.2], [10, 20], ["D", "D"])
    assert not full.record("m", "1", ["c"], [0.3], [30], ["C"])
    assert full.dropped == 1
    blocked = tmp_path / "file"
    blocked.write_text("not a directory")
    broken = RecordSink(blocked, flush_seconds=60)
    broken.record("m", "1", ["a"], [0.1], [10], ["D"])
    assert broken.flush() == 0 and broken.dropped == 1
    from serving.http.records import dropped_counter

    assert dropped_counter().labels(model="m")._value.get() >= 2


def test_record_sink_background_flush(tmp_path: Path) -> None:
    sink = RecordSink(tmp_path, flush_seconds=0.05).start()
    sink.record("m", "1", ["a"], [0.1], [10], ["D"], _block(1))
    sink.close()
    assert len(read_records(tmp_path, "m")) == 1 and sink.written == 1


def test_record_sink_flushes_early_when_a_quarter_of_the_queue_waits(tmp_path: Path) -> None:
    """Bulk traffic must be written before the timer fires, or a full queue would drop records."""
    import time

    sink = RecordSink(tmp_path, flush_seconds=600, max_queue=40).start()
    try:
        total = 0
        for i in range(30):  # 60 rows through a 40-row queue: only early flushes keep every row
            assert sink.record("m", "1", [f"a{i}", f"b{i}"], [0.1, 0.2], [10, 20], ["D", "D"], _block(2))
            total += 2
            deadline = time.monotonic() + 10
            while sink.pending >= 10 and time.monotonic() < deadline:  # the flusher was woken at 10 rows
                time.sleep(0.01)
        assert sink.dropped == 0
    finally:
        sink.close()
    assert sink.written == total and len(read_records(tmp_path, "m")) == total


def test_large_tables_take_the_vectorised_path_with_the_same_results(monkeypatch: pytest.MonkeyPatch) -> None:
    import serving.http.postprocess as pp_mod

    pp = FeaturePreprocessor(categorical=["province", "member_level"]).fit(_frame())
    mb = FeatureInput(pp)
    test = _frame(60, seed=3)
    test.loc[5, "province"] = "火星省"
    rows = _rows(test)
    columns = list(test.columns)[::-1]
    table = [[r[c] for c in columns] for r in rows]
    table[7][columns.index("age")] = True  # true/false count as 1/0
    fast = mb.build_table(columns, table)
    monkeypatch.setattr(pp_mod, "_FAST_TABLE_ROWS", 10**9)  # the per-value path
    slow = mb.build_table(columns, table)
    np.testing.assert_array_equal(fast[0], slow[0])
    assert fast[1] == slow[1] and fast[2].categorical == slow[2].categorical
    np.testing.assert_array_equal(fast[2].numeric, slow[2].numeric)
    monkeypatch.setattr(pp_mod, "_FAST_TABLE_ROWS", 32)
    age, prov = columns.index("age"), columns.index("province")
    for j, value, message in [(age, "3", "table.rows[41].age: must be a number"),
                              (age, float("inf"), "table.rows[41].age: must be a finite number"),
                              (age, [1, 2], "table.rows[41].age: must be a number"),
                              (prov, [1, 2], "table.rows[41].province: must be a string")]:
        bad = [list(r) for r in table]
        bad[41][j] = value
        with pytest.raises(RequestError) as e:
            mb.build_table(columns, bad)
        assert e.value.message.startswith(message), e.value.message
    numbers = [list(r) for r in table]
    numbers[3][prov] = 5  # a number for a categorical feature: its string form, as in the careful path
    assert mb.build_table(columns, numbers)[2].categorical["province"][3] == "5"
