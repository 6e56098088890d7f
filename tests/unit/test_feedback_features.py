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
    assert f.loc["A"].tolist()[:3] == [1.0, 2.0, 1.5] and f.loc["A", "fb_days_to_resolve_mean"] == pytest.approx(2.0)
    assert f.loc["B", "fb_complaints_unresolved"] == 0 and f.loc["B", "fb_rating_mean_90d"] == 4.0
    assert f.loc["C", "fb_complaints_90d"] == 0 and np.isnan(f.loc["C", "fb_rating_mean_90d"])


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


def _tables(feedback: pd.DataFrame | None) -> dict[str, pd.DataFrame]:
    from features.contract import empty_frame

    customers = pd.DataFrame({"customer_id": ["A", "B", "C"], "created_at": pd.to_datetime(["2025-01-01"] * 3)})
    tables = {"customers": coerce_types(customers.reindex(columns=empty_frame("customers").columns), "customers")}
    if feedback is not None:
        tables["feedback"] = feedback
    return tables


def test_builder_switch_adds_the_four_features_and_nothing_else() -> None:
    from features.build import CRMFeatureBuilder
    from features.config import FeatureConfig
    from features.feedback import FEEDBACK_FEATURES

    off = CRMFeatureBuilder.from_config(FeatureConfig()).fit()
    on = CRMFeatureBuilder.from_config(FeatureConfig(feedback_features=True)).fit()
    assert not set(FEEDBACK_FEATURES) & set(off.get_feature_names_out())
    added = [c for c in on.get_feature_names_out() if c not in set(off.get_feature_names_out())]
    assert added == list(FEEDBACK_FEATURES) and set(added) <= set(on.numeric_features_)
    assert len(set(on.get_feature_names_out())) == len(on.get_feature_names_out())  # no name clash
    assert not {"text", "channel", "category", "status"} & set(on.get_feature_names_out())  # never the free text


def test_builder_batch_and_online_match_the_hand_values() -> None:
    from features.build import CRMFeatureBuilder, CRMSnapshot
    from features.feedback import FEEDBACK_FEATURES

    fb = _fb(ROWS)
    b = CRMFeatureBuilder(feedback_features=True).fit()
    batch = b.transform(CRMSnapshot(_tables(fb), T))
    want = feedback_features(fb, pd.Index(["A", "B", "C"]), T)
    np.testing.assert_array_equal(batch[list(FEEDBACK_FEATURES)].to_numpy(), want.to_numpy())
    rows = [
        {"ts": r[2], "kind": r[3], "rating": r[4], "resolved_at": r[5], "text": "我的电话 13800000000"}
        for r in ROWS
        if r[1] == "A"
    ]
    one = b.transform_one({"customer_id": "A", "created_at": "2025-01-01"}, {"feedback": rows}, T)
    np.testing.assert_array_equal([one[c] for c in FEEDBACK_FEATURES], want.loc["A"].to_numpy())
    assert not any(isinstance(v, str) and "138" in v for v in one.values())
    # no feedback table: 0 complaints, missing rating / resolution (like a customer who never gave feedback)
    none = b.transform(CRMSnapshot(_tables(None), T))
    assert (none["fb_complaints_unresolved"] == 0).all() and none["fb_rating_mean_90d"].isna().all()


def test_with_feedback_reads_only_the_feature_columns(tmp_path) -> None:
    from features.feedback import FEEDBACK_INPUT_COLUMNS, with_feedback

    assert with_feedback({}, tmp_path) == {}  # optional: no file, nothing added
    fb = _fb(ROWS).assign(text="投诉内容 secret", channel="app")
    fb.to_parquet(tmp_path / "feedback.parquet", index=False)
    got = with_feedback({}, tmp_path)["feedback"]
    assert set(got.columns) == set(FEEDBACK_INPUT_COLUMNS) and len(got) == len(ROWS)
