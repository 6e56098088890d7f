"""Uplift: Qini against a hand-computed case, the learners on a planted effect, the gate, bad input."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.tabular import TableFeaturizer
from training.uplift import (
    UpliftError,
    UpliftModel,
    decide_uplift_promotion,
    prepare_uplift_table,
    qini_area,
    qini_curve,
    uplift_area,
    uplift_at,
    uplift_curve,
)


def test_qini_hand_computed():
    # scores 0.9 > 0.7 > 0.5 > 0.3; (treated, outcome) = (1,1) (0,0) (1,0) (0,1)
    # Q(k) = Yt - Yc*Nt/Nc (0 control rows: Yt): k=1: 1; k=2: 1 - 0 = 1; k=3: 1 - 0*2/1 = 1; k=4: 1 - 1*2/2 = 0
    s, t, y = np.array([0.9, 0.7, 0.5, 0.3]), np.array([1, 0, 1, 0]), np.array([1, 0, 0, 1])
    x, q = qini_curve(s, t, y)
    np.testing.assert_allclose(x, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(q, [0, 0.25, 0.25, 0.25, 0.0])
    # random line ends at Q(N)/N = 0; trapezoids: .25*(0+.25)/2 + .25*.25 + .25*.25 + .25*(.25+0)/2 = 0.1875
    assert qini_area(s, t, y) == pytest.approx(0.1875)
    # the reverse ranking puts the control responder first: Q = 0, -1 (k=2: Yt=0, Yc=1, Nt=1, Nc=1), -1+1=…
    assert qini_area(-s, t, y) < 0
    # top half: treated rate 1/1, control rate 0/1 → uplift 1
    assert uplift_at(s, t, y, 0.5) == pytest.approx(1.0)


def test_uplift_curve_hand_computed():
    # same rows as above; u(k) = (Yt/Nt - Yc/Nc) * k/N, 0 while an arm is empty:
    # k=1: no control → 0; k=2: (1/1 - 0/1) * 2/4 = 0.5; k=3: (1/2 - 0/1) * 3/4 = 0.375; k=4: (1/2 - 1/2) = 0
    s, t, y = np.array([0.9, 0.7, 0.5, 0.3]), np.array([1, 0, 1, 0]), np.array([1, 0, 0, 1])
    x, u = uplift_curve(s, t, y)
    np.testing.assert_allclose(x, [0, 0.25, 0.5, 0.75, 1.0])
    np.testing.assert_allclose(u, [0, 0, 0.5, 0.375, 0.0])
    # random line ends at 0; trapezoids: 0 + .25*.5/2 + .25*(.5+.375)/2 + .25*.375/2 = 0.21875
    assert uplift_area(s, t, y) == pytest.approx(0.21875)
    assert uplift_area(-s, t, y) < 0


def test_qini_ties_are_taken_together():
    s, t, y = np.array([1.0, 1.0, 0.0, 0.0]), np.array([1, 0, 1, 0]), np.array([1, 0, 0, 1])
    x, q = qini_curve(s, t, y)
    np.testing.assert_allclose(x, [0, 0.5, 1.0])
    np.testing.assert_allclose(q, [0, 0.25, 0.0])


def _planted(n: int = 4000, seed: int = 0) -> pd.DataFrame:
    """A randomised test where the offer helps only segment 'young' (+30 points) and hurts 'old' (-10)."""
    rng = np.random.default_rng(seed)
    seg = rng.choice(["young", "old"], n)
    spend = rng.gamma(2.0, 50.0, n)
    t = rng.integers(0, 2, n)
    p = 0.2 + 0.001 * np.minimum(spend, 200) + t * np.where(seg == "young", 0.3, -0.1)
    y = (rng.random(n) < np.clip(p, 0, 1)).astype(int)
    return pd.DataFrame({"segment": seg, "spend": spend, "arm": np.where(t == 1, "coupon", "control"), "bought": y})


@pytest.mark.parametrize("learner", ["t_learner", "class_transform", "x_learner", "s_learner"])
def test_learners_recover_planted_effect_direction(learner):
    X, t, y, arms, _ = prepare_uplift_table(_planted(), "arm", "bought")
    assert arms == {"control": "control", "treated": ["coupon"]}
    feat = TableFeaturizer().fit(X)
    m = UpliftModel(learner, seed=1, params={"n_estimators": 60}).fit(X, t, y, feat)
    probe = pd.DataFrame({"segment": ["young", "old"], "spend": [100.0, 100.0]})
    u = m.predict(probe)
    assert u[0] > 0.1 and u[1] < 0.0, u
    assert qini_area(m.predict(X), t, y) > 0


def test_gate_both_ways():
    assert decide_uplift_promotion(0.003, None, 0.0005).promote
    up = decide_uplift_promotion(0.004, 0.003, 0.0005)
    assert up.promote and "≥ margin" in up.reason
    down = decide_uplift_promotion(0.0032, 0.003, 0.0005)
    assert not down.promote and "below margin" in down.reason
    assert down.as_tags()["crmscore.gate.champion_qini"] == "0.003000"


def test_bad_input_names_the_column():
    df = _planted(200)
    with pytest.raises(UpliftError, match="'nope' not in the table|nope"):
        prepare_uplift_table(df, "nope", "bought")
    with pytest.raises(UpliftError, match="treatment column 'arm' has 1 value"):
        prepare_uplift_table(df.assign(arm="coupon"), "arm", "bought")
    with pytest.raises(UpliftError, match="treatment column 'arm': no control rows"):
        prepare_uplift_table(df, "arm", "bought", control="holdout")
    with pytest.raises(UpliftError, match="cannot tell the control value"):
        prepare_uplift_table(df.assign(arm=np.where(df["arm"] == "control", "B", "A")), "arm", "bought")
    with pytest.raises(UpliftError, match="outcome column 'segment'"):
        prepare_uplift_table(df, "arm", "segment")
    with pytest.raises(UpliftError, match="--treated 'sms' does not occur"):
        prepare_uplift_table(df, "arm", "bought", treated=["sms"])


@pytest.mark.parametrize("learner", ["t_learner", "class_transform", "x_learner", "s_learner"])
def test_skops_round_trip_with_the_trusted_types(learner):
    """The logged format: skops loads the model with exactly training.model.TRUSTED_TYPES and scores the same."""
    import skops.io as sio

    from training.model import TRUSTED_TYPES

    X, t, y, _, _ = prepare_uplift_table(_planted(600), "arm", "bought")
    m = UpliftModel(learner, seed=1, params={"n_estimators": 20}).fit(X, t, y)
    back = sio.loads(sio.dumps(m), trusted=TRUSTED_TYPES)
    np.testing.assert_allclose(back.predict(X), m.predict(X))
    assert not [u for u in sio.get_untrusted_types(data=sio.dumps(m)) if u not in TRUSTED_TYPES]


def test_x_learner_reasons_add_up_to_the_uplift():
    X, t, y, _, _ = prepare_uplift_table(_planted(1500), "arm", "bought")
    m = UpliftModel("x_learner", seed=1, params={"n_estimators": 40}).fit(X, t, y)
    Z = m.transform_matrix(X.head(50))
    c = m.contributions_matrix(Z)
    np.testing.assert_allclose(c.sum(axis=1), np.clip(m.predict_matrix(Z), -1, 1), atol=1e-4)
    reasons = m.reason_folder().reasons(c, X.head(50).to_dict("records"), top=1)
    young = X.head(50)["segment"].eq("young").to_numpy()
    # the segment is the strongest reason: for the young it raises the uplift, for the old it lowers it
    assert all(r["positive"][0]["feature"] == "segment" for r, yg in zip(reasons, young, strict=True) if yg)
    assert all(r["negative"][0]["feature"] == "segment" for r, yg in zip(reasons, young, strict=True) if not yg)


def test_s_learner_reasons_add_up_to_the_log_odds_difference():
    from scipy.special import logit

    X, t, y, _, _ = prepare_uplift_table(_planted(1500), "arm", "bought")
    m = UpliftModel("s_learner").fit(X, t, y)
    Z = m.transform_matrix(X.head(50))
    c = m.contributions_matrix(Z)
    assert c.shape == (50, Z.shape[1] + 1)
    p0 = m.model_s_.predict_proba(np.c_[Z, np.zeros((50, 1)), np.zeros_like(Z)])[:, 1]
    u = m.predict_matrix(Z)
    np.testing.assert_allclose(c.sum(axis=1), logit(p0 + u) - logit(p0), atol=1e-8)
    reasons = m.reason_folder().reasons(c, X.head(50).to_dict("records"), top=1)
    young = X.head(50)["segment"].eq("young").to_numpy()
    # one-hot segment columns fold back into the raw column: the strongest reason, in the planted direction
    assert all(r["positive"][0]["feature"] == "segment" for r, yg in zip(reasons, young, strict=True) if yg)
    assert all(r["negative"][0]["feature"] == "segment" for r, yg in zip(reasons, young, strict=True) if not yg)


def test_unknown_learner_is_refused_at_fit():
    X, t, y, _, _ = prepare_uplift_table(_planted(200), "arm", "bought")
    m = UpliftModel("r_learner")  # the sklearn contract: __init__ only stores it
    with pytest.raises(ValueError, match="unknown uplift learner 'r_learner'"):
        m.fit(X, t, y)
