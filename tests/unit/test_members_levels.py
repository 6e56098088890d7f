"""Member levels: config limits, upgrade only over successive as-of dates, manual changes, point in time."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import yaml

from features.config import ConfigError
from features.members.config import MembersConfig, load_members_config
from features.members.levels import (
    LevelInputError,
    PreviousLevels,
    compute_levels,
    read_manual_changes,
)
from tests.members_data import customers_frame, orders_frame

# silver: ¥500 or 3 orders, gold: ¥2000 or 8 orders, platinum: ¥8000 or 20 orders, over 12 months
CFG = MembersConfig()


def run(tables, as_of, prev=None, manual=None):
    return compute_levels(tables, pd.Timestamp(as_of), CFG, prev, manual)


def chain(res, as_of) -> PreviousLevels:
    return PreviousLevels(pd.Timestamp(as_of), res.levels, res.history)


def level_of(res, cid: str) -> str:
    return res.levels.set_index("customer_id").loc[cid, "member_level"]


def row(res, cid: str) -> pd.Series:
    return res.levels.set_index("customer_id").loc[cid]


def write_yaml(tmp_path: Path, doc: dict) -> Path:
    p = tmp_path / "members.yaml"
    p.write_text(yaml.safe_dump(doc, allow_unicode=True), encoding="utf-8")
    return p


LEVELS = [
    {"id": "none", "zh": "普通", "en": "Member"},
    {"id": "silver", "zh": "银卡", "en": "Silver", "reach": {"spend": 500}},
    {"id": "gold", "zh": "金卡", "en": "Gold", "reach": {"spend": 2000, "orders": 8}},
    {"id": "platinum", "zh": "铂金卡", "en": "Platinum", "reach": {"spend": 8000}},
]


def test_shipped_yaml_equals_embedded_defaults():
    root = Path(__file__).resolve().parents[2]
    assert load_members_config(root / "configs" / "members.yaml") == MembersConfig()


def test_four_levels_at_most(tmp_path):
    five = [*LEVELS, {"id": "diamond", "zh": "钻石", "en": "Diamond", "reach": {"spend": 20000}}]
    with pytest.raises(ConfigError, match=r"at most|between 2 and 4 levels.*got 5"):
        load_members_config(write_yaml(tmp_path, {"levels": five}))
    assert len(load_members_config(write_yaml(tmp_path, {"levels": LEVELS})).levels) == 4


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (
            lambda lv: lv[2]["reach"].update(spend=400),
            "level 'gold': field 'reach.spend': 400 must be above level 'silver'",
        ),
        (lambda lv: lv[2]["reach"].update(visits=3), "level 'gold': field 'reach.visits': unknown basis"),
        (lambda lv: lv[1].pop("zh"), "level 'silver': field 'zh'"),
        (lambda lv: lv[0].update(reach={"spend": 1}), "level 'none': field 'reach'"),
        (lambda lv: lv[3].update(reach={}), "level 'platinum': field 'reach'"),
        (lambda lv: lv[2]["reach"].update(orders=2.5), "level 'gold': field 'reach.orders'"),
        (lambda lv: lv[3].update(id="gold"), "used twice"),
    ],
)
def test_config_errors_name_the_level_and_field(tmp_path, change, words):
    lv = [dict(x, reach=dict(x.get("reach", {}))) if "reach" in x else dict(x) for x in LEVELS]
    change(lv)
    with pytest.raises(ConfigError) as ei:
        load_members_config(write_yaml(tmp_path, {"levels": lv}))
    assert words in str(ei.value)
    assert str(tmp_path) in str(ei.value)


def test_thresholds_and_progress_text():
    orders = orders_frame(
        [
            ("A", "2025-01-10", 300.0, "paid", "x"),
            ("A", "2025-02-10", 460.0, "paid", "x"),  # ¥760, 2 orders → silver, ¥1,240 or 6 orders to gold
            ("B", "2025-03-01", 100.0, "paid", "x"),
            ("B", "2025-03-02", 100.0, "refunded", "x"),  # refunds do not count
            ("C", "2024-01-05", 9000.0, "paid", "x"),  # outside the 12-month window
        ]
    )
    res = run({"orders": orders, "customers": customers_frame(["A", "B", "C", "D"])}, "2025-03-31")
    a = row(res, "A")
    assert a["member_level"] == "silver" and a["member_level_zh"] == "银卡" and a["reason"] == "threshold"
    assert a["since"] == pd.Timestamp("2025-02-10")  # the order that reached it
    assert a["progress"] == "¥1,240 or 6 orders to 金卡"
    assert a["to_next_spend"] == 1240 and a["to_next_orders"] == 6 and a["next_level"] == "gold"
    b = row(res, "B")
    assert b["member_level"] == "none" and b["progress"] == "¥400 or 2 orders to 银卡" and b["window_orders"] == 1
    assert level_of(res, "C") == "none" and level_of(res, "D") == "none"
    assert res.summary["levels"] == {"none": 3, "silver": 1, "gold": 0, "platinum": 0}
    assert set(res.history["customer_id"]) == {"A"}


def test_upgrade_only_over_successive_as_of_dates():
    orders = orders_frame(
        [
            ("A", "2024-02-01", 2500.0, "paid", "x"),  # gold at 2024-03-31
            ("A", "2024-06-01", 100.0, "paid", "x"),
            ("A", "2025-05-01", 6000.0, "paid", "x"),  # window at 2025-06-30: ¥6,000 → still gold by spend
            ("B", "2024-03-01", 600.0, "paid", "x"),  # silver at 2024-03-31, nothing after
        ]
    )
    tables = {"orders": orders}
    dates = ["2024-03-31", "2024-09-30", "2025-03-31", "2025-06-30"]
    prev, seen = None, {}
    for d in dates:
        res = run(tables, d, prev)
        seen[d] = (level_of(res, "A"), level_of(res, "B"), row(res, "B")["reason"])
        prev = chain(res, d)
    assert seen["2024-03-31"] == ("gold", "silver", "threshold")
    assert seen["2024-09-30"] == ("gold", "silver", "threshold")
    # 2025-03-31: both windows are empty of the qualifying orders; levels are kept, not lowered
    assert seen["2025-03-31"] == ("gold", "silver", "carried over")
    assert seen["2025-06-30"] == ("gold", "silver", "carried over")
    hist = prev.history
    a_hist = hist.loc[hist["customer_id"] == "A"]
    assert a_hist["level"].tolist() == ["gold", "gold"]
    assert a_hist["reason"].tolist() == ["threshold", "carried over"]
    assert (hist.groupby("customer_id")["level"].nunique() == 1).all()  # nobody went down
    # the same month-by-month history however often it is re-run
    prev2 = None
    for d in dates:
        res2 = run(tables, d, prev2)
        prev2 = chain(res2, d)
    pd.testing.assert_frame_equal(prev2.history, prev.history)


def test_upgrade_again_after_carried_over():
    orders = orders_frame([("A", "2024-01-15", 600.0, "paid", "x"), ("A", "2025-05-01", 2100.0, "paid", "x")])
    r1 = run({"orders": orders}, "2024-01-31")
    r2 = run({"orders": orders}, "2025-03-31", chain(r1, "2024-01-31"))
    assert (level_of(r2, "A"), row(r2, "A")["reason"]) == ("silver", "carried over")
    r3 = run({"orders": orders}, "2025-06-30", chain(r2, "2025-03-31"))
    assert (level_of(r3, "A"), row(r3, "A")["reason"]) == ("gold", "threshold")
    assert row(r3, "A")["since"] == pd.Timestamp("2025-05-01")


def manual_csv(tmp_path: Path, rows: list[tuple]) -> Path:
    p = tmp_path / "manual.csv"
    pd.DataFrame(rows, columns=["customer_id", "level", "changed_by", "changed_at", "reason"]).to_csv(p, index=False)
    return p


def test_manual_downgrade_is_honoured_and_kept(tmp_path):
    orders = orders_frame(
        [
            ("A", "2025-01-05", 3000.0, "paid", "x"),  # gold by threshold
            ("A", "2025-04-10", 100.0, "paid", "x"),
        ]
    )
    tables = {"orders": orders}
    r1 = run(tables, "2025-01-31")
    assert level_of(r1, "A") == "gold"
    changes = read_manual_changes(manual_csv(tmp_path, [("A", "none", "ops01", "2025-02-15", "fraud check")]), CFG)
    r2 = run(tables, "2025-02-28", chain(r1, "2025-01-31"), changes)
    a = row(r2, "A")
    assert (a["member_level"], a["reason"], a["since"]) == ("none", "manual", pd.Timestamp("2025-02-15"))
    assert a["manual_at"] == pd.Timestamp("2025-02-15")
    # later runs keep it, with or without the manual file: the ¥3,000 before the change no longer counts
    r3 = run(tables, "2025-04-30", chain(r2, "2025-02-28"), changes)
    r3b = run(tables, "2025-04-30", chain(r2, "2025-02-28"))
    for r in (r3, r3b):
        assert (level_of(r, "A"), row(r, "A")["reason"]) == ("none", "manual")
        assert row(r, "A")["window_spend"] == 100.0
    h = r3.history.loc[r3.history["customer_id"] == "A"]
    assert h["reason"].tolist() == ["threshold", "manual"]
    assert h["changed_by"].tolist()[-1] == "ops01" and h["note"].tolist()[-1] == "fraud check"


def test_manual_upgrade_and_later_threshold():
    orders = orders_frame([("A", "2025-03-01", 2100.0, "paid", "x")])
    manual = pd.DataFrame(
        {
            "customer_id": pd.array(["A"], dtype="string"),
            "level": ["silver"],
            "changed_by": ["ops"],
            "changed_at": pd.to_datetime(["2025-01-10"]),
            "reason": ["vip"],
        }
    )
    r1 = run({"orders": orders}, "2025-01-31", None, manual)
    assert (level_of(r1, "A"), row(r1, "A")["reason"]) == ("silver", "manual")
    r2 = run({"orders": orders}, "2025-03-31", chain(r1, "2025-01-31"), manual)
    assert (level_of(r2, "A"), row(r2, "A")["reason"]) == ("gold", "threshold")  # an order after the change


def test_point_in_time_nothing_after_t_is_used():
    base = [("A", "2025-03-01", 600.0, "paid", "x"), ("B", "2025-03-02", 50.0, "paid", "x")]
    later = [("B", "2025-04-02", 9000.0, "paid", "x"), ("A", "2025-03-31 00:00:01", 9000.0, "paid", "x")]
    manual = pd.DataFrame(
        {
            "customer_id": pd.array(["A"], dtype="string"),
            "level": ["platinum"],
            "changed_by": ["ops"],
            "changed_at": pd.to_datetime(["2025-04-01"]),
            "reason": ["future"],
        }
    )
    r1 = run({"orders": orders_frame(base)}, "2025-03-31")
    r2 = run({"orders": orders_frame(base + later)}, "2025-03-31", None, manual)
    pd.testing.assert_frame_equal(r1.levels, r2.levels)
    assert r2.summary["manual_after_as_of_ignored"] == 1


def test_previous_must_be_earlier_and_know_the_levels():
    orders = orders_frame([("A", "2025-03-01", 600.0, "paid", "x")])
    r1 = run({"orders": orders}, "2025-03-31")
    with pytest.raises(ValueError, match="not before"):
        run({"orders": orders}, "2025-03-31", chain(r1, "2025-03-31"))
    bad = r1.levels.assign(member_level="diamond")
    with pytest.raises(LevelInputError, match="diamond"):
        run({"orders": orders}, "2025-04-30", PreviousLevels(pd.Timestamp("2025-03-31"), bad, r1.history))


def test_manual_file_errors_name_the_line(tmp_path):
    p = manual_csv(tmp_path, [("A", "gold", "ops", "2025-01-01", "x"), ("B", "diamond", "ops", "2025-01-01", "x")])
    with pytest.raises(LevelInputError, match=r"line 3: unknown level 'diamond'"):
        read_manual_changes(p, CFG)
    p = manual_csv(tmp_path, [("A", "gold", "ops", "not a date", "x")])
    with pytest.raises(LevelInputError, match=r"line 2: changed_at is not a date"):
        read_manual_changes(p, CFG)
    (tmp_path / "m2.csv").write_text("customer_id,level\nA,gold\n", encoding="utf-8")
    with pytest.raises(LevelInputError, match="missing column"):
        read_manual_changes(tmp_path / "m2.csv", CFG)
