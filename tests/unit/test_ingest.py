"""`ingest`: mapping, validation, duplicates, rejects, summary and the command line, on small generated files."""

from __future__ import annotations

import codecs
import io
import json
import logging
from pathlib import Path

import pandas as pd
import pytest
import typer
import yaml
from typer.testing import CliRunner

from features.contract import PANDAS_DTYPES, TABLES, get_table
from features.ingest import IngestError, IngestSummary, ingest, load_mapping, validate_table
from serving.cli.ingest import register

ROOT = Path(__file__).resolve().parents[2]

CUSTOMERS = """customer_id,created_at,gender,age,member_level,marketing_consent,name,phone
c1,2024-01-05,M,30,gold,yes,张三,13800000001
c2,2024-01-06,F,41,silver,no,李四,13800000002
c3,2024-01-07,U,25,none,是,王五,13800000003
"""
ORDERS = """order_id,customer_id,ts,amount,status,items
o1,c1,2024-03-05 10:00,120.5,paid,2
o2,c2,2024-03-06 11:00,80,refunded,1
o3,c3,2024-03-07 12:00,15,cancelled,1
"""
INTERACTIONS = """customer_id,ts,channel,event_type
c1,2024-03-01 09:00,web,visit
c2,2024-03-01 09:05,app,browse
"""
TOUCHES = """touch_id,customer_id,campaign_id,channel,sent_at,opened_at,clicked_at,coupon_claimed,responded
t1,c1,k1,sms,2024-03-01,2024-03-02,,no,yes
"""


def _write(directory: Path, files: dict[str, str | bytes], encoding: str = "utf-8") -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    for name, content in files.items():
        data = content if isinstance(content, bytes) else content.encode(encoding)
        (directory / name).write_bytes(data)
    return directory


def _rejects(out: Path, table: str) -> pd.DataFrame:
    return pd.read_csv(out / "rejects" / f"{table}.csv", encoding="utf-8-sig", dtype=str, keep_default_na=False)


def _ingest_orders(tmp_path: Path, orders: str | bytes, **kw) -> tuple[IngestSummary, Path]:
    src = _write(tmp_path / "src", {"orders.csv": orders})
    out = tmp_path / "out"
    return ingest(str(src), out, **kw), out


def _check_invariant(summary: IngestSummary) -> None:
    for name, t in summary.tables.items():
        assert t.read == t.accepted + t.rejected + t.duplicates, name


# ----------------------------------------------------------------------------- clean round trip


def test_clean_directory_writes_contract_tables_and_summary(tmp_path: Path):
    src = _write(tmp_path / "src", {"customers.csv": CUSTOMERS, "orders.csv": ORDERS,
                                    "interactions.csv": INTERACTIONS, "marketing_touches.csv": TOUCHES,
                                    "notes.csv": "a,b\n1,2\n"})
    out = tmp_path / "out"
    summary = ingest(str(src), out, tables=None)
    assert set(summary.tables) == set(TABLES)
    assert summary.ignored_files == ["notes.csv"]
    for name, spec in TABLES.items():
        df = pd.read_parquet(out / f"{name}.parquet")
        assert list(df.columns) == spec.column_names
        for c in spec.columns:
            assert str(df[c.name].dtype) == PANDAS_DTYPES[c.dtype], (name, c.name)
        t = summary.tables[name]
        assert (t.read, t.rejected, t.duplicates) == (len(df), 0, 0)
        assert t.encoding == "utf-8" and t.source.endswith(f"{name}.csv")
    assert summary.tables["customers"].orphans is None
    assert summary.tables["orders"].orphans == 0
    customers = pd.read_parquet(out / "customers.parquet")
    assert customers["marketing_consent"].tolist() == [True, False, True]
    assert customers["name"].tolist() == ["张三", "李四", "王五"]  # PII kept in the data dir
    on_disk = json.loads((out / "ingest_summary.json").read_text(encoding="utf-8"))
    assert set(on_disk["tables"]["orders"]) >= {
        "read", "accepted", "rejected", "duplicates", "orphans", "ignored_columns", "encoding", "source"
    }
    assert IngestSummary.model_validate(on_disk) == summary


# ----------------------------------------------------------------------------- bad input, one class per test


def test_missing_required_column_names_table_file_and_field(tmp_path: Path):
    orders = "order_id,ts,amount,status\no1,2024-03-05,1,paid\n"
    with pytest.raises(IngestError, match=r"orders: required field\(s\) customer_id not found in .*orders\.csv"):
        _ingest_orders(tmp_path, orders)


