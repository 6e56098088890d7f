"""Conformal interval calibration of the forecast: hand-made backtest rows, and a generated series with known noise."""

from __future__ import annotations

from statistics import NormalDist

import numpy as np
import pandas as pd
import pytest

from training.forecast_calibrate import (
    MIN_RESIDUALS,
    apply_calibration,
    calibrated_backtest,
    conformal_offsets,
    conformal_ranks,
    horizon_factor,
    interval,
    log_residuals,
)


def test_offsets_are_finite_sample_conformal_ranks() -> None:
    r = np.log(np.arange(1, 20) / 10.0)  # 19 residuals, sorted
    off = conformal_offsets(r, (80,))
    # n = 19: lower rank floor(20 * 0.1) = 2, upper rank ceil(20 * 0.9) = 18
    assert off == {"lo80": pytest.approx(np.log(0.2)), "hi80": pytest.approx(np.log(1.8))}
    assert conformal_offsets(r[: MIN_RESIDUALS - 1], (80,)) is None


def test_residuals_skip_zero_and_missing_weeks() -> None:
    rows = pd.DataFrame({"actual": [100.0, 0.0, np.nan, 50.0], "forecast": [50.0, 10.0, 10.0, 0.0]})
    assert log_residuals(rows).tolist() == [pytest.approx(np.log(2.0))]


def _rows(errors: list[float], origins: int) -> pd.DataFrame:
    """Backtest rows of one method with the given log errors, every week 1 week ahead (horizon factor 1)."""
    per = len(errors) // origins
    return pd.DataFrame(
        {
            "method": "top_down",
            "origin": np.repeat(pd.date_range("2024-01-07", periods=origins, freq="28D"), per),
            "week": 1,
            "forecast": 100.0,
            "actual": 100.0 * np.exp(np.asarray(errors)),
        }
    )


def test_residuals_are_divided_by_the_square_root_of_the_weeks_ahead() -> None:
    rows = pd.DataFrame({"actual": [200.0, 200.0], "forecast": [100.0, 100.0], "week": [1, 4]})
    assert log_residuals(rows, "sqrt").tolist() == [pytest.approx(np.log(2.0)), pytest.approx(np.log(2.0) / 2)]
    assert log_residuals(rows, "none").tolist() == [pytest.approx(np.log(2.0))] * 2
    assert horizon_factor(np.array([1, 9]), "sqrt").tolist() == [1.0, 3.0]
    lo, hi = interval(np.array([100.0]), np.array([9]), {"lo80": -0.1, "hi80": 0.2}, 80)
    assert lo[0] == pytest.approx(100 * np.exp(-0.3)) and hi[0] == pytest.approx(100 * np.exp(0.6))
    with pytest.raises(ValueError, match="horizon_scale"):
        horizon_factor(np.array([1]), "linear")  # type: ignore[arg-type]


def _random_walk_backtest(origins: int, horizon: int, seed: int) -> pd.DataFrame:
    """Backtest rows of a level forecast whose log error is a random walk with known weekly noise (sd 0.1):
    the error of week h ahead is the sum of h weekly shocks, so its spread grows like sqrt(h)."""
    rng = np.random.default_rng(seed)
    shocks = rng.normal(0.0, 0.1, size=(origins, horizon))
    level = rng.uniform(50.0, 5000.0, size=(origins, 1))  # series levels differ by two orders of magnitude
    forecast = np.repeat(level, horizon, axis=1)
    return pd.DataFrame(
        {
            "method": "top_down",
            "origin": np.repeat(pd.date_range("2020-01-05", periods=origins, freq="7D"), horizon),
            "week": np.tile(np.arange(1, horizon + 1), origins),
            "forecast": forecast.ravel(),
            "actual": (forecast * np.exp(np.cumsum(shocks, axis=1))).ravel(),
        }
    )


