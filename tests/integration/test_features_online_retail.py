"""Real data: UCI Online Retail transactions → orders → RFM features and churn labels, checked against pandas."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import build_features
from features.contract import coerce_types
from features.labels import build_labels
from tests.conftest import shared_file

T = pd.Timestamp("2011-09-01")


@pytest.fixture(scope="module")
def retail(shared_data):
    raw = pd.read_parquet(shared_file(shared_data, "online_retail/online_retail_2010-2011.parquet"))
    raw = raw[raw["CustomerID"].notna()].copy()
    raw["customer_id"] = raw["CustomerID"].astype(int).astype(str)
    raw["amount"] = (raw["Quantity"] * raw["UnitPrice"]).abs()
    raw["status"] = np.where(raw["InvoiceNo"].astype(str).str.startswith("C"), "refunded", "paid")
    raw["ts"] = pd.to_datetime(raw["InvoiceDate"])
    # one order per invoice, as a CRM would hold it
    orders = (
        raw.groupby(["InvoiceNo", "customer_id", "status"], as_index=False)
        .agg(ts=("ts", "min"), amount=("amount", "sum"), items=("Quantity", "size"))
        .rename(columns={"InvoiceNo": "order_id"})
    )
    first = orders.groupby("customer_id")["ts"].min().rename("created_at").reset_index()
    tables = {"customers": coerce_types(first, "customers"), "orders": coerce_types(orders, "orders")}
    return tables, orders


def test_rfm_features_match_pandas(retail):
    tables, orders = retail
    f = build_features(tables, T)
    paid = orders[(orders["status"] == "paid") & (orders["ts"] <= T)]
    g = paid.groupby("customer_id")
    expected_last = (T - g["ts"].max()).dt.total_seconds() / 86400
    in90 = paid[paid["ts"] > T - pd.Timedelta(days=90)].groupby("customer_id")
    refunds = orders[(orders["status"] == "refunded") & (orders["ts"] <= T)].groupby("customer_id").size()
    rng = np.random.default_rng(0)
    sample = rng.choice(g.size().index.to_numpy(), 25, replace=False)
    for cid in sample:
        row = f.loc[cid]
        assert row["orders_total"] == g.size()[cid]
        assert row["spend_total"] == pytest.approx(g["amount"].sum()[cid])
        assert row["days_since_last_order"] == pytest.approx(expected_last[cid])
        assert row["orders_90d"] == in90.size().get(cid, 0)
        assert row["spend_90d"] == pytest.approx(in90["amount"].sum().get(cid, 0.0))
        n_ref = refunds.get(cid, 0)
        assert row["refund_share"] == pytest.approx(n_ref / (g.size()[cid] + n_ref))
    assert len(f) == (tables["customers"]["created_at"] <= T).sum()


def test_churn_labels_match_pandas(retail):
    tables, orders = retail
    lab = build_labels(tables, T, horizon_days=90, lookback_days=180)
    paid = orders[orders["status"] == "paid"]
    active = set(paid[(paid["ts"] > T - pd.Timedelta(days=180)) & (paid["ts"] <= T)]["customer_id"])
    bought_after = set(paid[(paid["ts"] > T) & (paid["ts"] <= T + pd.Timedelta(days=90))]["customer_id"])
    assert set(lab.index[lab["is_active"].to_numpy()]) == active
    churned = set(lab.index[lab["churned"].to_numpy() == 1])
    assert churned == active - bought_after
    assert 0.2 < len(churned) / len(active) < 0.6  # a plausible churn rate for a gift wholesaler
