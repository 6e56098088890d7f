"""Batch scoring building blocks without MLflow: model URIs, column plans, cleaning and rejects, CSV row
numbers, ranking and dedupe, reason texts (the selection of ``training.explain``, as the service), outputs."""

from __future__ import annotations

import csv
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest

from serving.batch import (
    BatchError,
    ColumnPlan,
    FeatureMapping,
    LoadedScorer,
    RawChunk,
    clean_chunk,
    format_reasons,
    open_csv_input,
    plan_columns,
    rank_rows,
    remove_stale_work,
    resolve_model_uri,
    resolve_output,
    score_frame,
)
from serving.batch.score import _format_numbers

NUM = ["tenure_days", "age", "added_to_cart"]
CAT = ["province"]


@pytest.fixture(scope="module")
def model() -> LoadedScorer:
    """A small fitted CRMScorer (XGBoost, 30 trees) on random rows."""
    from xgboost import XGBClassifier

    from training.model import CRMScorer, FeaturePreprocessor

    rng = np.random.default_rng(0)
    n = 600
    X = pd.DataFrame(
        {
            "tenure_days": rng.uniform(0, 400, n).round(1),
            "age": rng.integers(18, 70, n).astype(float),
            "added_to_cart": rng.integers(0, 2, n).astype(float),
            "province": rng.choice(["广东省", "浙江省", "北京市"], n),
        }
    )
    X.loc[rng.random(n) < 0.1, "age"] = np.nan
    logit = 0.01 * X["tenure_days"] - 2 + 1.5 * X["added_to_cart"] + (X["province"] == "广东省")
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    est = XGBClassifier(n_estimators=30, max_depth=3, n_jobs=1, random_state=0)
    scorer = CRMScorer(estimator=est, preprocessor=FeaturePreprocessor(categorical=CAT)).fit(X, y)
    return LoadedScorer(uri="models:/test@champion", scorer=scorer, name="test", version="1")


def _plan(model: LoadedScorer, keep: list[str] | None = None) -> ColumnPlan:
    header = ["customer_id", *NUM, *CAT, *(keep or [])]
    return plan_columns(header, model, "customer_id", keep or [], FeatureMapping(), "t.csv")


def _raw(rows: dict[str, list], first: int = 2) -> RawChunk:
    n = len(next(iter(rows.values())))
    t = pa.table({k: pa.array(v, type=pa.string()) for k, v in rows.items()})
    return RawChunk(t, np.arange(n, dtype=np.int64) + first)


# ------------------------------------------------------------------------------------------------- model


@pytest.mark.parametrize(
    ("spec", "uri"),
    [
        ("lead_scoring@champion", "models:/lead_scoring@champion"),
        ("lead_scoring/3", "models:/lead_scoring/3"),
        ("lead_scoring", "models:/lead_scoring@champion"),
        ("models:/lead_scoring@challenger", "models:/lead_scoring@challenger"),
        ("runs:/abc123/model", "runs:/abc123/model"),
    ],
)
def test_model_specs_resolve_to_uris(spec, uri):
    assert resolve_model_uri(spec) == uri


def test_bad_model_specs_are_refused():
    with pytest.raises(BatchError, match="version number"):
        resolve_model_uri("lead_scoring/latest")
    with pytest.raises(BatchError, match="empty"):
        resolve_model_uri("  ")


# ----------------------------------------------------------------------------------------------- columns


def test_the_id_column_comes_from_id_col_then_the_model_then_the_default(model):
    """--id-col wins; else the column the model was trained with (a table model's featurizer keeps it)."""
    from serving.batch.model import id_column_for, trained_id_column
    from training.model import CRMScorer, FeaturePreprocessor
    from training.tabular import TableFeaturizer, TablePreprocessor

    assert id_column_for(None, model) == ("customer_id", "the default id column")
    assert id_column_for("lead_no", model) == ("lead_no", "the column --id-col names")
    rng = np.random.default_rng(3)
    X = pd.DataFrame({"customerID": [f"C{i}" for i in range(200)], "tenure": rng.integers(0, 70, 200),
                      "plan": rng.choice(["a", "b"], 200)})
    y = (rng.random(200) < 0.4).astype(int)
    from sklearn.linear_model import LogisticRegression

    pre = TablePreprocessor(TableFeaturizer(id_column="customerID"), FeaturePreprocessor())
    table = LoadedScorer(uri="runs:/abc/model", scorer=CRMScorer(estimator=LogisticRegression(), preprocessor=pre)
                         .fit(X, y), name=None, version=None)
    assert trained_id_column(table) == "customerID"
    table.id_column = "customerID"
    assert id_column_for(None, table) == ("customerID", "the id column runs:/abc/model was trained with")
    assert id_column_for("other", table)[0] == "other"