def test_intervals_are_calibrated_on_held_out_weeks_of_a_series_with_known_noise() -> None:
    H = 13
    calib = _random_walk_backtest(origins=300, horizon=H, seed=11)  # 3,900 residuals
    held_out = _random_walk_backtest(origins=300, horizon=H, seed=12)  # 3,900 weeks never used to calibrate
    cal = calibrated_backtest(calib, (80, 95))
    out = apply_calibration(held_out.assign(group="total"), cal, (80, 95), "total")
    inside = (out["actual"] >= out["lo80"]) & (out["actual"] <= out["hi80"])
    assert 0.74 <= inside.mean() <= 0.86
    assert 0.91 <= ((out["actual"] >= out["lo95"]) & (out["actual"] <= out["hi95"])).mean() <= 0.98
    # matched to the horizon: the first and the last weeks are both covered close to 80%, ...
    by_week = inside.groupby(out["week"]).mean()
    assert 0.68 <= by_week[1] <= 0.92 and 0.68 <= by_week[H] <= 0.92
    # ... where one width pooled over the weeks is too wide for week 1 and too narrow for week 13
    pooled = apply_calibration(
        held_out.assign(group="total"), calibrated_backtest(calib, (80,), "none"), (80,), "total"
    )
    p_inside = ((pooled["actual"] >= pooled["lo80"]) & (pooled["actual"] <= pooled["hi80"])).groupby(pooled["week"])
    assert p_inside.mean()[1] > 0.95 and p_inside.mean()[H] < 0.76


def test_calibrated_coverage_is_leave_one_origin_out() -> None:
    rng = np.random.default_rng(0)
    rows = _rows(list(rng.normal(0, 0.3, 400)), 4)
    cal = calibrated_backtest(rows, (80, 95))
    # errors of one distribution: intervals from the other origins cover close to the nominal share
    assert 0.72 <= cal.metrics["coverage80_top_down_calibrated"] <= 0.88
    assert 0.9 <= cal.metrics["coverage95_top_down_calibrated"] <= 0.99
    assert cal.n_residuals == {"top_down": 400}
    # an origin whose errors are all far outside the others' is not covered: its own errors are not used
    shifted = _rows([0.0] * 30 + [5.0] * 10, 4)
    assert calibrated_backtest(shifted, (80,)).metrics["coverage80_top_down_calibrated"] == 0.75


def test_apply_replaces_only_the_total_of_calibrated_methods() -> None:
    cal = calibrated_backtest(_rows([-0.2, -0.1, 0.0, 0.1, 0.2] * 4, 4), (80,))
    table = pd.DataFrame(
        {
            "week": [1, 1, 1],
            "group": ["total", "total", "web"],
            "method": ["top_down", "bottom_up", "top_down"],
            "forecast": [200.0, 200.0, 50.0],
            "lo80": [190.0, 190.0, 45.0],
            "hi80": [210.0, 210.0, 55.0],
        }
    )
    out = apply_calibration(table, cal, (80,), "total")
    assert out["interval"].tolist() == ["conformal", "model", "model"]
    assert out.loc[0, "lo80"] == pytest.approx(200 * np.exp(-0.2)) and out.loc[0, "hi80"] == pytest.approx(
        200 * np.exp(0.2)
    )
    assert out.loc[1:, ["lo80", "hi80"]].equals(table.loc[1:, ["lo80", "hi80"]])


def test_too_few_residuals_keep_the_model_intervals_with_a_note() -> None:
    cal = calibrated_backtest(_rows([0.1, -0.1, 0.0, 0.2], 2), (80,))
    assert cal.offsets == {} and "model's own intervals are kept" in cal.notes[0]


