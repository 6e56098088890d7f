"""Backtest per group of ``crmscore forecast --by``: each group's WAPE, coverage and calibrated intervals.

At each backtest origin ``o`` of the total (the same origins), the groups are formed **as at ``o``**: for a
customers column (``source_channel``, ``province``, the customers' own ``segment``) that is the column itself,
for the RFM segment the segment computed from the orders up to ``o`` (a buyer's segment at ``o``, not at T), and
the ``max_groups`` largest groups by revenue up to ``o`` are kept, the rest become ``other`` — what
``crmscore forecast --as-of o --by ...`` would have grouped. Every method's forecast of each group is made from
the orders up to ``o`` only and scored on the group's actual revenue in the 13 weeks after ``o``: the revenue of
the customers in that group at ``o`` (for the RFM segment, buyers with no order up to ``o`` form ``new buyers``,
as in the bottom-up forecast; customers missing from the customers table are ``other``). So the groups' actuals
add up to the total's.

Per group and method: WAPE beside the group's seasonal-naive baseline, the models' own coverage, the
leave-one-origin-out coverage of the calibrated intervals, and the calibration offsets the final forecast's group
rows get (:func:`training.forecast_calibrate.calibrated_backtest` on that group's rows, the same √h rule as the
total). The method reported for the groups is the total's choice (see docs/forecast.md for why).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from training.forecast import (
    METHODS,
    NEW_BUYERS,
    OTHER,
    TOTAL,
    WEEK,
    ForecastConfig,
    _forecast_paid,
    backtest_origins,
    coverage,
    future_weeks,
    limit_groups,
    seasonal_naive,
    wape,
    weekly_revenue,
)
from training.forecast_calibrate import Calibration, calibrated_backtest, interval

#: customer id → group, as at the given cutoff (from the orders up to it only)
GroupsAt = Callable[[pd.Timestamp], pd.Series]


def group_actuals(
    paid: pd.DataFrame, origin: pd.Timestamp, horizon: int, groups: pd.Series, fill: str
) -> pd.DataFrame:
    """Weekly revenue of the ``horizon`` weeks after ``origin`` per group of ``groups`` (customer id → group at
    ``origin``); customers not in ``groups`` count as ``fill``. Rows = week end, one column per group."""
    end = origin + horizon * WEEK
    after = paid.loc[((paid["ts"] > origin) & (paid["ts"] <= end)).to_numpy()]
    weeks = pd.DatetimeIndex(future_weeks(origin, horizon)["week_end"], name="week_end")
    if after.empty:
        return pd.DataFrame(index=weeks)
    g = after["customer_id"].map(groups)
    g = g.astype(object).where(g.notna(), fill).astype(str)
    return weekly_revenue(after, end, g, start=origin).reindex(weeks, fill_value=0.0)


def group_origin_rows(
    paid: pd.DataFrame, origin: pd.Timestamp, cfg: ForecastConfig, start: pd.Timestamp, groups_at: GroupsAt
) -> tuple[pd.DataFrame, dict[str, str]]:
    """Every method's forecast of every group (not the total) made at ``origin`` from the orders up to it, beside
    the group's actual weekly revenue after ``origin`` and its seasonal-naive baseline; and the methods that
    failed. ``paid`` may hold orders after ``origin`` (the actuals); the forecasts never see them."""
    before = paid.loc[(paid["ts"] <= origin).to_numpy()]
    groups = groups_at(origin)
    res = _forecast_paid(before, origin, cfg, customer_groups=groups, start=start)
    kept = limit_groups(groups, before, cfg.max_groups)
    act = group_actuals(paid, origin, cfg.horizon_weeks, kept, NEW_BUYERS if groups.name == "rfm_segment" else OTHER)
    parts = []
    for (g, _m), f in res.table.loc[(res.table["group"] != TOTAL).to_numpy()].groupby(["group", "method"], sort=False):
        a = act[g].to_numpy(dtype="float64") if g in act.columns else np.zeros(cfg.horizon_weeks)
        if g in res.history.columns:
            naive, kind = seasonal_naive(res.history[g].to_numpy(), cfg.horizon_weeks, cfg.season_weeks)
        else:  # a group with no history yet (new buyers): no baseline
            naive, kind = np.full(cfg.horizon_weeks, np.nan), "none"
        parts.append(f.assign(origin=origin, actual=a, baseline=naive, baseline_kind=kind))
    rows = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()
    return rows, res.errors


@dataclass
class GroupBacktest:
    """Backtest rows of every group, metrics per group and method, and each group's interval calibration."""

    rows: pd.DataFrame
    metrics: pd.DataFrame
    calibrations: dict[str, Calibration] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


