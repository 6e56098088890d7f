"""BANT fit score and grade (configs/bant.yaml), the demo generator's BANT answers and manual-tags file, BANT
answers through ingestion and as model features, and the fit grade added to /score_leads results."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.config import ConfigError
from features.contract import BANT_COLUMNS
from features.members.bant import bant_frame, fit_intent, fit_scores, load_bant_config

ROOT = Path(__file__).resolve().parents[2]


def _answers(rows: list[tuple]) -> pd.DataFrame:
    return bant_frame(pd.DataFrame(rows, columns=list(BANT_COLUMNS)))


def test_shipped_yaml_equals_the_embedded_defaults() -> None:
    assert load_bant_config(ROOT / "configs" / "bant.yaml") == load_bant_config()


def test_points_sum_to_grades_and_no_answer_is_no_grade() -> None:
    df = _answers([
        ("200k+", True, "企业采购", "0-1m"),  # 35 + 25 + 15 + 25 = 100 → A
        ("10k-50k", True, None, "1-3m"),  # 10 + 25 + 15 = 50 → B
        ("<10k", False, "未明确", "3-6m"),  # 5 → D
        ("50k-200k", None, None, None),  # 25 → C
        (None, None, None, None),  # not qualified yet: no grade
    ])
    fit = fit_scores(df, load_bant_config())
    assert fit["fit_score"].tolist()[:4] == [100.0, 50.0, 5.0, 25.0]
    assert np.isnan(fit["fit_score"].iloc[4])
    assert fit["fit_grade"].tolist() == ["A", "B", "D", "C", pd.NA]


def test_grade_boundaries_are_inclusive(tmp_path: Path) -> None:
    p = tmp_path / "bant.yaml"
    p.write_text("points:\n  - {name: b, rule: \"budget_range == '200k+'\", points: 45}\n"
                 "grades: {A: 70, B: 45, C: 20}\n", encoding="utf-8")
    fit = fit_scores(_answers([("200k+", None, None, None), ("<10k", None, None, None)]), load_bant_config(p))
    assert fit["fit_grade"].tolist() == ["B", "D"]


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("points:\n  - {name: b, rule: \"budget_range ==\", points: 5}\ngrades: {A: 3, B: 2, C: 1}\n", "rule 'b'"),
        ("points:\n  - {name: b, rule: \"x == 1\", points: 500}\ngrades: {A: 3, B: 2, C: 1}\n", "points"),
        ("points:\n  - {name: b, rule: \"x == 1\", points: 5}\ngrades: {A: 1, B: 2, C: 3}\n", "decrease"),
        ("points:\n  - {name: b, rule: \"x == 1\", points: 5}\ngrades: {A: 3, B: 2}\n", "exactly A, B and C"),
        ("points:\n  - {name: b, rule: \"x == 1\", points: 5, weight: 2}\ngrades: {A: 3, B: 2, C: 1}\n", "weight"),
    ],
)
def test_bad_config_names_the_rule_and_field(tmp_path: Path, text: str, needle: str) -> None:
    p = tmp_path / "bant.yaml"
    p.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError) as e:
        load_bant_config(p)
    assert needle in str(e.value) and str(p) in str(e.value)


def test_unknown_field_in_a_rule_is_an_error_not_code() -> None:
    cfg = load_bant_config()
    cfg.points[0].rule = "__import__('os') == 1"
    with pytest.raises(ValueError):
        fit_scores(_answers([("200k+", True, None, None)]), cfg)


def test_fit_intent_cell() -> None:
    assert fit_intent("B", "A") == "B×A"
    assert fit_intent(None, "A") is None and fit_intent("A", None) is None


def test_generator_fills_bant_for_part_of_the_customers_with_a_planted_effect(tmp_path: Path) -> None:
    from features.synth import generate_crm_data, write_crm_data
    from features.synth.member_inputs import MANUAL_TAGS_FILE

    r = generate_crm_data(3000, 200, 5)
    c = r.customers
    answered = c[list(BANT_COLUMNS)].notna().any(axis=1)
    assert 0.3 < answered.mean() < 0.5
    assert str(c["decision_maker"].dtype) == "boolean"
    leads = c.merge(r.truth, on="customer_id").query("is_lead")
    fit = fit_scores(bant_frame(leads), load_bant_config())
    by = leads.assign(g=fit["fit_grade"].to_numpy()).groupby("g")["p_convert"].mean()
    assert by["A"] > by["B"] > by["D"]  # the answers carry the hidden propensity
    info = write_crm_data(r, tmp_path / "d")
    manual = pd.read_csv(tmp_path / "d" / MANUAL_TAGS_FILE)
    assert MANUAL_TAGS_FILE in info["files"]
    assert manual.columns.tolist() == ["customer_id", "tag", "added_by", "added_at"]
    assert 5 <= len(manual) <= 200 and set(manual["tag"]) <= {"VIP关怀", "投诉跟进"}
    assert manual["customer_id"].isin(c["customer_id"]).all()
    assert (pd.to_datetime(manual["added_at"]) <= pd.Timestamp(r.meta["as_of"])).all()


def test_ingest_reads_bant_answers(tmp_path: Path) -> None:
    from features.ingest import ingest

    src = tmp_path / "src"
    src.mkdir()
    (src / "customers.csv").write_text(
        "customer_id,created_at,预算,是否决策人,意向产品,采购时间\n"
        "c1,2024-01-05,200k+,是,企业采购,0-1m\nc2,2024-01-06,,否,,6m+\nc3,2024-01-07,,,,\n",
        encoding="utf-8",
    )
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "tables:\n  customers:\n    columns: {预算: budget_range, 是否决策人: decision_maker, "
        "意向产品: product_interest, 采购时间: purchase_timeline}\n",
        encoding="utf-8",
    )
    summary = ingest(str(src), tmp_path / "out", mapping=mapping)
    assert summary.tables["customers"].accepted == 3
    df = pd.read_parquet(tmp_path / "out" / "customers.parquet")
    assert df["decision_maker"].tolist() == [True, False, pd.NA]
    assert df["budget_range"].tolist()[:1] == ["200k+"] and pd.isna(df["budget_range"].iloc[1])
    assert df["purchase_timeline"].tolist()[:2] == ["0-1m", "6m+"]


def test_bant_answers_are_model_features_unless_switched_off() -> None:
    from features.build import CRMFeatureBuilder, build_online_features
    from features.config import FeatureConfig

    on = CRMFeatureBuilder.from_config(FeatureConfig()).fit()
    off = CRMFeatureBuilder.from_config(FeatureConfig(bant_features=False)).fit()
    assert set(BANT_COLUMNS) <= set(on.categorical_features_)
    assert not set(BANT_COLUMNS) & set(off.get_feature_names_out())
    row = build_online_features(
        on, {"customer_id": "L1", "created_at": "2025-06-01", "budget_range": "200k+", "decision_maker": True},
        {}, "2025-06-30",
    )
    one = row.iloc[0]
    assert one["budget_range"] == "200k+" and one["decision_maker"] == "True" and pd.isna(one["purchase_timeline"])


def test_score_leads_results_get_the_fit_grade_of_leads_with_answers() -> None:
    from serving.http.schemas import Lead
    from serving.members.bant import add_fit_grades

    leads = [
        Lead.model_validate({"profile": {"customer_id": "L1", "budget_range": "200k+", "decision_maker": True,
                                         "purchase_timeline": "0-1m", "phone": "13800000000"}}),
        Lead.model_validate({"profile": {"customer_id": "L2"}}),
        Lead.model_validate({"customer_id": "L3", "features": {"tenure_days": 3.0}}),
    ]
    results = [{"customer_id": x.id, "grade": g} for x, g in zip(leads, "BCA", strict=True)]
    assert add_fit_grades(results, leads, load_bant_config()) == 1
    assert results[0] | {} == {"customer_id": "L1", "grade": "B", "fit_score": 85.0, "fit_grade": "A",
                               "fit_intent": "A×B"}
    assert "fit_grade" not in results[1] and "fit_grade" not in results[2]
