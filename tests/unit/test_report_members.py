"""The report's Members section on a hand-computed fixture: level counts, revenue shares and movements."""

from __future__ import annotations

import pandas as pd
import pytest

from serving.report.members_tables import member_tables
from tests.members_data import customers_frame, orders_frame

T = pd.Timestamp("2025-06-30")


def test_member_tables_by_hand() -> None:
    # default config: silver = 500 spend or 3 orders, gold = 2000 or 8, platinum = 8000 or 20; window 12 months
    orders = orders_frame([
        ("A", "2025-01-10", 600.0, "paid", "x"),  # silver since January (600 ≥ 500)
        ("B", "2025-06-10", 2500.0, "paid", "x"),  # none at 2025-05-30, gold at T: moved up two levels
        ("C", "2025-02-01", 100.0, "paid", "x"),  # none
        ("C", "2025-03-01", 100.0, "refunded", "x"),  # refunded: does not count
        ("D", "2023-01-01", 9000.0, "paid", "x"),  # outside the 12-month window: none
    ])
    tables = {"customers": customers_frame(["A", "B", "C", "D", "E"], "2024-01-01"), "orders": orders}
    r = member_tables(tables, T)
    lv = r["members_levels"].set_index("level")
    assert lv["customers"].to_dict() == {"none": 3, "silver": 1, "gold": 1, "platinum": 0}
    assert lv.loc["none", "share_of_customers"] == pytest.approx(3 / 5)
    total = 600 + 2500 + 100  # paid in the window
    assert lv["revenue"].to_dict() == {"none": 100.0, "silver": 600.0, "gold": 2500.0, "platinum": 0.0}
    assert lv.loc["gold", "share_of_revenue"] == pytest.approx(2500 / total)
    mv = r["members_movements"].set_index("level_before")
    assert mv.loc["none"].to_dict() == {"to_none": 3, "to_silver": 0, "to_gold": 1, "to_platinum": 0}
    assert mv.loc["silver"].to_dict() == {"to_none": 0, "to_silver": 1, "to_gold": 0, "to_platinum": 0}
    assert "gold" not in mv.index  # nobody was gold a month before T