def test_plan_matches_headers_loosely_and_by_mapping(model):
    header = ["客户编号", "Tenure Days", "AGE", "added-to-cart", "province", "notes"]
    plan = plan_columns(header, model, "customer_id", ["notes"], FeatureMapping(columns={"客户编号": "customer_id"}),
                        "t.csv")
    assert plan.source == {"customer_id": "客户编号", "tenure_days": "Tenure Days", "age": "AGE",
                           "added_to_cart": "added-to-cart", "province": "province", "notes": "notes"}
    assert plan.ignored == []


def test_plan_names_every_missing_column(model):
    with pytest.raises(BatchError) as e:
        plan_columns(["tenure_days", "added_to_cart", "Lead ID"], model, "customer_id", [], FeatureMapping(), "t.csv",
                     id_origin="the default id column")
    assert str(e.value) == (
        "t.csv has no id column 'customer_id' (the default id column): name the column that holds the ids with "
        "--id-col (for example --id-col Lead ID). The model's feature(s) age, province are missing too."
    )
    with pytest.raises(BatchError, match=r"missing required column\(s\): age, province"):
        plan_columns(["customer_id", "tenure_days", "added_to_cart"], model, "customer_id", [], FeatureMapping(),
                     "t.csv")
    with pytest.raises(BatchError, match=r"missing required column\(s\): notes"):
        plan_columns(["customer_id", *NUM, *CAT], model, "customer_id", ["notes"], FeatureMapping(), "t.csv")


def test_a_single_column_header_hints_at_the_delimiter(model):
    with pytest.raises(BatchError, match="read as one column .*delimited by"):
        plan_columns(["customer_id#age#province"], model, "customer_id", [], FeatureMapping(), "t.csv", ",")


def test_mapping_to_an_absent_column_and_duplicate_headers_are_errors(model):
    with pytest.raises(BatchError, match="mapping names column '编号'"):
        plan_columns(["customer_id", *NUM, *CAT], model, "customer_id", [],
                     FeatureMapping(columns={"编号": "customer_id"}), "t.csv")
    with pytest.raises(BatchError, match="duplicate column name"):
        plan_columns(["customer_id", "age", "age", *CAT], model, "customer_id", [], FeatureMapping(), "t.csv")


# ---------------------------------------------------------------------------------------------- cleaning


def test_clean_chunk_rejects_with_reasons_and_parses_messy_numbers(model):
    plan = _plan(model, keep=["notes"])
    raw = _raw(
        {
            "customer_id": ["A1", None, "A3", "A4", "A5", None, " A7 "],
            "tenure_days": ["10", "11", "abc", "1,234.5", "¥12", None, "7"],
            "age": ["30", "31", "32", "inf", "", None, "-1e400"],
            "added_to_cart": ["1", "0", "1", "0", "1", None, "1"],
            "province": [" 广东省 ", "浙江省", None, "北京市", "ＡＢ", None, "北京市"],
            "notes": ["x", "y", "z", "w", "v", None, "u"],
        }
    )
    c = clean_chunk(raw, plan)
    assert c.blank == 1  # row 7: every column blank
    rej = c.rejects.set_index("row")
    assert rej.loc[3, "reason"] == "customer_id is blank"
    assert (rej.loc[4, "column"], rej.loc[4, "value"], rej.loc[4, "reason"]) == (
        "tenure_days", "abc", "tenure_days is not a number")
    assert rej.loc[5, "reason"] == "age is infinite" and rej.loc[5, "id"] == "A4"
    assert rej.loc[8, "reason"] == "age is infinite" and rej.loc[8, "value"] == "-inf"
    assert sorted(rej.index) == [3, 4, 5, 8]
    assert c.ids.tolist() == ["A1", "A5"]
    assert c.row_numbers.tolist() == [2, 6]
    assert c.features["tenure_days"].tolist() == [10.0, 12.0]  # "¥12" parsed as an amount
    assert np.isnan(c.features["age"].iloc[1])  # blank → missing, not rejected
    assert c.features["province"].tolist() == ["广东省", "AB"]  # trimmed, full-width folded
    assert list(c.features.columns) == [*NUM, *CAT]
    assert c.keep.column("notes").to_pylist() == ["x", "v"]


def test_thousands_separators_parse_when_the_chunk_also_has_junk(model):
    plan = _plan(model)
    raw = _raw({"customer_id": ["a", "b"], "tenure_days": ["1,234.5", "oops"], "age": ["1", "2"],
                "added_to_cart": ["0", "1"], "province": ["x", "y"]})
    c = clean_chunk(raw, plan)
    assert c.features["tenure_days"].tolist() == [1234.5]
    assert c.rejects["reason"].tolist() == ["tenure_days is not a number"]


