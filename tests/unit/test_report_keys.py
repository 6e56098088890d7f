"""Customer ids as integers (serving.report.keys) and the event tables' ids read as one dictionary (features.io)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from features.io import _read_parquet
from serving.report import tables as T
from serving.report.keys import CustomerKeys, text_codes
from serving.report.run import INPUT_COLUMNS


def test_text_codes_name_the_same_ids_for_categorical_and_text_columns() -> None:
    values = ["b", "a", None, "b", "c"]
    for s in (pd.Series(values, dtype="category"), pd.Series(values, dtype=object)):
        codes, ids = text_codes(s)
        assert list(ids[codes]) == list(s.astype(str))


def test_positions_cover_ids_that_are_no_customer() -> None:
    tables = {
        "customers": pd.DataFrame({"customer_id": ["A", "B"], "created_at": pd.to_datetime(["2025-01-01"] * 2)}),
        "orders": pd.DataFrame({"customer_id": pd.Series(["B", "X", "A", "X"], dtype="category")}),
        "marketing_touches": pd.DataFrame({"customer_id": ["X", "Y", "A"]}),
    }
    keys = CustomerKeys(tables)
    assert keys.positions("orders").tolist() == [1, -1, 0, -1]
    (touches, orders), n = keys.with_others("marketing_touches", "orders")
    assert n == 4  # A, B, then X and Y numbered after the customers, the same in both tables
    assert orders.tolist() == [1, touches[0], 0, touches[0]]
    assert touches[1] not in (0, 1, touches[0]) and touches[2] == 0


def test_report_sections_agree_with_or_without_shared_keys() -> None:
    rng = np.random.default_rng(0)
    ids = [f"C{i}" for i in range(50)]
    t0 = pd.Timestamp("2025-01-01")
    tables = {
        "customers": pd.DataFrame(
            {
                "customer_id": ids,
                "created_at": t0 + pd.to_timedelta(rng.integers(0, 60, 50), unit="D"),
                "source_channel": rng.choice(["web", "app", None], 50),
                "province": rng.choice(["广东省", None], 50),
                "city": rng.choice(["广州市", "深圳市"], 50),
            }
        ),
        "orders": pd.DataFrame(
            {
                "customer_id": pd.Series(rng.choice([*ids, "Z"], 200), dtype="category"),
                "ts": t0 + pd.to_timedelta(rng.integers(0, 150, 200), unit="D"),
                "amount": rng.random(200) * 100,
                "status": rng.choice(["paid", "refunded"], 200),
            }
        ),
    }
    as_of = pd.Timestamp("2025-05-01")
    keys = CustomerKeys(tables)
    for alone, shared in (
        (T.sales_monthly(tables, as_of), T.sales_monthly(tables, as_of, keys)),
        (T.channels(tables, as_of), T.channels(tables, as_of, keys)),
        (T.regions(tables, as_of, "city"), T.regions(tables, as_of, "city", keys)),
        (T.retention(tables, as_of), T.retention(tables, as_of, 12, keys)),
    ):
        pd.testing.assert_frame_equal(alone, shared, check_exact=True)


def test_id_columns_read_as_one_dictionary_over_row_groups(tmp_path) -> None:
    ids = [f"C{i % 7}" for i in range(40)][::-1]
    data = pa.table(
        {
            "customer_id": ids,
            "ts": pa.array(pd.date_range("2025-01-01", periods=40, freq="h")),
            "channel": ["web"] * 40,
            "event_type": ["visit", None] * 20,
        }
    )
    path = tmp_path / "interactions.parquet"
    pq.write_table(data, path, row_group_size=8)
    got = _read_parquet(path, "interactions", list(INPUT_COLUMNS["interactions"]))
    cols, dict_cols = ["customer_id", "ts", "event_type"], ["customer_id", "event_type"]
    want = pq.read_table(path, columns=cols, read_dictionary=dict_cols)
    pd.testing.assert_frame_equal(got, want.to_pandas())
    assert list(got["customer_id"].cat.categories) == list(dict.fromkeys(ids))  # order of first appearance
    assert "channel" not in got.columns
