"""Conformal calibration of the forecast intervals on out-of-time backtest residuals, matched to the horizon.

The models' own intervals were too narrow (80% intervals covered 54% of the weeks on Online Retail, 62% on
Superstore): SARIMAX's are conditional on its fitted parameters and the bottom-up spread is measured within the
history. Calibration replaces them with intervals measured on the errors the forecast actually made out of time:

* residual of a backtest week ``h`` weeks after its origin = ``log(actual / forecast)`` (weeks with a positive
  actual and forecast), per method;
* **matched to the horizon**: the conformal score is the residual divided by ``sqrt(h)`` (``horizon_scale``
  ``"sqrt"``, the default): the error of a forecast of the level accumulates like a random walk, so a week 13
  weeks ahead strays about ``sqrt(13) ≈ 3.6`` times as far as the first week. Pooling raw residuals over
  h = 1..13 (``"none"``, the earlier rule) gave one width for every week: too wide for the first weeks and too
  narrow for the last ones, where the level has had time to move (measured in docs/forecast.md);
* the ``level``% interval of a forecast ``f`` for week ``h`` is ``[f · exp(q_lo · s(h)), f · exp(q_hi · s(h))]``
  with ``q_lo``, ``q_hi`` the scores at the finite-sample split-conformal ranks ``floor((n + 1) · (1 - level) / 2)``
  and ``ceil((n + 1) · (1 + level) / 2)`` and ``s(h)`` the horizon scale; the interval is multiplicative, so
  it scales with the level of the series;
* a level the residuals are too few for (its conformal rank would be the most extreme residual: 95% with fewer
  than 79 residuals, the usual case with 4 origins × 13 weeks) is extrapolated from the 80% offsets in log terms
  (:func:`conformal_offsets`), so one week's shock does not set the 95% bound alone.

Coverage is measured two ways. :func:`calibrated_backtest` reports the leave-one-origin-out coverage of the
backtest weeks (each origin's weeks scored with the other origins' residuals; the origins overlap in time, so it
is not sequential). :func:`rolling_evaluation` is the honest one: at each backtest origin ``e`` it runs the
procedure ``crmscore forecast --as-of e`` runs (a backtest before ``e``, residuals from its origins, the
calibrated interval of the forecast made at ``e``) and scores that interval on the weeks after ``e``, so every
interval is built from errors that were already known at ``e``. It reports coverage and mean interval width.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from statistics import NormalDist
from typing import Literal

import numpy as np
import pandas as pd

from features.messages import M_
from training.forecast import (
    METHODS,
    TOTAL,
    BacktestResult,
    ForecastConfig,
    backtest_origins,
    backtest_paid,
    coverage,
    one_blas_thread,
    origin_rows,
    paid_orders,
    pick_method,
    wape,
    weekly_revenue,
    wis,
)

#: fewest residuals a method needs for a calibrated interval (else the model's own interval is kept)
MIN_RESIDUALS = 8
HorizonScale = Literal["sqrt", "none"]


def horizon_factor(week: np.ndarray | pd.Series, scale: HorizonScale = "sqrt") -> np.ndarray:
    """How far a week ``week`` weeks after the origin strays relative to the first week: ``sqrt(week)`` or 1."""
    h = np.asarray(week, dtype="float64")
    if scale == "sqrt":
        return np.sqrt(np.clip(h, 1.0, None))
    if scale == "none":
        return np.ones_like(h)
    raise ValueError(M_("horizon_scale: expected 'sqrt' or 'none', got {scale!r}", scale=scale))


def log_residuals(rows: pd.DataFrame, scale: HorizonScale = "none") -> np.ndarray:
    """``log(actual / forecast)`` of the backtest rows with a positive actual and forecast, divided by the
    horizon factor of their ``week`` (no ``week`` column needed with ``scale="none"``)."""
    a = rows["actual"].to_numpy(dtype="float64")
    f = rows["forecast"].to_numpy(dtype="float64")
    ok = np.isfinite(a) & np.isfinite(f) & (a > 0) & (f > 0)
    r = np.log(a[ok] / f[ok])
    if scale == "none":
        return r
    return r / horizon_factor(rows["week"].to_numpy()[ok], scale)


def conformal_ranks(n: int, level: int) -> tuple[int, int]:
    """1-based ranks ``(k_lo, k_hi)`` of the ``level``% split-conformal bounds among ``n`` sorted residuals."""
    a = (1 - level / 100) / 2
    # the 1e-9 keeps 20 × 0.1 from flooring to 1 in floating point
    return max(1, math.floor((n + 1) * a + 1e-9)), min(n, math.ceil((n + 1) * (1 - a) - 1e-9))


def conformal_offsets(residuals: np.ndarray, levels: tuple[int, ...]) -> dict[str, float] | None:
    """Log offsets ``lo{level}`` / ``hi{level}`` from the residuals; None with fewer than :data:`MIN_RESIDUALS`.

    A level whose conformal ranks fall inside the sample (``1 < k_lo`` and ``k_hi < n``) gets the residuals at
    those ranks. A level the sample is too small for (its rank would be the smallest or largest residual, e.g.
    95% with fewer than 79 residuals) is **extrapolated** from the widest level inside the sample: each side's
    distance from the median residual times ``z(level) / z(inner level)`` (standard normal quantiles, so 1.53 ×
    from 80% to 95%). The single most extreme residual is one week's shock (a group's one large order), and
    multiplied by the horizon factor of week 13 it made 95% intervals tens of times the mean week wide. When no
    level is inside the sample, every level keeps its conformal rank.
    """
    r = np.sort(np.asarray(residuals, dtype="float64"))
    n = len(r)
    if n < MIN_RESIDUALS:
        return None
    out: dict[str, float] = {}
    ranks = {lv: conformal_ranks(n, lv) for lv in levels}
    inside = [lv for lv in levels if 1 < ranks[lv][0] and ranks[lv][1] < n]
    anchor = max(inside) if inside else None
    med = float(np.median(r))
    for lv in levels:
        k_lo, k_hi = ranks[lv]
        if anchor is None or lv in inside:
            out[f"lo{lv}"], out[f"hi{lv}"] = float(r[k_lo - 1]), float(r[k_hi - 1])
            continue
        a_lo, a_hi = ranks[anchor]
        ratio = _z(lv) / _z(anchor)
        out[f"lo{lv}"] = med + (float(r[a_lo - 1]) - med) * ratio
        out[f"hi{lv}"] = med + (float(r[a_hi - 1]) - med) * ratio
    return out


def _z(level: int) -> float:
    """Standard normal quantile of the upper bound of a central ``level``% interval (1.2816 for 80%)."""
    return NormalDist().inv_cdf(0.5 + level / 200)


def interval(
    forecast: np.ndarray, week: np.ndarray, offsets: dict[str, float], level: int, scale: HorizonScale = "sqrt"
) -> tuple[np.ndarray, np.ndarray]:
    """The calibrated ``level``% interval ``(lo, hi)`` of forecasts ``forecast`` for weeks ``week`` ahead."""
    f = np.asarray(forecast, dtype="float64")
    s = horizon_factor(week, scale)
    return f * np.exp(offsets[f"lo{level}"] * s), f * np.exp(offsets[f"hi{level}"] * s)


@dataclass
class Calibration:
    """Per-method offsets for the final forecast, and the backtest's coverage before and after calibration."""

    offsets: dict[str, dict[str, float]] = field(default_factory=dict)
    n_residuals: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    scale: HorizonScale = "sqrt"


