"""Weekly sales forecast (销售预测): bottom-up from BG/NBD + Gamma-Gamma, top-down from SARIMAX, and a rolling backtest.

Weeks are the seven-day periods ending at the cutoff ``T``: history week ``k`` (1 = the last one) holds the
paid orders with ``T - 7k days < ts <= T - 7(k-1) days``, forecast week ``h`` the period
``(T + 7(h-1) days, T + 7h days]``. Revenue is the sum of ``amount`` of ``status == "paid"`` orders.

Two forecasts, both from the paid orders with ``ts <= T`` only:

* **bottom-up** — the project's BG/NBD and Gamma-Gamma models (:mod:`training.btyd`, reused as they are) fitted
  on the buyers at ``T``: expected purchase days of each buyer in each week (differences of the BG/NBD
  conditional expectation) × the Gamma-Gamma expected spend per purchase; plus new buyers at the mean weekly rate
  of the last ``new_customer_weeks`` weeks, each bringing the recent mean first-purchase value and then the
  BG/NBD unconditional repeat purchases at the Gamma-Gamma population mean spend. Its intervals are multiplicative:
  the spread of ``log(week t+h revenue / mean of the 13 weeks up to t)`` for h = 1..H over the history (how far
  weeks strayed from the recent level within the horizon), centred on the point forecast.
* **top-down** — statsmodels ``SARIMAX`` ARIMA(0,1,1) on ``sqrt(weekly revenue)``, with Fourier terms of the yearly
  cycle as regressors when at least ``fourier_min_weeks`` weeks of history exist; the point is the squared-back
  median and the intervals are the model's own, squared back.

The backtest (:func:`backtest`) refits both at rolling origins ``T - horizon``, ``T - horizon - step``, … and
scores them against a seasonal-naive baseline: the value 52 weeks earlier when the origin has 52 weeks of
history, else the last observed week (last-value naive). Metrics: WAPE = Σ|actual − forecast| / Σ|actual| pooled
over all origins and weeks, and coverage = share of actual weeks inside the 80% / 95% interval.
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.messages import M_
from training.btyd import BGNBDModel, GammaGammaModel, summarise_transactions

log = logging.getLogger(__name__)

WEEK = pd.Timedelta(days=7)
GROUP_BY = ("segment", "source_channel", "province")
TOTAL = "total"
COMBINED = "combined"
#: the two forecasts made from the data
BASE_METHODS = ("bottom_up", "top_down")
#: every method of a forecast table: the two, and their combination
METHODS = (*BASE_METHODS, COMBINED)
#: Columns of a forecast table.
FORECAST_COLUMNS = (
    "group",
    "method",
    "week",
    "week_start",
    "week_end",
    "forecast",
    "lo80",
    "hi80",
    "lo95",
    "hi95",
)
NEW_BUYERS = "new buyers"
OTHER = "other"


class ForecastConfig(BaseModel):
    """Settings of ``crmscore forecast`` (embedded defaults; no file needed)."""

    model_config = ConfigDict(extra="forbid")

    horizon_weeks: int = Field(default=13, ge=1, le=104)
    levels: tuple[int, int] = (80, 95)
    backtest_origins: int = Field(default=4, ge=0, description="rolling origins of the backtest (0 = none)")
    origin_step_weeks: int = Field(default=4, ge=1, description="weeks between consecutive backtest origins")
    season_weeks: int = Field(default=52, ge=2, description="seasonal period of the naive baseline")
    min_history_weeks: int = Field(default=12, ge=4, description="fewer weeks before an origin: no forecast")
    new_customer_weeks: int = Field(default=8, ge=1, description="window of the new-buyer weekly rate")
    noise_window_weeks: int = Field(default=13, ge=2, description="trailing window of the bottom-up noise")
    arima_order: tuple[int, int, int] = (0, 1, 1)
    fourier_terms: int = Field(default=3, ge=0, description="yearly Fourier pairs of the SARIMAX model")
    fourier_min_weeks: int = Field(default=104, ge=52, description="history needed for the yearly terms")
    max_groups: int = Field(default=12, ge=1, description="largest groups kept; the rest become 'other'")
    penalizer: float = Field(default=0.0, ge=0, description="BG/NBD and Gamma-Gamma L2 penalty")
    horizon_scale: Literal["sqrt", "none"] = Field(
        default="sqrt", description="conformal residuals divided by sqrt(weeks ahead), or pooled as they are"
    )
    combine_weight: float = Field(
        default=0.5,
        ge=0,
        le=1,
        description="weight of bottom-up in the combined forecast (top-down gets the rest); fixed, not estimated",
    )
    select_on: Literal["wis80", "wis", "wape"] = Field(
        default="wis80",
        description="reported method: lowest weighted interval score out of time (rolling evaluation of the "
        "calibrated forecasts) of the point and the 80% interval (wis80) or of the point and every level (wis), "
        "or lowest backtest WAPE",
    )
    experiment: str = "crmscore-forecast"


@contextlib.contextmanager
def one_blas_thread() -> Iterator[None]:
    """numpy's and scipy's BLAS limited to one thread while the models are fitted.

    SARIMAX's Kalman filter and the BG/NBD likelihood work on matrices of a few rows, one small BLAS call
    after another; a second BLAS thread only spins between them. On the two shared cores that spinning took
    as much CPU as the work and, under load, most of the wall time (bench/bench_forecast.py: Superstore
    ``--by segment`` 10.9 CPU-s with the default threads, 1.35 with one). statsmodels is imported first so
    that the limit reaches the BLAS scipy loads.
    """
    import statsmodels.tsa.statespace.sarimax  # noqa: F401  (loads scipy's BLAS before the limit is set)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


# ----------------------------------------------------------------------------------------------------------
# weekly series


def paid_orders(orders: pd.DataFrame, as_of: pd.Timestamp | None = None) -> pd.DataFrame:
    """``customer_id``, ``ts``, ``amount`` of the paid orders (with ``ts <= as_of`` when given)."""
    missing = [c for c in ("customer_id", "ts", "amount", "status") if c not in orders.columns]
    if missing:
        raise ValueError(M_("table orders: missing column(s) {value}", value=", ".join(missing)))
    keep = (orders["status"] == "paid").fillna(False).to_numpy(dtype=bool) & orders["ts"].notna().to_numpy()
    if as_of is not None:
        keep &= (orders["ts"] <= as_of).fillna(False).to_numpy(dtype=bool)
    out = orders.loc[keep, ["customer_id", "ts", "amount"]]
    if out["amount"].isna().any():
        raise ValueError(M_(
            "table orders: {value} paid order(s) have no amount",
            value=int(out['amount'].isna().sum()),
        ))
    return out


def week_index(ts: pd.Series, as_of: pd.Timestamp) -> np.ndarray:
    """Weeks back from ``as_of`` (1 = the week ending at ``as_of``; 0 or less = after ``as_of``)."""
    delta = (as_of - ts).to_numpy(dtype="timedelta64[ns]").astype("int64")
    return np.floor_divide(delta, WEEK.value) + 1


def weekly_revenue(
    paid: pd.DataFrame,
    as_of: pd.Timestamp,
    groups: pd.Series | None = None,
    start: pd.Timestamp | None = None,
) -> pd.DataFrame:
    """Weekly revenue ending at ``as_of``: rows = week end (oldest first), one column per group (or ``total``).

    Weeks run back to the first week that starts on or after ``start`` (default: the first paid order), so a
    partial first week is left out. ``groups`` maps each row of ``paid`` to its group.
    """
    as_of = pd.Timestamp(as_of)
    p = paid.loc[(paid["ts"] <= as_of).to_numpy()]
    first = pd.Timestamp(p["ts"].min() if start is None else start)
    if pd.isna(first) or first > as_of:
        raise ValueError(M_("orders: no paid order on or before {as_of}", as_of=as_of))
    n_weeks = int((as_of - first) // WEEK)
    if n_weeks < 1:
        raise ValueError(M_("orders: less than one full week of paid orders before {as_of}", as_of=as_of))
    k = week_index(p["ts"], as_of)
    keep = k <= n_weeks
    g = np.full(len(p), TOTAL, dtype=object) if groups is None else groups.loc[p.index].to_numpy(dtype=object)
    frame = pd.DataFrame({"k": k[keep], "g": g[keep], "amt": p["amount"].to_numpy(dtype="float64")[keep]})
    table = frame.pivot_table(index="k", columns="g", values="amt", aggfunc="sum", fill_value=0.0)
    table = table.reindex(np.arange(n_weeks, 0, -1), fill_value=0.0).fillna(0.0)
    table.index = pd.DatetimeIndex([as_of - (kk - 1) * WEEK for kk in table.index], name="week_end")
    table.columns = [str(c) for c in table.columns]
    return table


def future_weeks(as_of: pd.Timestamp, horizon: int) -> pd.DataFrame:
    """``week`` 1..H with ``week_start`` and ``week_end`` after ``as_of``."""
    h = np.arange(1, horizon + 1)
    return pd.DataFrame(
        {"week": h, "week_start": [as_of + (i - 1) * WEEK for i in h], "week_end": [as_of + i * WEEK for i in h]}
    )


# ----------------------------------------------------------------------------------------------------------
# top-down: SARIMAX on log1p weekly revenue


def _fourier(t: np.ndarray, k: int, period: float = 365.25 / 7) -> np.ndarray:
    cols = []
    for j in range(1, k + 1):
        cols += [np.sin(2 * np.pi * j * t / period), np.cos(2 * np.pi * j * t / period)]
    return np.column_stack(cols)


@dataclass
class TopDownFit:
    """What the top-down model chose, for the run's parameters."""

    order: tuple[int, int, int]
    fourier_terms: int
    aic: float


