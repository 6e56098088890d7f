"""BG/NBD and Gamma-Gamma: summaries, likelihood fits on simulated customers, predictions, persistence."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone

from training.btyd import (
    BGNBDModel,
    GammaGammaModel,
    count_purchase_days,
    evaluate_holdout,
    summarise_transactions,
)

TRUE_BGNBD = {"r": 0.8, "alpha": 6.0, "a": 0.7, "b": 2.5}  # alpha in weeks
TRUE_GG = {"p": 4.0, "q": 3.0, "v": 20.0}


def simulate_bgnbd(
    n: int, T_weeks: np.ndarray | float, holdout_weeks: float = 0.0, seed: int = 0, params: dict | None = None
) -> tuple[pd.DataFrame, np.ndarray]:
    """Customers drawn from the BG/NBD story: Poisson purchases at rate λ ~ Gamma(r, α); after each repeat
    purchase the customer drops out with probability p ~ Beta(a, b). Returns the day-based summary at T and
    the repeat purchases in (T, T + holdout]."""
    par = params or TRUE_BGNBD
    rng = np.random.default_rng(seed)
    lam = rng.gamma(par["r"], 1.0 / par["alpha"], n)
    p = rng.beta(par["a"], par["b"], n)
    T = np.broadcast_to(np.asarray(T_weeks, dtype=float), (n,)).copy()
    x, t_x, hold = np.zeros(n), np.zeros(n), np.zeros(n)
    for i in range(n):
        t = 0.0
        while True:
            t += rng.exponential(1.0 / lam[i])
            if t > T[i] + holdout_weeks:
                break
            if t <= T[i]:
                x[i] += 1
                t_x[i] = t
            else:
                hold[i] += 1
            if rng.random() < p[i]:
                break
    summary = pd.DataFrame({"frequency": x, "recency_days": (T - t_x) * 7, "tenure_days": T * 7})
    return summary, hold


def fixed_model(params: dict, cls=BGNBDModel, **init) -> BGNBDModel:
    """A model with known parameters (no fit)."""
    m = cls(**init)
    m.params_ = dict(params)
    return m


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(1)
    return simulate_bgnbd(4000, rng.uniform(10, 52, 4000), holdout_weeks=26, seed=2)


def test_summary_counts_purchase_days_and_ignores_later_orders() -> None:
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "a", "b", "c"],
            "ts": pd.to_datetime(
                [
                    "2024-01-01 09:00",
                    "2024-01-01 18:00",
                    "2024-01-11 00:00",
                    "2024-03-01 00:00",
                    "2024-01-21 00:00",
                    "2024-02-15 00:00",
                ]
            ),
            "amount": [10.0, 5.0, 30.0, 999.0, 7.0, 1.0],
        }
    )
    s = summarise_transactions(tx, "2024-01-31 12:00")
    assert list(s.index) == ["a", "b"]  # c buys after the cutoff
    a = s.loc["a"]
    assert a["frequency"] == 1  # two orders on 1 Jan are one purchase day, plus 11 Jan
    assert a["tenure_days"] == 30 and a["recency_days"] == 20
    assert a["monetary"] == 45.0
    assert a["avg_repeat_value"] == 30.0  # first day's 15 excluded
    b = s.loc["b"]
    assert b["frequency"] == 0 and b["avg_repeat_value"] == 0 and b["recency_days"] == b["tenure_days"] == 10


def test_count_purchase_days_is_half_open() -> None:
    tx = pd.DataFrame(
        {
            "customer_id": ["a", "a", "a", "b"],
            "ts": pd.to_datetime(["2024-01-31 00:00", "2024-02-01 08:00", "2024-02-01 20:00", "2024-03-01 00:00"]),
        }
    )
    c = count_purchase_days(tx, "2024-01-31", "2024-02-29")
    assert c.to_dict() == {"a": 1}


def test_bgnbd_recovers_simulated_parameters(simulated) -> None:
    X, _ = simulated
    m = BGNBDModel(time_unit_days=7).fit(X)
    for k, v in TRUE_BGNBD.items():
        assert m.params_[k] == pytest.approx(v, rel=0.15), k
    assert m.converged_ and m.params_at_bound_ == []
    assert m.n_customers_ == len(X)


def test_bgnbd_alpha_scales_with_time_unit(simulated) -> None:
    X, _ = simulated
    weeks = BGNBDModel(time_unit_days=7).fit(X)
    days = BGNBDModel(time_unit_days=1).fit(X)
    assert days.params_["alpha"] == pytest.approx(7 * weeks.params_["alpha"], rel=1e-3)
    assert days.params_["r"] == pytest.approx(weeks.params_["r"], rel=1e-3)
    np.testing.assert_allclose(days.predict_p_alive(X), weeks.predict_p_alive(X), atol=1e-4)


def test_conditional_expectation_matches_simulated_holdout(simulated) -> None:
    X, hold = simulated
    true = fixed_model(TRUE_BGNBD, time_unit_days=7)
    pred = true.predict_expected_purchases(X, horizon_days=26 * 7)
    diff = hold - pred
    # E[holdout | calibration] summed over customers: the gap must be within 4 standard errors
    assert abs(diff.sum()) < 4 * diff.std() * np.sqrt(len(diff))
    res = evaluate_holdout(true, X, pd.Series(hold, index=X.index), 26 * 7)
    assert res["actual_total"] == hold.sum()
    assert res["mae"] == pytest.approx(np.abs(diff).mean())


def test_unconditional_expectation_matches_simulation() -> None:
    X, _ = simulate_bgnbd(8000, 20.0, seed=3)
    true = fixed_model(TRUE_BGNBD, time_unit_days=7)
    se = X["frequency"].std() / np.sqrt(len(X))
    assert abs(X["frequency"].mean() - true.predict_unconditional(140)) < 4 * se


def test_p_alive_and_expectations_behave() -> None:
    m = fixed_model(TRUE_BGNBD, time_unit_days=7, horizon_days=90)
    X = pd.DataFrame(
        {
            "frequency": [0, 3, 3, 3, 10],
            "recency_days": [50, 5, 60, 150, 5],
            "tenure_days": [50, 200, 200, 200, 200],
        },
        dtype=float,
    )
    pa = m.predict_p_alive(X)
    assert pa[0] == 1.0  # no repeat purchase: cannot have dropped out
    assert pa[1] > pa[2] > pa[3]  # the longer since the last purchase, the less likely alive
    assert np.all((pa > 0) & (pa <= 1))
    e30 = m.predict_expected_purchases(X, 30)
    e90 = m.predict_expected_purchases(X, 90)
    assert np.all(e90 > e30) and np.all(e30 > 0)
    assert e90[4] > e90[1]  # more purchases, same recency → more expected
    np.testing.assert_allclose(m.predict_expected_purchases(X, 0), 0, atol=1e-12)
    out = m.transform(X)
    assert list(out.columns) == ["expected_purchases_90d", "p_alive"]
    np.testing.assert_allclose(out["expected_purchases_90d"], e90)


def test_bgnbd_rejects_inconsistent_rows() -> None:
    X = pd.DataFrame({"frequency": [1.0, 2.0], "recency_days": [10.0, 50.0], "tenure_days": [20.0, 40.0]})
    with pytest.raises(ValueError, match="recency_days <= tenure_days.*position 1"):
        BGNBDModel().fit(X)
    with pytest.raises(ValueError, match="missing column.*tenure_days"):
        BGNBDModel().fit(X.drop(columns="tenure_days"))


def test_bgnbd_json_round_trip_and_clone(simulated) -> None:
    X, _ = simulated
    m = BGNBDModel(time_unit_days=7, horizon_days=30).fit(X.iloc[:1000])
    back = BGNBDModel.from_dict(json.loads(json.dumps(m.to_dict())))
    np.testing.assert_array_equal(back.predict_expected_purchases(X), m.predict_expected_purchases(X))
    c = clone(m)
    assert c.get_params() == m.get_params() and not hasattr(c, "params_")


def simulate_spend(n: int, seed: int = 0) -> pd.DataFrame:
    """Gamma-Gamma story: ν ~ Gamma(q, γ), each purchase's value ~ Gamma(p, ν); x = 1..10 repeat purchases."""
    rng = np.random.default_rng(seed)
    nu = rng.gamma(TRUE_GG["q"], 1.0 / TRUE_GG["v"], n)
    x = rng.integers(1, 11, n)
    mean = np.array([rng.gamma(TRUE_GG["p"], 1.0 / nu[i], x[i]).mean() for i in range(n)])
    return pd.DataFrame({"frequency": x.astype(float), "avg_repeat_value": mean})