def calibrated_backtest(rows: pd.DataFrame, levels: tuple[int, ...], scale: HorizonScale = "sqrt") -> Calibration:
    """Offsets from all backtest residuals per method, and the leave-one-origin-out calibrated coverage
    (``coverage{level}_{method}_calibrated``) of the backtest weeks."""
    cal = Calibration(scale=scale)
    for m, d in rows.groupby("method", sort=True):
        method = str(m)
        res_all = log_residuals(d, scale)
        off = conformal_offsets(res_all, levels)
        cal.n_residuals[method] = len(res_all)
        if off is None:
            cal.notes.append(
                f"{method}: {len(res_all)} backtest residual(s), fewer than {MIN_RESIDUALS}: the model's own "
                "intervals are kept"
            )
            continue
        cal.offsets[method] = off
        hits: dict[int, list[bool]] = {lv: [] for lv in levels}
        origin = d["origin"].to_numpy()
        for o in np.unique(origin):
            o_off = conformal_offsets(log_residuals(d.loc[origin != o], scale), levels)
            if o_off is None:
                continue
            part = d.loc[origin == o]
            a = part["actual"].to_numpy(dtype="float64")
            ok = np.isfinite(a)
            week = part["week"].to_numpy() if "week" in part.columns else np.ones(len(part))
            for lv in levels:
                lo, hi = interval(part["forecast"].to_numpy(), week, o_off, lv, scale)
                hits[lv].extend(((a >= lo) & (a <= hi))[ok].tolist())
        for lv in levels:
            if hits[lv]:
                cal.metrics[f"coverage{lv}_{method}_calibrated"] = float(np.mean(hits[lv]))
    return cal


