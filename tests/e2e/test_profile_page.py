"""The customer profile page (客户画像) in a real headless browser against a real `crmscore serve --data DIR`.

Covers: search by id, by part of a name (case- and width-insensitive), by a Chinese name, no match, several
matches; the numbers on the page equal what /score_leads, /predict_churn and /segment answer for the same
customer (profile + events at the same as_of); timeline, funnel and model versions; phone and desktop layouts
(screenshots in test-artifacts/); an unauthenticated visit sees no customer data; no console errors.
"""

from __future__ import annotations

import math
import unicodedata
from collections.abc import Iterator
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.e2e.conftest import ProfileServer
from tests.integration.conftest import API_KEYS

pytestmark = pytest.mark.slow

DESKTOP = {"viewport": {"width": 1280, "height": 900}}
PHONE = {"viewport": {"width": 390, "height": 844}, "is_mobile": True, "has_touch": True, "device_scale_factor": 2}


# ----------------------------------------------------------------------------------------------- data
@pytest.fixture(scope="module")
def tables(profile_server: ProfileServer) -> dict[str, pd.DataFrame]:
    """The data dir the server indexed."""
    from features.io import load_tables

    return load_tables(profile_server.data)


@pytest.fixture(scope="module")
def as_of(tables: dict[str, pd.DataFrame]) -> pd.Timestamp:
    """The latest event time in the data (what the page scores at without --as-of)."""
    cols = {"interactions": ["ts"], "orders": ["ts"], "marketing_touches": ["sent_at", "opened_at", "clicked_at"]}
    return max(pd.Timestamp(tables[t][c].max()) for t, cs in cols.items() for c in cs)


def _norm(s: str) -> str:
    return "".join(unicodedata.normalize("NFKC", s).casefold().split())