def test_several_problems_of_one_row_are_one_reject_line(model):
    plan = _plan(model)
    raw = _raw({"customer_id": [None], "tenure_days": ["x"], "age": ["inf"], "added_to_cart": ["1"],
                "province": ["p"]})
    rej = clean_chunk(raw, plan).rejects
    assert len(rej) == 1
    assert rej.loc[0, "reason"] == "customer_id is blank; tenure_days is not a number; age is infinite"


def test_csv_row_numbers_survive_blank_lines_and_bad_lines(model, tmp_path):
    lines = ["customer_id,tenure_days,age,added_to_cart,province", "a,1,2,0,x", "", "b,1,2,0,x,EXTRA",
             "c,1,2,0,x", "d,1,2", "e,1,2,0,x"]
    p = tmp_path / "l.csv"
    p.write_text("\n".join(lines) + "\n")
    src = open_csv_input(p)
    plan = plan_columns(src.header, model, "customer_id", [], FeatureMapping(), src.label, src.delimiter)
    rows, bad, blank = [], [], 0
    for raw in src.chunks(plan, 2):
        c = clean_chunk(raw, plan)
        rows += list(zip(c.row_numbers.tolist(), c.ids.tolist(), strict=True))
        bad += raw.bad_rows
        blank += c.blank
    assert rows == [(2, "a"), (5, "c"), (7, "e")]
    assert [r for r, _ in bad] == [4, 6] and "fields" in bad[0][1]
    assert blank == 1


def test_csv_encoding_and_delimiter_are_detected(tmp_path):
    p = tmp_path / "gb.csv"
    p.write_bytes("客户编号;省份\nA;广东省\n".encode("gb18030"))
    src = open_csv_input(p)
    assert (src.encoding, src.delimiter, src.header) == ("gb18030", ";", ["客户编号", "省份"])


@pytest.mark.parametrize(("text", "message"), [("", "empty"), ("a,b,c\n", "no data rows"), ("  \n\n", "empty")])
def test_empty_and_header_only_files_are_errors(tmp_path, text, message):
    p = tmp_path / "x.csv"
    p.write_text(text)
    with pytest.raises(BatchError, match=message):
        open_csv_input(p)


# ----------------------------------------------------------------------------------------------- scoring


def test_score_frame_equals_the_scorers_predict_proba(model):
    from training.scores import to_grade, to_score

    X = pd.DataFrame({"tenure_days": [1.0, 200.0, np.nan], "age": [30.0, np.nan, 50.0],
                      "added_to_cart": [1.0, 0.0, 1.0], "province": ["广东省", None, "unseen"]})
    s = score_frame(model.scorer, X, reasons=2, threads=1)
    p = model.scorer.predict_proba(X)[:, 1]
    np.testing.assert_array_equal(s.probability, p)
    np.testing.assert_array_equal(s.score, to_score(p))
    np.testing.assert_array_equal(s.grade, to_grade(to_score(p), model.scorer.grade_thresholds_))
    assert set(s.reasons) == {"reason_pos_1", "reason_pos_2", "reason_neg_1", "reason_neg_2"}


def test_reason_texts_follow_the_scorers_reasons(model):
    from training.scores import readable_label

    rng = np.random.default_rng(1)
    X = pd.DataFrame({"tenure_days": rng.uniform(0, 400, 50).round(2), "age": rng.integers(18, 70, 50) * 1.0,
                      "added_to_cart": rng.integers(0, 2, 50) * 1.0,
                      "province": rng.choice(["广东省", "浙江省", None], 50)})
    sc = model.scorer
    Z = sc.preprocessor_.transform(X)
    texts = format_reasons(sc, X, Z, 3)
    want = sc.explain(X, 3)
    for i, w in enumerate(want):
        for kind, key in (("pos", "positive"), ("neg", "negative")):
            for k in range(3):
                cell = texts[f"reason_{kind}_{k + 1}"][i]
                if k >= len(w[key]):
                    assert cell is None
                    continue
                r = w[key][k]
                value = "missing" if r["value"] is None else r["value"] if isinstance(r["value"], str) else None
                assert cell.startswith(f"{readable_label(r['feature'])} = ")
                assert cell.endswith(f"({r['contribution']:+.2f})")
                if value is not None:
                    assert f" = {value} (" in cell


