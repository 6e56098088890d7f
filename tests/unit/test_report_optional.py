"""Optional customer columns: a report without ``source_channel`` / ``province`` / ``city`` still renders, and the
sections that need them say what they could not compute."""

from __future__ import annotations

import pandas as pd
import pytest

from serving.report.run import ReportConfig, build_report, compute_tables
from tests.unit.test_report_tables import AS_OF
from tests.unit.test_report_tables import tables as _fixture


@pytest.fixture(scope="module")
def bare() -> dict[str, pd.DataFrame]:
    tabs = dict(_fixture.__wrapped__())
    tabs["customers"] = tabs["customers"].drop(columns=["source_channel", "city"])
    return tabs


def test_missing_columns_leave_their_tables_empty_with_a_note(bare) -> None:
    gaps: dict[str, list[str]] = {}
    res = compute_tables(bare, AS_OF, ReportConfig(), gaps)
    assert res["funnel"].empty and res["time_to_payment"].empty and res["channels"].empty and res["regions_city"].empty
    assert not res["sales_monthly"].empty and not res["regions_province"].empty and not res["retention"].empty
    assert gaps == {
        "funnel": [
            "funnel: not computed, the data has no column customers.source_channel",
            "time_to_payment: not computed, the data has no column customers.source_channel",
        ],
        "channels": ["channels: not computed, the data has no column customers.source_channel"],
        "regions": ["regions_city: not computed, the data has no column customers.city"],
    }


def test_report_without_source_channel_renders_every_section(bare, tmp_path) -> None:
    leads = pd.DataFrame({"customer_id": ["A", "B", "C", "D"], "probability": [0.9, 0.1, 0.5, 0.3]})
    run = build_report(None, AS_OF, tmp_path, tables=bare, log_mlflow=False, scores={"lead": leads})
    page = run.html.read_text(encoding="utf-8")
    for key in ("sales", "funnel", "channels", "campaigns", "regions", "retention", "members", "satisfaction",
                "scoring", "forecast"):  # fmt: skip
        assert f'id="{key}"' in page, key
    assert "the data has no column customers.source_channel" in page
    assert "no churn scores given" in page and "The top 20% of scored leads hold" in page
    # A, C and B paid by T; ranked A (0.9) > C > D > B: the top 20% of 4 leads is A alone -> 1 of 3 conversions
    cap = pd.read_csv(run.csvs["scoring_lead_capture"], encoding="utf-8-sig").iloc[0]
    assert (cap["top_leads"], cap["converted_in_top"], cap["converted"]) == (1, 1, 3)
