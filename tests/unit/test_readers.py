"""Readers and value parsers: encodings, delimiters, dates, amounts, booleans, text."""

from __future__ import annotations

import codecs
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.readers import (
    IngestError,
    detect_encoding,
    is_sql_url,
    mask_url,
    normalize_text,
    parse_amounts,
    parse_bools,
    parse_dates,
    parse_dates_inferred,
    read_csv_file,
    read_table_source,
    sniff_delimiter,
)

CHINESE_CSV = "客户编号,姓名,城市\nc1,张三,北京\nc2,李四,上海\n"


def _ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s)


# ----------------------------------------------------------------------------- encodings


@pytest.mark.parametrize(
    ("encoding", "prefix", "expected"),
    [
        ("utf-8", b"", "utf-8"),
        ("utf-8", codecs.BOM_UTF8, "utf-8-sig"),
        ("gb18030", b"", "gb18030"),
        ("gbk", b"", "gb18030"),
        ("utf-16", b"", "utf-16"),
    ],
)
def test_detect_encoding_cascade(tmp_path: Path, encoding: str, prefix: bytes, expected: str):
    p = tmp_path / "t.csv"
    p.write_bytes(prefix + CHINESE_CSV.encode(encoding))
    assert detect_encoding(p) == expected
    # and the file then reads back with the Chinese text intact
    assert read_csv_file(p).frame["城市"].tolist() == ["北京", "上海"]


def test_gbk_bytes_are_not_valid_utf8(tmp_path: Path):
    # guards the test above: the GBK file really is not UTF-8, so the cascade had to go on
    data = CHINESE_CSV.encode("gbk")
    with pytest.raises(UnicodeDecodeError):
        data.decode("utf-8")


def test_binary_file_is_an_unreadable_encoding(tmp_path: Path):
    p = tmp_path / "t.csv"
    p.write_bytes(bytes(range(256)) * 40)
    with pytest.raises(IngestError, match="unreadable encoding"):
        detect_encoding(p)


def test_missing_file_is_named(tmp_path: Path):
    with pytest.raises(IngestError, match=r"file not found: .*nope\.csv"):
        detect_encoding(tmp_path / "nope.csv")


# ----------------------------------------------------------------------------- delimiters


@pytest.mark.parametrize("delim", [",", ";", "\t", "|"])
def test_sniff_delimiter(delim: str):
    text = delim.join(["id", "amount", "note"]) + "\n" + delim.join(["1", "12.5", "x"]) + "\n"
    assert sniff_delimiter(text) == delim


def test_sniff_ignores_delimiters_inside_quotes():
    text = 'id;note;amount\n1;"a, b, c, d";3\n2;"e, f";4\n'
    assert sniff_delimiter(text) == ";"


def test_single_column_defaults_to_comma():
    assert sniff_delimiter("customer_id\nc1\nc2\n") == ","


# ----------------------------------------------------------------------------- csv reading


def test_csv_keeps_blank_lines_for_row_numbers(tmp_path: Path):
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,2\n\n3,4\n", encoding="utf-8")
    raw = read_csv_file(p)
    assert raw.frame["a"].tolist() == ["1", "", "3"]
    assert raw.first_row_number == 2


def test_csv_row_with_too_many_fields_is_reported_not_fatal(tmp_path: Path):
    p = tmp_path / "t.csv"
    p.write_text("a,b\n1,2\n3,4,5\n6,7,,\n8,9,,x,\n\n10\n", encoding="utf-8")
    raw = read_csv_file(p)
    assert raw.frame.values.tolist() == [["1", "2"], ["3", "4"], ["6", "7"], ["8", "9"], ["", ""], ["10", ""]]
    # trailing empty fields (6,7,,) are harmless; non-empty extra fields are not
    assert raw.bad_rows == {1: "row has 3 fields, the header has 2", 3: "row has 4 fields, the header has 2"}


@pytest.mark.parametrize("content", ["", "\n\n  \n"])
def test_empty_csv_is_an_error(tmp_path: Path, content: str):
    p = tmp_path / "orders.csv"
    p.write_text(content, encoding="utf-8")
    with pytest.raises(IngestError, match="the file is empty"):
        read_csv_file(p)