def backtest_groups(
    paid: pd.DataFrame,
    origins: list[pd.Timestamp],
    first: pd.Timestamp,
    cfg: ForecastConfig,
    groups_at: GroupsAt,
) -> GroupBacktest:
    """Backtest of each group at ``origins`` (the total's), with the groups as at each origin; ``paid`` = the paid
    orders up to the run's cutoff. ``metrics`` has one row per group and method: ``wape``, ``wape_baseline``,
    ``coverage{lv}`` (the models' own), ``coverage{lv}_calibrated`` (leave-one-origin-out), ``n_weeks`` and
    ``n_origins`` (the origins at which the group existed)."""
    parts, notes = [], []
    for o in origins:
        rows, errors = group_origin_rows(paid, o, cfg, first, groups_at)
        notes += [f"groups, origin {o.date()}: {m} failed: {err}" for m, err in errors.items()]
        if not rows.empty:
            parts.append(rows)
    if not parts:
        return GroupBacktest(rows=pd.DataFrame(), metrics=pd.DataFrame(), notes=notes)
    rows = pd.concat(parts, ignore_index=True)
    records, cals = [], {}
    for g, d in rows.groupby("group", sort=True):
        cal = calibrated_backtest(d, cfg.levels, cfg.horizon_scale)
        cals[str(g)] = cal
        notes += [f"group {g}: {n}" for n in cal.notes]
        for m in METHODS:
            dm = d.loc[(d["method"] == m).to_numpy()]
            if dm.empty:
                continue
            rec: dict[str, object] = {
                "group": g,
                "method": m,
                "wape": wape(dm["actual"], dm["forecast"]),
                "wape_baseline": wape(dm["actual"], dm["baseline"]),
                "n_weeks": len(dm),
                "n_origins": dm["origin"].nunique(),
                "n_residuals": cal.n_residuals.get(m, 0),
            }
            for lv in cfg.levels:
                rec[f"coverage{lv}"] = coverage(dm["actual"], dm[f"lo{lv}"], dm[f"hi{lv}"])
                rec[f"coverage{lv}_calibrated"] = cal.metrics.get(f"coverage{lv}_{m}_calibrated", np.nan)
            records.append(rec)
    return GroupBacktest(rows=rows, metrics=pd.DataFrame.from_records(records), calibrations=cals, notes=notes)


def rolling_groups(
    paid: pd.DataFrame, as_of: pd.Timestamp, first: pd.Timestamp, cfg: ForecastConfig, groups_at: GroupsAt
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Out-of-time coverage of the groups' calibrated intervals, as ``crmscore forecast --by`` would have made
    them: at each backtest origin ``e`` of ``as_of``, the group backtest of cutoff ``e`` (origins 13 or more weeks
    before ``e``), each group's offsets from it, and the group forecasts made at ``e`` with those intervals,
    scored on the weeks after ``e`` (the :func:`training.forecast_calibrate.rolling_evaluation` of the groups;
    for the benchmark). Returns the scored rows (group, method, origin, week, forecast, actual, calibrated
    bounds) and one row per group and method: ``wape``, ``coverage{lv}``, ``relwidth{lv}``, ``n_weeks``.
    """
    cache: dict[pd.Timestamp, pd.DataFrame] = {}

    def rows_at(o: pd.Timestamp) -> pd.DataFrame:
        if o not in cache:
            cache[o] = group_origin_rows(paid, o, cfg, first, groups_at)[0]
        return cache[o]

    scored = []
    for e in backtest_origins(first, as_of, cfg):
        calib_origins = backtest_origins(first, e, cfg)
        if not calib_origins:
            continue
        calib = pd.concat([rows_at(o) for o in calib_origins], ignore_index=True)
        target = rows_at(e)
        for g, d in target.groupby("group", sort=True):
            cal = calibrated_backtest(calib.loc[(calib["group"] == g).to_numpy()], cfg.levels, cfg.horizon_scale)
            for m, off in cal.offsets.items():
                t = d.loc[(d["method"] == m).to_numpy()]
                part = t[["group", "method", "week", "forecast", "actual"]].assign(origin=e)
                for lv in cfg.levels:
                    part[f"lo{lv}"], part[f"hi{lv}"] = interval(t["forecast"], t["week"], off, lv, cal.scale)
                scored.append(part)
    if not scored:
        return pd.DataFrame(), pd.DataFrame()
    rows = pd.concat(scored, ignore_index=True)
    records = []
    for (g, m), d in rows.groupby(["group", "method"], sort=True):
        a = d["actual"].to_numpy(dtype="float64")
        rec: dict[str, object] = {"group": g, "method": m, "wape": wape(a, d["forecast"]), "n_weeks": len(d),
                                  "n_origins": d["origin"].nunique()}  # fmt: skip
        for lv in cfg.levels:
            rec[f"coverage{lv}"] = coverage(a, d[f"lo{lv}"], d[f"hi{lv}"])
            rec[f"relwidth{lv}"] = float((d[f"hi{lv}"] - d[f"lo{lv}"]).mean() / a.mean()) if a.mean() > 0 else np.nan
        records.append(rec)
    return rows, pd.DataFrame.from_records(records)