def test_blank_required_value_is_rejected_with_its_spreadsheet_row(tmp_path: Path):
    orders = ORDERS + "o4,   ,2024-03-08,5,paid,1\n"
    summary, out = _ingest_orders(tmp_path, orders)
    t = summary.tables["orders"]
    assert (t.read, t.accepted, t.rejected) == (4, 3, 1)
    rej = _rejects(out, "orders")
    # header is row 1, o1 is row 2, so o4 is row 5
    assert rej.to_dict("records") == [{"row": "5", "column": "customer_id", "value": "",
                                       "reason": "customer_id is blank"}]
    assert t.reasons == {"customer_id is blank": 1}


def test_malformed_date_is_rejected(tmp_path: Path):
    summary, out = _ingest_orders(tmp_path, ORDERS + "o4,c1,2024-02-30,5,paid,1\no5,c1,soon,5,paid,1\n")
    rej = _rejects(out, "orders")
    assert rej["row"].tolist() == ["5", "6"] and rej["value"].tolist() == ["2024-02-30", "soon"]
    assert set(rej["reason"]) == {"ts is not a valid date"}
    assert summary.tables["orders"].accepted == 3


def test_malformed_amount_is_rejected(tmp_path: Path):
    summary, out = _ingest_orders(tmp_path, ORDERS + "o4,c1,2024-03-08,12 dollars-ish,paid,1\n")
    rej = _rejects(out, "orders")
    assert rej[["column", "value", "reason"]].values.tolist() == [
        ["amount", "12 dollars-ish", "amount is not a valid number"]
    ]


def test_value_outside_closed_set_is_rejected_open_set_kept(tmp_path: Path):
    orders = ORDERS + "o4,c1,2024-03-08,5,shipped,1\no5,c1,2024-03-08,5,PAID,1\n"
    summary, out = _ingest_orders(tmp_path, orders)
    assert _rejects(out, "orders")["reason"].tolist() == ["status is not one of paid, refunded, cancelled"]
    df = pd.read_parquet(out / "orders.parquet")
    assert df.loc[df.order_id == "o5", "status"].item() == "paid"  # canonical case
    src = _write(tmp_path / "src2", {"interactions.csv": INTERACTIONS + "c3,2024-03-02,TikTok,visit\n"})
    s2 = ingest(str(src), tmp_path / "out2")
    assert s2.tables["interactions"].rejected == 0
    kept = pd.read_parquet(tmp_path / "out2" / "interactions.parquet")
    assert "TikTok" in kept["channel"].tolist()  # channel is an open set: unknown values are kept


def test_out_of_range_values_are_rejected(tmp_path: Path):
    customers = CUSTOMERS + (
        "c4,2024-01-08,M,5,gold,yes,x,1\nc5,2024-01-08,M,200,gold,yes,x,1\nc6,2024-01-08,M,33.5,,,x,1\n"
    )
    orders = ORDERS + "o4,c1,2024-03-08,-3,paid,1\n"
    src = _write(tmp_path / "src", {"customers.csv": customers, "orders.csv": orders})
    summary = ingest(str(src), tmp_path / "out")
    rej = _rejects(tmp_path / "out", "customers")
    assert rej["reason"].tolist() == ["age is below the minimum 14", "age is above the maximum 110",
                                      "age is not a whole number"]
    assert _rejects(tmp_path / "out", "orders")["reason"].tolist() == ["amount is below the minimum 0"]
    _check_invariant(summary)


def test_several_problems_in_one_row_are_one_reject_line(tmp_path: Path):
    summary, out = _ingest_orders(tmp_path, ORDERS + "o4,,nope,abc,paid,1\n")
    rej = _rejects(out, "orders")
    assert len(rej) == 1 and summary.tables["orders"].rejected == 1
    assert rej.loc[0, "column"] == "customer_id; ts; amount"
    assert rej.loc[0, "reason"] == "customer_id is blank; ts is not a valid date; amount is not a valid number"
    assert summary.tables["orders"].reasons == {
        "customer_id is blank": 1, "ts is not a valid date": 1, "amount is not a valid number": 1
    }


def test_row_with_too_many_fields_is_rejected(tmp_path: Path):
    summary, out = _ingest_orders(tmp_path, ORDERS + "o4,c1,2024-03-08,5,paid,1,extra\n")
    rej = _rejects(out, "orders")
    assert rej.to_dict("records") == [{"row": "5", "column": "(row)", "value": "",
                                       "reason": "row has 7 fields, the header has 6"}]
    _check_invariant(summary)


# ----------------------------------------------------------------------------- duplicates