def test_header_only_csv_reads_as_zero_rows(tmp_path: Path):
    p = tmp_path / "orders.csv"
    p.write_text("order_id,customer_id\n", encoding="utf-8")
    raw = read_csv_file(p)
    assert list(raw.frame.columns) == ["order_id", "customer_id"] and len(raw.frame) == 0


def test_read_table_source_rejects_unknown_suffixes(tmp_path: Path):
    (tmp_path / "t.json").write_text("{}", encoding="utf-8")
    (tmp_path / "t.xls").write_bytes(b"\xd0\xcf")
    with pytest.raises(IngestError, match="unsupported file type .json"):
        read_table_source(tmp_path / "t.json")
    with pytest.raises(IngestError, match=r"\.xls workbooks are not supported"):
        read_table_source(tmp_path / "t.xls")
    with pytest.raises(IngestError, match="file not found"):
        read_table_source(tmp_path / "missing.parquet")


def test_xlsx_keeps_cell_types(tmp_path: Path):
    p = tmp_path / "t.xlsx"
    pd.DataFrame(
        {"id": ["c1", "c2"], "when": [pd.Timestamp("2024-03-05 14:30"), pd.Timestamp("2024-01-01")],
         "serial": [45356, 45357], "amount": [12.5, 3]}
    ).to_excel(p, index=False)
    raw = read_table_source(p)
    assert raw.first_row_number == 2 and raw.encoding is None
    assert parse_dates(raw.frame["when"]).tolist() == [_ts("2024-03-05 14:30"), _ts("2024-01-01")]
    assert parse_dates(raw.frame["serial"]).tolist() == [_ts("2024-03-05"), _ts("2024-03-06")]
    assert parse_amounts(raw.frame["amount"]).tolist() == [12.5, 3.0]


def test_sql_url_detection_and_masking():
    assert is_sql_url("sqlite:///crm.db") and is_sql_url("postgresql+psycopg://u:p@h/db")
    assert not is_sql_url("data/orders.csv") and not is_sql_url("file:///tmp/x.csv")
    masked = mask_url("postgresql://crm:s3cret@db.example/crm")
    assert "s3cret" not in masked and "crm" in masked


# ----------------------------------------------------------------------------- dates


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2024-03-05", "2024-03-05"),
        ("2024/3/5", "2024-03-05"),
        ("2024.3.5", "2024-03-05"),
        ("20240305", "2024-03-05"),
        ("2024年3月5日", "2024-03-05"),
        ("２０２４年３月５日", "2024-03-05"),
        ("2024年3月5日 14:30", "2024-03-05 14:30"),
        ("2024年3月5日14时30分15秒", "2024-03-05 14:30:15"),
        ("2024-03-05 14:30:00", "2024-03-05 14:30"),
        ("2024-03-05T14:30:00.250", "2024-03-05 14:30:00.250"),
        ("2024-03-05T14:30:00+08:00", "2024-03-05 14:30"),
        ("2024-03-05T06:30:00Z", "2024-03-05 06:30"),
        ("2024/3/5 2:30 PM", "2024-03-05 14:30"),
        ("2024/3/5 下午2:30", "2024-03-05 14:30"),
        ("45356", "2024-03-05"),
        ("45356.5", "2024-03-05 12:00"),
        ("5 Mar 2024", "2024-03-05"),
        ("  2024-03-05  ", "2024-03-05"),
    ],
)
def test_parse_dates_formats(text: str, expected: str):
    assert parse_dates(pd.Series([text])).iloc[0] == _ts(expected)


@pytest.mark.parametrize("text", ["2024-02-30", "2024-13-01", "2024-03-05 25:00", "junk", "2024", "03/2024", "5"])
def test_parse_dates_rejects_impossible_or_partial_dates(text: str):
    assert pd.isna(parse_dates(pd.Series([text])).iloc[0])


def test_day_first_flag_decides_slash_dates():
    s = pd.Series(["05/03/2024", "25/03/2024", "03/25/2024"])
    month_first = parse_dates(s, day_first=False).tolist()
    day_first = parse_dates(s, day_first=True).tolist()
    assert month_first[0] == _ts("2024-05-03") and pd.isna(month_first[1]) and month_first[2] == _ts("2024-03-25")
    assert day_first[0] == _ts("2024-03-05") and day_first[1] == _ts("2024-03-25") and pd.isna(day_first[2])


