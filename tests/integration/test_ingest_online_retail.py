"""Real data: the UCI Online Retail invoice lines ingested as the orders table with its mapping."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import PANDAS_DTYPES, get_table
from features.ingest import IngestSummary
from tests.conftest import shared_file

REL = "online_retail/online_retail_2010-2011.parquet"
COLUMNS = ["InvoiceNo", "StockCode", "Description", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID", "Country"]

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def retail(
    online_retail_ingested: tuple[Path, IngestSummary], shared_data: Path
) -> tuple[pd.DataFrame, IngestSummary, Path]:
    """The source lines, and the session's ingest of them (``online_retail_ingested``)."""
    out, summary = online_retail_ingested
    return pd.read_parquet(shared_file(shared_data, REL)), summary, out


def test_source_columns_are_as_documented(retail):
    raw, _, _ = retail
    assert list(raw.columns) == COLUMNS
    assert len(raw) == 541_909
    assert raw["CustomerID"].isna().sum() == 135_080


def test_counts_add_up_and_lines_without_customer_are_rejected(retail):
    raw, summary, out = retail
    t = summary.tables["orders"]
    assert t.read == len(raw) == 541_909
    assert t.read == t.accepted + t.rejected + t.duplicates
    assert t.rejected >= 135_080
    assert t.reasons["customer_id is blank"] == 135_080
    assert t.accepted == int(raw["CustomerID"].notna().sum())
    assert t.ignored_columns == ["StockCode", "Description", "Country"]
    assert t.orphans is None  # no customers table was ingested
    rejects = pd.read_csv(out / "rejects" / "orders.csv", encoding="utf-8-sig", dtype={"row": "int64"})
    assert len(rejects) == t.rejected
    # Parquet has no header row: record i (0-based) is row i + 1
    first_blank = int(np.flatnonzero(raw["CustomerID"].isna().to_numpy())[0])
    assert rejects["row"].iloc[0] == first_blank + 1
    assert set(rejects["reason"]) == {"customer_id is blank"}


def test_values_match_pandas(retail):
    raw, _, out = retail
    orders = pd.read_parquet(out / "orders.parquet")
    spec = get_table("orders")
    assert list(orders.columns) == spec.column_names
    assert {c.name: str(orders[c.name].dtype) for c in spec.columns} == {
        c.name: PANDAS_DTYPES[c.dtype] for c in spec.columns
    }
    known = raw[raw["CustomerID"].notna()]
    refund = known["InvoiceNo"].str.startswith("C")
    line_amount = (known["Quantity"] * known["UnitPrice"]).abs()

    assert orders["order_id"].is_unique
    assert orders["order_id"].iloc[0] == f"{known['InvoiceNo'].iloc[0]}-1"
    assert (orders["status"] == "refunded").sum() == refund.sum()
    assert (orders["status"] == "paid").sum() == (~refund).sum()
    assert orders["amount"].min() >= 0 and orders["items"].min() >= 0
    paid = orders[orders["status"] == "paid"]["amount"].sum()
    assert paid == pytest.approx(line_amount[~refund].sum(), rel=1e-9)
    refunded = orders[orders["status"] == "refunded"]["amount"].sum()
    assert refunded == pytest.approx(line_amount[refund].sum(), rel=1e-9)
    assert orders["ts"].min() == known["InvoiceDate"].min() and orders["ts"].max() == known["InvoiceDate"].max()
    # CustomerID is a float in the file; ids come out without ".0"
    per_customer = orders["customer_id"].value_counts()
    expected = known["CustomerID"].astype("int64").astype(str).value_counts()
    assert {str(k): int(v) for k, v in per_customer.items()} == {k: int(v) for k, v in expected.items()}
    assert per_customer["17850"] == (raw["CustomerID"] == 17850).sum()
