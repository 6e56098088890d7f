"""Score/grade mapping, reasons, evaluation metrics and the promotion decision (no MLflow)."""

import numpy as np
import pytest

from training.explain import ReasonFolder
from training.metrics import capture_at, evaluate, expected_calibration_error, rate_per_band
from training.registry import decide_promotion
from training.scores import fit_grade_thresholds, readable_label, to_grade, to_score


def test_score_is_1_to_99_and_monotone():
    p = np.array([0.0, 0.004, 0.2, 0.5, 0.994, 1.0])
    s = to_score(p)
    assert s.tolist() == [1, 1, 20, 50, 99, 99]
    assert np.all(np.diff(to_score(np.linspace(0, 1, 101))) >= 0)


def test_grade_thresholds_follow_training_shares():
    rng = np.random.default_rng(0)
    scores = to_score(rng.beta(2, 5, 10_000))
    th = fit_grade_thresholds(scores, (0.1, 0.2, 0.3))
    grades = to_grade(scores, th)
    share_a = (grades == "A").mean()
    assert 0.07 < share_a < 0.13
    assert th[0] >= th[1] >= th[2]
    assert set(np.unique(grades)) == {"A", "B", "C", "D"}


def test_reasons_fold_one_hot_and_order_by_contribution():
    contribs = np.array([[0.5, -0.2, 0.1, 0.3, -0.7, 0.05]])  # 5 features + bias
    groups = [("a", [0]), ("b", [1]), ("cat", [2, 3]), ("d", [4])]
    r = ReasonFolder(groups, 5).reasons(contribs, [{}], top=3)[0]
    assert [x["feature"] for x in r["positive"]] == ["a", "cat"]
    assert r["positive"][1]["contribution"] == pytest.approx(0.4)
    assert [x["feature"] for x in r["negative"]] == ["d", "b"]


def test_readable_labels():
    assert readable_label("n_add_to_cart_30d") == "add to cart events in 30 days"
    assert readable_label("n_ch_wechat_7d") == "interactions on wechat in 7 days"
    assert readable_label("days_since_consult") == "days since last consult"


def test_capture_and_ece():
    y = np.array([1, 1, 0, 0, 0, 0, 0, 0, 0, 0])
    p = np.linspace(1, 0, 10)
    assert capture_at(y, p, 0.2) == 1.0
    assert expected_calibration_error(np.array([0, 1] * 50), np.full(100, 0.5)) == pytest.approx(0.0)
    m = evaluate(y, p)
    assert m["roc_auc"] == 1.0 and m["lift_top_decile"] == pytest.approx(5.0)
    bands = rate_per_band(y, to_score(p))
    assert bands["rows"].sum() == 10


@pytest.mark.parametrize(
    ("chal", "champ", "promote"),
    [
        ((0.80, 0.01), (None, None), True),  # no champion
        ((0.85, 0.01), (0.80, 0.01), True),  # better by margin, calibration not worse
        ((0.801, 0.01), (0.80, 0.01), False),  # gain below margin
        ((0.75, 0.01), (0.80, 0.01), False),  # worse
        ((0.85, 0.05), (0.80, 0.01), False),  # better AUC but worse calibrated
    ],
)
def test_promotion_gate_both_ways(chal, champ, promote):
    d = decide_promotion(chal[0], chal[1], champ[0], champ[1], margin=0.002, ece_tolerance=0.005)
    assert d.promote is promote
    assert d.as_tags()["crmscore.gate.promote"] == str(promote).lower()


def test_selection_prefers_better_log_loss_among_near_best_auc():
    from training.train import select_best

    results = {
        "logreg": {"roc_auc": 0.8323, "log_loss": 0.4934},
        "xgb": {"roc_auc": 0.8320, "log_loss": 0.4910},
        "tree": {"roc_auc": 0.80, "log_loss": 0.40},  # far lower AUC: never chosen for its log loss
    }
    assert select_best(results, 0.003) == "xgb"
    assert select_best(results, 0.0) == "logreg"