def apply_calibration(table: pd.DataFrame, cal: Calibration, levels: tuple[int, ...], group: str) -> pd.DataFrame:
    """The forecast table with the ``group`` rows' intervals replaced by the calibrated ones where a method has
    offsets; column ``interval`` says ``conformal`` or ``model`` per row (added as ``model`` when absent, so
    several groups can be calibrated one after another)."""
    out = table.copy()
    if "interval" not in out.columns:
        out["interval"] = "model"
    for method, off in cal.offsets.items():
        sel = ((out["group"] == group) & (out["method"] == method)).to_numpy()
        f = out.loc[sel, "forecast"].to_numpy(dtype="float64")
        week = out.loc[sel, "week"].to_numpy() if "week" in out.columns else np.ones(int(sel.sum()))
        for lv in levels:
            out.loc[sel, f"lo{lv}"], out.loc[sel, f"hi{lv}"] = interval(f, week, off, lv, cal.scale)
        out.loc[sel, "interval"] = "conformal"
    return out


@dataclass
class RollingEvaluation:
    """Calibrated intervals of forecasts made at each evaluation origin from the errors known at that origin."""

    rows: pd.DataFrame
    metrics: dict[str, float]
    origins: list[pd.Timestamp]
    notes: list[str] = field(default_factory=list)


def rolling_evaluation(
    orders: pd.DataFrame, as_of: pd.Timestamp | str, cfg: ForecastConfig, start: pd.Timestamp | None = None
) -> RollingEvaluation:
    """Out-of-time accuracy, coverage and width of the calibrated intervals, as ``crmscore forecast`` would have
    made them.

    At each backtest origin ``e`` of ``as_of`` (the weeks the backtest scores): the backtest of cutoff ``e`` (its
    origins end 13 or more weeks before ``e``, so every residual was known at ``e``), the calibration offsets from
    it, and the forecast made at ``e`` with those intervals, scored on the actual weeks after ``e``. Forecasts of
    an origin shared by several cutoffs are fitted once. Metrics per method and level: ``coverage{lv}_{m}``
    (calibrated), ``coverage{lv}_{m}_model`` (the model's own interval on the same weeks), ``width{lv}_{m}`` (mean
    of ``hi - lo``), ``relwidth{lv}_{m}`` (that over the mean actual week), ``wis{lv}_{m}`` (weighted interval
    score of the point and that calibrated interval, :func:`training.forecast.wis`); per method ``wape_{m}``,
    ``wis_{m}`` (the point and every calibrated interval) and ``wis_{m}_model`` (the models' own intervals);
    ``wape_baseline`` on the same weeks.
    """
    as_of = pd.Timestamp(as_of)
    paid = paid_orders(orders, as_of)
    first = pd.Timestamp(paid["ts"].min() if start is None else start)
    actual = weekly_revenue(paid, as_of, start=first)[TOTAL]
    with one_blas_thread():
        return rolling_paid(paid, as_of, first, actual, cfg)