@pytest.mark.parametrize(
    ("texts", "default", "order", "basis", "counts"),
    [
        (["05/03/2024", "25/03/2024 10:00", "2024-01-01"], False, "day_first", "inferred", (1, 0, 1)),
        (["05/03/2024", "03/25/2024", "1.2.2024"], True, "month_first", "inferred", (0, 1, 2)),
        (["05/03/2024", "06-03-2024"], True, "day_first", "default", (0, 0, 2)),
        (["25/03/2024", "03/25/2024"], False, "month_first", "conflict", (1, 1, 0)),
        (["2024-03-05", "20240305", None], True, "day_first", "none", (0, 0, 0)),
    ],
)
def test_parse_dates_inferred_decides_the_order_per_column(texts, default, order, basis, counts):
    values, decided = parse_dates_inferred(pd.Series(texts), default_day_first=default)
    assert (decided.order, decided.basis) == (order, basis)
    assert (decided.day_first_only, decided.month_first_only, decided.ambiguous) == counts
    assert values.equals(parse_dates(pd.Series(texts), day_first=decided.day_first))


def test_parse_dates_inferred_reads_many_day_first_rows_like_one_by_one():
    base = pd.date_range("2023-01-01", periods=3000, freq="7h")
    texts = np.where(np.arange(3000) % 2 == 0, base.strftime("%Y-%m-%d %H:%M:%S"), base.strftime("%d/%m/%Y %H:%M:%S"))
    values, decided = parse_dates_inferred(pd.Series(texts))
    assert decided.order == "day_first" and (values == pd.Series(base)).all()


def test_parse_dates_mixed_column_keeps_positions_and_index():
    s = pd.Series(["2024-03-05", None, "bad", "2024年3月6日", "45357", ""], index=[7, 7, 3, 9, 1, 2])
    out = parse_dates(s)
    assert out.dtype == "datetime64[ns]" and list(out.index) == [7, 7, 3, 9, 1, 2]
    assert out.iloc[0] == _ts("2024-03-05") and out.iloc[3] == _ts("2024-03-06") and out.iloc[4] == _ts("2024-03-06")
    assert out.iloc[[1, 2, 5]].isna().all()


def test_parse_dates_many_rows_in_several_formats_agree_with_one_by_one():
    # the bulk fast path and the per-format fallback must give the same answers
    base = pd.date_range("2023-01-01", periods=3000, freq="7h")
    texts = np.where(
        np.arange(3000) % 3 == 0,
        base.strftime("%Y-%m-%d %H:%M:%S"),
        np.where(np.arange(3000) % 3 == 1, base.strftime("%Y年%m月%d日 %H:%M:%S"), base.strftime("%d/%m/%Y %H:%M:%S")),
    )
    bulk = parse_dates(pd.Series(texts), day_first=True)
    assert (bulk == pd.Series(base)).all()
    one = [parse_dates(pd.Series([t]), day_first=True).iloc[0] for t in texts[:30]]
    assert one == list(base[:30])


def test_parse_dates_passes_typed_datetimes_and_drops_timezones():
    naive = pd.Series(pd.to_datetime(["2024-03-05 10:00"]))
    aware = naive.dt.tz_localize("Asia/Shanghai")
    assert parse_dates(naive).iloc[0] == _ts("2024-03-05 10:00")
    assert parse_dates(aware).iloc[0] == _ts("2024-03-05 10:00")
    assert parse_dates(aware).dtype == "datetime64[ns]"


# ----------------------------------------------------------------------------- amounts


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1234.5", 1234.5),
        ("¥1,234.50", 1234.5),
        ("￥ 99", 99.0),
        ("$12", 12.0),
        ("€1.234,50", 1234.5),
        ("£3", 3.0),
        ("RMB 100", 100.0),
        ("100元", 100.0),
        ("12,5", 12.5),
        ("1,234", 1234.0),
        ("1 234,5", 1234.5),
        ("(12.00)", -12.0),
        ("−7", -7.0),
        ("-5", -5.0),
        ("１２３", 123.0),
        ("１，２３４．５", 1234.5),
        ("1e3", 1000.0),
    ],
)
def test_parse_amounts(text: str, expected: float):
    assert parse_amounts(pd.Series([text])).iloc[0] == pytest.approx(expected)


