"""Report figures against a small fixture computed by hand (every number below is worked out in the comments)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.contract import coerce_types
from serving.report import tables as T
from serving.report.render import Section, fmt_value, page_html, pick_cjk_font, table_html

AS_OF = pd.Timestamp("2025-03-31 23:59:59")
NA = np.nan


def ts(s: str) -> pd.Timestamp:
    return pd.Timestamp(s)


@pytest.fixture(scope="module")
def tables() -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B", "C", "D"],
            "created_at": [ts("2025-01-01"), ts("2025-01-05"), ts("2025-02-01"), ts("2025-03-01")],
            "source_channel": ["web", "app", "web", "app"],
            "province": ["广东省", "浙江省", "广东省", None],
            "city": ["广州市", "杭州市", "深圳市", None],
            "name": ["张三", "李四", "王五", "赵六"],
            "phone": ["13800000001", "13800000002", "13800000003", "13800000004"],
        }
    )
    orders = pd.DataFrame(
        {
            "order_id": [f"o{i}" for i in range(1, 9)],
            "customer_id": ["A", "A", "B", "B", "C", "C", "A", "B"],
            "ts": [
                ts("2025-01-10"),
                ts("2025-02-15"),
                ts("2025-01-20"),
                ts("2025-02-20"),
                ts("2025-02-05"),
                ts("2025-03-10"),
                ts("2025-03-20"),
                ts("2025-04-02"),
            ],  # fmt: skip
            "amount": [100.0, 50.0, 200.0, 80.0, 120.0, 60.0, 30.0, 999.0],
            "status": ["paid", "paid", "paid", "cancelled", "paid", "refunded", "paid", "paid"],
        }
    )
    interactions = pd.DataFrame(
        {
            "customer_id": ["A", "A", "A", "B", "B", "C", "D", "D"],
            "ts": [
                ts("2025-01-01"),
                ts("2025-01-02"),
                ts("2025-01-10"),
                ts("2025-01-05"),
                ts("2025-01-20"),
                ts("2025-02-01"),
                ts("2025-03-01"),
                ts("2025-04-05"),
            ],  # fmt: skip
            "channel": ["web"] * 8,
            "event_type": ["visit", "register", "pay", "visit", "pay", "visit", "register", "visit"],
        }
    )
    touches = pd.DataFrame(
        {
            "touch_id": ["t1", "t2"],
            "customer_id": ["A", "C"],
            "campaign_id": ["K1", "K1"],
            "channel": ["sms", "sms"],
            "sent_at": [ts("2025-02-01"), ts("2025-02-01")],
            "opened_at": [ts("2025-02-02"), ts("2025-02-03")],
            "clicked_at": [ts("2025-02-02"), pd.NaT],
            "coupon_claimed": [True, False],
            "responded": [True, False],
        }
    )
    return {
        "customers": coerce_types(customers, "customers"),
        "orders": coerce_types(orders, "orders"),
        "interactions": coerce_types(interactions, "interactions"),
        "marketing_touches": coerce_types(touches, "marketing_touches"),
    }


def test_sales_by_month(tables):
    s = T.sales_monthly(tables, AS_OF).set_index("month")
    assert list(s.index) == ["2025-01", "2025-02", "2025-03"]  # o8 (April) is after T
    # Jan: o1 A 100 + o3 B 200, both first purchases
    jan = s.loc["2025-01"]
    assert (jan["revenue"], jan["paid_orders"], jan["orders"], jan["buyers"], jan["new_buyers"]) == (300, 2, 2, 2, 2)
    assert jan["aov"] == 150 and jan["payment_rate"] == 1 and jan["new_share_revenue"] == 1
    # Feb: o2 A 50 paid, o4 B cancelled, o5 C 120 paid (C's first)
    feb = s.loc["2025-02"]
    assert (feb["revenue"], feb["paid_orders"], feb["orders"], feb["buyers"]) == (170, 2, 3, 2)
    assert (feb["new_buyers"], feb["returning_buyers"]) == (1, 1)
    assert feb["payment_rate"] == pytest.approx(2 / 3)
    assert feb["aov"] == 85
    assert feb["new_share_buyers"] == 0.5 and feb["new_share_revenue"] == pytest.approx(120 / 170)
    assert feb["revenue_change"] == pytest.approx((170 - 300) / 300)
    assert feb["aov_change"] == pytest.approx((85 - 150) / 150)
    # Mar: o6 C refunded, o7 A 30 paid
    mar = s.loc["2025-03"]
    assert (mar["revenue"], mar["paid_orders"], mar["orders"], mar["new_buyers"]) == (30, 1, 2, 0)
    assert mar["payment_rate"] == 0.5 and mar["revenue_change"] == pytest.approx((30 - 170) / 170)
    assert np.isnan(jan["revenue_change"])


def test_channels(tables):
    c = T.channels(tables, AS_OF).set_index("source_channel")
    # web: A (100+50+30) and C (120) = 300; app: B 200 (April order excluded), D never bought
    assert c.loc["web"].tolist() == [2, 2, 1.0, 300.0, 0.6]
    assert c.loc["app"].tolist() == [2, 1, 0.5, 200.0, 0.4]


def test_funnel_and_time_to_payment(tables):
    f = T.funnel(tables, AS_OF).set_index(["source_channel", "stage"])
    # all: visit A, B, C (D's visit is after T); register A, D; pay A, B
    assert f.loc[("all", "visit"), "customers"] == 3
    assert f.loc[("all", "register"), "customers"] == 2
    assert f.loc[("all", "register"), "conversion_from_previous"] == pytest.approx(2 / 3)
    assert f.loc[("all", "browse"), "conversion_from_previous"] == 0
    assert np.isnan(f.loc[("all", "favorite"), "conversion_from_previous"])  # 0 of 0
    assert f.loc[("all", "pay"), "customers"] == 2
    assert f.loc[("web", "visit"), "customers"] == 2 and f.loc[("web", "pay"), "customers"] == 1
    assert f.loc[("app", "register"), "share_of_leads"] == 0.5
    d = T.time_to_payment(tables, AS_OF).set_index("source_channel")
    # A: visit 01-01 → pay 01-10 = 9 days; B: 01-05 → 01-20 = 15 days
    assert d.loc["web", "median_days"] == 9 and d.loc["app", "median_days"] == 15
    assert d.loc["all"].tolist() == [2, 12, 12]


def test_campaigns(tables):
    c = T.campaigns(tables, AS_OF, window_days=14).iloc[0]
    assert c["campaign_id"] == "K1" and c["sent"] == 2
    assert (c["open_rate"], c["click_rate"], c["coupon_claim_rate"]) == (1.0, 0.5, 0.5)
    # touched: A paid 02-15 and C paid 02-05, both within (02-01, 02-15]
    assert c["touched_customers"] == 2 and c["touched_conversion"] == 1.0
    # untouched: created before 02-01 and not touched 02-01..02-15 = B; B's only February order was cancelled
    assert c["untouched_customers"] == 1 and c["untouched_conversion"] == 0.0
    assert c["difference"] == 1.0


def test_regions(tables):
    r = T.regions(tables, AS_OF).set_index("province")
    assert r.loc["广东省"].tolist() == [2, 2, 300.0, 0.6]
    assert r.loc["浙江省"].tolist() == [1, 1, 200.0, 0.4]
    assert r.loc["unknown"].tolist() == [1, 0, 0.0, 0.0]
    rc = T.regions(tables, AS_OF, "city").set_index(["province", "city"])
    assert rc.loc[("广东省", "深圳市"), "revenue"] == 120


def test_retention(tables):
    r = T.retention(tables, AS_OF, max_months=3).set_index("cohort")
    # Jan cohort A, B: A buys in Feb and Mar; Feb cohort C: its March order was refunded
    assert r.loc["2025-01"].tolist()[:4] == [2, 1.0, 0.5, 0.5]
    assert np.isnan(r.loc["2025-01", "month_3"])  # April has not happened by T
    assert r.loc["2025-02"].tolist()[:3] == [1, 1.0, 0.0]
    assert np.isnan(r.loc["2025-02", "month_2"])


def test_no_pii_in_any_table(tables):
    for name, df in {
        "sales": T.sales_monthly(tables, AS_OF),
        "channels": T.channels(tables, AS_OF),
        "regions": T.regions(tables, AS_OF, "city"),
        "campaigns": T.campaigns(tables, AS_OF),
    }.items():
        text = df.to_csv()
        for secret in ("张三", "13800000001", "customer_id"):
            assert secret not in text, name


def test_html_is_self_contained_and_escapes():
    df = pd.DataFrame({"province": ["<b>x</b>"], "conversion_rate": [0.123], "revenue": [1234.5]})
    page = page_html("t", "s", [Section("sales", "Sales 销售", [], [("tab", df)], "def", ["note"])])
    assert "<b>x</b>" not in page and "&lt;b&gt;x&lt;/b&gt;" in page
    assert "12.3%" in page and "1,234.50" in page
    assert "http://" not in page and "https://" not in page and "<script" not in page
    assert fmt_value("revenue", np.nan) == "–"
    assert "more rows" in table_html(pd.DataFrame({"a": range(40)}), max_rows=5)


def test_cjk_font_pick_returns_a_usable_name_or_none():
    name = pick_cjk_font()
    if name is not None:
        from matplotlib import font_manager as fm

        assert fm.findfont(fm.FontProperties(family=name), fallback_to_default=False)


def test_absent_event_tables_give_empty_sections(tables):
    only = {k: tables[k] for k in ("customers", "orders")}
    f = T.funnel(only, AS_OF)
    assert set(f["source_channel"]) == {"all"} and (f["customers"] == 0).all() and (f["leads"] == 4).all()
    assert T.campaigns(only, AS_OF).empty
    assert T.time_to_payment(only, AS_OF).set_index("source_channel").loc["all", "customers"] == 0


def test_without_a_cjk_font_charts_fall_back_to_english_labels(monkeypatch):
    import warnings

    from serving.report import render

    monkeypatch.setattr(render, "pick_cjk_font", lambda: None)
    p = render.Painter()
    assert p.cjk is None and p.label("revenue") == "revenue"
    assert p.text("广东省").isascii() and p.text("web") == "web"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a missing glyph would warn
        chart = p.bars(["广东省", "web"], [1.0, 2.0], p.label("Revenue by province"), "revenue")
    assert len(chart.png_b64) > 100