def test_duplicates_keep_the_latest_by_updated_at_column(tmp_path: Path):
    customers = (
        "customer_id,created_at,age,更新时间\n"
        "c1,2024-01-01,30,2024-02-01\n"
        "c1,2024-01-01,31,2024-05-01\n"  # latest by 更新时间
        "c1,2024-01-01,32,2024-03-01\n"
        "c2,2024-01-01,40,\n"
    )
    src = _write(tmp_path / "src", {"customers.csv": customers})
    summary = ingest(str(src), tmp_path / "out")
    t = summary.tables["customers"]
    assert (t.read, t.accepted, t.duplicates) == (4, 2, 2)
    assert "更新时间" not in t.ignored_columns  # it was used to pick the latest row
    df = pd.read_parquet(tmp_path / "out" / "customers.parquet")
    assert df.set_index("customer_id")["age"].to_dict() == {"c1": 31, "c2": 40}


def test_duplicates_keep_the_latest_by_time_column_then_file_order(tmp_path: Path):
    orders = (
        "order_id,customer_id,ts,amount,status\n"
        "o1,c1,2024-03-05,10,paid\n"
        "o1,c1,2024-03-09,11,refunded\n"  # latest ts
        "o1,c1,2024-03-01,12,paid\n"
        "o2,c1,2024-03-05,20,paid\n"
        "o2,c1,2024-03-05,21,paid\n"  # same ts: the later row wins
    )
    summary, out = _ingest_orders(tmp_path, orders)
    assert summary.tables["orders"].duplicates == 3
    df = pd.read_parquet(out / "orders.parquet").set_index("order_id")
    assert df["amount"].to_dict() == {"o1": 11.0, "o2": 21.0}
    assert df.loc["o1", "status"] == "refunded"
    _check_invariant(summary)


def test_duplicate_of_a_rejected_row_is_not_double_counted(tmp_path: Path):
    orders = "order_id,customer_id,ts,amount,status\no1,c1,2024-03-05,10,paid\no1,c1,2024-03-06,bad,paid\n"
    summary, _ = _ingest_orders(tmp_path, orders)
    t = summary.tables["orders"]
    assert (t.read, t.accepted, t.rejected, t.duplicates) == (2, 1, 1, 0)


# ----------------------------------------------------------------------------- encodings, delimiters, formats


def _orders_frame(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "orders.parquet")


@pytest.mark.parametrize(
    ("name", "payload"),
    [
        ("gb18030", ORDERS.replace("o1", "订单1").encode("gb18030")),
        ("utf-8 BOM", codecs.BOM_UTF8 + ORDERS.replace("o1", "订单1").encode("utf-8")),
        ("semicolon", ORDERS.replace("o1", "订单1").replace(",", ";").encode("utf-8")),
        ("tab", ORDERS.replace("o1", "订单1").replace(",", "\t").encode("utf-8")),
    ],
)
def test_encodings_and_delimiters(tmp_path: Path, name: str, payload: bytes):
    src = _write(tmp_path / "src", {"orders.csv": payload})
    summary = ingest(str(src), tmp_path / "out")
    t = summary.tables["orders"]
    assert (t.read, t.accepted) == (3, 3), name
    df = _orders_frame(tmp_path / "out")
    assert df["order_id"].tolist() == ["订单1", "o2", "o3"]
    assert df["amount"].tolist() == [120.5, 80.0, 15.0]
    assert t.encoding == {"gb18030": "gb18030", "utf-8 BOM": "utf-8-sig"}.get(name, "utf-8")


def test_xlsx_file_with_excel_serials_and_chinese_dates(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4"],
            "customer_id": ["c1", "c1", "c2", "c2"],
            "ts": [pd.Timestamp("2024-03-05 14:30"), 45356, "2024年3月5日", "2024年3月5日 14:30"],
            "amount": [12.5, "¥1,234.00", "99元", 0],
            "status": ["paid"] * 4,
        }
    ).to_excel(src / "orders.xlsx", index=False)
    summary = ingest(str(src), tmp_path / "out")
    assert summary.tables["orders"].accepted == 4 and summary.tables["orders"].encoding is None
    df = _orders_frame(tmp_path / "out")
    assert df["ts"].tolist() == [pd.Timestamp("2024-03-05 14:30"), pd.Timestamp("2024-03-05"),
                                 pd.Timestamp("2024-03-05"), pd.Timestamp("2024-03-05 14:30")]
    assert df["amount"].tolist() == [12.5, 1234.0, 99.0, 0.0]