def test_gamma_gamma_recovers_parameters_and_shrinks_to_the_mean() -> None:
    X = simulate_spend(3000, seed=4)
    g = GammaGammaModel().fit(pd.concat([X, pd.DataFrame({"frequency": [0.0], "avg_repeat_value": [0.0]})]))
    assert g.n_customers_ == 3000  # the customer without repeat purchase is not used
    for k, v in TRUE_GG.items():
        assert g.params_[k] == pytest.approx(v, rel=0.2), k
    p, q, v = g.params_["p"], g.params_["q"], g.params_["v"]
    probe = pd.DataFrame({"frequency": [0.0, 1.0, 50.0], "avg_repeat_value": [0.0, 500.0, 500.0]})
    ev = g.predict_expected_value(probe)
    assert ev[0] == pytest.approx(p * v / (q - 1))  # no evidence: population mean
    assert ev[0] < ev[1] < ev[2] < 500  # more purchases → closer to the customer's own mean
    assert abs(g.freq_value_corr_) < 0.1  # simulated independently
    back = GammaGammaModel.from_dict(json.loads(json.dumps(g.to_dict())))
    np.testing.assert_array_equal(back.predict_expected_value(probe), ev)


def test_gamma_gamma_rejects_negative_spend() -> None:
    X = pd.DataFrame({"frequency": [1.0, 2.0, 3.0], "avg_repeat_value": [10.0, -5.0, 3.0]})
    with pytest.raises(ValueError, match="negative.*position 1"):
        GammaGammaModel().fit(X)
