"""The `crmscore report` HTML in headless Chromium: every section present, every chart decoded, no console error,
no request leaving the file (self-contained), and a screenshot in test-artifacts/."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.crm import make_tables

pytestmark = pytest.mark.slow
SECTIONS = (
    "sales",
    "funnel",
    "channels",
    "campaigns",
    "regions",
    "retention",
    "members",
    "satisfaction",
    "scoring",
    "forecast",
)


@pytest.fixture(scope="module")
def report_html(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from serving.report.run import build_report

    out = tmp_path_factory.mktemp("report")
    return build_report(None, "2025-06-30", out, tables=make_tables(n=300, seed=5), log_mlflow=False, lang="zh").html


def test_report_opens_clean_in_chromium(browser: Any, report_html: Path, artifacts: Path) -> None:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    errors: list[str] = []
    requests: list[str] = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.on("request", lambda r: requests.append(r.url))
    page.goto(report_html.as_uri())
    page.wait_for_load_state("load")
    for key in SECTIONS:
        sec = page.locator(f'section[data-section="{key}"]')
        assert sec.count() == 1, key
        assert sec.locator("p.def").count() == 1, f"{key}: no definitions"
    widths = page.eval_on_selector_all("img", "els => els.map(e => e.complete ? e.naturalWidth : 0)")
    assert len(widths) >= 7 and min(widths) > 0, widths
    assert page.locator("text=销售").count() >= 1
    outside = [u for u in requests if not u.startswith(("file://", "data:"))]
    assert outside == [], outside
    page.screenshot(path=str(artifacts / "report-desktop.png"), full_page=True)
    page.close()
    assert errors == [], f"console errors: {errors}"