def test_day_first_flag_and_mapping_setting(tmp_path: Path):
    orders = "order_id,customer_id,ts,amount,status\no1,c1,05/03/2024,1,paid\n"
    _, out = _ingest_orders(tmp_path, orders)
    assert _orders_frame(out)["ts"].item() == pd.Timestamp("2024-05-03")
    _, out = _ingest_orders(tmp_path / "b", orders, day_first=True)
    assert _orders_frame(out)["ts"].item() == pd.Timestamp("2024-03-05")
    mapping = tmp_path / "m.yaml"
    mapping.write_text("day_first: true\n", encoding="utf-8")
    _, out = _ingest_orders(tmp_path / "c", orders, mapping=mapping)
    assert _orders_frame(out)["ts"].item() == pd.Timestamp("2024-03-05")


def _date_order(summary: IngestSummary, table: str, column: str) -> dict:
    (entry,) = [o for o in summary.tables[table].date_orders if o.column == column]
    return entry.model_dump()


def test_a_mixed_date_column_with_day_first_values_is_read_day_first(tmp_path: Path):
    # the export: ISO, slashes, Chinese, compact and one day-first value; the default is month first
    stamps = ["2024-03-05", "2024/3/5", "2024年3月5日", "20240305", "23/02/2024", "05/03/2024"]
    orders = "order_id,customer_id,ts,amount,status\n" + "".join(
        f"o{i},c1,{s},1,paid\n" for i, s in enumerate(stamps)
    )
    summary, out = _ingest_orders(tmp_path, orders)
    t = summary.tables["orders"]
    assert (t.read, t.accepted, t.rejected, t.duplicates) == (6, 6, 0, 0)
    assert _orders_frame(out)["ts"].tolist() == [pd.Timestamp(d) for d in (
        "2024-03-05", "2024-03-05", "2024-03-05", "2024-03-05", "2024-02-23", "2024-03-05")]
    order = _date_order(summary, "orders", "ts")
    assert (order["order"], order["basis"], order["day_first_only"], order["month_first_only"],
            order["ambiguous"]) == ("day_first", "inferred", 1, 0, 1)
    on_disk = json.loads((out / "ingest_summary.json").read_text(encoding="utf-8"))
    assert on_disk["tables"]["orders"]["date_orders"][0]["order"] == "day_first"
    assert "23/02/2024" in on_disk["tables"]["orders"]["date_orders"][0]["note"]


def test_a_month_first_column_is_read_month_first_whatever_the_default(tmp_path: Path):
    orders = "order_id,customer_id,ts,amount,status\no1,c1,02/23/2024,1,paid\no2,c1,03/05/2024 10:30,1,paid\n"
    summary, out = _ingest_orders(tmp_path, orders, day_first=True)
    assert summary.tables["orders"].accepted == 2
    assert _orders_frame(out)["ts"].tolist() == [pd.Timestamp("2024-02-23"), pd.Timestamp("2024-03-05 10:30")]
    order = _date_order(summary, "orders", "ts")
    assert (order["order"], order["basis"], order["month_first_only"], order["ambiguous"]) == (
        "month_first", "inferred", 1, 1)


@pytest.mark.parametrize(("day_first", "want", "order"), [(False, "2024-05-03", "month_first"),
                                                         (True, "2024-03-05", "day_first")])
def test_an_all_ambiguous_column_follows_the_default_and_says_so(tmp_path: Path, day_first, want, order):
    orders = "order_id,customer_id,ts,amount,status\no1,c1,05/03/2024,1,paid\no2,c1,2024-01-01,1,paid\n"
    summary, out = _ingest_orders(tmp_path, orders, day_first=day_first)
    assert _orders_frame(out)["ts"].iloc[0] == pd.Timestamp(want)
    entry = _date_order(summary, "orders", "ts")
    assert (entry["order"], entry["basis"], entry["ambiguous"], entry["day_first_only"],
            entry["month_first_only"]) == (order, "default", 1, 0, 0)
    assert "configured default" in entry["note"]


def test_conflicting_date_orders_use_the_default_and_reject_the_rest_with_the_reason(tmp_path: Path):
    orders = ("order_id,customer_id,ts,amount,status\n"
              "o1,c1,23/02/2024,1,paid\no2,c1,24/02/2024,1,paid\no3,c1,02/25/2024,1,paid\no4,c1,not a date,1,paid\n")
    summary, out = _ingest_orders(tmp_path, orders)  # default: month first
    t = summary.tables["orders"]
    _check_invariant(summary)
    assert (t.read, t.accepted, t.rejected) == (4, 1, 3)
    assert _orders_frame(out)["ts"].tolist() == [pd.Timestamp("2024-02-25")]
    entry = _date_order(summary, "orders", "ts")
    assert (entry["order"], entry["basis"], entry["day_first_only"], entry["month_first_only"]) == (
        "month_first", "conflict", 2, 1)
    assert "conflicting" in entry["note"] and "23/02/2024" in entry["note"] and "02/25/2024" in entry["note"]
    rej = _rejects(out, "orders").set_index("row")
    assert rej.loc["2", "reason"].startswith("ts is a day-first date in a column read month first")
    assert rej.loc["3", "value"] == "24/02/2024"
    assert rej.loc["5", "reason"] == "ts is not a valid date"


