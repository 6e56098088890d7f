"""Conformal interval calibration of the forecast on hand-made backtest rows."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.forecast_calibrate import (
    MIN_RESIDUALS,
    apply_calibration,
    calibrated_backtest,
    conformal_offsets,
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
    per = len(errors) // origins
    return pd.DataFrame(
        {
            "method": "top_down",
            "origin": np.repeat(pd.date_range("2024-01-07", periods=origins, freq="28D"), per),
            "forecast": 100.0,
            "actual": 100.0 * np.exp(np.asarray(errors)),
        }
    )


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
