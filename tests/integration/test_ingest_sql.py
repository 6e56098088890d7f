"""Ingest from a SQL database through SQLAlchemy: a SQLite round trip of the four contract tables."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from features.contract import TABLES, coerce_types
from features.ingest import IngestError, ingest


def _dt(values: list[str | None]) -> pd.Series:
    return pd.Series(pd.to_datetime(values, format="ISO8601"))


def _contract_frames() -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame({
        "customer_id": ["c1", "c2", "c3"],
        "created_at": _dt(["2024-01-05 09:00", "2024-01-06", "2024-02-01 18:30"]),
        "source_channel": ["web", "wechat", "referral"],
        "province": ["浙江", "广东", None],
        "city": ["杭州", "深圳", None],
        "industry": ["retail", None, "edu"],
        "company_size": ["11-50", "1000+", None],
        "job_title": [None, "CTO", "teacher"],
        "gender": ["M", "F", "U"],
        "age": pd.array([30, None, 55], dtype="Int64"),
        "member_level": ["gold", "none", "silver"],
        "points_balance": [120.5, 0.0, None],
        "marketing_consent": pd.array([True, False, None], dtype="boolean"),
        "name": ["张三", "李四", "王五"],
        "phone": ["13800000001", None, "13800000003"],
        "email": [None, "li@example.cn", None],
        "address": ["杭州市西湖区", None, None],
    })
    orders = pd.DataFrame({
        "order_id": ["o1", "o2", "o3", "o4"],
        "customer_id": ["c1", "c1", "c2", "c9"],  # c9 is an orphan
        "ts": _dt(["2024-03-05 10:00", "2024-03-06 11:30:15", "2024-03-07", "2024-03-08"]),
        "amount": [120.5, 80.0, 15.25, 9.9],
        "status": ["paid", "refunded", "cancelled", "paid"],
        "items": pd.array([2, 1, None, 1], dtype="Int64"),
        "category": ["home", None, "toys", "home"],
    })
    interactions = pd.DataFrame({
        "customer_id": ["c1", "c2", "c3"],
        "ts": _dt(["2024-03-01 09:00", "2024-03-01 09:05", "2024-03-02 20:00"]),
        "channel": ["web", "app", "wechat"],
        "event_type": ["visit", "browse", "consult"],
    })
    touches = pd.DataFrame({
        "touch_id": ["t1", "t2"],
        "customer_id": ["c1", "c3"],
        "campaign_id": ["k1", "k1"],
        "channel": ["sms", "email"],
        "sent_at": _dt(["2024-03-01 08:00", "2024-03-01 08:00"]),
        "opened_at": _dt(["2024-03-01 12:00", None]),
        "clicked_at": _dt([None, None]),
        "coupon_claimed": pd.array([True, None], dtype="boolean"),
        "responded": pd.array([False, True], dtype="boolean"),
    })
    return {"customers": customers, "orders": orders, "interactions": interactions, "marketing_touches": touches}


@pytest.fixture()
def crm_db(tmp_path: Path) -> tuple[str, dict[str, pd.DataFrame]]:
    frames = _contract_frames()
    db = tmp_path / "crm.db"
    with sqlite3.connect(db) as conn:
        for name, df in frames.items():
            df.to_sql(name, conn, index=False)
        # an extra table that is not part of the contract
        pd.DataFrame({"x": [1]}).to_sql("audit_log", conn, index=False)
    return f"sqlite:///{db}", frames


def test_sqlite_round_trip_of_all_contract_tables(tmp_path: Path, crm_db):
    url, frames = crm_db
    out = tmp_path / "out"
    summary = ingest(url, out)
    assert set(summary.tables) == set(TABLES) and summary.absent_tables == []
    for name, expected in frames.items():
        t = summary.tables[name]
        assert (t.read, t.accepted, t.rejected, t.duplicates) == (len(expected), len(expected), 0, 0), name
        assert t.source.endswith(f"table {name}") and t.encoding is None
        got = pd.read_parquet(out / f"{name}.parquet")
        want = coerce_types(expected.reindex(columns=TABLES[name].column_names), name)  # optional columns: empty
        pd.testing.assert_frame_equal(got, want, check_dtype=True)
    assert summary.tables["orders"].orphans == 1
    assert summary.tables["interactions"].orphans == 0


def test_sql_mapping_with_table_name_and_query(tmp_path: Path):
    db = tmp_path / "crm.db"
    with sqlite3.connect(db) as conn:
        pd.DataFrame({"cust": ["a", "b", ""], "created": ["2024/3/5", "2024年3月6日", "2024-03-07"]}).to_sql(
            "crm_customers", conn, index=False
        )
        pd.DataFrame({"no": ["1", "2"], "who": ["a", "b"], "at": ["2024-03-05", "2024-03-06"],
                      "money": ["¥1,200", "3元"], "state": ["PAID", "refunded"]}).to_sql("sales", conn, index=False)
    mapping = tmp_path / "m.yaml"
    mapping.write_text(
        "tables:\n"
        "  customers:\n"
        "    table: CRM_Customers\n"  # matched case-insensitively
        "    columns: {cust: customer_id, created: created_at}\n"
        "  orders:\n"
        "    query: SELECT 'S' || no AS order_id, who AS customer_id, at AS ts, money AS amount, state AS status"
        " FROM sales\n",
        encoding="utf-8",
    )
    summary = ingest(f"sqlite:///{db}", tmp_path / "out", mapping=mapping)
    c, o = summary.tables["customers"], summary.tables["orders"]
    assert (c.read, c.accepted, c.rejected) == (3, 2, 1)
    assert (o.accepted, o.orphans) == (2, 0)
    assert o.source.endswith("(query)")
    rejects = pd.read_csv(tmp_path / "out" / "rejects" / "customers.csv", encoding="utf-8-sig", dtype=str)
    # SQL rows have no header row: the third record is row 3
    assert rejects[["row", "reason"]].values.tolist() == [["3", "customer_id is blank"]]
    orders = pd.read_parquet(tmp_path / "out" / "orders.parquet")
    assert orders[["order_id", "amount", "status"]].values.tolist() == [["S1", 1200.0, "paid"], ["S2", 3.0, "refunded"]]
    assert sorted(summary.absent_tables) == ["interactions", "marketing_touches"]


def test_sql_errors_are_one_line(tmp_path: Path, crm_db):
    url, _ = crm_db
    with pytest.raises(IngestError, match=r"file not found: .*missing\.db"):
        ingest(f"sqlite:///{tmp_path / 'missing.db'}", tmp_path / "out")
    assert not (tmp_path / "missing.db").exists()  # SQLite was not allowed to create it
    mapping = tmp_path / "m.yaml"
    mapping.write_text("tables:\n  orders:\n    table: sales\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"table 'sales' not found in sqlite:///.*\(tables: .*audit_log"):
        ingest(url, tmp_path / "out", mapping=mapping)
    mapping.write_text("tables:\n  orders:\n    query: SELECT nope FROM orders\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"no such column: nope") as e:
        ingest(url, tmp_path / "out", mapping=mapping)
    assert "\n" not in str(e.value)
    empty = tmp_path / "empty.db"
    sqlite3.connect(empty).close()
    with pytest.raises(IngestError, match="no contract tables found"):
        ingest(f"sqlite:///{empty}", tmp_path / "out")
