"""Labels on hand-made histories and the multi-cutoff training set."""

import pandas as pd

from features.config import LabelConfig
from features.contract import coerce_types, empty_frame
from features.labels import build_labels, build_training_set, cutoffs_ending
from tests.fixtures.crm import make_tables

T = pd.Timestamp("2025-06-30")


def _orders(rows):
    df = pd.DataFrame(rows, columns=["order_id", "customer_id", "ts", "status"])
    df["amount"] = 10.0
    return coerce_types(df.reindex(columns=empty_frame("orders").columns), "orders")


def test_labels_on_hand_made_histories():
    d = pd.Timedelta
    customers = coerce_types(
        pd.DataFrame(
            {"customer_id": list("ABCDEF"), "created_at": [T - d(days=300)] * 5 + [T + d(days=1)]}
        ).reindex(columns=empty_frame("customers").columns),
        "customers",
    )
    orders = _orders(
        [
            ("1", "A", T + d(days=3), "paid"),  # lead, converts
            ("2", "B", T + d(days=31), "paid"),  # lead, converts only after the horizon
            ("3", "C", T - d(days=10), "paid"),  # active, buys again: no churn
            ("4", "C", T + d(days=29), "paid"),
            ("5", "D", T - d(days=10), "paid"),  # active, no order in horizon: churns
            ("6", "D", T + d(days=5), "refunded"),
            ("7", "E", T - d(days=200), "paid"),  # neither lead nor active (lapsed)
            ("8", "A", T, "cancelled"),
        ]
    )
    lab = build_labels({"customers": customers, "orders": orders}, T, horizon_days=30, lookback_days=180)
    assert "F" not in lab.index  # created after T
    assert lab.loc["A"].to_dict() == {"is_lead": True, "is_active": False, "converted": 1, "churned": 0}
    assert lab.loc["B", "is_lead"] and lab.loc["B", "converted"] == 0
    assert lab.loc["C", "is_active"] and lab.loc["C", "churned"] == 0
    assert lab.loc["D", "is_active"] and lab.loc["D", "churned"] == 1
    assert not lab.loc["E", "is_lead"] and not lab.loc["E", "is_active"]


def test_order_exactly_at_cutoff_counts_as_before():
    d = pd.Timedelta
    customers = coerce_types(
        pd.DataFrame({"customer_id": ["A"], "created_at": [T - d(days=5)]}).reindex(
            columns=empty_frame("customers").columns
        ),
        "customers",
    )
    lab = build_labels({"customers": customers, "orders": _orders([("1", "A", T, "paid")])}, T, 30, 180)
    assert not lab.loc["A", "is_lead"] and lab.loc["A", "is_active"] and lab.loc["A", "churned"] == 1


def test_training_set_spans_cutoffs_latest_last():
    tables = make_tables(80, seed=4)
    cfg = LabelConfig(n_cutoffs=3, cutoff_step_days=30)
    ts = build_training_set(tables, "churn", T - pd.Timedelta(days=60), labels=cfg)
    cuts = cutoffs_ending(T - pd.Timedelta(days=60), cfg)
    assert sorted(ts["cutoff"].unique()) == cuts
    assert set(ts["label"].unique()) <= {0, 1}
    assert "label" in ts.columns and "cutoff" in ts.columns