@pytest.mark.parametrize("text", ["abc", "12abc", "inf", "1,2,3.4.5", "1(2", "", "N/A"])
def test_parse_amounts_malformed_or_blank_is_nan(text: str):
    assert np.isnan(parse_amounts(pd.Series([text])).iloc[0])


def test_parse_amounts_numeric_column_passes_through():
    out = parse_amounts(pd.Series([1, 2, 3], dtype="int64"))
    assert out.dtype == "float64" and out.tolist() == [1.0, 2.0, 3.0]


# ----------------------------------------------------------------------------- booleans and text


def test_parse_bools():
    s = pd.Series(["yes", "No", "TRUE", "false", "1", "0", "是", "否", "Y", "n", "maybe", None, ""])
    assert parse_bools(s).tolist() == [True, False, True, False, True, False, True, False, True, False,
                                       pd.NA, pd.NA, pd.NA]
    assert parse_bools(pd.Series([1.0, 0.0])).tolist() == [True, False]


def test_normalize_text():
    s = pd.Series(["  a  ", "ＡＢ１２", "　c　", "NULL", "n/a", "NaN", "", None, "NA", "-", "none"])
    assert normalize_text(s).tolist() == ["a", "AB12", "c", pd.NA, pd.NA, pd.NA, pd.NA, pd.NA, "NA", "-", "none"]
    assert normalize_text(pd.Series([17850.0, np.nan, 1.5])).tolist() == ["17850", pd.NA, "1.5"]
    assert normalize_text(pd.Series([5, 6])).tolist() == ["5", "6"]


def test_decodes_checks_every_byte_after_long_ascii_runs(tmp_path, monkeypatch):
    """The pure-ASCII fast path of ``_decodes`` must not skip a bad byte, a split character or GB18030 text."""
    import features.readers as readers
    from features.readers import _CHUNK, _decodes

    monkeypatch.setattr(readers, "_VALIDATE_CHUNK", _CHUNK)  # the UTF-8 check's reads end where the others' do

    p = tmp_path / "x.csv"
    p.write_bytes(b"a" * _CHUNK * 2 + b"\xff")  # invalid in UTF-8 and GB18030, after two ASCII chunks
    assert not _decodes(p, "utf-8") and not _decodes(p, "gb18030")
    p.write_bytes(b"a" * (_CHUNK - 1) + "客".encode() + b"a" * _CHUNK)  # a character split between chunks
    assert _decodes(p, "utf-8")
    p.write_bytes(b"a" * (_CHUNK - 1) + "客".encode()[:2])  # truncated at the end of the file
    assert not _decodes(p, "utf-8")
    p.write_bytes(b"a" * _CHUNK + "客户".encode("gb18030"))
    assert not _decodes(p, "utf-8") and _decodes(p, "gb18030")


def test_utf8_check_agrees_with_pythons_strict_decoder_across_chunk_edges(tmp_path, monkeypatch):
    """pyarrow's UTF-8 validation (no GIL) gives Python's verdict, also for characters split between reads."""
    import features.readers as readers

    monkeypatch.setattr(readers, "_VALIDATE_CHUNK", 7)  # many chunk edges, some inside a character
    rng = np.random.default_rng(3)
    pieces = [b"a", b",", "客".encode(), "€".encode(), "😀".encode(), b"\xff", b"\xc0\xaf", b"\xed\xa0\x80",
              b"\xf4\x90\x80\x80", b"\xe4\xb8", b"\x80", "é".encode(), b"\xef\xbb\xbf"]
    p = tmp_path / "x.csv"
    verdicts = set()
    for _ in range(1500):
        data = b"".join(rng.choice(np.array(pieces, dtype=object), size=int(rng.integers(0, 12))))
        if rng.random() < 0.5:  # mostly valid files too
            data = b"".join(pieces[i] for i in rng.integers(0, 5, size=int(rng.integers(0, 12))))
        p.write_bytes(data)
        try:
            data.decode("utf-8")
            want = True
        except UnicodeDecodeError:
            want = False
        assert readers._decodes(p, "utf-8") is want, data
        verdicts.add(want)
    assert verdicts == {True, False}