def test_each_date_column_and_the_updated_at_column_decide_on_their_own(tmp_path: Path):
    customers = ("customer_id,created_at,updated_at\n"
                 "c1,23/02/2024,02/23/2024 10:00\nc2,05/03/2024,03/05/2024 11:00\n")
    src = _write(tmp_path / "src", {"customers.csv": customers})
    summary = ingest(str(src), tmp_path / "out", tables=["customers"])
    df = pd.read_parquet(tmp_path / "out" / "customers.parquet")
    assert df["created_at"].tolist() == [pd.Timestamp("2024-02-23"), pd.Timestamp("2024-03-05")]
    assert _date_order(summary, "customers", "created_at")["order"] == "day_first"
    assert _date_order(summary, "customers", "updated_at")["order"] == "month_first"


def test_full_width_digits_currency_and_whitespace(tmp_path: Path):
    orders = (
        "order_id,customer_id,ts,amount,status,items\n"
        " ｏ１ , c1 ,２０２４年３月５日,￥１，２３４．５,　paid　,３\n"
    )
    _, out = _ingest_orders(tmp_path, orders)
    row = _orders_frame(out).iloc[0]
    assert (row.order_id, row.customer_id, row.ts, row.amount, row.status, row["items"]) == (
        "o1", "c1", pd.Timestamp("2024-03-05"), 1234.5, "paid", 3
    )


def test_blank_rows_are_skipped_and_counted_not_read(tmp_path: Path):
    # an empty line, a line of bare delimiters, and an empty last line
    summary, out = _ingest_orders(tmp_path, ORDERS.replace("o2,", "\n,,,,,\no2,") + "\n")
    t = summary.tables["orders"]
    assert (t.read, t.accepted, t.blank_rows) == (3, 3, 3)
    summary, out = _ingest_orders(tmp_path / "b", ORDERS.replace("o3,c3", "\n\no3,"))
    assert summary.tables["orders"].blank_rows == 2
    # blank rows still count for row numbers: o3 (blank customer_id) sits on spreadsheet row 6
    assert _rejects(out, "orders")["row"].tolist() == ["6"]


# ----------------------------------------------------------------------------- unusable input


def test_empty_file_is_an_error(tmp_path: Path):
    with pytest.raises(IngestError, match=r"orders\.csv: the file is empty"):
        _ingest_orders(tmp_path, "")


def test_header_only_file_has_no_usable_rows(tmp_path: Path):
    with pytest.raises(IngestError, match=r"orders\.csv: no usable rows for orders: the file has a header but no data"):
        _ingest_orders(tmp_path, "order_id,customer_id,ts,amount,status\n")


