"""Feature builder: hand-computed values, point-in-time correctness, batch/online equality, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from features.build import CRMFeatureBuilder, CRMSnapshot, build_features, build_online_features
from features.contract import PII_COLUMNS, coerce_types, empty_frame
from tests.fixtures.crm import make_tables

T = pd.Timestamp("2025-06-30")


def _tiny() -> dict[str, pd.DataFrame]:
    customers = pd.DataFrame(
        {
            "customer_id": ["A", "B"],
            "created_at": [T - pd.Timedelta(days=100), T - pd.Timedelta(days=10)],
            "source_channel": ["web", "wechat"],
            "member_level": ["gold", None],
            "age": [30, None],
            "name": ["王芳", "李雷"],
        }
    ).reindex(columns=empty_frame("customers").columns)
    orders = pd.DataFrame(
        {
            "order_id": ["o1", "o2", "o3", "o4"],
            "customer_id": ["A", "A", "A", "A"],
            "ts": [
                T - pd.Timedelta(days=5),
                T - pd.Timedelta(days=40),
                T - pd.Timedelta(days=2),
                T + pd.Timedelta(days=1),
            ],
            "amount": [100.0, 50.0, 20.0, 999.0],
            "status": ["paid", "paid", "refunded", "paid"],
        }
    ).reindex(columns=empty_frame("orders").columns)
    interactions = pd.DataFrame(
        {
            "customer_id": ["A", "A", "A", "B", "B", "ZZZ"],
            "ts": [
                T - pd.Timedelta(days=1),
                T - pd.Timedelta(days=1, hours=2),
                T - pd.Timedelta(days=45),
                T - pd.Timedelta(days=3),
                T - pd.Timedelta(days=2),
                T - pd.Timedelta(days=1),
            ],
            "channel": ["web", "app", "web", "wechat", "wechat", "web"],
            "event_type": ["add_to_cart", "browse", "visit", "register", "teleport", "visit"],
        }
    )
    return {
        "customers": coerce_types(customers, "customers"),
        "orders": coerce_types(orders, "orders"),
        "interactions": coerce_types(interactions, "interactions"),
    }


def test_hand_computed_features():
    f = build_features(_tiny(), T)
    a, b = f.loc["A"], f.loc["B"]
    assert a["orders_30d"] == 1 and a["orders_90d"] == 2 and a["spend_90d"] == 150.0
    assert a["days_since_last_order"] == pytest.approx(5.0)
    assert a["avg_order_value"] == 75.0
    assert a["refund_share"] == pytest.approx(1 / 3)
    assert (
        a["n_add_to_cart_7d"] == 1
        and a["n_browse_7d"] == 1
        and a["n_visit_7d"] == 0
        and a["n_visit_90d"] == 1
    )
    assert a["funnel_depth"] == 6  # add_to_cart is stage 6 of 9
    assert a["added_to_cart"] == 1 and a["reached_checkout"] == 0
    assert a["active_days_7d"] == 1  # 1 day and 1 day 2 hours before T fall on the same day offset
    assert a["n_distinct_channels_90d"] == 2
    assert a["tenure_days"] == pytest.approx(100.0)
    # B: a brand-new lead with no orders, an unknown event type, missing profile values
    assert b["orders_total"] == 0 and np.isnan(b["avg_order_value"])
    assert b["days_since_last_order"] == 3650.0
    assert b["interactions_7d"] == 2 and b["n_register_7d"] == 1  # unknown 'teleport' counts in totals only
    assert b["funnel_depth"] == 2
    assert np.isnan(b["age"]) and b["member_level"] is None
    # events for unknown customers are ignored, not an error
    assert "ZZZ" not in f.index
    assert not set(f.columns) & PII_COLUMNS


def test_event_one_second_after_cutoff_changes_nothing():
    tables = make_tables(80, seed=1)
    base = build_features(tables, T)
    late = dict(tables)
    extra_i = pd.DataFrame(
        {
            "customer_id": base.index[:40],
            "ts": T + pd.Timedelta(seconds=1),
            "channel": "web",
            "event_type": "pay",
        }
    )
    late["interactions"] = pd.concat([tables["interactions"], coerce_types(extra_i, "interactions")])
    extra_o = pd.DataFrame(
        {
            "order_id": [f"late{i}" for i in range(40)],
            "customer_id": base.index[:40],
            "ts": T + pd.Timedelta(seconds=1),
            "amount": 1e6,
            "status": "paid",
        }
    ).reindex(columns=empty_frame("orders").columns)
    late["orders"] = pd.concat([tables["orders"], coerce_types(extra_o, "orders")])
    touches = tables["marketing_touches"].copy()
    touches["clicked_at"] = touches["clicked_at"].where(
        touches["clicked_at"] <= T, T + pd.Timedelta(seconds=1)
    )
    late["marketing_touches"] = touches
    pd.testing.assert_frame_equal(base, build_features(late, T))
    # and the same event one second before T does change the features
    early = dict(tables)
    extra_i["ts"] = T - pd.Timedelta(seconds=1)
    early["interactions"] = pd.concat([tables["interactions"], coerce_types(extra_i, "interactions")])
    assert not build_features(early, T)["n_pay_7d"].equals(base["n_pay_7d"])


def test_customers_created_after_cutoff_are_not_scored():
    tables = make_tables(50, seed=2)
    f = build_features(tables, T - pd.Timedelta(days=200))
    created = tables["customers"].set_index("customer_id")["created_at"]
    assert (created.loc[f.index] <= T - pd.Timedelta(days=200)).all()


def test_online_path_equals_batch_path_over_many_entities():
    tables = make_tables(60, seed=3)
    builder = CRMFeatureBuilder().fit()
    batch = builder.transform(CRMSnapshot(tables, T))
    for cid in batch.index:
        profile = tables["customers"].set_index("customer_id").loc[cid].to_dict()
        profile["customer_id"] = cid
        events = {
            name: tables[name][tables[name]["customer_id"] == cid]
            .drop(columns="customer_id")
            .to_dict("records")
            for name in ("interactions", "orders", "marketing_touches")
        }
        online = build_online_features(builder, profile, events, T)
        pd.testing.assert_frame_equal(online, batch.loc[[cid]], check_names=False)


def test_online_path_equals_batch_path_with_timestamps_sent_as_text():
    """Events as a CRM sends them in JSON: ISO text ("T" or " " separated, with or without microseconds,
    a UTC offset, a bare date), mixed with missing values; the online features equal the batch ones."""
    tables = make_tables(40, seed=5)
    builder = CRMFeatureBuilder().fit()
    batch = builder.transform(CRMSnapshot(tables, T))

    def text(v: object, k: int) -> object:
        if v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
            return None
        ts = pd.Timestamp(v).to_pydatetime()
        if k % 4 == 0:
            return ts.isoformat(sep=" ")
        if k % 4 == 1 and ts.microsecond == 0 and ts.hour == ts.minute == ts.second == 0:
            return ts.date().isoformat()
        if k % 4 == 2:  # the same instant at +08:00
            return (pd.Timestamp(ts).tz_localize("UTC").tz_convert("Asia/Shanghai")).isoformat()
        return ts.isoformat()

    time_columns = {"ts", "sent_at", "opened_at", "clicked_at"}
    for cid in batch.index:
        profile = tables["customers"].set_index("customer_id").loc[cid].to_dict()
        profile["customer_id"] = cid
        events = {
            name: [
                {c: (text(v, k) if c in time_columns else v) for c, v in r.items()}
                for k, r in enumerate(
                    tables[name][tables[name]["customer_id"] == cid].drop(columns="customer_id").to_dict("records")
                )
            ]
            for name in ("interactions", "orders", "marketing_touches")
        }
        online = build_online_features(builder, profile, events, T)
        pd.testing.assert_frame_equal(online, batch.loc[[cid]], check_names=False)


def test_bad_event_timestamp_text_is_an_error():
    builder = CRMFeatureBuilder().fit()
    rows = [{"ts": f"2025-06-{d:02d}T10:00:00", "event_type": "visit", "channel": "web"} for d in range(1, 20)]
    rows[7]["ts"] = "2025-02-30T10:00:00"  # no such day
    with pytest.raises(ValueError, match="2025-02-30"):
        builder.transform_one({"customer_id": "x"}, {"interactions": rows}, T)


def test_brand_new_lead_with_no_events_gets_valid_features():
    builder = CRMFeatureBuilder().fit()
    f = build_online_features(builder, {"customer_id": "new", "source_channel": "martian"}, None, T)
    assert len(f) == 1
    row = f.iloc[0]
    assert row["tenure_days"] == 0 and row["orders_total"] == 0 and row["funnel_depth"] == 0
    assert row["source_channel"] == "martian"  # unknown categories are kept; the model treats them as unknown
    assert list(f.columns) == list(builder.get_feature_names_out())


def test_negative_amounts_do_not_count_as_spend():
    tables = _tiny()
    tables["orders"].loc[0, "amount"] = -100.0
    f = build_features(tables, T)
    assert f.loc["A", "spend_30d"] == 0.0 and f.loc["A", "orders_30d"] == 1


def test_parquet_round_trip_with_dictionary_columns_gives_same_features(tmp_path):
    from features.io import load_tables, write_parquet_atomic

    tables = make_tables(90, seed=8)
    for name, df in tables.items():
        write_parquet_atomic(df, tmp_path / f"{name}.parquet")
    loaded = load_tables(tmp_path)
    assert isinstance(loaded["interactions"]["customer_id"].dtype, pd.CategoricalDtype)
    pd.testing.assert_frame_equal(build_features(loaded, T), build_features(tables, T), check_index_type=False)


def test_feature_tables_loader_reads_less_and_gives_same_features(tmp_path):
    from features.io import load_feature_tables, load_tables, write_parquet_atomic

    tables = make_tables(90, seed=9)
    tables["customers"].loc[::7, "member_level"] = None  # missing categories stay None
    for name, df in tables.items():
        write_parquet_atomic(df, tmp_path / f"{name}.parquet")
    slim = load_feature_tables(tmp_path)
    assert "order_id" not in slim["orders"].columns and "touch_id" not in slim["marketing_touches"].columns
    assert isinstance(slim["customers"]["province"].dtype, pd.CategoricalDtype)
    for as_of in (T, T - pd.Timedelta(days=120)):
        pd.testing.assert_frame_equal(
            build_features(slim, as_of), build_features(load_tables(tmp_path), as_of), check_exact=True
        )
