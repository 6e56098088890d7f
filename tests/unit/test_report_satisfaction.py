"""The report's Satisfaction section on a hand-computed feedback fixture (point in time at T)."""

from __future__ import annotations

import pandas as pd
import pytest

from features.contract import coerce_types
from serving.report.satisfaction import satisfaction_tables

T = pd.Timestamp("2025-06-30")


def _fb(rows: list[tuple]) -> pd.DataFrame:
    cols = ["feedback_id", "customer_id", "ts", "kind", "rating", "channel", "category", "status", "resolved_at"]
    df = pd.DataFrame(rows, columns=cols)
    df["ts"] = pd.to_datetime(df["ts"])
    df["resolved_at"] = pd.to_datetime(df["resolved_at"])
    return coerce_types(df, "feedback")


def test_satisfaction_by_hand() -> None:
    fb = _fb([
        ("F1", "A", "2025-05-03", "review", 5, "app", "质量", "closed", None),
        ("F2", "B", "2025-05-20", "review", 2, "app", "质量", "closed", None),
        ("F3", "C", "2025-06-01", "complaint", 1, "phone", "物流", "resolved", "2025-06-05"),  # 4 days
        ("F4", "C", "2025-06-10", "complaint", 2, "phone", "物流", "resolved", "2025-07-02"),  # resolved after T: open
        ("F5", "D", "2025-03-01", "complaint", None, "web", "服务", "open", None),  # open 121 days
        ("F6", "E", "2025-07-05", "complaint", 1, "web", "服务", "open", None),  # after T: not read
        ("F7", "E", "2025-06-20", "survey", 4, "email", None, "closed", None),
    ])
    r = satisfaction_tables(fb, T)
    m = r["satisfaction_monthly"].set_index("month")
    assert m.loc["2025-05", "rated"] == 2 and m.loc["2025-05", "csat"] == 0.5 and m.loc["2025-05", "mean_rating"] == 3.5
    assert m.loc["2025-06", "rated"] == 3 and m.loc["2025-06", "csat"] == pytest.approx(1 / 3)
    assert "2025-07" not in m.index
    by = r["complaints_by"].set_index(["category", "channel"])["complaints"].to_dict()
    assert by == {("物流", "phone"): 2, ("服务", "web"): 1}
    res = r["complaint_resolution"].iloc[0]
    assert (res["complaints"], res["resolved_by_T"], res["median_days_to_resolve"]) == (3, 1, 4.0)
    backlog = r["complaint_backlog"].set_index("open_for")["open_complaints"].to_dict()
    assert backlog == {"≤ 7 days": 0, "8–30 days": 1, "31–90 days": 0, "> 90 days": 1}
