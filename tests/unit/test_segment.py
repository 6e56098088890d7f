"""Segmentation pieces on small hand-made and generated data: summary, RFM bins and map, tiers, clusters."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from features.config import ConfigError, load_config
from features.contract import coerce_types, empty_frame
from tests.conftest import ROOT
from tests.fixtures.crm import make_tables
from training.segment import (
    BehaviourClusterer,
    CustomerSegmenter,
    CustomerSummariser,
    RFMScorer,
    SegmentConfig,
    ValueTierer,
    input_columns,
    output_columns,
    summarise_customers,
    validate_summary,
)


def _summary(rows: list[dict]) -> pd.DataFrame:
    """A summary frame with defaults for the engagement columns."""
    base = {
        "frequency": 0.0,
        "monetary": 0.0,
        "avg_repeat_value": 0.0,
        "interactions_90d": 0.0,
        "touches_90d": 0.0,
        "open_rate_90d": np.nan,
        "click_rate_90d": np.nan,
        "coupon_claims_90d": 0.0,
    }
    df = pd.DataFrame([base | r for r in rows])
    df["customer_id"] = [f"c{i}" for i in range(len(df))]
    return df[input_columns(90)]


@pytest.fixture(scope="module")
def population() -> pd.DataFrame:
    """400 buyers with spread-out values plus 20 customers who never bought."""
    rng = np.random.default_rng(0)
    n = 400
    freq = rng.poisson(2, n).astype(float)
    rec = rng.integers(0, 365, n).astype(float)
    buyers = [
        {
            "recency_days": rec[i],
            "tenure_days": rec[i] + 30 * (freq[i] > 0) + rng.integers(0, 200),
            "frequency": freq[i],
            "monetary": float(rng.lognormal(5, 1)),
            "avg_repeat_value": float(rng.lognormal(3, 0.5)) if freq[i] > 0 else 0.0,
            "interactions_90d": float(rng.poisson(5)),
            "touches_90d": 4.0,
            "open_rate_90d": float(rng.uniform()),
            "click_rate_90d": float(rng.uniform(0, 0.3)),
        }
        for i in range(n)
    ]
    leads = [{"recency_days": np.nan, "tenure_days": np.nan} for _ in range(20)]
    return _summary(buyers + leads)


# --- summary -------------------------------------------------------------------------------------------


def _tiny_tables() -> dict[str, pd.DataFrame]:
    t = pd.Timestamp
    customers = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c"],
            "created_at": [t("2024-01-01"), t("2024-01-05"), t("2024-05-01")],
            "name": ["Zhang San", "Li Si", "Wang Wu"],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4", "o5"],
            "customer_id": ["a", "a", "a", "a", "b"],
            "ts": [t("2024-01-10 09:00"), t("2024-01-10 20:00"), t("2024-02-20"), t("2024-03-15"), t("2024-02-01")],
            "amount": [10.0, 20.0, 50.0, 70.0, 99.0],
            "status": ["paid", "paid", "paid", "paid", "refunded"],
        }
    )
    interactions = pd.DataFrame(
        {
            "customer_id": ["a", "a", "b", "b"],
            "ts": [t("2024-02-01"), t("2024-02-25"), t("2023-10-01"), t("2024-02-28")],
            "channel": ["web"] * 4,
            "event_type": ["visit", "coupon_claim", "visit", "visit"],
        }
    )
    touches = pd.DataFrame(
        {
            "touch_id": ["t1", "t2", "t3"],
            "customer_id": ["a", "a", "a"],
            "campaign_id": ["k"] * 3,
            "channel": ["sms"] * 3,
            "sent_at": [t("2024-02-01"), t("2024-02-20"), t("2024-02-27")],
            "opened_at": [t("2024-02-02"), t("2024-03-05"), pd.NaT],
            "clicked_at": [t("2024-02-02"), pd.NaT, pd.NaT],
            "coupon_claimed": [True, False, False],
            "responded": [True, False, False],
        }
    )
    return {
        "customers": coerce_types(customers, "customers"),
        "orders": coerce_types(orders, "orders"),
        "interactions": coerce_types(interactions, "interactions"),
        "marketing_touches": coerce_types(touches, "marketing_touches"),
    }


def test_summarise_customers_point_in_time() -> None:
    tables = _tiny_tables()
    s = summarise_customers(tables, "2024-02-29 12:00").set_index("customer_id")
    assert list(s.index) == ["a", "b"]  # c is created after the cutoff
    a = s.loc["a"]
    # paid purchase days up to T: 10 Jan (two orders) and 20 Feb; 15 Mar is after T
    assert a["frequency"] == 1 and a["monetary"] == 80.0 and a["avg_repeat_value"] == 50.0
    assert a["recency_days"] == 9 and a["tenure_days"] == 50
    assert a["interactions_90d"] == 2
    assert a["touches_90d"] == 3
    assert a["open_rate_90d"] == pytest.approx(1 / 3)  # t2 was opened after T: does not count
    assert a["click_rate_90d"] == pytest.approx(1 / 3)
    assert a["coupon_claims_90d"] == 2  # one coupon_claim event + one claimed touch
    b = s.loc["b"]
    assert np.isnan(b["recency_days"]) and b["frequency"] == 0 and b["monetary"] == 0  # refunded only
    assert b["interactions_90d"] == 1  # the October visit is outside the 90-day window
    assert np.isnan(b["open_rate_90d"])  # no touch: rate unknown, not 0
    assert "name" not in s.columns


def test_summary_ignores_rows_after_the_cutoff() -> None:
    tables = _tiny_tables()
    before = summarise_customers(tables, "2024-02-29")
    later = {k: v.copy() for k, v in tables.items()}
    extra = coerce_types(
        pd.DataFrame(
            {
                "order_id": ["o9"],
                "customer_id": ["a"],
                "ts": [pd.Timestamp("2024-03-01")],
                "amount": [1e6],
                "status": ["paid"],
            }
        ),
        "orders",
    )
    later["orders"] = pd.concat([later["orders"], extra], ignore_index=True)
    pd.testing.assert_frame_equal(summarise_customers(later, "2024-02-29"), before)


def test_summariser_transformer_and_missing_tables() -> None:
    tables = {"orders": _tiny_tables()["orders"]}
    out = CustomerSummariser(window_days=30).fit(tables).transform(tables)
    assert list(out.columns) == input_columns(30)
    assert out["customer_id"].tolist() == ["a"]  # default cutoff = last paid order, 15 Mar
    assert out.loc[0, "frequency"] == 2 and out.loc[0, "recency_days"] == 0
    with pytest.raises(ValueError, match="table orders: missing column.*status"):
        summarise_customers({"orders": tables["orders"].drop(columns="status")}, "2024-03-01")


def test_validate_summary_names_the_customer() -> None:
    df = _summary([{"recency_days": 5.0, "tenure_days": 50.0}, {"recency_days": 60.0, "tenure_days": 50.0}])
    with pytest.raises(ValueError, match="recency_days > tenure_days.*customer_id=c1"):
        validate_summary(df, 90)
    with pytest.raises(ValueError, match="missing column.*coupon_claims_90d"):
        validate_summary(df.drop(columns="coupon_claims_90d"), 90)


# --- RFM ----------------------------------------------------------------------------------------------


def test_rfm_bins_are_stable_across_batches(population) -> None:
    scorer = RFMScorer().fit(population)
    full = scorer.transform(population)
    # a different batch: a shuffled subset scores each customer exactly as the full population did
    batch = population.sample(57, random_state=3)
    np.testing.assert_array_equal(scorer.transform(batch).to_numpy(), full.loc[batch.index].to_numpy())
    # a new customer with the same values as an existing one gets the same scores
    twin = population.iloc[[5]].assign(customer_id="new")
    assert scorer.transform(twin).iloc[0].tolist() == full.iloc[5].tolist()
    # the learned cut points do not depend on the batch scored
    cuts = json.dumps(scorer.cuts_)
    scorer.transform(population.iloc[:10])
    assert json.dumps(scorer.cuts_) == cuts
    # roughly quintiles on the population it was fitted on
    buyers = full.loc[population["recency_days"].notna()]
    assert set(buyers["r_score"]) == {1, 2, 3, 4, 5}
    assert buyers["m_score"].value_counts(normalize=True).between(0.15, 0.25).all()


def test_rfm_ties_share_a_score_and_direction() -> None:
    rows = [{"recency_days": float(r), "tenure_days": 400.0, "frequency": 0.0, "monetary": 50.0} for r in range(100)]
    df = _summary(rows)
    s = RFMScorer().fit(df).score(df)
    assert s["f_score"].nunique() == 1 and s["m_score"].nunique() == 1  # all tied
    assert s["r_score"].iloc[0] == 5 and s["r_score"].iloc[-1] == 1  # recent = high R
    assert s["r_score"].is_monotonic_decreasing


@pytest.mark.parametrize(
    ("r", "f", "m", "segment"),
    [
        (5, 5, 5, "Champions"),
        (5, 4, 4, "Champions"),
        (1, 5, 5, "Cannot lose them"),
        (2, 5, 5, "Cannot lose them"),
        (1, 1, 1, "Lost"),
        (2, 1, 1, "Hibernating"),
        (1, 2, 2, "Hibernating"),
        (5, 1, 1, "New"),
        (4, 1, 1, "Promising"),
        (3, 3, 3, "Need attention"),
        (3, 1, 2, "About to sleep"),  # FM = round-half-up(1.5) = 2
        (4, 5, 4, "Loyal"),
        (3, 4, 5, "Loyal"),
        (5, 2, 3, "Potential loyalist"),
        (2, 3, 4, "At risk"),
        (0, 0, 0, "No purchase"),
    ],
)
def test_segment_map(r: int, f: int, m: int, segment: str) -> None:
    scores = pd.DataFrame({"r_score": [r], "f_score": [f], "m_score": [m]})
    assert RFMScorer().segment(scores)[0] == segment


def test_no_purchase_customers_get_zero_scores(population) -> None:
    out = RFMScorer().fit(population).transform(population)
    leads = out.loc[population["recency_days"].isna()]
    assert len(leads) == 20
    assert (leads[["r_score", "f_score", "m_score"]] == 0).all().all()
    assert (leads["rfm_segment"] == "No purchase").all()


# --- value tiers ----------------------------------------------------------------------------------------


def test_value_tiers_follow_ordered_rules() -> None:
    X = pd.DataFrame(
        {
            "r_score": [5, 1, 5, 2, 4, 0, 5],
            "f_score": [5, 5, 1, 1, 4, 0, 5],
            "m_score": [5, 5, 1, 1, 4, 0, 5],
            "rfm_segment": ["x"] * 7,
            "p_alive": [0.9, 0.2, 1.0, 0.9, 0.3, np.nan, np.nan],
        }
    )
    out = ValueTierer().fit().transform(X)
    assert out["value_tier"].tolist() == [
        "important",  # R5 F5 M5 alive
        "potential",  # big spender slipping away
        "potential",  # recent one-time buyer, alive
        "ordinary",
        "potential",  # M4 but P(alive) too low for important
        "ordinary",  # never bought
        "potential",  # unknown P(alive) fails the P(alive) condition
    ]
    assert out["value_tier_zh"].tolist()[:4] == ["重要客户", "潜在客户", "潜在客户", "普通客户"]
    custom = ValueTierer(rules=[{"tier": "important", "segments": ["x"]}]).fit().transform(X)
    assert (custom["value_tier"] == "important").all()
    with pytest.raises(ValueError, match="no entry in labels"):
        ValueTierer(rules=[{"tier": "vip"}]).fit()


# --- clusters -------------------------------------------------------------------------------------------


def test_clusterer_finds_planted_groups_and_describes_them() -> None:
    rng = np.random.default_rng(7)

    def group(n: int, rec: float, freq: float, mon: float, coupons: float) -> list[dict]:
        return [
            {
                "recency_days": float(rng.normal(rec, rec * 0.1)),
                "tenure_days": 800.0,
                "frequency": float(max(rng.normal(freq, freq * 0.1), 0)),
                "monetary": float(rng.normal(mon, mon * 0.1)),
                "interactions_90d": float(rng.poisson(5)),
                "open_rate_90d": 0.5,
                "click_rate_90d": 0.1,
                "coupon_claims_90d": float(rng.poisson(coupons)),
            }
            for _ in range(n)
        ]

    df = _summary(
        group(300, 200, 1, 50, 0.05)  # lapsed, rare, low spend
        + group(200, 10, 20, 5000, 0.05)  # recent, frequent, high spend
        + group(100, 60, 3, 400, 8)  # coupon hunters
    )
    cl = BehaviourClusterer(k_min=2, k_max=5, silhouette_sample=500).fit(df)
    assert cl.k_ == 3
    assert cl.sizes_ == [300, 200, 100]  # numbered by size
    out = cl.transform(df)
    assert out["cluster"].tolist() == [0] * 300 + [1] * 200 + [2] * 100
    assert "high spend" in cl.descriptions_[1] and "frequent" in cl.descriptions_[1]
    assert "lapsed" in cl.descriptions_[0] or "rare" in cl.descriptions_[0]
    assert "coupon-driven" in cl.descriptions_[2]
    assert set(cl.silhouette_by_k_) == {2, 3, 4, 5} and cl.silhouette_ == max(cl.silhouette_by_k_.values())


def test_clusterer_handles_missing_and_constant_features(population) -> None:
    df = population.copy()
    df["open_rate_90d"] = np.nan  # nobody was messaged
    df["click_rate_90d"] = np.nan
    df["coupon_claims_90d"] = 0.0
    cl = BehaviourClusterer(k_min=2, k_max=3, silhouette_sample=200).fit(df)
    out = cl.transform(df)
    assert out["cluster"].notna().all() and np.isfinite(cl.scale_).all()
    assert not any("coupon" in d or "messages" in d for d in cl.descriptions_)


# --- the whole segmenter --------------------------------------------------------------------------------


def test_segmenter_end_to_end_and_json_round_trip(tmp_path) -> None:
    tables = make_tables(n=250, seed=3)
    seg = CustomerSegmenter(SegmentConfig(horizon_days=60)).fit_tables(tables, "2025-06-30")
    X = summarise_customers(tables, "2025-06-30")
    out = seg.predict(X)
    assert list(out.columns) == output_columns(60)
    assert len(out) == len(X) and out["customer_id"].tolist() == X["customer_id"].tolist()
    buyer = X["recency_days"].notna().to_numpy()
    assert out.loc[buyer, ["expected_purchases_60d", "p_alive", "expected_value_60d"]].notna().all().all()
    assert out.loc[~buyer, ["expected_purchases_60d", "p_alive", "expected_value_60d"]].isna().all().all()
    assert out["p_alive"].dropna().between(0, 1).all()
    assert set(out["value_tier"]) <= {"important", "potential", "ordinary"}
    assert seg.as_of_ == "2025-06-30 00:00:00"

    path = seg.save_json(tmp_path / "seg.json")
    assert "张三" not in path.read_text(encoding="utf-8") and "C0001" not in path.read_text(encoding="utf-8")
    back = CustomerSegmenter.load_json(path)
    pd.testing.assert_frame_equal(back.predict(X), out)
    # a single customer scored alone gets the same row as in the batch
    pd.testing.assert_frame_equal(
        back.predict(X.iloc[[7]]).reset_index(drop=True), out.iloc[[7]].reset_index(drop=True)
    )


def test_estimators_follow_the_sklearn_contract() -> None:
    for est in (RFMScorer(), ValueTierer(), BehaviourClusterer(k_max=4), CustomerSegmenter(SegmentConfig())):
        c = clone(est)
        assert c.get_params().keys() == est.get_params().keys()
    assert list(CustomerSegmenter().get_feature_names_out()) == output_columns(90)


def test_shipped_yaml_equals_embedded_defaults(tmp_path) -> None:
    assert load_config(ROOT / "configs" / "segment.yaml", SegmentConfig) == SegmentConfig()
    bad = tmp_path / "bad.yaml"
    bad.write_text("rfm:\n  grid:\n    5: [a, b]\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="rfm.grid"):
        load_config(bad, SegmentConfig)


def test_empty_engagement_tables_are_fine() -> None:
    tables = _tiny_tables()
    tables["interactions"] = empty_frame("interactions")
    tables["marketing_touches"] = empty_frame("marketing_touches")
    s = summarise_customers(tables, "2024-03-31")
    assert (s["interactions_90d"] == 0).all() and s["open_rate_90d"].isna().all()