def test_numbers_are_shown_readably():
    got = _format_numbers(np.array([1.0, 0.0, 193.579, np.nan, -2.5, 1e-4, 3650.0]))
    assert got.tolist() == ["1", "0", "193.58", "missing", "-2.5", "0.0001", "3650"]


def test_number_texts_in_arrow_equal_the_python_formatting():
    from serving.batch.score import _number_text, _number_texts

    rng = np.random.default_rng(3)
    values = np.concatenate([
        rng.normal(size=20_000) * 10.0 ** rng.integers(-4, 10, 20_000),
        rng.integers(-100_000, 100_000, 5_000) / 100.0,
        rng.integers(-1_000, 1_000, 2_000) / 8.0,  # exact halves of hundredths: 0.125, 0.375, ...
        [0.0, -0.0, 0.005, -0.005, 0.125, 2.675, 9.995, 99.995, -0.004, 1e-9, 1e15, 1e15 + 2, -1e16, 5e-324],
    ])
    assert _number_texts(values).to_pylist() == [_number_text(float(v)) for v in values]


@pytest.mark.parametrize("kind", ["xgboost", "linear"])
def test_block_size_changes_no_probability_or_reason(model, kind, monkeypatch):
    import serving.batch.score as score_mod

    rng = np.random.default_rng(5)
    n = 1_000
    X = pd.DataFrame({"tenure_days": rng.uniform(0, 400, n).round(2), "age": rng.integers(18, 70, n) * 1.0,
                      "added_to_cart": rng.integers(0, 2, n) * 1.0,
                      "province": rng.choice(["广东省", "浙江省", None, "unseen"], n)})
    scorer = model.scorer
    if kind == "linear":  # one-hot, column-major model matrix
        from sklearn.linear_model import LogisticRegression

        from training.model import CRMScorer, FeaturePreprocessor

        y = (rng.random(n) < 0.3).astype(int)
        pre = FeaturePreprocessor(categorical=CAT, encoding="onehot", min_frequency=1)
        scorer = CRMScorer(estimator=LogisticRegression(), preprocessor=pre).fit(X, y)
    whole = score_frame(scorer, X, reasons=3, threads=1)
    monkeypatch.setattr(score_mod, "SCORE_BLOCK_ROWS", 7)
    blocks = score_frame(scorer, X, reasons=3, threads=1)
    assert whole.probability.tobytes() == blocks.probability.tobytes()
    np.testing.assert_array_equal(whole.probability, scorer.predict_proba(X)[:, 1])
    for c in whole.reasons:
        assert whole.reasons[c].equals(blocks.reasons[c]), c


# ------------------------------------------------------------------------------------------------ ranking


def test_rank_keeps_the_last_duplicate_and_breaks_ties_by_input_order():
    ids = pa.array(["a", "b", "a", "c", "d", "e"])
    p = np.array([0.9, 0.5, 0.2, 0.5, 0.7, 0.1])
    rows = np.arange(2, 8)
    keep, rank, decile = rank_rows(ids, p, rows)
    assert keep.tolist() == [False, True, True, True, True, True]
    # kept: b .5, a .2, c .5, d .7, e .1 → d, b, c (tie: b first in input), a, e
    assert rank.tolist() == [0, 2, 4, 3, 1, 5]
    assert decile.tolist() == [0, 3, 7, 5, 1, 9]


# ------------------------------------------------------------------------------------------------- output


def test_output_locations_are_checked_first(tmp_path):
    t = resolve_output(str(tmp_path / "s.csv"), None, None)
    assert (t.kind, t.rejects.name, t.summary.name) == ("csv", "s.csv.rejects.csv", "s.csv.summary.json")
    assert resolve_output(str(tmp_path / "s.parquet"), None, None).kind == "parquet"
    sql = resolve_output(f"sqlite:///{tmp_path / 'x.db'}", "scores", None)
    assert (sql.kind, sql.table, sql.rejects.name) == ("sql", "scores", "x.db.scores.rejects.csv")
    with pytest.raises(BatchError, match="does not exist"):
        resolve_output(str(tmp_path / "missing" / "s.csv"), None, None)
    with pytest.raises(BatchError, match="use a .csv or .parquet"):
        resolve_output(str(tmp_path / "s.json"), None, None)
    (tmp_path / "d.csv").mkdir()
    with pytest.raises(BatchError, match="is a directory"):
        resolve_output(str(tmp_path / "d.csv"), None, None)
    with pytest.raises(BatchError, match="--output-table"):
        resolve_output(str(tmp_path / "s.csv"), "scores", None)