def rolling_paid(
    paid: pd.DataFrame,
    as_of: pd.Timestamp,
    first: pd.Timestamp,
    actual: pd.Series,
    cfg: ForecastConfig,
    cache: dict[pd.Timestamp, tuple[pd.DataFrame, str, dict[str, str]]] | None = None,
) -> RollingEvaluation:
    """:func:`rolling_evaluation` on paid orders, with the weekly ``actual`` revenue from ``first`` computed once;
    ``cache`` as in :func:`training.forecast.backtest_paid` (origins already fitted by the backtest of ``as_of``
    are reused)."""
    evals = backtest_origins(first, as_of, cfg)
    if not evals:
        raise ValueError(M_("rolling evaluation: no backtest origin before {as_of}", as_of=as_of))
    cache = {} if cache is None else cache
    parts: list[pd.DataFrame] = []
    notes: list[str] = []
    used: list[pd.Timestamp] = []
    for e in evals:
        try:
            bt = backtest_paid(paid, e, first, actual, cfg, cache)
        except ValueError as err:
            notes.append(f"origin {e.date()}: {err}")
            continue
        cal = calibrated_backtest(bt.rows, cfg.levels, cfg.horizon_scale)
        if e not in cache:
            cache[e] = origin_rows(paid, e, actual, cfg, first)
        target = cache[e][0]
        for method, off in cal.offsets.items():
            t = target.loc[(target["method"] == method).to_numpy()]
            cols = {"origin": e, "method": method, "n_calibration_origins": len(bt.origins)}
            part = t[["week", "forecast", "actual", "baseline"]].assign(**cols)
            for lv in cfg.levels:
                part[f"model_lo{lv}"], part[f"model_hi{lv}"] = t[f"lo{lv}"], t[f"hi{lv}"]
                part[f"lo{lv}"], part[f"hi{lv}"] = interval(t["forecast"], t["week"], off, lv, cal.scale)
            parts.append(part)
        used.append(e)
    if not parts:
        raise ValueError(M_("rolling evaluation: no origin had a calibrated interval; {notes}", notes="; ".join(notes)))
    rows = pd.concat(parts, ignore_index=True)
    metrics: dict[str, float] = {"n_origins": float(len(used))}
    for m, d in rows.groupby("method", sort=True):
        d = d.loc[np.isfinite(d["actual"].to_numpy(dtype="float64"))]
        a = d["actual"].to_numpy(dtype="float64")
        for lv in cfg.levels:
            lo, hi = d[f"lo{lv}"].to_numpy(), d[f"hi{lv}"].to_numpy()
            metrics[f"coverage{lv}_{m}"] = coverage(a, lo, hi)
            metrics[f"coverage{lv}_{m}_model"] = coverage(a, d[f"model_lo{lv}"], d[f"model_hi{lv}"])
            metrics[f"width{lv}_{m}"] = float(np.mean(hi - lo))
            metrics[f"relwidth{lv}_{m}"] = float(np.mean(hi - lo) / np.mean(a)) if a.mean() > 0 else float("nan")
        metrics[f"wape_{m}"] = wape(a, d["forecast"])
        bounds = {c: d[c].to_numpy() for c in d.columns}
        metrics[f"wis_{m}"] = wis(a, d["forecast"], bounds, cfg.levels)
        for lv in cfg.levels:
            metrics[f"wis{lv}_{m}"] = wis(a, d["forecast"], bounds, (lv,))
        model = {f"{b}{lv}": d[f"model_{b}{lv}"].to_numpy() for lv in cfg.levels for b in ("lo", "hi")}
        metrics[f"wis_{m}_model"] = wis(a, d["forecast"], model, cfg.levels)
        metrics[f"n_weeks_{m}"] = float(len(d))
    one = rows.loc[rows["method"] == rows["method"].iloc[0]]
    one = one.loc[np.isfinite(one["actual"].to_numpy(dtype="float64"))]
    metrics["wape_baseline"] = wape(one["actual"], one["baseline"])
    return RollingEvaluation(rows=rows, metrics=metrics, origins=used, notes=notes)