def top_down(y: pd.Series, horizon: int, cfg: ForecastConfig) -> tuple[pd.DataFrame, TopDownFit]:
    """SARIMAX forecast of a weekly series ``y`` (index = week end): ``forecast`` (median), ``lo80`` … ``hi95``.

    The model is fitted on ``sqrt(revenue)`` (a variance-stabilising transform that, unlike the log, is not
    thrown off by a week with almost no sales, such as a Christmas closure); the forecast and the interval
    bounds are squared back, the lower bounds floored at 0 first.
    """
    from statsmodels.tsa.statespace.sarimax import SARIMAX

    values = np.sqrt(np.clip(y.to_numpy(dtype="float64"), 0.0, None))
    n = len(values)
    k = cfg.fourier_terms if n >= cfg.fourier_min_weeks else 0
    t = np.arange(n + horizon, dtype="float64")
    exog = _fourier(t, k) if k else None
    order = cfg.arima_order  # a tuple already (pydantic validates the config)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = SARIMAX(values, exog=None if exog is None else exog[:n], order=order, trend="n")
        res = model.fit(disp=False, maxiter=200)
    if not np.isfinite(res.llf):
        raise ValueError(M_("top-down: SARIMAX could not be fitted to the weekly revenue"))
    fc = res.get_forecast(horizon, exog=None if exog is None else exog[n:])
    mean = np.asarray(fc.predicted_mean, dtype="float64")
    out = {"forecast": np.square(np.clip(mean, 0.0, None))}
    for level in cfg.levels:
        ci = np.asarray(fc.conf_int(alpha=1 - level / 100), dtype="float64")
        out[f"lo{level}"] = np.square(np.clip(ci[:, 0], 0.0, None))
        out[f"hi{level}"] = np.square(np.clip(ci[:, 1], 0.0, None))
    return pd.DataFrame(out), TopDownFit(order=order, fourier_terms=k, aic=float(res.aic))


