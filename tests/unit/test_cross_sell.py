"""Cross-sell: hand-computed association rules, the out-of-time split, the gate, next-best-action rules and
clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from features.rules import FieldSpec, RuleError
from training.cross_sell import (
    CrossSellConfig,
    CrossSellDataError,
    History,
    ItemItemModel,
    RuleThresholds,
    Vocabulary,
    association_rules,
    evaluate_at,
    evaluate_split,
    load_lines,
    split_at,
)
from training.cross_sell_actions import ActionsConfig, action_counts, assign_actions
from training.cross_sell_job import decide_promotion, recommend

T0 = pd.Timestamp("2025-01-01")


def _lines(baskets: list[list[str]], customers: list[str] | None = None, days: list[int] | None = None):
    rows = []
    for i, items in enumerate(baskets):
        for sku in items:
            rows.append(
                {
                    "customer_id": customers[i] if customers else f"c{i}",
                    "basket": f"b{i}",
                    "ts": T0 + pd.Timedelta(days=days[i] if days else i),
                    "sku": sku,
                    "product_name": f"name {sku}",
                }
            )
    return pd.DataFrame(rows)


# 8 baskets: n(A)=n(B)=n(C)=n(D)=3, n(E)=2, n(AB)=n(AC)=n(DE)=2, n(BC)=1
BASKETS = [["A", "B"], ["A", "B", "C"], ["A", "C"], ["B"], ["C"], ["D", "E"], ["D", "E"], ["D"]]


def test_rules_match_hand_computed_support_confidence_lift():
    lines = _lines(BASKETS)
    vocab = Vocabulary.of(lines)
    th = RuleThresholds(level="basket", min_support=0.2, min_confidence=0.5, min_lift=1.5)
    r = association_rules(lines, vocab, th).set_index(["antecedent", "consequent"])
    assert set(r.index) == {("A", "B"), ("B", "A"), ("A", "C"), ("C", "A"), ("D", "E"), ("E", "D")}
    assert r.loc[("A", "B"), "support"] == pytest.approx(2 / 8)
    assert r.loc[("A", "B"), "confidence"] == pytest.approx(2 / 3)
    assert r.loc[("A", "B"), "lift"] == pytest.approx((2 / 3) / (3 / 8))  # 16/9
    assert r.loc[("D", "E"), "confidence"] == pytest.approx(2 / 3)
    assert r.loc[("D", "E"), "lift"] == pytest.approx((2 / 3) / (2 / 8))  # 8/3
    assert r.loc[("E", "D"), "confidence"] == pytest.approx(1.0)
    assert r.loc[("E", "D"), "lift"] == pytest.approx(1.0 / (3 / 8))
    assert int(r.loc[("E", "D"), "n_both"]) == 2 and int(r.loc[("E", "D"), "n_transactions"]) == 8
    # B → C has support 1/8 < 0.2; raising the lift bar keeps only D ↔ E
    strict = association_rules(lines, vocab, th.model_copy(update={"min_lift": 2.0}))
    assert set(zip(strict["antecedent"], strict["consequent"], strict=True)) == {("D", "E"), ("E", "D")}
    # customer level: the two baskets of one customer count once
    cust = _lines(BASKETS, customers=["x", "x", "y", "z", "w", "v", "u", "t"])
    rc = association_rules(cust, Vocabulary.of(cust), th.model_copy(update={"level": "customer"}))
    assert int(rc["n_transactions"].iloc[0]) == 7


def _timeline():
    """Customers buy A/B before T; X is sold only after T; after T they also buy C (bought with A before T)."""
    baskets, cust, days = [], [], []
    for i in range(30):
        c = f"c{i}"
        baskets += [["A", "C"] if i % 2 else ["A"], ["B"]]
        cust += [c, c]
        days += [i % 20, 30 + i % 20]
        baskets += [["C", "X"] if i % 3 == 0 else ["A"]]
        cust += [c]
        days += [100 + i % 20]
    return _lines(baskets, cust, days)


DECAYED = {"own": "decayed", "alpha": 0.7, "beta": 0.0, "half_life_days": 180.0, "cooccurrence": "customer"}


def test_evaluation_split_leaks_nothing_after_t():
    lines = _timeline()
    t = T0 + pd.Timedelta(days=60)
    train, test = split_at(lines, t, 90)
    assert train["ts"].max() <= t < test["ts"].min()
    cfg = CrossSellConfig(min_item_buyers=1, k=3)
    metrics, model = evaluate_at(train, test, t, cfg, DECAYED)
    assert "X" not in set(model.vocab.skus)  # sold only after T: unknown to the model
    assert model.popularity.shape == (len(model.vocab.skus),)
    hist = History.of(lines, model.vocab, t, 180.0)  # all lines given: only those up to T are read
    assert hist.counts.sum() == train.drop_duplicates(["customer_id", "basket", "sku"]).shape[0]
    with pytest.raises(ValueError, match="leak"):
        evaluate_at(lines, test, t, cfg, DECAYED)
    with pytest.raises(ValueError, match="at or before T"):
        evaluate_at(train, lines, t, cfg, DECAYED)
    # X counts in the new-product denominators and can never be hit
    assert metrics["item_item"]["recall_at_3_new"] < 1.0
    ev, fitted = evaluate_split(lines, cfg.model_copy(update={"as_of": str(t.date()), "horizon_days": 50}))
    assert pd.Timestamp(ev.split["last_train_ts"]) <= t < pd.Timestamp(ev.split["first_test_ts"])
    assert set(ev.metrics) >= {"item_item", "popularity", "personal_top_frequency"}


def test_gate_decides_both_ways():
    assert decide_promotion(0.10, None, 0.0, "recall_at_10_all").promote
    up = decide_promotion(0.12, 0.10, 0.01, "recall_at_10_all")
    assert up.promote and "≥ margin" in up.reason
    down = decide_promotion(0.105, 0.10, 0.01, "recall_at_10_all")
    assert not down.promote and "below margin" in down.reason
    assert down.as_tags("recall_at_10_all")["crmscore.gate.promote"] == "false"


def test_recommend_evidence_and_recent_exclusion():
    lines = _timeline()
    t = T0 + pd.Timedelta(days=60)
    train, _ = split_at(lines, t, 90)
    model = ItemItemModel.fit(train, t, 0.5, 180.0, "customer", 10)
    model.rules = association_rules(
        train, model.vocab, RuleThresholds(min_support=0.1, min_confidence=0.1, min_lift=1.0)
    )
    # c0 bought A (day 0) and B (day 30): with a 40-day exclusion B (30 days ago) is left out, A is not
    recs = recommend(model, train, pd.Index(["c0", "nobody"]), t, k=3, exclude_recent_days=40)
    c0 = recs[recs["customer_id"] == "c0"]
    assert "B" not in set(c0["sku"]) and "A" in set(c0["sku"])
    c_row = c0[c0["sku"] == "C"]
    assert len(c_row) == 1 and c_row["evidence"].iloc[0].startswith("bought name A; ")
    assert (
        "of its buyers also buy name C" in c_row["evidence"].iloc[0] and "× the base rate" in c_row["evidence"].iloc[0]
    )
    assert recs[recs["customer_id"] == "nobody"]["evidence"].str.startswith("popular").all()


# ------------------------------------------------------------------------------------------ actions


def _ctx():
    return pd.DataFrame(
        {
            "customer_id": ["no_consent_a", "vip_risk", "lead_a", "lead_b", "unknown_consent", "quiet", "old"],
            "marketing_consent": pd.array([False, True, True, True, pd.NA, True, True], dtype="boolean"),
            "value_tier": ["important", "important", "potential", None, "important", None, None],
            "churn_grade": ["A", "A", "C", None, "A", None, None],
            "lead_grade": ["A", "A", "A", "B", "A", "D", None],
            "recency_days": [1.0, 5.0, 3.0, 20.0, 1.0, 50.0, 400.0],
        }
    )


FIELDS = {
    "marketing_consent": FieldSpec("bool"),
    "value_tier": FieldSpec("text"),
    "churn_grade": FieldSpec("text"),
    "lead_grade": FieldSpec("text"),
    "recency_days": FieldSpec("number"),
}


def test_action_precedence_and_consent():
    cfg = ActionsConfig()
    got = assign_actions(_ctx(), cfg, FIELDS).set_index("customer_id")["action_id"].to_dict()
    assert got == {
        "no_consent_a": "service_only",  # consent first, even for an A-grade lead
        "vip_risk": "retention_call",  # important + churn risk before the A-grade lead rule
        "lead_a": "sales_call_24h",
        "lead_b": "batch_coupon",
        "unknown_consent": "service_only",  # unknown consent is no consent
        "quiet": "no_action",
        "old": "win_back",
    }
    acts = assign_actions(_ctx(), cfg, FIELDS)
    assert not acts.loc[acts["action_id"] == "service_only", "marketing"].any()
    assert acts.loc[acts["customer_id"] == "lead_a", "reason"].iloc[0].startswith("A-grade lead")
    counts = action_counts(acts, cfg).set_index("action_id")["customers"]
    assert counts["service_only"] == 2 and counts.sum() == len(acts)


def test_action_rule_errors_name_the_rule_and_position():
    bad = ActionsConfig(rules=[{"name": "vip", "action": "call", "reason": "r", "rule": "value_tier == important and"}])
    with pytest.raises(RuleError, match=r"action 'vip': rule error at character 28"):
        assign_actions(_ctx(), bad, FIELDS)
    unknown = ActionsConfig(rules=[{"name": "x", "action": "a", "reason": "r", "rule": "lead_score > 3"}])
    with pytest.raises(RuleError, match=r"action 'x'.*unknown field 'lead_score'"):
        assign_actions(_ctx(), unknown, FIELDS)
    with pytest.raises(ValidationError, match="appears twice"):
        ActionsConfig(rules=[{"name": "x", "action": "a", "reason": "r", "rule": "lead_grade == A"}] * 2)


# ------------------------------------------------------------------------------------------ bad input


def test_bad_input_errors_name_the_field(tmp_path: Path):
    with pytest.raises(ValidationError, match="min_support"):
        CrossSellConfig(rules={"min_support": 2})
    with pytest.raises(ValidationError, match="alpha"):
        CrossSellConfig(model={"alpha": [1.5]})
    with pytest.raises(ValidationError, match="extra"):
        CrossSellConfig(horizon=90)
    pd.DataFrame({"order_id": ["o1"], "customer_id": ["c"], "ts": [T0], "status": ["paid"]}).to_parquet(
        tmp_path / "orders.parquet"
    )
    with pytest.raises(CrossSellDataError, match="order_items"):
        load_lines(tmp_path)
    pd.DataFrame({"order_id": ["o1"], "line": [1]}).to_parquet(tmp_path / "order_items.parquet")
    with pytest.raises(CrossSellDataError, match="'sku'"):
        load_lines(tmp_path)
    pd.DataFrame({"order_id": ["o1"], "line": [1], "sku": ["A"], "quantity": [2.0]}).to_parquet(
        tmp_path / "order_items.parquet"
    )
    got = load_lines(tmp_path)
    assert list(got.columns) == ["customer_id", "basket", "ts", "sku", "product_name"] and len(got) == 1


def test_recommend_cli_names_the_missing_field(tmp_path: Path):
    from typer.testing import CliRunner

    from serving.cli.main import app

    bad = tmp_path / "c.csv"
    bad.write_text("id,name\n1,张三\n", encoding="utf-8")
    r = CliRunner().invoke(
        app, ["recommend", "--input", str(bad), "--output", str(tmp_path / "r.csv"), "--data", str(tmp_path)]
    )
    assert r.exit_code == 2
    assert "no customer_id column" in r.output and "张三" not in r.output and "name" not in r.output.split("(")[-1]


def test_order_items_ingest_keeps_the_row_invariant(tmp_path: Path):
    from features.ingest import ingest

    src = tmp_path / "order_items.csv"
    src.write_text(
        "order_id,line,sku,product_name,quantity,unit_price\n"
        "o1,1,A,奶粉,2,10\n"
        "o1,2,B,纸尿裤,1,-5\n"  # negative price: rejected
        "o2,1,,x,1,1\n"  # blank sku: rejected
        "o2,2,C,y,1,1\n"
        "o2,2,C,y,3,1\n",  # same key: a duplicate (the later line kept)
        encoding="utf-8",
    )
    s = ingest(src, tmp_path / "out")
    t = s.tables["order_items"]
    assert (t.read, t.accepted, t.rejected, t.duplicates) == (5, 2, 2, 1)
    assert t.read == t.accepted + t.rejected + t.duplicates
    assert t.reasons == {"unit_price is below the minimum 0": 1, "sku is blank": 1}
    assert "order_items" not in s.absent_tables
    items = pd.read_parquet(tmp_path / "out" / "order_items.parquet")
    assert items.loc[items["order_id"] == "o2", "quantity"].tolist() == [3.0]
    # a directory without order lines does not list the optional table as absent
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "orders.csv").write_text("order_id,customer_id,ts,amount,status\no1,c1,2025-01-01,5,paid\n")
    s2 = ingest(tmp_path / "d", tmp_path / "out2")
    assert "order_items" not in s2.absent_tables and set(s2.tables) == {"orders"}
    assert np.isfinite(s2.tables["orders"].accepted)


def _category_dir(tmp_path: Path) -> Path:
    """Two customers' paid orders whose lines are two products of 奶粉 and one of 纸尿裤 (and one without a
    category, and a postage line)."""
    d = tmp_path / "cat"
    d.mkdir()
    pd.DataFrame({"order_id": ["o1", "o2"], "customer_id": ["c1", "c2"], "ts": [T0, T0 + pd.Timedelta(days=1)],
                  "status": ["paid", "paid"]}).to_parquet(d / "orders.parquet")
    pd.DataFrame({
        "order_id": ["o1", "o1", "o2", "o2", "o2"], "line": [1, 2, 1, 2, 3],
        "sku": ["M01", "M02", "D01", "X", "POST"], "product_name": ["a", "b", "c", "d", "postage"],
        "category": ["奶粉", "奶粉", "纸尿裤", None, "运费"], "quantity": [1.0, 1.0, 2.0, 1.0, 1.0],
    }).to_parquet(d / "order_items.parquet")
    return d


def test_category_items_replace_products_and_name_the_missing_field(tmp_path: Path):
    d = _category_dir(tmp_path)
    products = load_lines(d, ["POST"])
    assert sorted(products["sku"]) == ["D01", "M01", "M02", "X"]
    cats = load_lines(d, ["POST"], "category")  # exclusions still by product; a line without a category is left out
    assert cats["sku"].tolist() == ["奶粉", "奶粉", "纸尿裤"] and cats["product_name"].tolist() == cats["sku"].tolist()
    assert cats["basket"].tolist() == ["o1", "o1", "o2"]
    assert CrossSellConfig().item == "sku" and CrossSellConfig(item="category").item == "category"
    with pytest.raises(ValidationError, match="item"):
        CrossSellConfig(item="brand")
    pd.read_parquet(d / "order_items.parquet").drop(columns=["category"]).to_parquet(d / "order_items.parquet")
    with pytest.raises(CrossSellDataError, match="'category' is missing"):
        load_lines(d, item="category")


def test_a_category_model_recommends_categories_and_keeps_its_item_when_saved(tmp_path: Path):
    from training.cross_sell import read_model, save_model

    lines = _timeline()
    cat = {"A": "奶粉", "B": "纸尿裤", "C": "玩具", "D": "奶粉", "E": "湿巾"}
    lines = lines.assign(sku=lines["sku"].map(cat).fillna(lines["sku"]))
    lines["product_name"] = lines["sku"]
    t = T0 + pd.Timedelta(days=60)
    train, _ = split_at(lines, t, 90)
    model = ItemItemModel.fit(train, t, 0.5, 180.0, "customer", 10)
    model.item = "category"
    recs = recommend(model, train, pd.Index(pd.unique(train["customer_id"])), t, k=3, exclude_recent_days=0)
    assert len(recs) and set(recs["sku"]) <= set(cat.values())
    back = read_model(save_model(model, tmp_path / "m"))
    assert back.item == "category"
    (tmp_path / "m" / "params.json").write_text(
        (tmp_path / "m" / "params.json").read_text(encoding="utf-8").replace('"item": "category",', ""),
        encoding="utf-8",
    )
    assert read_model(tmp_path / "m").item == "sku"  # a model saved before the choice recommends products
