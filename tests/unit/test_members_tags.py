"""Tags and audiences: the 100-tag limit, product windows at their edges, manual tags across runs, rule
errors naming the tag and field, point in time, consent filtering."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from features.config import ConfigError
from features.members.audience import audience_rule, select_audience
from features.members.config import TagsConfig, load_tags_config
from features.members.tags import (
    TagInputError,
    apply_tags,
    product_tag_masks,
    read_manual_tags,
    read_tag_removals,
    rule_fields,
)
from features.rules import RuleError, fields_of_frame
from tests.members_data import orders_frame

LEVELS = ("none", "silver", "gold", "platinum")
T = pd.Timestamp("2025-06-30")


def cfg_of(tags: list[dict]) -> TagsConfig:
    return TagsConfig.model_validate({"tags": tags})


def context(ids=("A", "B", "C", "D")) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": pd.array(list(ids), dtype="string"),
            "member_level": pd.array(["gold", "none", "platinum", "silver"][: len(ids)], dtype="string"),
            "rfm_segment": pd.array(["Champions", "Lost", "At risk", "Loyal"][: len(ids)], dtype="string"),
            "monetary": [3000.0, 0.0, 9000.0, 800.0][: len(ids)],
            "marketing_consent": pd.array([True, True, False, None][: len(ids)], dtype="boolean"),
        }
    )


def fields(ctx):
    return fields_of_frame(ctx, ordered={"member_level": LEVELS}, exclude={"customer_id"})


def apply(cfg, ctx=None, orders=None, **kw):
    ctx = context() if ctx is None else ctx
    return apply_tags(ctx, orders, T, cfg, fields(ctx), **kw)


def tagged(res, tag: str) -> list[str]:
    return sorted(res.long.loc[res.long["tag"] == tag, "customer_id"].tolist())


def test_shipped_yaml_equals_embedded_defaults():
    root = Path(__file__).resolve().parents[2]
    assert load_tags_config(root / "configs" / "tags.yaml") == TagsConfig()


def test_hundred_tags_at_most(tmp_path):
    many = [{"name": f"t{i}", "kind": "manual"} for i in range(100)]
    assert len(cfg_of(many).tags) == 100
    p = tmp_path / "tags.yaml"
    p.write_text(yaml.safe_dump({"tags": [*many, {"name": "t100", "kind": "manual"}]}), encoding="utf-8")
    with pytest.raises(ConfigError, match="at most 100 tags, got 101"):
        load_tags_config(p)


@pytest.mark.parametrize(
    ("tag", "words"),
    [
        ({"name": "x", "kind": "rule", "rule": "a >"}, "tag 'x': field 'rule': tag 'x': rule error at character 4"),
        ({"name": "x", "kind": "rule"}, "tag 'x': field 'rule': a rule tag needs it"),
        ({"name": "x", "kind": "product", "categories": ["a"]}, "tag 'x': field 'window_days'"),
        ({"name": "x", "kind": "product", "categories": [str(i) for i in range(11)], "window_days": 9}, "1 to 10"),
        ({"name": "x", "kind": "manual", "rule": "a == 1"}, "field 'rule': not used by a manual tag"),
        ({"name": "x y", "kind": "manual"}, "tag 'x y': field 'name'"),
        ({"name": "x", "kind": "magic"}, "tag 'x': field 'kind'"),
    ],
)
def test_config_errors_name_the_tag_and_field(tmp_path, tag, words):
    p = tmp_path / "tags.yaml"
    p.write_text(yaml.safe_dump({"tags": [tag]}, allow_unicode=True), encoding="utf-8")
    with pytest.raises(ConfigError) as ei:
        load_tags_config(p)
    assert words in str(ei.value)


def test_rule_tags_and_tag_references():
    cfg = cfg_of(
        [
            {"name": "高价值", "kind": "rule", "rule": "member_level >= gold or monetary > 2000"},
            {"name": "流失风险", "kind": "rule", "rule": "rfm_segment in [Champions, 'At risk'] and tag:高价值"},
            {"name": "VIP", "kind": "manual"},
        ]
    )
    res = apply(cfg)
    assert tagged(res, "高价值") == ["A", "C"]
    assert tagged(res, "流失风险") == ["A", "C"]
    assert res.counts.set_index("tag")["customers"].to_dict() == {"高价值": 2, "流失风险": 2, "VIP": 0}
    assert set(res.long["kind"]) == {"rule"} and (res.long["since"] == T).all()
    assert rule_fields(cfg) == ["member_level", "monetary", "rfm_segment"]


def test_missing_field_names_the_tag_and_field():
    cfg = cfg_of([{"name": "流失", "kind": "rule", "rule": "rfm_segment == Lost and churn_grade in [A, B]"}])
    with pytest.raises(RuleError) as ei:
        apply(cfg, hint="; churn grades come from --scores churn=FILE")
    assert ei.value.rule_name == "tag '流失'" and ei.value.pos == 24
    assert "unknown field 'churn_grade'" in str(ei.value) and "--scores churn=FILE" in str(ei.value)


def test_rule_may_not_use_a_rule_tag_defined_below():
    cfg = cfg_of(
        [
            {"name": "a", "kind": "rule", "rule": "tag:b"},
            {"name": "b", "kind": "rule", "rule": "monetary > 1"},
        ]
    )
    with pytest.raises(RuleError, match="defined below this one"):
        apply(cfg)
    with pytest.raises(RuleError, match="cannot use itself"):
        apply(cfg_of([{"name": "a", "kind": "rule", "rule": "tag:a"}]))


def test_product_tag_window_edges():
    spec = cfg_of([{"name": "母婴", "kind": "product", "categories": ["母婴用品", "玩具"], "window_days": 90}])
    edge = T - pd.Timedelta(days=90)
    orders = orders_frame(
        [
            ("A", str(T), 10.0, "paid", "母婴用品"),  # exactly at T: in
            ("B", str(edge), 10.0, "paid", "玩具"),  # exactly 90 days before: out (window is (T-90d, T])
            ("C", str(edge + pd.Timedelta(seconds=1)), 10.0, "paid", "玩具"),  # just inside
            ("D", str(T + pd.Timedelta(seconds=1)), 10.0, "paid", "母婴用品"),  # after T: out
            ("A", "2025-06-01", 10.0, "paid", "数码电器"),  # other category
            ("B", "2025-06-01", 10.0, "refunded", "母婴用品"),  # not paid
        ]
    )
    ids = pd.Index(["A", "B", "C", "D"], dtype="string")
    masks = product_tag_masks(orders, ids, T, spec.tags)
    assert masks["母婴"].tolist() == [True, False, True, False]
    res = apply(spec, orders=orders)
    assert tagged(res, "母婴") == ["A", "C"]
    assert set(res.long["source"]) == {"product:母婴用品/玩具@90d"}


def test_point_in_time_events_after_t_change_nothing():
    spec = cfg_of([{"name": "母婴", "kind": "product", "categories": ["母婴用品"], "window_days": 30}])
    base = [("A", "2025-06-20", 10.0, "paid", "母婴用品")]
    later = [("B", "2025-07-01", 10.0, "paid", "母婴用品"), ("C", "2025-06-30 00:00:01", 10.0, "paid", "母婴用品")]
    r1 = apply(spec, orders=orders_frame(base))
    r2 = apply(spec, orders=orders_frame(base + later))
    pd.testing.assert_frame_equal(r1.long, r2.long)


def write_csv(tmp_path: Path, name: str, cols: list[str], rows: list[tuple]) -> Path:
    p = tmp_path / name
    pd.DataFrame(rows, columns=cols).to_csv(p, index=False)
    return p


def test_manual_tags_kept_across_runs_and_removed(tmp_path):
    cfg = cfg_of([{"name": "VIP关怀", "kind": "manual"}, {"name": "g", "kind": "rule", "rule": "tag:VIP关怀"}])
    add = read_manual_tags(
        write_csv(
            tmp_path,
            "add.csv",
            ["customer_id", "tag", "added_by", "added_at"],
            [
                ("A", "VIP关怀", "li", "2025-05-01"),
                ("B", "VIP关怀", "li", "2025-05-02"),
                ("C", "VIP关怀", "li", "2025-08-01"),
            ],
        ),
        cfg,
    )
    r1 = apply(cfg, manual_added=add)
    assert tagged(r1, "VIP关怀") == ["A", "B"]  # C's addition is after T
    assert tagged(r1, "g") == ["A", "B"]  # rules see manual tags
    m = r1.long.loc[r1.long["kind"] == "manual"].set_index("customer_id")
    assert m.loc["A", "since"] == pd.Timestamp("2025-05-01") and m.loc["A", "source"] == "manual:li"
    # next run: no addition file, the tags are kept; B is removed
    rem = read_tag_removals(
        write_csv(
            tmp_path,
            "rm.csv",
            ["customer_id", "tag", "removed_by", "removed_at"],
            [("B", "VIP关怀", "wang", "2025-07-15")],
        ),
        cfg,
    )
    t2 = pd.Timestamp("2025-07-31")
    ctx = context()
    r2 = apply_tags(ctx, None, t2, cfg, fields(ctx), previous=r1.long, manual_removed=rem)
    assert tagged(r2, "VIP关怀") == ["A"]
    # the whole addition file again with the removals so far: B stays removed, C (added 08-01) comes in later
    r3 = apply_tags(
        ctx, None, pd.Timestamp("2025-08-31"), cfg, fields(ctx), previous=r2.long, manual_added=add, manual_removed=rem
    )
    assert tagged(r3, "VIP关怀") == ["A", "C"]


def test_manual_tag_files_are_checked(tmp_path):
    cfg = cfg_of([{"name": "VIP关怀", "kind": "manual"}, {"name": "r", "kind": "rule", "rule": "monetary > 1"}])
    cols = ["customer_id", "tag", "added_by", "added_at"]
    with pytest.raises(TagInputError, match=r"line 2: tag 'r' is not a manual tag"):
        read_manual_tags(write_csv(tmp_path, "a.csv", cols, [("A", "r", "li", "2025-01-01")]), cfg)
    with pytest.raises(TagInputError, match=r"line 3: added_at is not a date"):
        read_manual_tags(
            write_csv(tmp_path, "b.csv", cols, [("A", "VIP关怀", "li", "2025-01-01"), ("B", "VIP关怀", "li", "soon")]),
            cfg,
        )


def test_since_is_kept_from_the_previous_run():
    cfg = cfg_of([{"name": "高价值", "kind": "rule", "rule": "monetary > 2000"}])
    ctx = context()
    r1 = apply_tags(ctx, None, pd.Timestamp("2025-05-31"), cfg, fields(ctx))
    ctx2 = ctx.assign(monetary=[3000.0, 5000.0, 9000.0, 0.0])
    r2 = apply_tags(ctx2, None, T, cfg, fields(ctx2), previous=r1.long)
    since = r2.long.set_index("customer_id")["since"]
    assert since["A"] == pd.Timestamp("2025-05-31") and since["B"] == T


def test_audience_rule_and_shortcuts():
    assert audience_rule("tag:x", ["A", "B"], None, ["At risk"]) == (
        "(tag:x) and lead_grade in [A, B] and rfm_segment in ['At risk']"
    )
    with pytest.raises(ValueError, match="give --where"):
        audience_rule(None)


def test_consent_filtering():
    ctx = context()
    long = pd.DataFrame({"customer_id": ["A", "C", "D", "B"], "tag": ["hv", "hv", "hv", "other"]})
    consent = ctx.set_index("customer_id")["marketing_consent"]
    f = fields(ctx)
    res = select_audience(ctx, long, "tag:hv and member_level >= silver", dict(f), consent, "marketing", "a")
    # A gold + consent, C platinum without consent, D silver with unknown consent
    assert res.selected["customer_id"].tolist() == ["A"]
    assert (res.summary["matched"], res.summary["excluded_no_consent"], res.summary["excluded_consent_unknown"]) == (
        3,
        1,
        1,
    )
    assert res.summary["exported"] == 1
    svc = select_audience(ctx, long, "tag:hv and member_level >= silver", dict(f), consent, "service", "a")
    assert svc.selected["customer_id"].tolist() == ["A", "C", "D"] and svc.summary["excluded_no_consent"] == 0
    with pytest.raises(ValueError, match="no marketing_consent column"):
        select_audience(ctx, long, "tag:hv", dict(f), None, "marketing", "a")
    with pytest.raises(ValueError, match="--purpose"):
        select_audience(ctx, long, "tag:hv", dict(f), consent, "sales", "a")
    with pytest.raises(RuleError, match="unknown tag 'nope'"):
        select_audience(ctx, long, "tag:nope", dict(f), consent, "marketing", "a")
    empty = select_audience(ctx, long, "tag:zero", dict(f), consent, "marketing", "a", known_tags={"zero"})
    assert empty.summary["matched"] == 0


def test_tags_scale_vectorised():
    n = 100_000
    rng = np.random.default_rng(1)
    ctx = pd.DataFrame(
        {
            "customer_id": pd.array([f"C{i:07d}" for i in range(n)], dtype="string"),
            "monetary": rng.random(n) * 1000,
            "member_level": pd.array(rng.choice(list(LEVELS), n), dtype="string"),
        }
    )
    cfg = cfg_of(
        [
            {"name": f"t{i}", "kind": "rule", "rule": f"monetary > {i * 10} and member_level >= silver"}
            for i in range(100)
        ]
    )
    res = apply_tags(ctx, None, T, cfg, fields(ctx))
    assert res.counts["customers"].is_monotonic_decreasing
