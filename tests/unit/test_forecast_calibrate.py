"""Conformal interval calibration of the forecast: hand-made backtest rows, and a generated series with known noise."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.forecast_calibrate import (
    MIN_RESIDUALS,
    apply_calibration,
    calibrated_backtest,
    conformal_offsets,
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
