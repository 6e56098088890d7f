"""The profile page's in-memory index and helpers (serving/ui: index, page, routes) without a server: event ranges
equal a plain filter of the tables, search rules, as_of, timeline, funnel (equal to the feature ``funnel_depth``),
the page's Content-Security-Policy (computed from the files in serving/ui/static), request checks."""

from __future__ import annotations

import base64
import hashlib
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pandas as pd
import pytest

from serving.ui import index as ui_index
from serving.ui import page as ui_page
from serving.ui import routes as ui_routes


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small demo data dir (Chinese, pinyin and English names; dictionary-encoded event columns on load)."""
    from features.synth import generate_crm_data, write_crm_data

    out = tmp_path_factory.mktemp("profile_index") / "data"
    write_crm_data(generate_crm_data(300, 120, 2), out)
    return out


@pytest.fixture(scope="module")
def tables(data_dir: Path) -> dict[str, pd.DataFrame]:
    from features.io import load_tables

    return load_tables(data_dir)


@pytest.fixture(scope="module")
def index(data_dir: Path) -> ui_index.ProfileIndex:
    return ui_index.ProfileIndex.load(data_dir)


def test_normalise_text_folds_case_width_and_spaces() -> None:
    assert ui_index.normalise_text("ＺＨＡＮＧ Wei") == "zhangwei"
    assert ui_index.normalise_text("  Emily\u3000CHEN ") == "emilychen"  # ideographic space
    assert ui_index.normalise_text("王秀英") == "王秀英"
    assert ui_index.normalise_text("Straße") == "strasse"


def test_events_of_equal_a_plain_filter_of_each_table(index: ui_index.ProfileIndex, tables: dict) -> None:
    ids = tables["customers"]["customer_id"].tolist()
    counts = tables["interactions"].groupby("customer_id", observed=True).size()
    quiet = [c for c in ids if c not in counts.index][:2]  # customers without interactions too
    for cid in [*ids[:5], *ids[-3:], *quiet, counts.idxmax()]:
        got = index.events_of(index.row_of(cid))
        for name, tcol in ui_index.EVENT_TIME_COLUMNS.items():
            df = tables[name]
            want = df[(df["customer_id"] == cid).fillna(False).to_numpy(dtype=bool)]
            want = want.sort_values(tcol, kind="stable").drop(columns="customer_id")
            want_rec = [{k: ui_index.json_value(v) for k, v in r.items()} for r in want.to_dict("records")]
            assert got[name] == want_rec, (cid, name)


def test_search_by_id_exact_then_ignoring_case_and_width(index: ui_index.ProfileIndex) -> None:
    cid = index.ids[7]
    for q in (cid, f"  {cid} ", cid.lower(), cid.translate({ord(c): ord(c) + 0xFEE0 for c in cid})):
        found = index.search(q)
        assert (found.by, found.total, found.rows) == ("id", 1, [7]), q


def test_search_by_name_part_ranks_exact_names_first_and_caps(index: ui_index.ProfileIndex, tables: dict) -> None:
    names = tables["customers"]["name"]
    chinese = names[names.fillna("").str.fullmatch(r"[\u4e00-\u9fff]{2,3}")]
    surname = chinese.str[0].value_counts().index[0]
    found = index.search(surname, limit=5)
    expected = int(names.fillna("").str.contains(surname, regex=False).sum())
    assert found.by == "name" and found.total == expected > 5 and len(found.rows) == 5
    full = chinese.iloc[0]
    found = index.search(full)
    assert [index.customers["name"].iloc[r] for r in found.rows][0] == full
    assert all(full in index.customers["name"].iloc[r] for r in found.rows)
    assert index.search("没有这个名字").total == 0
    assert index.search("   ").total == 0
    latin = names.dropna()[names.dropna().str.contains(" ")].iloc[0]
    assert index.search(latin.upper().replace(" ", "")).total >= 1


def test_as_of_is_the_latest_event_or_the_given_time(tables: dict) -> None:
    latest = max(tables["interactions"]["ts"].max(), tables["orders"]["ts"].max(),
                 tables["marketing_touches"][["sent_at", "opened_at", "clicked_at"]].max().max())
    idx = ui_index.ProfileIndex.from_tables(tables)
    assert idx.as_of == latest and idx.as_of_source == "latest event in the data"
    idx = ui_index.ProfileIndex.from_tables(tables, "2025-03-01")
    assert idx.as_of == pd.Timestamp("2025-03-01") and idx.as_of_source == "given"
    with pytest.raises(ValueError, match="as_of: not a date"):
        ui_index.ProfileIndex.from_tables(tables, "yesterday-ish")


def test_timeline_is_recent_first_capped_and_stops_at_as_of(index: ui_index.ProfileIndex, tables: dict) -> None:
    counts = tables["interactions"].groupby("customer_id", observed=True).size()
    cid = counts.idxmax()
    events = index.events_of(index.row_of(cid))
    all_items, total = ui_page.build_timeline(events, index.as_of_iso, limit=10_000)
    assert total == len(all_items) >= counts.max()
    assert [x["ts"] for x in all_items] == sorted((x["ts"] for x in all_items), reverse=True)
    items, total2 = ui_page.build_timeline(events, index.as_of_iso, limit=5)
    assert total2 == total and items == all_items[:5]
    cut = all_items[len(all_items) // 2]["ts"]
    early, _ = ui_page.build_timeline(events, cut, limit=10_000)
    assert early and all(x["ts"] <= cut for x in early)
    kinds = {x["kind"] for x in all_items}
    assert "interaction" in kinds


def test_touch_responses_are_their_own_timeline_entries() -> None:
    events = {"marketing_touches": [{"campaign_id": "CMP-1", "channel": "sms", "sent_at": "2025-01-01T10:00:00",
                                     "opened_at": "2025-01-01T11:00:00", "clicked_at": "2025-02-01T00:00:00",
                                     "coupon_claimed": True, "responded": False}]}
    items, total = ui_page.build_timeline(events, "2025-01-15T00:00:00")
    assert total == 2  # the click is after as_of
    assert [(x["kind"], x["title"]) for x in items] == [("response", "sms message opened"),
                                                        ("touch", "sms message sent")]
    assert "coupon claimed" in items[1]["detail"]


def test_funnel_stage_equals_the_feature_funnel_depth(index: ui_index.ProfileIndex, tables: dict) -> None:
    from features.build import build_features

    feats = build_features(tables, index.as_of)
    for cid in feats.index[:40]:
        got = ui_page.funnel_reached(index.events_of(index.row_of(cid)), index.as_of_iso)
        assert got["depth"] == feats.loc[cid, "funnel_depth"], cid


def test_customer_status_lead_and_active() -> None:
    as_of = pd.Timestamp("2025-06-30")
    assert ui_page.customer_status({"orders": []}, as_of)["is_lead"]
    recent = {"orders": [{"status": "paid", "ts": "2025-06-01T00:00:00"},
                         {"status": "refunded", "ts": "2025-06-20T00:00:00"},
                         {"status": "paid", "ts": "2025-07-02T00:00:00"}]}  # after as_of: not counted
    st = ui_page.customer_status(recent, as_of)
    assert (st["paid_orders"], st["last_paid_order"], st["is_lead"], st["is_active"]) == (
        1, "2025-06-01T00:00:00", False, True)
    old = {"orders": [{"status": "paid", "ts": "2024-01-01T00:00:00"}]}
    assert not ui_page.customer_status(old, as_of)["is_active"]


def test_page_policy_allows_exactly_its_inline_script_and_style() -> None:
    html, csp = ui_routes.page_html()
    script = re.search(r"<script>(.*)</script>", html, re.S).group(1)
    style = re.search(r"<style>(.*)</style>", html, re.S).group(1)
    for text, directive in ((script, "script-src"), (style, "style-src")):
        digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
        assert f"{directive} 'sha256-{digest}'" in csp
    assert "default-src 'none'" in csp and "unsafe-inline" not in csp
    assert "/*CSS*/" not in html and "/*JS*/" not in html
    assert "innerHTML" not in script  # data goes in as text only


def test_page_is_the_static_files_with_style_and_script_inlined() -> None:
    static = Path(ui_routes.__file__).parent / "static"
    page, css, js = ((static / n).read_text(encoding="utf-8") for n in ("profile.html", "profile.css", "profile.js"))
    html, _ = ui_routes.page_html()
    import html as _html

    catalogue = _html.escape(ui_routes.page_messages_json(page, js), quote=True)
    assert html == page.replace("/*I18N*/", catalogue, 1).replace("/*CSS*/", css, 1).replace("/*JS*/", js, 1)
    assert '"zh"' in _html.unescape(catalogue)  # the page's messages travel with it, translated
    assert 'id="searchform"' in html and "sessionStorage" in js


def _run(coro: Any) -> Any:
    """Run a coroutine that never waits (asyncio.run fails when another test's event loop is running)."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    raise AssertionError("the coroutine suspended")


class _Request:
    def __init__(self, body: bytes) -> None:
        self._body = body

    async def body(self) -> bytes:
        return self._body


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        (b"{", 400, "body: not valid JSON"),
        (b"[]", 422, "body: expected a JSON object"),
        (b'{"q": 3}', 422, "q: required, a string"),
        (b'{"q": "  "}', 422, "q: empty"),
        (b'{"q": "x", "name": "y"}', 422, "name: unknown field"),
        (('{"q": "' + "x" * 201 + '"}').encode(), 422, "q: longer than 200"),
    ],
)
def test_bad_request_bodies_name_the_field(body: bytes, status: int, message: str) -> None:
    with pytest.raises(ui_index.ProfileError) as e:
        _run(ui_routes._body_field(_Request(body), "q", ui_index.MAX_QUERY_CHARS))
    assert e.value.status == status and e.value.message.startswith(message)


