"""Small hand-made CRM tables for the member-level, tag and audience tests (no simulator: exact and fast)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd


def orders_frame(rows: list[tuple[str, str, float, str, str]]) -> pd.DataFrame:
    """Orders from (customer_id, ts, amount, status, category) tuples, typed like load_tables gives them."""
    df = pd.DataFrame(rows, columns=["customer_id", "ts", "amount", "status", "category"])
    df.insert(0, "order_id", [f"O{i:05d}" for i in range(len(df))])
    df["customer_id"] = df["customer_id"].astype("string")
    df["ts"] = pd.to_datetime(df["ts"], format="mixed").astype("datetime64[ns]")
    df["amount"] = df["amount"].astype("float64")
    df["status"] = df["status"].astype("string")
    df["category"] = df["category"].astype("string")
    return df


def customers_frame(ids: list[str], created: str = "2024-01-01", consent: list | None = None) -> pd.DataFrame:
    """Customers created at ``created`` with marketing consent (default: all true) and made-up PII."""
    n = len(ids)
    return pd.DataFrame(
        {
            "customer_id": pd.array(ids, dtype="string"),
            "created_at": pd.to_datetime([created] * n).astype("datetime64[ns]"),
            "province": pd.array(["广东省"] * n, dtype="string"),
            "age": pd.array([30] * n, dtype="Int64"),
            "marketing_consent": pd.array(consent if consent is not None else [True] * n, dtype="boolean"),
            "name": pd.array([f"客户{i}" for i in range(n)], dtype="string"),
            "phone": pd.array([f"1380000{i:04d}" for i in range(n)], dtype="string"),
        }
    )


def demo_tables(n_customers: int = 60, seed: int = 3) -> dict[str, pd.DataFrame]:
    """A few dozen customers with a spread of orders in 2024-07 .. 2025-06 (enough buyers for RFM and BG/NBD)."""
    rng = np.random.default_rng(seed)
    ids = [f"C{i:03d}" for i in range(n_customers)]
    cats = ["母婴用品", "美妆个护", "数码电器", "食品饮料", "运动户外"]
    rows = []
    start = pd.Timestamp("2024-07-01")
    for i, c in enumerate(ids):
        k = int(rng.integers(0, 12)) if i % 5 else 0  # every fifth customer never buys
        for _ in range(k):
            ts = start + pd.Timedelta(days=int(rng.integers(0, 365)), hours=int(rng.integers(0, 24)))
            status = "paid" if rng.random() < 0.9 else "refunded"
            rows.append((c, str(ts), float(rng.integers(20, 900)), status, cats[int(rng.integers(0, len(cats)))]))
    consent = [bool(i % 3) for i in range(n_customers)]  # every third customer said no
    consent[1] = None  # one unknown
    return {"customers": customers_frame(ids, "2024-06-01", consent), "orders": orders_frame(rows)}


def write_data_dir(tables: dict[str, pd.DataFrame], d: Path) -> Path:
    """Write the tables as <table>.parquet into ``d``."""
    d.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_parquet(d / f"{name}.parquet", index=False)
    return d