def test_stale_work_of_dead_runs_is_removed_but_live_runs_are_kept(tmp_path):
    target = tmp_path / "s.csv"
    dead = tmp_path / ".s.csv.crmscore-999999999.tmp"
    dead.mkdir()
    (dead / "chunk-000000.arrow").write_text("x")
    part = tmp_path / ".s.csv.crmscore-999999999.part"
    part.write_text("half")
    live = tmp_path / f".s.csv.crmscore-{os.getpid()}.tmp"
    live.mkdir()
    other = tmp_path / ".t.csv.crmscore-999999999.tmp"
    other.mkdir()
    removed = remove_stale_work(target)
    assert sorted(p.name for p in removed) == sorted([dead.name, part.name])
    assert live.exists() and other.exists() and not dead.exists() and not part.exists()


def test_feature_mapping_file_is_validated(tmp_path):
    from serving.batch import load_feature_mapping

    good = tmp_path / "m.yaml"
    good.write_text("columns:\n  客户编号: customer_id\n", encoding="utf-8")
    assert load_feature_mapping(good).columns == {"客户编号": "customer_id"}
    bad = tmp_path / "b.yaml"
    bad.write_text("tables:\n  customers: {}\n", encoding="utf-8")
    with pytest.raises(BatchError, match="tables"):
        load_feature_mapping(bad)
    assert load_feature_mapping(None).columns == {}
    assert isinstance(Path(good), Path)


def test_approximate_contributions_add_up_to_the_margin_too(model):
    from serving.batch import contributions

    X = pd.DataFrame({"tenure_days": [5.0, 300.0], "age": [30.0, np.nan], "added_to_cart": [1.0, 0.0],
                      "province": ["广东省", "浙江省"]})
    Z = model.scorer.preprocessor_.transform(X)
    margin = model.scorer.margin_matrix(Z)
    for method in ("exact", "approx"):
        np.testing.assert_allclose(contributions(model.scorer, Z, method).sum(axis=1), margin, rtol=1e-5, atol=1e-5)
    texts = format_reasons(model.scorer, X, Z, 1, method="approx")
    assert all(isinstance(t, str) and " = " in t for t in texts["reason_pos_1"] if t is not None)
    with pytest.raises(BatchError, match="exact or approx"):
        contributions(model.scorer, Z, "shap")


@pytest.mark.parametrize("top", [1, 2, 3, 4, 5, 12])
def test_reason_selection_equals_the_full_stable_sort_even_with_ties(top):
    from serving.batch import select_reasons

    rng = np.random.default_rng(top)
    folded = rng.integers(-3, 4, size=(400, 9)).astype(float)  # many ties, also across the cut
    folded[:50] = rng.normal(size=(50, 9))
    order = np.argsort(-folded, axis=1, kind="stable")
    before = folded.copy()
    pos, neg = select_reasons(folded, top)
    np.testing.assert_array_equal(pos, order[:, :top])
    np.testing.assert_array_equal(neg, order[:, ::-1][:, :top])
    np.testing.assert_array_equal(folded, before)  # restored


# -------------------------------------------------------------------------------------------- speed paths


def _reference_texts(sc, X: pd.DataFrame, top: int) -> dict[str, list]:
    """Reason texts built row by row from ``CRMScorer.explain`` (the service's reasons)."""
    from serving.batch.score import _number_text
    from training.scores import readable_label

    out: dict[str, list] = {f"reason_{k}_{i + 1}": [] for k in ("pos", "neg") for i in range(top)}
    for r in sc.explain(X, top):
        for kind, key in (("pos", "positive"), ("neg", "negative")):
            for i in range(top):
                if i >= len(r[key]):
                    out[f"reason_{kind}_{i + 1}"].append(None)
                    continue
                w = r[key][i]
                v = w["value"]
                value = "missing" if v is None else v if isinstance(v, str) else _number_text(float(v))
                out[f"reason_{kind}_{i + 1}"].append(
                    f"{readable_label(w['feature'])} = {value} ({np.round(w['contribution'], 2):+.2f})"
                )
    return out


def test_vectorised_reason_texts_equal_the_row_by_row_texts(model):
    from serving.batch import reason_arrays

    rng = np.random.default_rng(7)
    n = 300
    X = pd.DataFrame({"tenure_days": rng.uniform(0, 400, n).round(3), "age": rng.integers(18, 70, n) * 1.0,
                      "added_to_cart": rng.integers(0, 2, n) * 1.0,
                      "province": rng.choice(["广东省", "浙江省", None, "unseen"], n)})
    X.loc[rng.random(n) < 0.2, "age"] = np.nan
    sc = model.scorer
    Z = sc.preprocessor_.transform(X)
    want = _reference_texts(sc, X, 3)
    got = reason_arrays(sc, X, Z, 3)
    assert set(got) == set(want)
    for c in want:
        assert got[c].to_pylist() == want[c], c
        assert format_reasons(sc, X, Z, 3)[c].tolist() == want[c]