def test_missing_source_and_missing_requested_table(tmp_path: Path):
    with pytest.raises(IngestError, match=r"file not found: .*nothing_here"):
        ingest(str(tmp_path / "nothing_here"), tmp_path / "out")
    src = _write(tmp_path / "src", {"orders.csv": ORDERS})
    with pytest.raises(IngestError, match=r"file not found: no customers file in"):
        ingest(str(src), tmp_path / "out", tables=["customers"])
    mapping = tmp_path / "m.yaml"
    mapping.write_text("tables:\n  orders:\n    source: 订单.csv\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"file not found: .*订单\.csv \(the mapping's source for orders\)"):
        ingest(str(src), tmp_path / "out", mapping=mapping)


def test_unknown_table_is_named(tmp_path: Path):
    src = _write(tmp_path / "src", {"orders.csv": ORDERS})
    with pytest.raises(IngestError, match="unknown table 'leads'; the contract has customers"):
        ingest(str(src), tmp_path / "out", tables=["leads"])
    mapping = tmp_path / "m.yaml"
    mapping.write_text("tables:\n  leads:\n    columns: {a: b}\n", encoding="utf-8")
    with pytest.raises(IngestError, match="unknown table 'leads'"):
        ingest(str(src), tmp_path / "out", mapping=mapping)


def test_unreadable_encoding_is_an_error(tmp_path: Path):
    with pytest.raises(IngestError, match=r"orders\.csv: unreadable encoding"):
        _ingest_orders(tmp_path, bytes(range(256)) * 40)


def test_workbook_sheet_named_after_the_table_is_used(tmp_path: Path):
    book = tmp_path / "crm.xlsx"
    with pd.ExcelWriter(book) as w:
        pd.DataFrame({"readme": ["exported 2024-03"]}).to_excel(w, sheet_name="说明", index=False)
        pd.read_csv(io.StringIO(ORDERS)).to_excel(w, sheet_name="Orders", index=False)
    summary = ingest(str(book), tmp_path / "out", tables=["orders"])
    assert summary.tables["orders"].accepted == 3 and "[sheet Orders]" in summary.tables["orders"].source


def test_directory_without_contract_tables(tmp_path: Path):
    src = _write(tmp_path / "src", {"leads.csv": "a\n1\n"})
    with pytest.raises(IngestError, match="no contract tables found in"):
        ingest(str(src), tmp_path / "out")


def test_single_file_needs_a_table(tmp_path: Path):
    src = _write(tmp_path / "src", {"export.csv": ORDERS})
    with pytest.raises(IngestError, match="cannot tell which table export.csv holds"):
        ingest(str(src / "export.csv"), tmp_path / "out")
    summary = ingest(str(src / "export.csv"), tmp_path / "out", tables=["orders"])
    assert summary.tables["orders"].accepted == 3
    assert summary.absent_tables == []  # only orders was asked for


def test_all_rows_rejected_writes_rejects_but_no_tables(tmp_path: Path):
    src = _write(tmp_path / "src", {"orders.csv": "order_id,customer_id,ts,amount,status\no1,,x,1,paid\n",
                                    "customers.csv": CUSTOMERS})
    out = tmp_path / "out"
    with pytest.raises(IngestError, match=r"orders: no usable rows: all 1 rows were rejected"):
        ingest(str(src), out)
    assert len(_rejects(out, "orders")) == 1
    assert not (out / "orders.parquet").exists() and not (out / "customers.parquet").exists()
    assert json.loads((out / "ingest_summary.json").read_text(encoding="utf-8"))["tables"]["orders"]["accepted"] == 0


# ----------------------------------------------------------------------------- mapping


def test_mapping_renames_sets_constants_and_lists_ignored_columns(tmp_path: Path):
    export = (
        "订单号,客户编号,下单时间,实付金额,备注,订单状态\n"
        "A1,c1,2024/3/5,￥10,hello,已支付\n"
        "A2,c2,2024/3/6,￥20,,已退款\n"
    )
    src = _write(tmp_path / "src", {"订单.csv": export.encode("gbk")})
    mapping = tmp_path / "m.yaml"
    mapping.write_text(yaml.safe_dump({"tables": {"orders": {
        "source": "订单.csv",
        "columns": {"订单号": "order_id", "客户编号": "customer_id", "下单时间": "ts", "实付金额": "amount"},
        "constants": {"category": "gift"},
        "derive": {"status": {"map_values": {
            "column": "订单状态", "values": {"已支付": "paid", "已退款": "refunded"}
        }}},
    }}}, allow_unicode=True), encoding="utf-8")
    summary = ingest(str(src), tmp_path / "out", mapping=mapping)
    t = summary.tables["orders"]
    assert t.ignored_columns == ["备注"] and t.encoding == "gb18030"
    df = _orders_frame(tmp_path / "out")
    assert df[["order_id", "amount", "status", "category"]].values.tolist() == [
        ["A1", 10.0, "paid", "gift"], ["A2", 20.0, "refunded", "gift"]
    ]


def test_mapping_column_absent_from_file_is_named(tmp_path: Path):
    mapping = tmp_path / "m.yaml"
    mapping.write_text("tables:\n  orders:\n    columns: {Qty: items}\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"orders: the mapping names column 'Qty' \(for items\), which is not in"):
        _ingest_orders(tmp_path, ORDERS, mapping=mapping)
    mapping.write_text("tables:\n  orders:\n    derive: {items: {abs: Qty}}\n", encoding="utf-8")
    with pytest.raises(IngestError, match=r"orders: the mapping's derive names column 'Qty', which is not in .*orders"):
        _ingest_orders(tmp_path / "b", ORDERS, mapping=mapping)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("derive: {amount: {eval: 'Quantity*2'}}", "unknown operation 'eval'"),
        ("derive: {amount: {multiply: [Quantity]}}", "two or more operands"),
        ("columns: {x: colour}", "'colour' is not a field of orders"),
        ("columns: {x: amount}\n    constants: {amount: 1}", "field 'amount' is given twice"),
        ("table: a\n    query: select 1", "either table or query"),
        ("colums: {x: amount}", "colums"),
    ],
)
def test_invalid_mapping_is_a_clear_error(tmp_path: Path, body: str, message: str):
    mapping = tmp_path / "m.yaml"
    mapping.write_text(f"tables:\n  orders:\n    {body}\n", encoding="utf-8")
    with pytest.raises(IngestError, match=rf"m\.yaml: .*{message}"):
        load_mapping(mapping)


def test_derive_operations(tmp_path: Path):
    lines = (
        "InvoiceNo,Quantity,UnitPrice,CustomerID,InvoiceDate\n"
        "536365,6,2.55,17850,2010-12-01 08:26\n"
        "536365,2,1.00,17850,2010-12-01 08:26\n"
        "C536379,-1,27.50,14527,2010-12-01 09:41\n"
        "536366,x,1.00,17850,2010-12-01 08:28\n"
    )
    summary, out = _ingest_orders(tmp_path, lines, mapping=ROOT / "configs" / "mapping.online_retail.yaml")
    df = _orders_frame(out)
    assert df[["order_id", "customer_id", "status", "amount", "items"]].values.tolist() == [
        ["536365-1", "17850", "paid", pytest.approx(15.3), 6],
        ["536365-2", "17850", "paid", 2.0, 2],
        ["C536379-1", "14527", "refunded", 27.5, 1],
    ]
    rej = _rejects(out, "orders")
    assert rej["row"].tolist() == ["5"]
    assert "amount cannot be computed: Quantity is not a valid number" in rej.loc[0, "reason"]
    assert "amount is blank" not in rej.loc[0, "reason"]  # the computed field's own reason replaces it
    assert summary.tables["orders"].ignored_columns == []


# ----------------------------------------------------------------------------- invariant, orphans, PII


def test_invariant_holds_on_messy_tables_and_rejects_match(tmp_path: Path):
    customers = CUSTOMERS + (
        "c1,2024-01-09,M,30,gold,yes,dup,1\n"  # duplicate key
        ",2024-01-09,M,30,gold,yes,blank id,1\n"  # blank required
        "c9,yesterday,M,30,gold,yes,bad date,1\n"
        "c10,2024-01-09,M,9,gold,maybe,two problems,1\n"
    )
    orders = ORDERS + "o1,c1,2024-03-09,1,paid,1\no9,c404,2024-03-09,1,paid,1\no10,c1,2024-03-09,x,paid,1\n"
    interactions = INTERACTIONS + INTERACTIONS.splitlines()[1] + "\nc2,2024-03-01,web,nope\nc1,,web,visit\n"
    src = _write(tmp_path / "src", {"customers.csv": customers, "orders.csv": orders,
                                    "interactions.csv": interactions})
    out = tmp_path / "out"
    summary = ingest(str(src), out)
    _check_invariant(summary)
    for name, t in summary.tables.items():
        assert len(_rejects(out, name)) == t.rejected
        assert len(pd.read_parquet(out / f"{name}.parquet")) == t.accepted
    c, o, i = (summary.tables[n] for n in ("customers", "orders", "interactions"))
    assert (c.read, c.accepted, c.rejected, c.duplicates) == (7, 3, 3, 1)
    assert (o.read, o.accepted, o.rejected, o.duplicates) == (6, 4, 1, 1)
    assert (i.read, i.accepted, i.rejected, i.duplicates) == (5, 3, 1, 1)  # event_type is an open set
    assert o.orphans == 1 and i.orphans == 0


def test_orphans_use_existing_customers_table_or_are_unknown(tmp_path: Path):
    out = tmp_path / "out"
    s1 = ingest(str(_write(tmp_path / "a", {"orders.csv": ORDERS})), out)
    assert s1.tables["orders"].orphans is None  # no customers anywhere
    ingest(str(_write(tmp_path / "b", {"customers.csv": CUSTOMERS.replace("c3,", "cX,")})), out)
    s2 = ingest(str(tmp_path / "a"), out)
    assert s2.tables["orders"].orphans == 1  # c3 is not in the customers already in the data dir


def test_pii_is_never_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture):
    src = _write(tmp_path / "src", {"customers.csv": CUSTOMERS + "c4,bad,M,30,gold,yes,赵六,13900000009\n"})
    with caplog.at_level(logging.DEBUG):
        ingest(str(src), tmp_path / "out")
    assert caplog.records  # counts are logged …
    for secret in ("张三", "赵六", "13800000001", "13900000009"):
        assert secret not in caplog.text  # … PII is not
    assert "赵六" not in _rejects(tmp_path / "out", "customers").to_string()