def backtest_and_choice(
    paid: pd.DataFrame,
    as_of: pd.Timestamp,
    first: pd.Timestamp,
    actual: pd.Series,
    cfg: ForecastConfig,
    cache: dict[pd.Timestamp, tuple[pd.DataFrame, str, dict[str, str]]] | None = None,
) -> tuple[BacktestResult, str, list[str]]:
    """The backtest of ``as_of`` and, unless ``cfg.select_on`` is ``wape``, the rolling evaluation of the
    calibrated forecasts (its metrics added to the backtest's as ``rolling_*``); the metric prefix the method is
    chosen on (``rolling_wis80``, ``rolling_wis`` or ``wape``, for :func:`training.forecast.pick_method`); notes.

    The rolling evaluation reuses the backtest's fits of the origins they share (``cache``). When it cannot score
    every method on the same weeks (too little history), the choice falls back to the backtest WAPE, with a note.
    """
    cache = {} if cache is None else cache
    bt = backtest_paid(paid, as_of, first, actual, cfg, cache)
    if cfg.select_on == "wape":
        return bt, "wape", []
    try:
        ev = rolling_paid(paid, as_of, first, actual, cfg, cache)
    except ValueError as e:
        return bt, "wape", [f"{e}; the method is chosen on the backtest WAPE"]
    bt.metrics |= {f"rolling_{k}": v for k, v in ev.metrics.items()}
    made = {m for m in METHODS if f"wape_{m}" in bt.metrics}
    weeks = {ev.metrics.get(f"n_weeks_{m}", 0.0) for m in made}
    if len(weeks) != 1 or not all(f"{cfg.select_on}_{m}" in ev.metrics for m in made):
        note = "the rolling evaluation did not score every method on the same weeks; the method is chosen on the "
        return bt, "wape", [*ev.notes, note + "backtest WAPE"]
    return bt, f"rolling_{cfg.select_on}", ev.notes


@dataclass
class ChoiceEvaluation:
    """The reported forecast out of time: the method chosen at each origin from what was known there."""

    choices: pd.DataFrame
    rows: pd.DataFrame
    metrics: dict[str, float]


def choice_evaluation(
    orders: pd.DataFrame, as_of: pd.Timestamp | str, cfg: ForecastConfig, start: pd.Timestamp | None = None
) -> ChoiceEvaluation:
    """Out-of-time figures of the forecast ``crmscore forecast`` would have **reported** at each backtest origin
    ``e`` of ``as_of``: the method chosen at ``e`` by :func:`backtest_and_choice` (the backtest and rolling
    evaluation of cutoff ``e``, nothing after ``e``), its calibrated forecast made at ``e``, scored on the weeks
    after ``e``. This measures the choice rule itself, which the figures of each method at ``as_of`` do not
    (there the choice is made on the weeks being scored). ``choices``: origin, method, criterion; ``metrics``:
    ``wape``, ``wape_baseline``, ``coverage{lv}``, ``wis80``, ``wis``, ``n_weeks``.
    """
    as_of = pd.Timestamp(as_of)
    paid = paid_orders(orders, as_of)
    first = pd.Timestamp(paid["ts"].min() if start is None else start)
    actual = weekly_revenue(paid, as_of, start=first)[TOTAL]
    cache: dict[pd.Timestamp, tuple[pd.DataFrame, str, dict[str, str]]] = {}
    with one_blas_thread():
        scored = rolling_paid(paid, as_of, first, actual, cfg, cache).rows
        picks = []
        for e in sorted(scored["origin"].unique()):
            e = pd.Timestamp(e)
            try:
                bt, on, _ = backtest_and_choice(paid, e, first, actual, cfg, cache)
                method = pick_method(bt.metrics, on)
            except ValueError:  # no backtest possible at e: top-down, as crmscore forecast reports then
                method, on = "top_down", "none"
            picks.append({"origin": e, "method": method, "chosen_on": on})
    choices = pd.DataFrame(picks)
    rows = scored.merge(choices[["origin", "method"]], on=["origin", "method"])
    a = rows["actual"].to_numpy(dtype="float64")
    bounds = {c: rows[c].to_numpy() for c in rows.columns}
    metrics = {
        "wape": wape(a, rows["forecast"]),
        "wape_baseline": wape(a, rows["baseline"]),
        "wis80": wis(a, rows["forecast"], bounds, (80,)),
        "wis": wis(a, rows["forecast"], bounds, cfg.levels),
        "n_weeks": float(len(rows)),
    }
    for lv in cfg.levels:
        metrics[f"coverage{lv}"] = coverage(a, rows[f"lo{lv}"], rows[f"hi{lv}"])
    return ChoiceEvaluation(choices=choices, rows=rows, metrics=metrics)