def test_batch_contributions_are_the_services_and_xgboost_pred_contribs(model):
    """The reasons batch scoring shows come from the very numbers the HTTP service uses (the scorer's
    ``contributions_matrix``: exact TreeSHAP by ``training.treeshap``), which are XGBoost's ``pred_contribs``
    within float32 rounding and add up to the margin."""
    import xgboost as xgb

    from serving.batch import contributions

    rng = np.random.default_rng(3)
    X = pd.DataFrame({"tenure_days": rng.uniform(0, 400, 500), "age": rng.integers(18, 70, 500) * 1.0,
                      "added_to_cart": rng.integers(0, 2, 500) * 1.0,
                      "province": rng.choice(["广东省", "浙江省", None], 500)})
    sc = model.scorer
    Z = sc.preprocessor_.transform(X)
    got = contributions(sc, Z, "exact")
    np.testing.assert_array_equal(got, sc.contributions_matrix(Z))
    booster = sc.estimator_.get_booster()
    want = booster.predict(xgb.DMatrix(Z), pred_contribs=True)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(got.sum(axis=1, dtype=np.float64), booster.predict(xgb.DMatrix(Z), output_margin=True),
                               rtol=0, atol=1e-4)
    # the same order of reasons as XGBoost's numbers give, on every row
    np.testing.assert_array_equal(np.argsort(-np.abs(got[:, :-1]), axis=1, kind="stable")[:, :3],
                                  np.argsort(-np.abs(want[:, :-1]), axis=1, kind="stable")[:, :3])


def test_prefetch_keeps_order_raises_producer_errors_and_closes_early():
    from serving.batch import prefetch

    assert list(prefetch(iter(range(50)), ahead=2)) == list(range(50))

    def failing():
        yield 1
        raise BatchError("bad line 7")

    it = prefetch(failing())
    assert next(it) == 1
    with pytest.raises(BatchError, match="bad line 7"):
        next(it)

    closed = []

    def endless():
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.append(True)

    gen = prefetch(endless())
    assert [next(gen) for _ in range(3)] == [0, 1, 2]
    gen.close()
    assert closed == [True]


def test_background_worker_runs_in_order_and_reports_the_first_error():
    from serving.batch import BackgroundWorker

    done: list[int] = []
    w = BackgroundWorker()
    for i in range(20):
        w.submit(lambda i=i: done.append(i))
    w.join()
    assert done == list(range(20))

    w = BackgroundWorker()
    w.submit(lambda: (_ for _ in ()).throw(OSError("disk full")))
    with pytest.raises(OSError, match="disk full"):
        w.submit(lambda: done.append(99))
        w.join()
    assert 99 not in done


@pytest.mark.parametrize("encoding", ["ordinal", "onehot"])
def test_cleaned_category_codes_encode_as_the_cleaned_text(encoding):
    """clean_chunk hands categorical columns over as codes into their normalised distinct values; the encoder
    gives the same matrix from them as from the cleaned text (the encoder's own contract:
    tests/unit/test_encoder.py)."""
    from serving.batch import feature_matrix
    from training.model import FeaturePreprocessor

    rng = np.random.default_rng(5)
    n = 400
    X = pd.DataFrame({"tenure_days": rng.uniform(0, 400, n), "age": rng.integers(18, 70, n) * 1.0,
                      "added_to_cart": rng.integers(0, 2, n) * 1.0,
                      "province": rng.choice(["广东省", "浙江省", "北京市", None], n),
                      "industry": rng.choice(["retail", "tech", None], n)})
    X.loc[rng.random(n) < 0.2, "age"] = np.nan
    pre = FeaturePreprocessor(categorical=["province", "industry"], encoding=encoding, min_frequency=5).fit(X)
    Y = X.copy()
    Y.loc[:5, "province"] = "unseen"
    Y.loc[6, "age"] = np.inf

    # the categories as codes into their distinct values (what clean_chunk hands over): the same matrix
    raw = Y.copy()
    raw.loc[7:9, "province"] = " 广东省 "  # normalised to a known category
    raw.loc[10:12, "industry"] = "ｔｅｃｈ"  # full-width: normalised to "tech"
    raw.loc[13:15, "industry"] = "nan"  # a null token
    raw.loc[16:30, "province"] = None
    chunk = RawChunk(pa.table({"customer_id": pa.array([f"c{i}" for i in range(n)]),
                               **{c: pa.array(raw[c].astype(object).where(raw[c].notna(), None).map(
                                   lambda v: v if v is None or isinstance(v, str) else repr(float(v))).tolist(),
                                   type=pa.string()) for c in raw.columns}}),
                     np.arange(n, dtype=np.int64) + 2)
    plan = ColumnPlan("customer_id", [], ["tenure_days", "age", "added_to_cart"], ["province", "industry"],
                      {c: c for c in ["customer_id", *raw.columns]})
    clean = clean_chunk(chunk, plan)
    assert set(clean.codes) == {"province", "industry"} and len(clean.features) < n  # the inf row is rejected
    with_codes = feature_matrix(pre, clean.features, clean.codes)
    np.testing.assert_array_equal(with_codes, pre.transform(clean.features))
    np.testing.assert_array_equal(with_codes, feature_matrix(pre, clean.features))
    assert np.nansum(with_codes[:, 3:]) > 0
    with pytest.raises(KeyError, match="missing feature"):
        feature_matrix(pre, X.drop(columns=["age"]))


