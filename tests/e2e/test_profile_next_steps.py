"""The profile page's next-steps section in a real browser: the customer's next best action with its reason and
the top recommendations, equal to what ``POST /ui/api/next_steps`` and ``POST /recommend`` answer."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.e2e.conftest import ProfileServer
from tests.e2e.test_profile_page import DESKTOP, Page

pytestmark = pytest.mark.slow


@pytest.fixture()
def page(browser: Any, profile_server: ProfileServer) -> Iterator[Page]:
    """A desktop-sized page, signed in; fails the test on any console error."""
    ctx = browser.new_context(**DESKTOP)
    p = Page(ctx.new_page(), profile_server).open().sign_in()
    p.page.wait_for_selector("#searchbox:not([hidden])")
    yield p
    ctx.close()
    assert p.errors == [], f"console errors: {p.errors}"


def test_next_steps_show_the_action_and_the_recommendations(page: Page, profile_server: ProfileServer) -> None:
    from training.cross_sell import load_lines

    lines = load_lines(profile_server.data)
    cid = str(lines.groupby("customer_id")["basket"].nunique().idxmax())  # the customer with most orders
    page.open_profile(cid)
    page.page.wait_for_selector("#next-steps:not([hidden]) [data-testid=recs]")
    with httpx.Client(base_url=profile_server.url, headers=profile_server.headers, timeout=60) as api:
        r = api.post("/ui/api/next_steps", json={"customer_id": cid})
        assert r.status_code == 200, r.text
        want = r.json()
        shown_action = page.attr("#next-steps [data-testid=action]", "data-action-id")
        assert shown_action == want["action"]["action_id"]
        assert page.text("#next-steps [data-testid=action-reason]") == want["action"]["reason"]
        skus = [
            li.get_attribute("data-sku") for li in page.page.query_selector_all("#next-steps [data-testid=recs] li")
        ]
        assert skus == [x["sku"] for x in want["recommendations"]["recommendations"]] and skus
        # the same list as POST /recommend at the page's as-of
        rec = api.post("/recommend", json={"customer_id": cid, "k": len(skus), "as_of": want["as_of"]})
        assert rec.status_code == 200, rec.text
        assert [x["sku"] for x in rec.json()["recommendations"]] == skus
    assert pd.Timestamp(want["as_of"]) >= lines.loc[lines["customer_id"] == cid, "ts"].min()