# ----------------------------------------------------------------------------------------------------------
# bottom-up: BG/NBD x Gamma-Gamma plus new buyers


@dataclass
class BottomUpFit:
    """What the bottom-up forecast was built from (no customer ids)."""

    bgnbd: dict[str, float]
    gamma_gamma: dict[str, float]
    n_buyers: int
    new_per_week: float
    first_value: float
    noise_quantiles: dict[str, float]
    notes: list[str] = field(default_factory=list)


def _noise_quantiles(y: np.ndarray, window: int, horizon: int, levels: tuple[int, ...]) -> dict[str, float]:
    """Quantiles of log(week t+h / mean of the ``window`` weeks up to t), h = 1..``horizon``, pooled over every
    t of the history and centred on their median: how far a week 1 to H weeks ahead strayed from the level."""
    y = np.asarray(y, dtype="float64")
    n = len(y)
    window = min(window, max(2, n // 3))
    level = pd.Series(y).rolling(window).mean().to_numpy()  # level[t] = mean of y[t-window+1..t]
    ratios = []
    for h in range(1, horizon + 1):
        a, b = level[: n - h], y[h:]
        ok = (a > 0) & (b > 0)
        ratios.append(np.log(b[ok] / a[ok]))
    r = np.concatenate(ratios) if ratios else np.array([])
    if len(r) < 8:
        # too short to measure: a wide default (half to twice the point forecast at 95%)
        return {f"lo{lv}": -np.log(2.0) * lv / 95 for lv in levels} | {
            f"hi{lv}": np.log(2.0) * lv / 95 for lv in levels
        }
    med = float(np.median(r))
    out = {}
    for lv in levels:
        a_ = (1 - lv / 100) / 2
        out[f"lo{lv}"] = float(np.quantile(r, a_)) - med
        out[f"hi{lv}"] = float(np.quantile(r, 1 - a_)) - med
    return out


def bottom_up(
    paid: pd.DataFrame,
    as_of: pd.Timestamp,
    horizon: int,
    cfg: ForecastConfig,
    customer_groups: pd.Series | None = None,
    history: pd.DataFrame | None = None,
) -> tuple[dict[str, pd.DataFrame], BottomUpFit]:
    """Bottom-up weekly forecast per group (``total`` when ``customer_groups`` is None) from orders ``<= as_of``.

    ``customer_groups`` maps customer id → group (customers missing from it count as ``other``); new buyers
    are split over the groups by the groups of the buyers whose first purchase fell in the recent window
    (for the RFM segment, which new buyers do not have yet, they form their own group ``new buyers``).
    ``history`` is the weekly revenue per group up to ``as_of`` (for the interval widths).
    """
    as_of = pd.Timestamp(as_of)
    paid = paid.loc[(paid["ts"] <= as_of).to_numpy()]
    summary = summarise_transactions(paid, as_of)
    if len(summary) < 2:
        raise ValueError(M_(
            "bottom-up: need at least two buyers before {as_of}, got {value}",
            as_of=as_of, value=len(summary),
        ))
    notes: list[str] = []
    bg = BGNBDModel(time_unit_days=7.0, penalizer=cfg.penalizer).fit(summary)
    gg = GammaGammaModel(penalizer=cfg.penalizer).fit(summary)
    for name, m in (("BG/NBD", bg), ("Gamma-Gamma", gg)):
        if m.params_at_bound_:
            notes.append(f"{name} parameter(s) {', '.join(m.params_at_bound_)} at the optimiser bound")
    value = gg.predict_expected_value(summary)
    # expected purchase days by the end of each future week, per buyer → per-week increments
    cum = np.column_stack([bg.predict_expected_purchases(summary, horizon_days=7.0 * h) for h in range(horizon + 1)])
    inc = np.diff(cum, axis=1)  # buyers x horizon
    existing = inc * value[:, None]

    # new buyers: first purchase in the last W weeks
    w = cfg.new_customer_weeks
    recent = (summary["tenure_days"] < 7 * w).to_numpy()
    new_per_week = float(recent.sum()) / w
    first_day = paid.assign(day=paid["ts"].dt.floor("D")).groupby(["customer_id", "day"], observed=True)["amount"].sum()
    first_value_by_c = first_day.groupby(level=0, observed=True).first()
    rv = first_value_by_c.reindex(summary.index[recent])
    first_value = float(rv.mean()) if len(rv) else 0.0
    p, q, v = gg.params_["p"], gg.params_["q"], gg.params_["v"]
    pop_value = p * v / (q - 1) if q > 1 else float(value.mean())
    u = np.array([bg.predict_unconditional(7.0 * h) if h > 0 else 0.0 for h in range(horizon + 1)])
    du = np.diff(u)  # repeat purchases of a new buyer in its 1st, 2nd, ... week
    new_rev = np.array(
        [new_per_week * (first_value + pop_value * du[: h + 1].sum()) for h in range(horizon)], dtype="float64"
    )  # cohorts of weeks 1..h each contribute their (h - j + 1)-th week of repeat purchases

    if customer_groups is None:
        per_group = {TOTAL: existing.sum(axis=0) + new_rev}
    else:
        g = customer_groups.reindex(summary.index).fillna(OTHER).astype(str).to_numpy()
        gdf = pd.DataFrame(existing, index=g).groupby(level=0).sum()
        per_group = {str(k): gdf.loc[k].to_numpy() for k in gdf.index}
        if customer_groups.name == "rfm_segment":
            per_group[NEW_BUYERS] = new_rev
        else:
            share = pd.Series(g[recent]).value_counts(normalize=True)
            for k, s in share.items():
                per_group[str(k)] = per_group.get(str(k), np.zeros(horizon)) + s * new_rev
        per_group[TOTAL] = existing.sum(axis=0) + new_rev

    noise: dict[str, dict[str, float]] = {}
    frames = {}
    for k, point in per_group.items():
        hist = history[k].to_numpy() if history is not None and k in history.columns else np.array([])
        if k not in noise:
            noise[k] = _noise_quantiles(hist, cfg.noise_window_weeks, horizon, cfg.levels)
        out = {"forecast": point}
        for lv in cfg.levels:
            out[f"lo{lv}"] = point * np.exp(noise[k][f"lo{lv}"])
            out[f"hi{lv}"] = point * np.exp(noise[k][f"hi{lv}"])
        frames[k] = pd.DataFrame(out)
    fit = BottomUpFit(
        bgnbd=dict(bg.params_),
        gamma_gamma=dict(gg.params_),
        n_buyers=len(summary),
        new_per_week=new_per_week,
        first_value=first_value,
        noise_quantiles=noise.get(TOTAL, {}),
        notes=notes,
    )
    return frames, fit


# ----------------------------------------------------------------------------------------------------------
# baseline and metrics


def seasonal_naive(y: np.ndarray, horizon: int, season: int = 52) -> tuple[np.ndarray, str]:
    """The value ``season`` weeks earlier when ``y`` has that much history, else the last value; and which."""
    y = np.asarray(y, dtype="float64")
    if len(y) >= season:
        idx = len(y) - season + (np.arange(horizon) % season)
        return y[idx], f"seasonal_naive_{season}"
    return np.full(horizon, y[-1]), "last_value_naive"


def wape(actual: np.ndarray, forecast: np.ndarray) -> float:
    """Σ|actual − forecast| / Σ|actual| (NaN when the actuals sum to zero)."""
    a, f = np.asarray(actual, dtype="float64"), np.asarray(forecast, dtype="float64")
    den = float(np.abs(a).sum())
    return float(np.abs(a - f).sum() / den) if den > 0 else float("nan")


def interval_score(actual: np.ndarray, lo: np.ndarray, hi: np.ndarray, level: int) -> np.ndarray:
    """Interval (Winkler) score of the central ``level``% interval per week: its width plus ``2 / α`` times how
    far the actual fell outside it (α = 1 − level / 100). Lower is better; a proper score for the interval."""
    a = np.asarray(actual, dtype="float64")
    lo, hi = np.asarray(lo, dtype="float64"), np.asarray(hi, dtype="float64")
    alpha = 1 - level / 100
    return (hi - lo) + 2 / alpha * (np.clip(lo - a, 0.0, None) + np.clip(a - hi, 0.0, None))


def wis(actual: np.ndarray, forecast: np.ndarray, bounds: dict[str, np.ndarray], levels: tuple[int, ...]) -> float:
    """Weighted interval score of the point (median) and the ``levels``% intervals, summed over the weeks and
    divided by Σ|actual| (scale-free; with no interval it is the WAPE).

    Per week (Bracher et al. 2021): ``(0.5·|actual − forecast| + Σ_k α_k/2 · IS_k) / (K + 0.5)`` with ``IS_k``
    the :func:`interval_score` of the k-th interval. A proper score: it rewards accurate points and intervals
    that are as narrow as the coverage they keep allows. ``bounds`` holds ``lo{level}`` / ``hi{level}`` arrays.
    """
    a = np.asarray(actual, dtype="float64")
    den = float(np.abs(a).sum())
    if den <= 0:
        return float("nan")
    s = 0.5 * np.abs(a - np.asarray(forecast, dtype="float64"))
    for lv in levels:
        s = s + (1 - lv / 100) / 2 * interval_score(a, bounds[f"lo{lv}"], bounds[f"hi{lv}"], lv)
    return float(s.sum() / (len(levels) + 0.5) / den)


def coverage(actual: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> float:
    """Share of actual values inside ``[lo, hi]``."""
    a = np.asarray(actual, dtype="float64")
    return float(np.mean((a >= np.asarray(lo)) & (a <= np.asarray(hi)))) if len(a) else float("nan")


# ----------------------------------------------------------------------------------------------------------
# one forecast and the backtest


@dataclass
class ForecastResult:
    """Forecast table (both methods, every group), the weekly history and what the models chose."""

    table: pd.DataFrame
    history: pd.DataFrame
    bottom_up_fit: BottomUpFit | None
    top_down_fit: TopDownFit | None
    errors: dict[str, str] = field(default_factory=dict)


def forecast_at(
    orders: pd.DataFrame,
    as_of: pd.Timestamp | str,
    cfg: ForecastConfig,
    customer_groups: pd.Series | None = None,
    start: pd.Timestamp | None = None,
    methods: tuple[str, ...] = METHODS,
) -> ForecastResult:
    """Both forecasts of the ``horizon_weeks`` weeks after ``as_of``, from the paid orders ``<= as_of`` only.

    ``customer_groups`` (customer id → group) adds one forecast per group beside the total; groups beyond the
    ``max_groups`` largest by revenue are merged into ``other``.
    """
    as_of = pd.Timestamp(as_of)
    with one_blas_thread():
        return _forecast_paid(paid_orders(orders, as_of), as_of, cfg, customer_groups, start, methods)


def _forecast_paid(
    paid: pd.DataFrame,
    as_of: pd.Timestamp,
    cfg: ForecastConfig,
    customer_groups: pd.Series | None = None,
    start: pd.Timestamp | None = None,
    methods: tuple[str, ...] = METHODS,
) -> ForecastResult:
    """:func:`forecast_at` on paid orders that are already filtered to ``ts <= as_of``."""
    if customer_groups is not None:
        customer_groups = limit_groups(customer_groups, paid, cfg.max_groups)
        row_groups = paid["customer_id"].map(customer_groups).astype(object).where(lambda s: s.notna(), OTHER)
        history = weekly_revenue(paid, as_of, row_groups.astype(str), start=start)
        history[TOTAL] = history.sum(axis=1)
    else:
        history = weekly_revenue(paid, as_of, start=start)
    if len(history) < cfg.min_history_weeks:
        raise ValueError(
            M_(
                "orders: {value} full week(s) of paid orders before {as_of}; a forecast needs at least "
                "{min_history_weeks}",
                value=len(history), as_of=as_of, min_history_weeks=cfg.min_history_weeks,
            )
        )
    H = cfg.horizon_weeks
    weeks = future_weeks(as_of, H)
    parts: list[pd.DataFrame] = []
    errors: dict[str, str] = {}
    bu_fit = td_fit = None
    if "bottom_up" in methods:
        try:
            bu, bu_fit = bottom_up(paid, as_of, H, cfg, customer_groups, history)
            parts += [weeks.assign(group=g, method="bottom_up", **f.to_dict("list")) for g, f in bu.items()]
        except ValueError as e:
            errors["bottom_up"] = str(e)
    if "top_down" in methods:
        for g in history.columns:
            try:
                f, fit = top_down(history[g], H, cfg)
            except (ValueError, np.linalg.LinAlgError) as e:
                errors["top_down" if g == TOTAL else f"top_down[{g}]"] = str(e)
                continue
            if g == TOTAL:
                td_fit = fit
            parts.append(weeks.assign(group=g, method="top_down", **f.to_dict("list")))
    if not parts:
        raise ValueError(M_(
            "no forecast could be made: {reasons}", reasons="; ".join(f"{k}: {v}" for k, v in errors.items())
        ))
    table = pd.concat(parts, ignore_index=True)[list(FORECAST_COLUMNS)]
    if COMBINED in methods:
        table = pd.concat([table, combine(table, cfg.combine_weight, cfg.levels)], ignore_index=True)
    return ForecastResult(table=table, history=history, bottom_up_fit=bu_fit, top_down_fit=td_fit, errors=errors)


def combine(table: pd.DataFrame, weight: float, levels: tuple[int, ...]) -> pd.DataFrame:
    """Rows of the ``combined`` method: ``weight`` × bottom-up + (1 − weight) × top-down, for every group and week
    both forecast (none where one of them failed).

    The points are combined linearly, and so are the bounds of each interval (quantile averaging); these are the
    combination's own intervals before calibration. The calibrated ones come from its own backtest errors like
    the other methods' (:mod:`training.forecast_calibrate`).
    """
    cols = ["forecast", *[f"{b}{lv}" for lv in levels for b in ("lo", "hi")]]
    key = ["group", "week"]
    bu = table.loc[(table["method"] == "bottom_up").to_numpy()]
    td = table.loc[(table["method"] == "top_down").to_numpy()]
    both = bu.merge(td[key + cols], on=key, suffixes=("", "_td"), validate="one_to_one")
    for c in cols:
        both[c] = weight * both[c].to_numpy(dtype="float64") + (1 - weight) * both[f"{c}_td"].to_numpy(dtype="float64")
    return both.assign(method=COMBINED)[list(table.columns)]


def limit_groups(customer_groups: pd.Series, paid: pd.DataFrame, max_groups: int) -> pd.Series:
    """Keep the ``max_groups`` groups with the most paid revenue; the others become ``other``."""
    g = customer_groups.astype(object).where(customer_groups.notna(), OTHER).astype(str)
    rev = paid.groupby(paid["customer_id"].map(g).fillna(OTHER).astype(str), observed=True)["amount"].sum()
    keep = set(rev.sort_values(ascending=False).index[:max_groups])
    out = g.where(g.isin(keep), OTHER)
    out.name = customer_groups.name
    return out


@dataclass
class BacktestResult:
    """Per-origin, per-week rows and the pooled metrics per method."""

    rows: pd.DataFrame
    metrics: dict[str, float]
    baseline: str
    origins: list[pd.Timestamp]
    notes: list[str]


def backtest_origins(first: pd.Timestamp, as_of: pd.Timestamp, cfg: ForecastConfig) -> list[pd.Timestamp]:
    """Rolling origins ``as_of - H``, ``as_of - H - step``, … (oldest first) that leave ``min_history_weeks``."""
    H, step = cfg.horizon_weeks, cfg.origin_step_weeks
    out = []
    for i in range(cfg.backtest_origins):
        o = as_of - (H + i * step) * WEEK
        if (o - first) // WEEK >= cfg.min_history_weeks:
            out.append(o)
    return sorted(out)


def origin_rows(
    paid: pd.DataFrame, origin: pd.Timestamp, actual: pd.Series, cfg: ForecastConfig, start: pd.Timestamp
) -> tuple[pd.DataFrame, str, dict[str, str]]:
    """Both forecasts of the total made at ``origin`` from the paid orders up to it, beside the ``actual`` weekly
    revenue and the baseline: the rows of one backtest origin, which baseline, and the methods that failed."""
    res = _forecast_paid(paid.loc[(paid["ts"] <= origin).to_numpy()], origin, cfg, start=start)
    naive, kind = seasonal_naive(res.history[TOTAL].to_numpy(), cfg.horizon_weeks, cfg.season_weeks)
    act = actual.reindex(future_weeks(origin, cfg.horizon_weeks)["week_end"]).to_numpy()
    total = res.table.loc[(res.table["group"] == TOTAL).to_numpy()]
    rows = total.assign(
        origin=origin,
        actual=np.tile(act, total["method"].nunique()),
        baseline=np.tile(naive, total["method"].nunique()),
        baseline_kind=kind,
    )
    return rows.reset_index(drop=True), kind, res.errors


def backtest(
    orders: pd.DataFrame,
    as_of: pd.Timestamp | str,
    cfg: ForecastConfig,
    start: pd.Timestamp | None = None,
) -> BacktestResult:
    """Refit both forecasts of the total at rolling origins before ``as_of`` and score them on the actuals.

    Actuals are the weekly paid revenue up to ``as_of``; every origin's forecast uses only orders on or before
    the origin. The baseline is seasonal naive (52 weeks) at origins with a full season of history, else
    last-value naive; ``baseline`` says which were used.
    """
    as_of = pd.Timestamp(as_of)
    paid = paid_orders(orders, as_of)
    first = pd.Timestamp(paid["ts"].min() if start is None else start)
    actual = weekly_revenue(paid, as_of, start=first)[TOTAL]
    with one_blas_thread():
        return backtest_paid(paid, as_of, first, actual, cfg)


def backtest_paid(
    paid: pd.DataFrame,
    as_of: pd.Timestamp,
    first: pd.Timestamp,
    actual: pd.Series,
    cfg: ForecastConfig,
    cache: dict[pd.Timestamp, tuple[pd.DataFrame, str, dict[str, str]]] | None = None,
) -> BacktestResult:
    """:func:`backtest` on paid orders, with the weekly ``actual`` revenue from ``first`` computed once.

    ``cache`` (origin → :func:`origin_rows`) lets a caller that backtests several cutoffs reuse the forecast of an
    origin they share instead of refitting it (:func:`training.forecast_calibrate.rolling_evaluation`).
    """
    origins = backtest_origins(first, as_of, cfg)
    notes: list[str] = []
    if not origins:
        raise ValueError(
            M_(
                "backtest: no origin leaves {min_history_weeks} weeks of history and {horizon_weeks} weeks of actuals "
                "before {as_of}",
                min_history_weeks=cfg.min_history_weeks, horizon_weeks=cfg.horizon_weeks, as_of=as_of,
            )
        )
    cache = {} if cache is None else cache
    rows = []
    kinds = set()
    for o in origins:
        if o not in cache:
            cache[o] = origin_rows(paid, o, actual, cfg, first)
        r, kind, errors = cache[o]
        kinds.add(kind)
        notes += [f"origin {o.date()}: {m} failed: {err}" for m, err in errors.items()]
        rows.append(r)
    bt = pd.concat(rows, ignore_index=True)
    metrics: dict[str, float] = {}
    one = bt.loc[bt["method"] == bt["method"].iloc[0]]
    metrics["wape_baseline"] = wape(one["actual"], one["baseline"])
    for m in METHODS:
        d = bt.loc[bt["method"] == m]
        if d.empty:
            continue
        metrics[f"wape_{m}"] = wape(d["actual"], d["forecast"])
        metrics[f"wape_gain_{m}"] = 1.0 - metrics[f"wape_{m}"] / metrics["wape_baseline"]
        for lv in cfg.levels:
            metrics[f"coverage{lv}_{m}"] = coverage(d["actual"], d[f"lo{lv}"], d[f"hi{lv}"])
        metrics[f"wis_{m}_model"] = wis(d["actual"], d["forecast"], {c: d[c] for c in d.columns}, cfg.levels)
    metrics["n_origins"] = float(len(origins))
    metrics["n_weeks_scored"] = float(len(one))
    return BacktestResult(rows=bt, metrics=metrics, baseline="+".join(sorted(kinds)), origins=origins, notes=notes)


def pick_method(metrics: dict[str, float], on: str = "wape", methods: tuple[str, ...] = METHODS) -> str:
    """The method of ``methods`` with the lowest ``{on}_{method}`` metric (top-down when none is finite)."""
    scored = {m: metrics.get(f"{on}_{m}", np.nan) for m in methods}
    scored = {m: v for m, v in scored.items() if np.isfinite(v)}
    return min(scored, key=lambda m: scored[m]) if scored else "top_down"
