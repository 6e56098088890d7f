"""The report's Scoring section on a hand-computed fixture: lead top-20% capture and the churn watch list."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import coerce_types
from serving.report.scoring import churn_watch_list, lead_capture

T = pd.Timestamp("2025-06-30")

# ten leads, ranked L0 > L1 = L2 > L3 > ... > L9 (L1 and L2 tie: the smaller id ranks first)
LEADS = pd.DataFrame(
    {
        "customer_id": [f"L{i}" for i in range(10)],
        "probability": [0.9, 0.8, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1],
    }
)
# converted by T (a paid order on or before T): L0, L1, L5, L9. L3 paid only after T, L4's order was cancelled.
ORDERS = coerce_types(
    pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4", "o5", "o6"],
            "customer_id": ["L0", "L1", "L5", "L9", "L3", "L4"],
            "ts": pd.to_datetime(["2025-06-01", "2025-06-30", "2025-05-02", "2025-06-10", "2025-07-01", "2025-06-05"]),
            "amount": [10.0] * 6,
            "status": ["paid", "paid", "paid", "paid", "paid", "cancelled"],
        }
    ),
    "orders",
)


def test_lead_capture_by_hand() -> None:
    r = lead_capture(LEADS.sample(frac=1.0, random_state=3), ORDERS, T)  # input order must not matter
    s = r["scoring_lead_capture"].iloc[0]
    # top 20% of 10 = 2 leads (L0, L1): 2 of the 4 conversions -> capture 0.5, lift 0.5 / 0.2 = 2.5
    assert (s["leads"], s["converted"], s["top_leads"], s["converted_in_top"]) == (10, 4, 2, 2)
    assert s["capture_share_top"] == 0.5 and s["lift_top"] == pytest.approx(2.5) and s["conversion_rate"] == 0.4
    d = r["scoring_lead_deciles"]
    assert d["decile"].tolist() == list(range(1, 11)) and (d["leads"] == 1).all()
    assert d["converted"].tolist() == [1, 1, 0, 0, 0, 1, 0, 0, 0, 1]
    np.testing.assert_allclose(d["cumulative_capture_share"], [0.25, 0.5, 0.5, 0.5, 0.5, 0.75, 0.75, 0.75, 0.75, 1.0])


def test_lead_capture_rounds_the_top_share_up_and_handles_no_conversion() -> None:
    r = lead_capture(LEADS.head(7), ORDERS.iloc[:0], T)
    s = r["scoring_lead_capture"].iloc[0]
    assert s["top_leads"] == 2 and s["converted"] == 0 and np.isnan(s["capture_share_top"])  # ceil(0.2 * 7) = 2


def test_churn_watch_list_by_hand() -> None:
    churn = pd.DataFrame(
        {
            "customer_id": ["X1", "X2", "X3", "X4", "X5"],
            "probability": [0.9, 0.95, 0.5, 0.7, 0.99],
            "grade": ["A", "A", "C", "B", "A"],
            "reason_pos_1": ["近90天投诉 3 次", "x", None, "距上次下单 120 天", "y"],
        }
    )
    # X2 is not important, X5 has no tier at T (not a customer then): neither is listed
    tiers = pd.Series({"X1": "important", "X2": "potential", "X3": "important", "X4": "important"})
    w = churn_watch_list(churn, tiers, top_n=2)
    assert w["customer_id"].tolist() == ["X1", "X4"] and w["rank"].tolist() == [1, 2]
    assert w["top_reason"].tolist() == ["近90天投诉 3 次", "距上次下单 120 天"] and w["churn_grade"].tolist() == [
        "A",
        "B",
    ]
    w = churn_watch_list(churn.drop(columns=["grade"]), tiers, top_n=5)
    assert w["customer_id"].tolist() == ["X1", "X4", "X3"] and w.loc[2, "top_reason"] == "–"


def test_bad_scores_name_the_problem() -> None:
    with pytest.raises(ValueError, match="probability"):
        lead_capture(LEADS.drop(columns=["probability"]), ORDERS, T)
    with pytest.raises(ValueError, match="'L0' appears more than once"):
        lead_capture(pd.concat([LEADS, LEADS.head(1)]), ORDERS, T)


def test_read_score_file_checks_kind_and_columns(tmp_path) -> None:
    from serving.report.scoring import read_score_file

    LEADS.to_csv(tmp_path / "lead.csv", index=False)
    kind, df = read_score_file(f"lead={tmp_path / 'lead.csv'}")
    assert kind == "lead" and len(df) == 10
    with pytest.raises(ValueError, match="lead=FILE or churn=FILE"):
        read_score_file(str(tmp_path / "lead.csv"))
    with pytest.raises(ValueError, match="file not found"):
        read_score_file(f"churn={tmp_path / 'nope.csv'}")
