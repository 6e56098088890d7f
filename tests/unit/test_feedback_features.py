"""Point-in-time feedback features: hand-computed values, and no leakage of what happens after T."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import coerce_types
from features.feedback import feedback_features

T = pd.Timestamp("2025-06-30")


def _fb(rows: list[tuple]) -> pd.DataFrame:
    cols = ["feedback_id", "customer_id", "ts", "kind", "rating", "resolved_at"]
    df = pd.DataFrame(rows, columns=cols)
    df["ts"] = pd.to_datetime(df["ts"])
    df["resolved_at"] = pd.to_datetime(df["resolved_at"])
    return coerce_types(df, "feedback")


ROWS = [
    ("F1", "A", "2025-06-01", "complaint", 1, "2025-06-03"),  # resolved in 2 days
    ("F2", "A", "2025-06-20", "complaint", 2, "2025-07-05"),  # resolved after T: open at T
    ("F3", "A", "2025-01-10", "review", 5, None),  # outside 90 days
    ("F4", "B", "2025-05-15", "review", 4, None),
]


def test_values_by_hand() -> None:
    f = feedback_features(_fb(ROWS), pd.Index(["A", "B", "C"]), T)
    assert f.loc["A"].tolist()[:3] == [1.0, 2.0, 1.5] and f.loc["A", "days_to_resolve_mean"] == pytest.approx(2.0)
    assert f.loc["B", "complaints_unresolved"] == 0 and f.loc["B", "rating_mean_90d"] == 4.0
    assert f.loc["C", "complaints_90d"] == 0 and np.isnan(f.loc["C", "rating_mean_90d"])


def test_nothing_after_T_changes_the_features() -> None:
    base = feedback_features(_fb(ROWS), pd.Index(["A", "B"]), T)
    later = ROWS + [
        ("F5", "A", "2025-07-02", "complaint", 1, None),  # given after T
        ("F6", "B", "2025-07-10", "review", 1, None),
    ]
    # F2's resolution is known only after T: moving it later or earlier past T must not matter
    moved = [r if r[0] != "F2" else (*r[:5], "2025-12-31") for r in later]
    for rows in (later, moved):
        pd.testing.assert_frame_equal(feedback_features(_fb(rows), pd.Index(["A", "B"]), T), base)
