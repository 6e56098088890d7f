"""Forecast: week boundaries, metrics on hand-made series, shapes, interval order, groups and no leakage."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from training.forecast import (
    ForecastConfig,
    backtest,
    backtest_origins,
    coverage,
    forecast_at,
    interval_score,
    seasonal_naive,
    wape,
    weekly_revenue,
    wis,
)
from training.forecast_calibrate import apply_calibration, calibrated_backtest, choice_evaluation, rolling_evaluation
from training.forecast_run import parse_horizon

T = pd.Timestamp("2025-06-30")


def make_orders(n_customers: int = 150, weeks: int = 70, seed: int = 3) -> pd.DataFrame:
    """Customers buying at individual Poisson rates over ``weeks`` weeks before T (some join late)."""
    rng = np.random.default_rng(seed)
    start = T - pd.Timedelta(weeks=weeks)
    rows = []
    for i in range(n_customers):
        join = rng.integers(0, weeks * 7 - 10)
        rate = rng.gamma(2.0, 0.02)  # purchases per day
        k = max(1, rng.poisson(rate * (weeks * 7 - join)))
        days = np.sort(join + rng.integers(0, weeks * 7 - join, k))
        for d in days:
            rows.append(
                (f"C{i:03d}", start + pd.Timedelta(days=int(d), hours=int(rng.integers(0, 24))), rng.gamma(3, 30))
            )
    o = pd.DataFrame(rows, columns=["customer_id", "ts", "amount"])
    o["status"] = np.where(rng.random(len(o)) < 0.9, "paid", "cancelled")
    o["order_id"] = [f"O{i}" for i in range(len(o))]
    return o


def test_week_boundaries_end_at_the_cutoff():
    t = pd.Timestamp("2025-01-15")
    o = pd.DataFrame(
        {
            "customer_id": ["a", "b", "c", "d"],
            "ts": [t, t - pd.Timedelta(days=7), t - pd.Timedelta(days=7, seconds=-1), t - pd.Timedelta(days=13)],
            "amount": [1.0, 10.0, 100.0, 1000.0],
        }
    )
    w = weekly_revenue(o, t, start=t - pd.Timedelta(days=14))
    # (t-7d, t] holds ts == t and t-7d+1s; (t-14d, t-7d] holds t-7d and t-13d
    assert list(w.index) == [t - pd.Timedelta(days=7), t]
    assert w["total"].tolist() == [1010.0, 101.0]


def test_wape_and_coverage_on_a_hand_made_series():
    actual = np.array([100.0, 200.0, 300.0, 400.0])
    fc = np.array([110.0, 180.0, 300.0, 500.0])
    assert wape(actual, fc) == pytest.approx((10 + 20 + 0 + 100) / 1000)
    lo, hi = np.array([90, 190, 310, 350.0]), np.array([120, 210, 330, 450.0])
    assert coverage(actual, lo, hi) == 0.75  # 300 is below 310
    assert np.isnan(wape(np.zeros(3), np.ones(3)))


def test_seasonal_naive_uses_52_weeks_back_only_with_a_full_season():
    y = np.arange(60, dtype=float)
    f, kind = seasonal_naive(y, 13)
    assert kind == "seasonal_naive_52" and f.tolist() == list(range(8, 21))
    f, kind = seasonal_naive(y[:40], 13)
    assert kind == "last_value_naive" and f.tolist() == [39.0] * 13


def test_parse_horizon():
    assert parse_horizon("13w") == 13 and parse_horizon("13") == 13 and parse_horizon("91d") == 13
    for bad in ("13x", "90d", "0w"):
        with pytest.raises(ValueError, match="--horizon"):
            parse_horizon(bad)


@pytest.fixture(scope="module")
def orders() -> pd.DataFrame:
    return make_orders()


@pytest.fixture(scope="module")
def result(orders):
    groups = pd.Series({f"C{i:03d}": ("north" if i % 3 else "south") for i in range(150)}, name="province")
    return forecast_at(orders, T, ForecastConfig(), customer_groups=groups)


def test_forecast_shapes_and_interval_order(result):
    tab = result.table
    assert not result.errors
    assert set(tab["method"]) == {"bottom_up", "top_down", "combined"}
    assert set(tab["group"]) == {"total", "north", "south"}
    for (_, _), g in tab.groupby(["group", "method"]):
        assert g["week"].tolist() == list(range(1, 14))
        assert (g["week_end"] - g["week_start"] == pd.Timedelta(days=7)).all()
        assert g["week_start"].iloc[0] == T
    v = tab[["lo95", "lo80", "forecast", "hi80", "hi95"]].to_numpy()
    assert np.isfinite(v).all() and (v >= 0).all()
    assert (np.diff(v, axis=1) >= -1e-9).all()


def test_combined_is_the_mean_of_the_two_forecasts_and_of_their_bounds(result):
    tab = result.table.set_index(["group", "method", "week"]).sort_index()
    for col in ("forecast", "lo80", "hi80", "lo95", "hi95"):
        both = 0.5 * tab.xs("bottom_up", level="method")[col] + 0.5 * tab.xs("top_down", level="method")[col]
        np.testing.assert_allclose(tab.xs("combined", level="method")[col], both.to_numpy(), rtol=1e-12)


def test_weighted_interval_score_on_a_hand_made_series():
    actual = np.array([100.0, 200.0])
    fc = np.array([110.0, 200.0])
    bounds = {"lo80": np.array([90.0, 150.0]), "hi80": np.array([120.0, 190.0])}
    # week 1 inside: width 30; week 2 above hi80 by 10: width 40 + 2 / 0.2 * 10 = 140
    np.testing.assert_allclose(interval_score(actual, bounds["lo80"], bounds["hi80"], 80), [30.0, 140.0])
    # per week (0.5 |y - m| + 0.1 IS) / 1.5, summed, over the sum of actuals
    assert wis(actual, fc, bounds, (80,)) == pytest.approx(((5 + 3) + (0 + 14)) / 1.5 / 300)
    assert wis(actual, fc, {}, ()) == pytest.approx(wape(actual, fc))  # no interval: the WAPE


def test_bottom_up_groups_add_up_to_the_total(result):
    bu = result.table.loc[result.table["method"] == "bottom_up"]
    total = bu.loc[bu["group"] == "total", "forecast"].to_numpy()
    parts = bu.loc[bu["group"] != "total"].groupby("week")["forecast"].sum().to_numpy()
    np.testing.assert_allclose(parts, total, rtol=1e-9)


def test_orders_after_the_cutoff_change_nothing(orders):
    cfg = ForecastConfig()
    before = forecast_at(orders, T - pd.Timedelta(weeks=8), cfg).table
    later = orders.loc[orders["ts"] > T - pd.Timedelta(weeks=8)].copy()
    changed = pd.concat(
        [
            orders.loc[orders["ts"] <= T - pd.Timedelta(weeks=8)],
            later.assign(amount=later["amount"] * 50),  # orders after T: much larger
            pd.DataFrame({"customer_id": ["NEW1"], "ts": [T], "amount": [1e6], "status": ["paid"], "order_id": ["X"]}),
        ]
    )
    after = forecast_at(changed, T - pd.Timedelta(weeks=8), cfg).table
    pd.testing.assert_frame_equal(before, after)


def test_backtest_metrics_recompute_from_its_rows(orders):
    cfg = ForecastConfig(backtest_origins=3, origin_step_weeks=4)
    bt = backtest(orders, T, cfg)
    first = orders.loc[orders["status"] == "paid", "ts"].min()
    assert bt.origins == backtest_origins(first, T, cfg) and len(bt.origins) == 3
    assert bt.origins[-1] == T - pd.Timedelta(weeks=13)
    # about 70 weeks of data: the last origin has 52 weeks of history (seasonal naive), the first one does not
    kinds = bt.rows.drop_duplicates("origin").set_index("origin")["baseline_kind"]
    expected = [
        "seasonal_naive_52" if (o - first) // pd.Timedelta(weeks=1) >= 52 else "last_value_naive" for o in bt.origins
    ]
    assert kinds.tolist() == expected
    assert expected[0] == "last_value_naive" and expected[-1] == "seasonal_naive_52"
    assert bt.baseline == "last_value_naive+seasonal_naive_52"
    for m in ("bottom_up", "top_down"):
        d = bt.rows.loc[bt.rows["method"] == m]
        assert len(d) == 3 * 13
        assert bt.metrics[f"wape_{m}"] == pytest.approx(np.abs(d["actual"] - d["forecast"]).sum() / d["actual"].sum())
        inside = ((d["actual"] >= d["lo80"]) & (d["actual"] <= d["hi80"])).mean()
        assert bt.metrics[f"coverage80_{m}"] == pytest.approx(inside)
    d = bt.rows.loc[bt.rows["method"] == "top_down"]
    assert bt.metrics["wape_baseline"] == pytest.approx(np.abs(d["actual"] - d["baseline"]).sum() / d["actual"].sum())


def test_short_history_falls_back_to_last_value_naive(orders):
    recent = orders.loc[orders["ts"] > T - pd.Timedelta(weeks=40)]
    bt = backtest(recent, T, ForecastConfig(backtest_origins=2))
    assert bt.baseline == "last_value_naive"
    assert bt.metrics["n_origins"] == 2


def test_too_little_history_is_a_clear_error(orders):
    with pytest.raises(ValueError, match="full week"):
        forecast_at(orders.loc[orders["ts"] > T - pd.Timedelta(weeks=5)], T, ForecastConfig())


def test_run_without_backtest_says_so_and_warns_about_empty_last_weeks(orders, tmp_path):
    from training.forecast_run import run_forecast

    res = run_forecast(
        None, T + pd.Timedelta(days=30), tmp_path, tables={"orders": orders}, origins=0, log_mlflow=False
    )
    assert res.selected == "top_down" and res.backtest is None and res.run_id is None
    assert any("no backtest" in n for n in res.notes)
    assert any("more than a week before T" in n for n in res.notes)
    assert {p.name for p in tmp_path.iterdir()} == {"forecast.csv", "history.csv", "summary.json", "forecast.png"}


def test_by_segment_uses_the_rfm_segment_at_t_and_new_buyers_get_their_own_group(orders):
    from training.forecast_run import customer_groups

    g = customer_groups({"orders": orders}, "segment", T)
    assert g.name == "rfm_segment" and g.index.is_unique
    assert set(g) <= {"Champions", "Loyal", "Potential loyalist", "New", "Promising", "Need attention",
                      "About to sleep", "At risk", "Cannot lose them", "Hibernating", "Lost"}  # fmt: skip
    res = forecast_at(orders, T, ForecastConfig(), customer_groups=g, methods=("bottom_up",))
    groups = set(res.table["group"])
    assert "new buyers" in groups and "total" in groups
    parts = res.table.loc[res.table["group"] != "total"].groupby("week")["forecast"].sum().to_numpy()
    np.testing.assert_allclose(parts, res.table.loc[res.table["group"] == "total", "forecast"].to_numpy())
    own = customer_groups({"orders": orders, "customers": pd.DataFrame({"customer_id": ["C000"], "segment": ["B2B"]})},
                          "segment", T)  # fmt: skip
    assert own.to_dict() == {"C000": "B2B"}


def test_rolling_evaluation_scores_the_interval_the_cli_would_have_printed_at_each_origin(orders):
    cfg = ForecastConfig(backtest_origins=2)
    ev = rolling_evaluation(orders, T, cfg)
    assert ev.origins == backtest_origins(orders["ts"].min(), T, cfg)
    for e in ev.origins:
        # what `crmscore forecast --as-of e` does: a backtest of cutoff e (orders <= e only), its residuals, the
        # calibrated forecast at e
        bt = backtest(orders, e, cfg)
        assert max(bt.origins) <= e - pd.Timedelta(weeks=cfg.horizon_weeks)
        made = apply_calibration(
            forecast_at(orders, e, cfg).table, calibrated_backtest(bt.rows, cfg.levels), cfg.levels, "total"
        )
        for m in ("bottom_up", "top_down", "combined"):
            want = made.loc[(made["group"] == "total") & (made["method"] == m)]
            got = ev.rows.loc[(ev.rows["origin"] == e) & (ev.rows["method"] == m)]
            assert len(got) == cfg.horizon_weeks and (want["interval"] == "conformal").all()
            for col in ("forecast", "lo80", "hi80", "lo95", "hi95"):
                np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), rtol=1e-9)
    for m in ("bottom_up", "top_down", "combined"):
        d = ev.rows.loc[ev.rows["method"] == m]
        assert ev.metrics[f"coverage80_{m}"] == pytest.approx(coverage(d["actual"], d["lo80"], d["hi80"]))
        assert ev.metrics[f"width80_{m}"] == pytest.approx((d["hi80"] - d["lo80"]).mean())
        assert ev.metrics[f"width95_{m}"] > ev.metrics[f"width80_{m}"] > 0
        assert ev.metrics[f"wape_{m}"] == pytest.approx(wape(d["actual"], d["forecast"]))
        bounds = {c: d[c].to_numpy() for c in ("lo80", "hi80", "lo95", "hi95")}
        assert ev.metrics[f"wis80_{m}"] == pytest.approx(wis(d["actual"], d["forecast"], bounds, (80,)))
        assert ev.metrics[f"wis_{m}"] == pytest.approx(wis(d["actual"], d["forecast"], bounds, (80, 95)))


def test_run_reports_the_method_with_the_lowest_out_of_time_interval_score(orders, tmp_path):
    from training.forecast_run import run_forecast

    res = run_forecast(None, T, tmp_path, tables={"orders": orders}, origins=2, log_mlflow=False)
    m = res.backtest.metrics
    # the rolling evaluation of the calibrated forecasts is in the metrics, equal to rolling_evaluation's
    ev = rolling_evaluation(orders, T, ForecastConfig(backtest_origins=2))
    scores = {k: m[f"rolling_wis80_{k}"] for k in ("bottom_up", "top_down", "combined")}
    assert scores == pytest.approx({k: ev.metrics[f"wis80_{k}"] for k in scores})
    assert res.selected == min(scores, key=scores.get)
    assert res.table.loc[res.table["selected"], "method"].unique().tolist() == [res.selected]
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    assert summary["selected_on"].startswith("lowest weighted interval score")
    # on WAPE when asked
    res = run_forecast(
        None, T, tmp_path / "w", tables={"orders": orders}, origins=2, log_mlflow=False,
        cfg=ForecastConfig(select_on="wape"),
    )  # fmt: skip
    wapes = {k: res.backtest.metrics[f"wape_{k}"] for k in ("bottom_up", "top_down", "combined")}
    assert res.selected == min(wapes, key=wapes.get) and "rolling_wis80_top_down" not in res.backtest.metrics


def test_choice_evaluation_scores_the_forecast_the_cli_would_have_reported_at_each_origin(orders, tmp_path):
    from training.forecast_run import run_forecast

    cfg = ForecastConfig(backtest_origins=2)
    ce = choice_evaluation(orders, T, cfg)
    assert len(ce.choices) == 2 and ce.metrics["n_weeks"] == 26
    for rec in ce.choices.to_dict("records"):
        e = rec["origin"]
        run = run_forecast(None, e, tmp_path / str(e.date()), tables={"orders": orders}, origins=2, log_mlflow=False)
        assert run.selected == rec["method"]
        want = run.table.loc[(run.table["group"] == "total") & run.table["selected"]]
        got = ce.rows.loc[ce.rows["origin"] == e]
        for col in ("forecast", "lo80", "hi80", "lo95", "hi95"):
            np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), rtol=1e-9)
    assert ce.metrics["coverage80"] == pytest.approx(coverage(ce.rows["actual"], ce.rows["lo80"], ce.rows["hi80"]))
    assert ce.metrics["wape"] == pytest.approx(wape(ce.rows["actual"], ce.rows["forecast"]))