# ----------------------------------------------------------------------------- public helpers and CLI


def test_validate_table_api():
    df = pd.DataFrame({"order_id": ["a", "b", "c"], "customer_id": ["c1", "", "c1"],
                       "ts": ["2024-03-05", "2024-03-05", "2024/3/5"], "amount": ["1", "2", "-1"],
                       "status": ["paid", "paid", "paid"]})
    accepted, rejects = validate_table(df, "orders", row_numbers=[10, 11, 12])
    assert accepted["order_id"].tolist() == ["a"]
    assert list(accepted.columns) == get_table("orders").column_names
    assert rejects[["row", "reason"]].values.tolist() == [[11, "customer_id is blank"],
                                                          [12, "amount is below the minimum 0"]]


def test_example_mapping_ingests_a_chinese_crm_export(tmp_path: Path):
    src = tmp_path / "src"
    src.mkdir()
    customers = pd.DataFrame({
        "客户编号": ["K001", "K002"], "创建时间": ["2024年1月5日", 45300], "性别": ["男", "女"], "年龄": [30, 41],
        "积分": ["1,200", "¥300"], "接受营销": ["是", "否"], "姓名": ["张三", "李四"], "手机": ["138", "139"],
        "来源": ["小程序", "抖音"], "最后修改时间": ["2024-02-01", "2024-02-02"], "备注": ["", ""],
        "省份": ["浙江", "广东"], "城市": ["杭州", "深圳"], "行业": ["零售", "教育"], "公司规模": ["11-50", "1000+"],
        "职位": ["店长", "老师"], "会员等级": ["Gold", "none"], "邮箱": ["a@x.cn", ""], "地址": ["", ""],
    })
    with pd.ExcelWriter(src / "客户列表.xlsx") as w:
        customers.to_excel(w, sheet_name="客户", index=False)
    orders = (
        "订单号,客户编号,下单时间,实付金额,商品件数,品类,订单状态\n"
        'D1,K001,2024/3/5 14:30,"￥1,234.50",2,家居,已支付\n'
        "D2,K003,2024/3/6,99元,1,,已取消\n"
    )
    (src / "订单.csv").write_bytes(orders.encode("gbk"))
    summary = ingest(str(src), tmp_path / "out", mapping=ROOT / "configs" / "mapping.example.yaml")
    _check_invariant(summary)
    c, o = summary.tables["customers"], summary.tables["orders"]
    assert (c.accepted, o.accepted, o.orphans) == (2, 2, 1)
    assert c.ignored_columns == ["备注"]
    assert summary.absent_tables == ["interactions", "marketing_touches"]
    df = pd.read_parquet(tmp_path / "out" / "customers.parquet")
    assert df[["gender", "source_channel", "points_balance", "marketing_consent", "member_level"]].values.tolist() == [
        ["M", "wechat", 1200.0, True, "gold"], ["F", "抖音", 300.0, False, "none"]
    ]
    assert df["created_at"].tolist() == [pd.Timestamp("2024-01-05"), pd.Timestamp("2024-01-09")]  # serial 45300
    assert pd.read_parquet(tmp_path / "out" / "orders.parquet")["status"].tolist() == ["paid", "cancelled"]