def test_linear_contributions_equal_the_scorers_and_sum_to_the_margin():
    from sklearn.linear_model import LogisticRegression

    from serving.batch import contributions, reason_arrays
    from training.model import CRMScorer, FeaturePreprocessor

    rng = np.random.default_rng(11)
    n = 500
    X = pd.DataFrame({"tenure_days": rng.uniform(0, 400, n), "age": rng.integers(18, 70, n) * 1.0,
                      "added_to_cart": rng.integers(0, 2, n) * 1.0,
                      "province": rng.choice(["广东省", "浙江省", "北京市", None], n)})
    y = (rng.random(n) < 0.3 + 0.4 * X["added_to_cart"]).astype(int)
    sc = CRMScorer(estimator=LogisticRegression(max_iter=500),
                   preprocessor=FeaturePreprocessor(categorical=CAT, encoding="onehot", min_frequency=5)).fit(X, y)
    Z = sc.preprocessor_.transform(X)
    got = contributions(sc, Z, "exact")
    np.testing.assert_array_equal(got, sc.contributions_matrix(Z))
    np.testing.assert_allclose(got.sum(axis=1), sc.margin_matrix(Z), rtol=1e-9, atol=1e-9)
    want = _reference_texts(sc, X, 3)
    texts = reason_arrays(sc, X, Z, 3)
    for c in want:
        assert texts[c].to_pylist() == want[c], c


def _read_all(path: Path, model: LoadedScorer, ahead: bool, chunk: int = 500) -> dict[str, object]:
    """Everything clean_chunk makes of a CSV, chunk by chunk concatenated (read ahead like score_batch, or not)."""
    src = open_csv_input(path)
    if ahead:
        src.start(chunk, 1 << 20)
    plan = plan_columns(src.header, model, "customer_id", [], FeatureMapping(), src.label, src.delimiter)
    feats, ids, rows, rejects, bad, blank, typed = [], [], [], [], [], 0, set()
    for raw in src.chunks(plan, chunk):
        typed |= set(raw.text_numbers)
        c = clean_chunk(raw, plan)
        feats.append(c.features)
        ids += c.ids.tolist()
        rows += c.row_numbers.tolist()
        rejects.append(c.rejects)
        bad += raw.bad_rows
        blank += c.blank
    return {"features": pd.concat(feats, ignore_index=True), "ids": ids, "rows": rows, "bad": bad, "blank": blank,
            "rejects": pd.concat(rejects, ignore_index=True).astype(str).values.tolist(), "typed": typed}


