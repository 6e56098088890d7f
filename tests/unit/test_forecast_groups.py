"""Backtest per group (``crmscore forecast --by``): groups add up, no leakage from after the origin, calibration."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from tests.unit.test_forecast import T, make_orders
from training.forecast import ForecastConfig, forecast_at, paid_orders, weekly_revenue
from training.forecast_calibrate import calibrated_backtest, interval
from training.forecast_groups import backtest_groups, group_origin_rows, rolling_groups
from training.forecast_run import customer_groups, run_forecast

ORIGIN = T - pd.Timedelta(weeks=13)
PROVINCES = pd.DataFrame({"customer_id": [f"C{i:03d}" for i in range(150)],
                          "province": ["north" if i % 3 else "south" for i in range(150)]})  # fmt: skip


@pytest.fixture(scope="module")
def orders() -> pd.DataFrame:
    return make_orders()


def _rows(orders: pd.DataFrame, by: str) -> pd.DataFrame:
    tables = {"orders": orders, "customers": PROVINCES} if by == "province" else {"orders": orders}
    paid = paid_orders(orders, T)
    rows, errors = group_origin_rows(
        paid, ORIGIN, ForecastConfig(), pd.Timestamp(paid["ts"].min()), lambda o: customer_groups(tables, by, o)
    )
    assert not errors
    return rows


@pytest.mark.parametrize("by", ["province", "segment"])
def test_group_actuals_and_bottom_up_forecasts_add_up_to_the_total(orders, by):
    rows = _rows(orders, by)
    assert "total" not in set(rows["group"]) and (rows["origin"] == ORIGIN).all()
    bu = rows.loc[rows["method"] == "bottom_up"]
    # actuals: every paid order of the 13 weeks after the origin lands in exactly one group
    total_actual = weekly_revenue(paid_orders(orders, T), T, start=ORIGIN)["total"].to_numpy()
    np.testing.assert_allclose(bu.groupby("week")["actual"].sum().to_numpy(), total_actual, rtol=1e-9)
    # forecasts: the bottom-up groups add up to the total's bottom-up forecast made at the origin
    total = forecast_at(orders, ORIGIN, ForecastConfig(), methods=("bottom_up",)).table
    np.testing.assert_allclose(bu.groupby("week")["forecast"].sum().to_numpy(), total["forecast"].to_numpy())
    if by == "segment":  # RFM segment at the origin: buyers with no order up to it are "new buyers"
        assert "new buyers" in set(bu["group"]) and bu.loc[bu["group"] == "new buyers", "actual"].sum() > 0


def test_group_forecasts_and_groups_do_not_see_orders_after_the_origin(orders):
    before = _rows(orders, "segment")
    later = orders.loc[orders["ts"] > ORIGIN]
    changed = pd.concat(
        [
            orders.loc[orders["ts"] <= ORIGIN],
            later.assign(amount=later["amount"] * 50),  # after the origin: much larger, would move RFM segments
            pd.DataFrame({"customer_id": ["NEW1"], "ts": [ORIGIN + pd.Timedelta(days=1)], "amount": [1e6],
                          "status": ["paid"], "order_id": ["X"]}),  # fmt: skip
        ],
        ignore_index=True,
    )
    after = _rows(changed, "segment")
    cols = ["group", "method", "week", "forecast", "lo80", "hi80", "lo95", "hi95", "baseline"]
    pd.testing.assert_frame_equal(before[cols], after[cols])
    assert after["actual"].sum() > before["actual"].sum()  # only the actuals see them
    new = after.loc[(after["group"] == "new buyers") & (after["method"] == "bottom_up"), "actual"]
    assert new.sum() - before.loc[(before["group"] == "new buyers") & (before["method"] == "bottom_up"),
                                  "actual"].sum() >= 1e6 - 1  # fmt: skip


def test_backtest_groups_metrics_recompute_from_their_rows(orders):
    tables = {"orders": orders, "customers": PROVINCES}
    paid = paid_orders(orders, T)
    origins = [T - pd.Timedelta(weeks=17), ORIGIN]
    cfg = ForecastConfig()
    gb = backtest_groups(paid, origins, pd.Timestamp(paid["ts"].min()), cfg,
                         lambda o: customer_groups(tables, "province", o))  # fmt: skip
    assert set(gb.metrics["group"]) == {"north", "south"}
    assert set(gb.metrics["method"]) == {"bottom_up", "top_down", "combined"}
    for rec in gb.metrics.to_dict("records"):
        d = gb.rows.loc[(gb.rows["group"] == rec["group"]) & (gb.rows["method"] == rec["method"])]
        assert rec["n_weeks"] == 26 and rec["n_origins"] == 2
        assert rec["wape"] == pytest.approx(np.abs(d["actual"] - d["forecast"]).sum() / d["actual"].sum())
        assert rec["coverage80"] == pytest.approx(((d["actual"] >= d["lo80"]) & (d["actual"] <= d["hi80"])).mean())
        cal = calibrated_backtest(gb.rows.loc[gb.rows["group"] == rec["group"]], cfg.levels)
        assert rec["coverage80_calibrated"] == pytest.approx(cal.metrics[f"coverage80_{rec['method']}_calibrated"])


def test_run_by_group_calibrates_each_group_on_its_own_backtest(orders, tmp_path):
    tables = {"orders": orders, "customers": PROVINCES}
    res = run_forecast(None, T, tmp_path, by="province", tables=tables, origins=2, log_mlflow=False)
    table = res.table
    assert set(table["interval"]) == {"conformal"}  # the total and both groups, every method
    assert (tmp_path / "backtest_groups.csv").is_file()
    summary = json.loads((tmp_path / "summary.json").read_text(encoding="utf-8"))
    groups = summary["groups_backtest"]
    assert groups["method_reported"].startswith(res.selected)
    assert {(r["group"], r["method"]) for r in groups["metrics"]} == {
        (g, m) for g in ("north", "south") for m in ("bottom_up", "top_down", "combined")
    }
    # a group's rows carry the interval from its own backtest residuals
    rows = pd.read_csv(tmp_path / "backtest_groups.csv", parse_dates=["origin"])
    cal = calibrated_backtest(rows.loc[rows["group"] == "north"], (80, 95))
    f = table.loc[(table["group"] == "north") & (table["method"] == "top_down")]
    lo, hi = interval(f["forecast"].to_numpy(), f["week"].to_numpy(), cal.offsets["top_down"], 80)
    np.testing.assert_allclose(f["lo80"], lo, rtol=1e-3)  # backtest_groups.csv holds 2 decimals
    np.testing.assert_allclose(f["hi80"], hi, rtol=1e-3)
    # the reported method is the total's choice for every group
    assert set(table.loc[table["selected"], "method"]) == {res.selected}


def test_rolling_groups_scores_the_group_intervals_the_cli_would_have_printed(orders, tmp_path):
    tables = {"orders": orders, "customers": PROVINCES}
    cfg = ForecastConfig(backtest_origins=2)
    paid = paid_orders(orders, T)
    rows, metrics = rolling_groups(paid, T, pd.Timestamp(paid["ts"].min()), cfg,
                                   lambda o: customer_groups(tables, "province", o))  # fmt: skip
    e = ORIGIN  # the last evaluation origin: what `crmscore forecast --as-of e --by province` printed
    made = run_forecast(None, e, tmp_path, by="province", tables=tables, origins=2, log_mlflow=False).table
    for g in ("north", "south"):
        for m in ("bottom_up", "top_down", "combined"):
            want = made.loc[(made["group"] == g) & (made["method"] == m)]
            got = rows.loc[(rows["origin"] == e) & (rows["group"] == g) & (rows["method"] == m)]
            assert len(got) == 13 and (want["interval"] == "conformal").all()
            for col in ("forecast", "lo80", "hi80", "lo95", "hi95"):
                np.testing.assert_allclose(got[col].to_numpy(), want[col].to_numpy(), rtol=1e-9)
    rec = metrics.set_index(["group", "method"]).loc[("north", "top_down")]
    d = rows.loc[(rows["group"] == "north") & (rows["method"] == "top_down")]
    assert rec["n_weeks"] == 26 and rec["coverage80"] == pytest.approx(
        ((d["actual"] >= d["lo80"]) & (d["actual"] <= d["hi80"])).mean()
    )