def test_load_profiles_keeps_the_reason_when_there_is_no_data(tmp_path: Path) -> None:
    store = ui_index.load_profiles(SimpleNamespace(data_dir=None, as_of=None))
    assert store.index is None and "--data" in store.error
    with pytest.raises(ui_index.ProfileError) as e:
        store.require()
    assert e.value.status == 503
    store = ui_index.load_profiles(SimpleNamespace(data_dir=str(tmp_path / "nope"), as_of=None))
    assert store.index is None and "nope" in store.error


def test_load_profiles_reads_the_data_dir_at_the_given_as_of(data_dir: Path) -> None:
    store = ui_index.load_profiles(SimpleNamespace(data_dir=str(data_dir), as_of="2025-05-01T12:00:00"))
    assert store.error is None and store.require().as_of == pd.Timestamp("2025-05-01T12:00:00")
    assert len(store.index) == 300


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--as-of", "2025-06-30"], "--as-of needs --data"),
        (["--as-of", "not-a-date", "--data", "."], "--as-of: not a date or time"),
    ],
)
def test_serve_refuses_a_bad_as_of_in_one_line(args: list[str], message: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from typer.testing import CliRunner

    from serving.cli import app

    for var in ("CRMSCORE_DATA_DIR", "CRMSCORE_AS_OF", "CRMSCORE_SERVING_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    r = CliRunner().invoke(app, ["serve", *args])
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output


def test_a_good_request_body_gives_the_value() -> None:
    body = _Request('{"q": " 王秀英 "}'.encode())
    assert _run(ui_routes._body_field(body, "q", ui_index.MAX_QUERY_CHARS)) == " 王秀英 "