def _cli() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def _root() -> None:
        """Test root."""

    register(app)
    return app


def test_cli_prints_counts_and_fails_with_one_line(tmp_path: Path):
    src = _write(tmp_path / "src", {"orders.csv": ORDERS + "o4,,2024-03-08,1,paid,1\n"})
    runner = CliRunner()
    ok = runner.invoke(_cli(), ["ingest", "--source", str(src), "--out", str(tmp_path / "out")])
    assert ok.exit_code == 0, ok.output
    assert "orders: read 4, accepted 3, rejected 1, duplicates 0" in ok.output
    assert "customer_id is blank (1)" in ok.output
    bad = runner.invoke(_cli(), ["ingest", "--source", str(tmp_path / "missing.csv"), "--out", str(tmp_path / "o")])
    assert bad.exit_code == 2
    lines = [ln for ln in bad.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: file not found") and "Traceback" not in bad.output


def test_date_typed_cells_in_a_text_or_yes_no_field_are_read_as_text():
    """A date-typed column (Excel, Parquet) in a text field is kept as text; in a yes/no field it is rejected.

    Both used to raise AttributeError (no text was made for a date-typed column).
    """
    row = {"customer_id": "C1", "created_at": "2024-01-02", "age": "30", "points_balance": "1",
           "marketing_consent": "yes", "decision_maker": "no"}
    df = pd.DataFrame({c.name: [row.get(c.name, "x")] for c in get_table("customers").columns})
    df["name"] = pd.to_datetime(["2024-01-02"])
    accepted, rejects = validate_table(df, "customers")
    assert rejects.empty
    assert accepted["name"].tolist() == ["2024-01-02"]
    df["marketing_consent"] = pd.to_datetime(["2024-01-02"])
    accepted, rejects = validate_table(df, "customers")
    assert accepted.empty
    assert rejects["reason"].tolist() == ["marketing_consent is not a yes/no value"]