def test_a_level_too_wide_for_the_sample_is_extrapolated_from_the_inner_one() -> None:
    rng = np.random.default_rng(5)
    r = np.sort(rng.normal(0.0, 0.2, 52))
    assert conformal_ranks(52, 80) == (5, 48) and conformal_ranks(52, 95) == (1, 52)  # 95%: the extremes
    off = conformal_offsets(r, (80, 95))
    med = float(np.median(r))
    ratio = 1.959964 / 1.281552  # z(0.975) / z(0.9)
    assert off["lo80"] == pytest.approx(r[4]) and off["hi80"] == pytest.approx(r[47])
    assert off["lo95"] == pytest.approx(med + (r[4] - med) * ratio, rel=1e-5)
    assert off["hi95"] == pytest.approx(med + (r[47] - med) * ratio, rel=1e-5)
    # one week of a small group 20 times its forecast (one large order) no longer sets the 95% bound
    shocked = np.append(r[:-1], np.log(20.0))
    assert conformal_offsets(shocked, (80, 95)) == pytest.approx(off)
    lo, hi = interval(np.array([100.0]), np.array([13]), conformal_offsets(shocked, (80, 95)), 95)
    assert 0 < lo[0] < 100.0 < hi[0] < 400.0  # the extreme residual times sqrt(13) gave 100 * 20 ** 3.6 ≈ 5e6
    # with enough residuals the conformal ranks are used at every level
    big = np.sort(rng.normal(0.0, 0.2, 200))
    assert conformal_ranks(200, 95) == (5, 196)
    assert conformal_offsets(big, (80, 95)) == {"lo80": big[19], "hi80": big[180], "lo95": big[4], "hi95": big[195]}
    # no level inside the sample (8 residuals): the conformal ranks, as before
    assert conformal_offsets(r[::6][:8], (80, 95))["hi95"] == pytest.approx(r[::6][:8].max())


def test_extrapolated_95_interval_covers_95_percent_of_normal_errors_from_52_residuals() -> None:
    # 52 residuals, as a 4-origin backtest gives; errors normal (the extrapolation's assumption): the share of the
    # error distribution inside each sample's bounds, averaged over 400 samples, is close to the nominal level
    rng = np.random.default_rng(8)
    cover = {80: [], 95: []}
    for _ in range(400):
        off = conformal_offsets(rng.normal(0.0, 1.0, 52), (80, 95))
        for lv in cover:
            cover[lv].append(NormalDist().cdf(off[f"hi{lv}"]) - NormalDist().cdf(off[f"lo{lv}"]))
    assert 0.77 <= np.mean(cover[80]) <= 0.83
    assert 0.92 <= np.mean(cover[95]) <= 0.97


def test_rolling_intervals_never_use_the_actuals_of_the_origin_they_score() -> None:
    from tests.unit.test_forecast import T, make_orders
    from training.forecast import ForecastConfig
    from training.forecast_calibrate import rolling_evaluation

    orders = make_orders()
    cfg = ForecastConfig(backtest_origins=2)
    ev = rolling_evaluation(orders, T, cfg)
    assert set(ev.rows["method"]) == {"bottom_up", "top_down", "combined"}  # every method calibrated the same way
    for e in ev.origins:
        # every order after the scored origin three times as large: its actual weeks change, its forecast and
        # calibrated intervals (from the backtest before e) do not
        changed = orders.copy()
        changed.loc[(changed["ts"] > e).to_numpy(), "amount"] *= 3.0
        again = rolling_evaluation(changed, T, cfg)
        for m in ("bottom_up", "top_down", "combined"):
            a = ev.rows.loc[(ev.rows["origin"] == e) & (ev.rows["method"] == m)]
            b = again.rows.loc[(again.rows["origin"] == e) & (again.rows["method"] == m)]
            assert len(a) == len(b) == cfg.horizon_weeks
            np.testing.assert_allclose(b["actual"].to_numpy(), 3.0 * a["actual"].to_numpy(), rtol=1e-9)
            for col in ("forecast", "lo80", "hi80", "lo95", "hi95"):
                np.testing.assert_allclose(b[col].to_numpy(), a[col].to_numpy(), rtol=1e-12)
