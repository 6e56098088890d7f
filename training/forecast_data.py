"""Orders tables from the two public data sets the forecast is backtested on (read from ``../shared/data``).

Both give the contract's ``orders`` columns the forecast reads (``order_id``, ``customer_id``, ``ts``,
``amount``, ``status``) plus, for Superstore, the customers' ``segment``, ``province`` (state) and
``city``. Nothing here is used by the commands on a CRM data dir; the benchmark and the real-data tests use it.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from features.messages import M_


def online_retail_orders(path: str | Path) -> pd.DataFrame:
    """UCI Online Retail invoice lines as orders, as ``configs/mapping.online_retail.yaml`` ingests them.

    One row per invoice line with a CustomerID (lines without one are dropped, as ingestion rejects them);
    ``amount`` = |Quantity × UnitPrice|, ``status`` = refunded for invoices starting with "C", else paid.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(M_("Online Retail file not found: {p}", p=p))
    raw = pd.read_parquet(p, columns=["InvoiceNo", "Quantity", "InvoiceDate", "UnitPrice", "CustomerID"])
    raw = raw.loc[raw["CustomerID"].notna()]
    inv = raw["InvoiceNo"].astype(str)
    return pd.DataFrame(
        {
            "order_id": inv + "-" + (raw.groupby(inv).cumcount() + 1).astype(str),
            "customer_id": raw["CustomerID"].astype("int64").astype(str),
            "ts": pd.to_datetime(raw["InvoiceDate"]).astype("datetime64[ns]"),
            "amount": (raw["Quantity"] * raw["UnitPrice"]).abs().astype("float64"),
            "status": inv.str.startswith("C").map({True: "refunded", False: "paid"}),
        }
    ).reset_index(drop=True)


def superstore_orders(path: str | Path) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Tableau Superstore order lines as (orders, customers).

    One order row per order line (all "paid"; Superstore has no returns), ``ts`` = Order Date (day-first
    ``DD/MM/YY``), ``amount`` = Sales. Customers: ``customer_id``, ``segment``, ``province`` (State/Province)
    and ``city`` of the customer's first order. Customer names are not read.
    """
    p = Path(path)
    if not p.is_file():
        raise FileNotFoundError(M_("Superstore file not found: {p}", p=p))
    cols = ["Order ID", "Order Date", "Customer ID", "Segment", "City", "State/Province", "Sales"]
    raw = pd.read_csv(p, encoding="utf-8-sig", usecols=cols)
    ts = pd.to_datetime(raw["Order Date"], format="%d/%m/%y")
    if ts.isna().any():
        raise ValueError(M_("{p}: {value} Order Date value(s) are not DD/MM/YY", p=p, value=int(ts.isna().sum())))
    orders = pd.DataFrame(
        {
            "order_id": raw["Order ID"].astype(str) + "-" + (raw.groupby("Order ID").cumcount() + 1).astype(str),
            "customer_id": raw["Customer ID"].astype(str),
            "ts": ts.astype("datetime64[ns]"),
            "amount": raw["Sales"].astype("float64"),
            "status": "paid",
        }
    )
    first = raw.assign(ts=ts).sort_values("ts").drop_duplicates("Customer ID")
    customers = pd.DataFrame(
        {
            "customer_id": first["Customer ID"].astype(str),
            "created_at": first["ts"].astype("datetime64[ns]"),
            "segment": first["Segment"].astype(str),
            "province": first["State/Province"].astype(str),
            "city": first["City"].astype(str),
        }
    ).reset_index(drop=True)
    return orders, customers