@pytest.mark.parametrize("case", ["clean", "junk after the sample", "numbers as categories", "numeric ids"])
def test_numbers_parsed_by_the_csv_reader_equal_the_text_path(model, tmp_path, monkeypatch, case):
    """Plain-number columns are parsed as float64 by the reader; every outcome equals reading all text."""
    import serving.batch.sources as sources

    rng = np.random.default_rng(1)
    lines = ["customer_id,tenure_days,age,added_to_cart,province"]
    for i in range(4000):
        cid = str(100000 + i) if case == "numeric ids" else f"C{i:05d}"
        prov = str(i % 3 + 1) if case == "numbers as categories" else ["广东省", "浙江省", "北京市"][i % 3]
        tenure = f"{rng.uniform(0, 400):.4f}"
        lines.append(f"{cid},{tenure},{int(rng.integers(18, 70))},{i % 2},{prov}")
    # the odd cells the two paths must treat alike; the sample (the first 64 KB) sees only some of them
    # the sample (the first 64 KB, ~2,000 lines) sees plain numbers, blanks and bad lines only
    odd = {5: "C_x,,,,", 9: ",,,,", 12: 'C_y,"12.5",1e400,-0,x', 14: "C_z,+3,.5,0.25,y", 20: "",
           25: "C_w,1,2", 30: "C_v,1,2,3,4,5",
           # after it: cells the reader parses as numbers too (NaN, inf) and more bad lines
           3000: "C_n,NaN,NaN,NaN,", 3001: ",nan,,NaN,", 3002: "C_i,inf,-inf,1,x", 3003: "", 3004: "C_b,1"}
    if case == "junk after the sample":  # cells only the text path reads: the reader starts again as text
        odd |= {3500: 'C_j, 12,"¥1,234.50",0,x', 3600: "C_k,abc,2,0,x", 3700: "C_l,1,2", 3800: "C_m,1,2,0,x,y"}
    for pos, text in odd.items():
        lines[pos] = text.replace(",x", ",1").replace(",y", ",2") if case == "numbers as categories" else text
    path = tmp_path / "leads.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size > (1 << 16)

    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 16 << 10)  # several blocks: a failure comes mid-stream
    results = {}
    for typed in (True, False):
        monkeypatch.setattr(sources, "TYPED_CSV", typed)
        for ahead in (True, False):
            results[typed, ahead] = _read_all(path, model, ahead)
    text = results[False, False]
    assert not text["typed"]
    for key, got in results.items():
        pd.testing.assert_frame_equal(got["features"], text["features"], check_exact=True)
        for part in ("ids", "rows", "bad", "blank", "rejects"):
            assert got[part] == text[part], (key, part)
    typed_cols = results[True, True]["typed"]
    if case in ("clean", "numeric ids", "junk after the sample"):
        assert typed_cols == {"tenure_days", "age", "added_to_cart"}  # the fast path was taken (at first)
    elif case == "numbers as categories":
        assert typed_cols == set()  # province is needed as text: the whole file was read as text
    # each line with the wrong number of fields is reported once, by its line number
    wrong = sorted(pos + 1 for pos, t in odd.items() if t and len(next(iter(csv.reader([t])))) != 5)
    assert [r for r, _ in text["bad"]] == wrong
    assert len(text["ids"]) + len(text["rejects"]) + text["blank"] == 4000  # rejects include those lines


def test_text_columns_skip_normalising_only_when_it_would_change_nothing():
    """The ASCII fast path of clean_chunk's text columns gives exactly normalize_text's values."""
    from features.readers import normalize_text
    from serving.batch.clean import _normal_already, _text_codes_of

    rng = np.random.default_rng(7)
    pieces = ["a", "B", "7", "-", "@", " ", "\t", "\x0b", "\x1c", "\x1f", "nan", "NULL", "N/A", "#n/a", "",
              "ａ", "１", "\u3000", "广东", "é"]
    fast = 0
    for _ in range(400):
        n = int(rng.integers(0, 12))
        cells = ["".join(rng.choice(pieces, size=int(rng.integers(0, 4)))) for _ in range(n)]
        if rng.random() < 0.5:  # many arrays of plain cells, so the fast path is taken often
            cells = ["".join(rng.choice(pieces[:5], size=int(rng.integers(1, 4)))) for _ in range(n)]
        arr = pa.array([None if rng.random() < 0.1 else c for c in cells], type=pa.string())
        want = normalize_text(pd.Series(arr.to_pylist(), dtype=object)).to_numpy(dtype=object, na_value=None)
        got, codes = _text_codes_of(arr)
        assert list(got) == list(want), cells
        assert codes is not None and [None if k < 0 else codes.values[k] for k in codes.codes] == list(want)
        fast += _normal_already(pa.compute.unique(arr.drop_null()))
    assert fast > 50  # the fast path was exercised


def test_a_bad_line_several_chunks_in_is_numbered_by_its_line(model, tmp_path, monkeypatch):
    """Chunks are delivered before the reader meets a line with a wrong number of fields: that line, and the rows
    after it (a blank line among them), keep the file's line numbers."""
    import serving.batch.sources as sources

    lines = ["customer_id,tenure_days,age,added_to_cart,province"]
    lines += [f"C{i:05d},{i * 0.25},{20 + i % 50},{i % 2},p{i % 3}" for i in range(6000)]
    lines[4500] = "C_bad,1,2"
    lines[5200] = ""
    path = tmp_path / "late.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setattr(sources, "CSV_BLOCK_BYTES", 16 << 10)
    got = _read_all(path, model, ahead=False)
    assert [r for r, _ in got["bad"]] == [4501] and got["blank"] == 1
    assert got["rows"][4498:4500] == [4500, 4502] and got["rows"][-1] == 6001
    assert len(got["ids"]) == 5998 and got["ids"][4499] == "C04500"