def _py(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def request_item(tables: dict[str, pd.DataFrame], cid: str, as_of: pd.Timestamp) -> dict[str, Any]:
    """The customer as a CRM sends it: raw profile (with PII, which the service drops) plus all its events."""
    cust = tables["customers"].set_index("customer_id").loc[cid]
    profile = {"customer_id": cid, **{k: _py(v) for k, v in cust.items()}}
    events = {}
    for name in ("interactions", "orders", "marketing_touches"):
        df = tables[name]
        rows = df[(df["customer_id"] == cid).fillna(False).to_numpy(dtype=bool)].drop(columns="customer_id")
        events[name] = [{k: _py(v) for k, v in r.items()} for r in rows.to_dict("records")]
    return {"profile": profile, "events": events, "as_of": as_of.isoformat()}


@pytest.fixture(scope="module")
def picks(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> dict[str, str]:
    """Customers the tests look at: a repeat buyer with marketing responses, and a lead (no order)."""
    o, tch, inter = tables["orders"], tables["marketing_touches"], tables["interactions"]
    paid = o[(o["status"] == "paid").fillna(False).to_numpy(dtype=bool)].groupby("customer_id").size()
    opened = set(tch.loc[tch["opened_at"].notna(), "customer_id"])
    n_inter = inter.groupby("customer_id").size()
    buyers = sorted(c for c, k in paid.items() if k >= 2 and c in opened and 10 <= n_inter.get(c, 0) <= 80)
    leads = sorted(set(n_inter[n_inter >= 5].index) - set(o["customer_id"]))
    assert buyers and leads, "the demo data should hold repeat buyers and leads"
    return {"buyer": buyers[0], "lead": leads[0]}


# -------------------------------------------------------------------------------------------- browser
class Page:
    """A Playwright page on the profile page, collecting console errors."""

    def __init__(self, page: Any, server: ProfileServer) -> None:
        self.page = page
        self.server = server
        self.errors: list[str] = []
        page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.errors.append(f"page error: {e}"))
        page.set_default_timeout(20_000)

    def open(self) -> Page:
        self.page.goto(f"{self.server.url}/ui")
        return self

    def sign_in(self, key: str = API_KEYS[0]) -> Page:
        self.page.fill("#key", key)
        self.page.click("#keyform button")
        return self

    def search(self, q: str) -> None:
        self.page.fill("#q", q)
        self.page.click("#searchform button")

    def open_profile(self, q: str) -> None:
        """Search ``q`` and wait for a profile (a new one when one is shown already)."""
        self.page.evaluate("document.getElementById('profile').hidden = true")
        self.search(q)
        self.page.wait_for_selector("#profile:not([hidden]) [data-testid=lead-score], #profile:not([hidden]) .err")

    def attr(self, selector: str, name: str = "data-value") -> str | None:
        return self.page.get_attribute(selector, name)

    def text(self, selector: str) -> str:
        return self.page.inner_text(selector).strip()


@pytest.fixture()
def desk(browser: Any, profile_server: ProfileServer) -> Iterator[Page]:
    """A desktop-sized page, signed in; fails the test on any console error."""
    ctx = browser.new_context(**DESKTOP)
    p = Page(ctx.new_page(), profile_server).open().sign_in()
    p.page.wait_for_selector("#searchbox:not([hidden])")
    yield p
    ctx.close()
    assert p.errors == [], f"console errors: {p.errors}"


# -------------------------------------------------------------------------------------------- search
def test_search_by_id_shows_the_profile(desk: Page, tables: dict, picks: dict, as_of: pd.Timestamp) -> None:
    cid = picks["buyer"]
    cust = tables["customers"].set_index("customer_id").loc[cid]
    desk.open_profile(cid)
    assert desk.text("[data-testid=customer-id]") == cid
    assert desk.text("[data-testid=name]") == cust["name"]
    assert desk.attr("[data-testid=as-of]") == as_of.isoformat()
    # attributes, PII included, for the authenticated user
    assert desk.text("[data-field=phone]") == (cust["phone"] if pd.notna(cust["phone"]) else "–")
    assert desk.text("[data-field=province]") == cust["province"]
    # lower-case id, surrounding spaces: still an exact id match
    desk.open_profile(f"  {cid.lower()} ")
    assert desk.text("[data-testid=customer-id]") == cid


def test_search_by_part_of_a_name_is_case_and_width_insensitive(desk: Page, tables: dict) -> None:
    names = tables["customers"]["name"].dropna()
    expected = int(names.map(lambda n: "zhang" in _norm(n)).sum())
    assert expected > 20, "the demo data should have many pinyin/English names with Zhang"
    for q in ("zhang", "ＺＨＡＮＧ", "ZhAnG"):
        desk.search(q)
        desk.page.wait_for_selector("#results:not([hidden])")
        assert desk.text("#results-title").startswith(f"{expected} customers match")
        assert "showing the first 20" in desk.text("#results-title")
        items = desk.page.query_selector_all("#result-list li")
        assert len(items) == 20
        shown = [i.query_selector(".rname").inner_text() for i in items]
        assert all("zhang" in _norm(n) for n in shown)
        desk.page.evaluate("document.getElementById('results').hidden = true")
    # a full pinyin name written without its space, lower case
    full = next(n for n in names if _norm(n).startswith("zhang") and " " in n)
    desk.search(_norm(full))
    desk.page.wait_for_selector("#results:not([hidden]), #profile:not([hidden]) [data-testid=name]")
    if desk.page.is_visible("#results"):
        first = desk.page.query_selector("#result-list li .rname").inner_text()
        assert _norm(first) == _norm(full)  # exact names are listed first
    else:
        assert _norm(desk.text("[data-testid=name]")) == _norm(full)


def test_search_by_chinese_name(desk: Page, tables: dict) -> None:
    cust = tables["customers"]
    chinese = cust[cust["name"].fillna("").str.fullmatch(r"[\u4e00-\u9fff]{2,4}")]
    counts = chinese["name"].value_counts()
    contains = {n: int(cust["name"].fillna("").map(lambda x, n=n: n in x).sum()) for n in counts.index}
    unique = sorted(n for n in counts.index if contains[n] == 1)[0]
    several = max((n for n in counts.index if contains[n] == counts[n]), key=lambda n: (counts[n], n))
    assert counts[several] >= 3
    # one match: the profile opens directly
    desk.open_profile(unique)
    assert desk.text("[data-testid=name]") == unique
    assert desk.text("[data-testid=customer-id]") == cust.loc[cust["name"] == unique, "customer_id"].iloc[0]
    # several customers share a name: a list to choose from, then the chosen profile
    desk.search(several)
    desk.page.wait_for_selector("#results:not([hidden])")
    assert desk.text("#results-title").startswith(f"{counts[several]} customers match")
    items = desk.page.query_selector_all("#result-list li button")
    assert len(items) == counts[several]
    ids = [b.get_attribute("data-id") for b in items]
    assert set(ids) == set(cust.loc[cust["name"] == several, "customer_id"])
    items[-1].click()
    desk.page.wait_for_selector(f"#profile[data-customer-id='{ids[-1]}']:not([hidden])")
    assert desk.text("[data-testid=name]") == several
    # a surname alone matches many customers: the list is capped at 20
    desk.search(several[0])
    desk.page.wait_for_selector("#results:not([hidden])")
    total = int(cust["name"].fillna("").str.contains(several[0], regex=False).sum())
    assert desk.text("#results-title").startswith(f"{total} customers match")
    assert len(desk.page.query_selector_all("#result-list li")) == min(total, 20)


def test_no_match_says_so(desk: Page) -> None:
    desk.search("没有这个客户 nobody-xyz")
    desk.page.wait_for_selector("#msg:not([hidden])")
    assert desk.text("#msg").startswith("No match")
    assert desk.page.is_hidden("#profile") and desk.page.is_hidden("#results")


# ------------------------------------------------------------------------------------------- numbers
def _reasons(desk: Page, kind: str) -> list[tuple[str, float]]:
    out = []
    for li in desk.page.query_selector_all(f"[data-testid={kind}] li.reason"):
        out.append((li.get_attribute("data-feature"), float(li.get_attribute("data-contribution"))))
    return out


def test_page_numbers_equal_the_scoring_endpoints(
    desk: Page, profile_server: ProfileServer, tables: dict, picks: dict, as_of: pd.Timestamp,
    artifacts: Any,
) -> None:
    with httpx.Client(base_url=profile_server.url, headers=profile_server.headers, timeout=60) as api:
        for who in ("lead", "buyer"):
            cid = picks[who]
            item = request_item(tables, cid, as_of)
            desk.open_profile(cid)
            for kind, path in (("lead", "/score_leads"), ("churn", "/predict_churn")):
                r = api.post(path, json={"leads": [item]})
                assert r.status_code == 200, r.text
                res = r.json()["results"][0]
                assert desk.text(f"[data-testid={kind}-score]") == str(res["score"])
                assert desk.text(f"[data-testid={kind}-grade]") == res["grade"]
                assert float(desk.attr(f"[data-testid={kind}-probability]")) == res["probability"]
                assert desk.text(f"[data-testid={kind}-probability]") == f"p = {res['probability']:.4f}"
                expected = [(x["feature"], x["contribution"]) for x in res["reasons"]["positive"]]
                expected += [(x["feature"], x["contribution"]) for x in res["reasons"]["negative"]]
                assert _reasons(desk, kind) == expected and expected
                version = desk.text(f"[data-testid={kind}] [data-testid=model-version]")
                assert version == f"model {res['model']} v{res['model_version']}"
                assert res["model_version"] == profile_server.versions[kind]
            r = api.post("/segment", json={"customers": [item]})
            assert r.status_code == 200, r.text
            seg = r.json()["results"][0]
            assert desk.text("[data-testid=seg-rfm]") == seg["rfm_segment"]
            assert desk.attr("[data-testid=seg-tier]") == seg["value_tier"]
            assert desk.text("[data-testid=seg-tier-zh]") == seg["value_tier_zh"]
            assert int(desk.attr("[data-testid=seg-cluster]")) == seg["cluster"]
            assert seg["cluster_description"] in desk.text("[data-testid=seg-cluster]")
            for testid, key in (("seg-palive", "p_alive"), ("seg-ev", "expected_value"),
                                ("seg-ep", "expected_purchases")):
                shown = desk.attr(f"[data-testid={testid}]")
                assert (None if shown is None else float(shown)) == seg[key], key
            assert desk.text("[data-testid=segment] [data-testid=model-version]") == (
                f"model {seg['model']} v{seg['model_version']}")
            _check_member_card(desk, seg["member"])
            _check_history(desk, item, as_of)
            if who == "buyer":
                desk.page.screenshot(path=str(artifacts / "profile.png"), full_page=True)
    # the profile's PII never reaches the server's log
    log = profile_server.log_text()
    for cid in picks.values():
        row = tables["customers"].set_index("customer_id").loc[cid]
        for col in ("name", "phone", "email", "address"):
            if pd.notna(row[col]):
                assert str(row[col]) not in log, f"{col} of {cid} in the server log"


def _check_member_card(desk: Page, member: dict) -> None:
    """Member level, progress bar and tag chips (tooltip: why the tag applies) as /segment gives them."""
    assert desk.attr("[data-testid=member-level]") == member["member_level"]
    assert member["member_level_zh"] in desk.text("[data-testid=member-level]")
    assert float(desk.attr("[data-testid=level-progress]")) == member["level_progress"]
    if member["next_level"]:
        assert member["progress"] in desk.text("[data-testid=level-progress]")
    chips = desk.page.query_selector_all("[data-testid=member-tags] .chip")
    assert [c.get_attribute("data-tag") for c in chips] == [t["tag"] for t in member["tags"]]
    assert [c.get_attribute("title") for c in chips] == [t["why"] for t in member["tags"]]


def _check_history(desk: Page, item: dict, as_of: pd.Timestamp) -> None:
    """Timeline: most recent first, capped at 50, the customer's latest event on top; the funnel stage reached."""
    from features.contract import FUNNEL_STAGES

    ev = item["events"]
    limit = as_of.isoformat()
    times = [r["ts"] for r in ev["interactions"] + ev["orders"]]
    times += [r[c] for r in ev["marketing_touches"] for c in ("sent_at", "opened_at", "clicked_at") if r[c]]
    times = sorted((t for t in times if t <= limit), reverse=True)
    if desk.page.is_visible("[data-testid=timeline-more]"):
        assert len(desk.page.query_selector_all("[data-testid=timeline] li:not([hidden])")) == 12
        desk.page.click("[data-testid=timeline-more]")
    items = desk.page.query_selector_all("[data-testid=timeline] li")
    assert all(li.is_visible() for li in items)
    shown = [li.query_selector("time").get_attribute("datetime") for li in items]
    assert len(shown) == min(50, len(times))
    assert shown == times[: len(shown)]
    kinds = {li.get_attribute("data-kind") for li in desk.page.query_selector_all("[data-testid=timeline] li")}
    assert kinds <= {"interaction", "order", "touch", "response"}
    depth = max((FUNNEL_STAGES.index(r["event_type"]) + 1 for r in ev["interactions"]
                 if r["event_type"] in FUNNEL_STAGES and r["ts"] <= limit), default=0)
    here = desk.page.query_selector("[data-testid=funnel] li.here")
    assert (here.get_attribute("data-stage") if here else None) == (FUNNEL_STAGES[depth - 1] if depth else None)


# -------------------------------------------------------------------------------------------- layout
def test_phone_width_layout(browser: Any, profile_server: ProfileServer, picks: dict, artifacts: Any) -> None:
    ctx = browser.new_context(**PHONE)
    p = Page(ctx.new_page(), profile_server).open().sign_in()
    p.page.wait_for_selector("#searchbox:not([hidden])")
    p.open_profile(picks["buyer"])
    width = p.page.evaluate("window.innerWidth")
    assert width == 390
    assert p.page.evaluate("document.documentElement.scrollWidth") <= width, "horizontal scrolling on a phone"
    boxes = {c.get_attribute("data-testid"): c.bounding_box() for c in p.page.query_selector_all("#profile .card")}
    assert len(boxes) == 8  # attributes, segment, member, funnel, lead, churn, timeline, models
    for box in boxes.values():  # one column, inside the screen
        assert box["x"] == pytest.approx(boxes["lead"]["x"], abs=1)
        assert box["x"] >= 0 and box["x"] + box["width"] <= width + 0.5
    order = sorted(boxes, key=lambda k: boxes[k]["y"])
    assert order[:2] == ["lead", "churn"], order  # the scores first on a phone
    p.page.screenshot(path=str(artifacts / "profile-phone.png"), full_page=True)
    ctx.close()
    assert p.errors == [], f"console errors: {p.errors}"


# ------------------------------------------------------------------------------------ without a key
def test_unauthenticated_visit_sees_no_customer_data(
    browser: Any, profile_server: ProfileServer, tables: dict, picks: dict
) -> None:
    cust = tables["customers"].set_index("customer_id")
    secrets = [picks["buyer"], cust.loc[picks["buyer"], "name"], *cust["name"].dropna().head(50)]
    # the page itself is public and holds no customer data
    r = httpx.get(f"{profile_server.url}/ui", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
    assert "default-src 'none'" in r.headers["content-security-policy"]
    assert not [s for s in secrets if s in r.text]
    # its API refuses calls without a valid key, and says nothing about customers
    for headers in ({}, {"Authorization": "Bearer wrong-key"}, {"Authorization": API_KEYS[0]}):
        for method, path, body in (("GET", "/ui/api/status", None), ("POST", "/ui/api/search", {"q": "王"}),
                                   ("POST", "/ui/api/profile", {"customer_id": picks["buyer"]})):
            r = httpx.request(method, f"{profile_server.url}{path}", json=body, headers=headers, timeout=30)
            assert r.status_code == 401, (path, headers, r.text)
            assert not [s for s in secrets if s in r.text]
    # in the browser: the key prompt, and a refused key shows nothing
    ctx = browser.new_context(**DESKTOP)
    p = Page(ctx.new_page(), profile_server).open()
    p.page.wait_for_selector("#keybox:not([hidden])")
    assert p.page.is_hidden("#searchbox") and p.page.is_hidden("#profile")
    p.sign_in("wrong-key")
    p.page.wait_for_selector("#msg.error:not([hidden])")
    assert "refused" in p.text("#msg")
    assert p.page.is_visible("#keybox") and p.page.is_hidden("#searchbox")
    body = p.page.inner_text("body")
    assert not [s for s in secrets if s in body]
    assert p.page.evaluate("sessionStorage.length") == 0  # the refused key is not kept
    ctx.close()
    # the only console error is the refused call itself
    assert all("401" in e for e in p.errors), p.errors


def test_analyst_sees_masked_pii_on_the_page(browser: Any, profile_server: ProfileServer, tables: dict,
                                            picks: dict) -> None:
    """A key added to the keys file while the server runs (no restart) signs an analyst in: the page shows the
    customer with phone, e-mail and name masked (docs/access.md)."""
    from serving.access.keys import add_key

    key, _ = add_key(profile_server.log.parent / "keys.yaml", "ana", "analyst")
    cid = picks["buyer"]
    cust = tables["customers"].set_index("customer_id").loc[cid]
    ctx = browser.new_context(**DESKTOP)
    p = Page(ctx.new_page(), profile_server).open().sign_in(key)
    p.page.wait_for_selector("#searchbox:not([hidden])")
    p.open_profile(cid)
    assert p.text("[data-testid=customer-id]") == cid
    body = p.page.inner_text("body")
    for k in ("name", "phone", "email"):
        if pd.notna(cust[k]):
            assert str(cust[k]) not in body, k
    if pd.notna(cust["phone"]):
        assert p.text("[data-field=phone]") == f"{cust['phone'][:3]}****{cust['phone'][-4:]}"
    assert "masked for your role" in p.text("[data-testid=attributes]")
    ctx.close()
    assert p.errors == [], f"console errors: {p.errors}"


# ------------------------------------------------------------------------------------------- language
def test_language_switch_translates_the_page_and_is_remembered(
    browser: Any, profile_server: ProfileServer, picks: dict
) -> None:
    from tests.unit.test_i18n import untranslated

    ctx = browser.new_context(locale="en-US", **DESKTOP)
    p = Page(ctx.new_page(), profile_server).open().sign_in()
    p.page.wait_for_selector("#searchbox:not([hidden])")
    p.open_profile(picks["buyer"])
    assert p.text("[data-testid=lead] h2").startswith("Lead score")
    assert untranslated(p.page.inner_text("body"), "en") == []
    p.page.select_option("#lang", "zh")  # redraws the profile shown, in Chinese
    p.page.wait_for_function("document.documentElement.lang === 'zh-CN'")
    assert p.text("[data-testid=lead] h2").startswith("线索评分")
    assert p.page.get_attribute("#q", "placeholder") == "客户编号或姓名"
    assert untranslated(p.page.inner_text("body"), "zh") == []
    p.page.reload()  # remembered (localStorage); the key is still in the tab
    p.page.wait_for_selector("#searchbox:not([hidden])")
    assert p.page.evaluate("document.documentElement.lang") == "zh-CN" and p.text("#searchform button") == "搜索"
    p.open_profile(picks["lead"])
    assert p.text("[data-testid=churn] h2").startswith("流失风险")
    assert untranslated(p.page.inner_text("body"), "zh") == []
    ctx.close()
    assert p.errors == [], p.errors


def test_server_error_shows_in_the_page_language_and_follows_a_switch(
    browser: Any, profile_server: ProfileServer
) -> None:
    """A refusal from the server (a role without the page: 403 on /ui/api/status) is shown in Chinese when the
    page is in Chinese, and an error on screen is shown again in the new language after a switch."""
    from serving.access.keys import add_key

    key, _ = add_key(profile_server.log.parent / "keys.yaml", "bot-lang", "integration")
    ctx = browser.new_context(locale="zh-CN", **DESKTOP)
    p = Page(ctx.new_page(), profile_server).open()
    p.page.wait_for_selector("#keybox:not([hidden])")
    assert p.page.evaluate("document.documentElement.lang") == "zh-CN"
    p.sign_in(key)
    p.page.wait_for_selector("#msg.error:not([hidden])")
    assert p.text("#msg") == "角色 integration 无权调用 /ui/api/status（docs/access.md）"
    p.page.select_option("#lang", "en")  # the request is asked again: the server answers in English
    p.page.wait_for_selector("#msg.error:has-text('the role integration')")  # (a selector: the CSP forbids eval)
    assert p.text("#msg") == "the role integration may not call /ui/api/status (docs/access.md)"
    p.page.select_option("#lang", "zh")
    p.page.wait_for_selector("#msg.error:has-text('角色 integration')")
    ctx.close()
    assert p.errors and all("403" in e for e in p.errors), p.errors  # only the refused calls themselves
