"""The ``crmscore forecast`` job: groups, forecast, backtest, files, chart and the MLflow run.

Files written to ``--out`` (each through :func:`features.io.atomic_path`): ``forecast.csv`` (bottom-up,
top-down and their combination, every group, ``selected`` marks the reported method), ``history.csv`` (weekly
actuals per group), ``backtest.csv`` (per origin and week: actual, every method's forecast, the baseline), with
``--by`` ``backtest_groups.csv`` (the same per group, :mod:`training.forecast_groups`), ``summary.json``
(metrics, choice, notes) and ``forecast.png``. The same files are logged to the MLflow experiment
``crmscore-forecast`` with the parameters and backtest metrics. No customer id or PII column is written or
logged: every figure is a sum over customers.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.messages import M_
from features.progress import ProgressCallback, no_progress
from training.forecast import (
    GROUP_BY,
    METHODS,
    TOTAL,
    BacktestResult,
    ForecastConfig,
    ForecastResult,
    forecast_at,
    one_blas_thread,
    paid_orders,
    pick_method,
    weekly_revenue,
)
from training.forecast_calibrate import apply_calibration, backtest_and_choice, calibrated_backtest
from training.forecast_groups import GroupBacktest, backtest_groups

log = logging.getLogger(__name__)


def parse_horizon(text: str) -> int:
    """Weeks from ``13w``, ``13`` (weeks) or ``91d`` (days, a multiple of 7)."""
    m = re.fullmatch(r"\s*(\d+)\s*([wd]?)\s*", str(text).lower())
    if not m:
        raise ValueError(M_("--horizon: expected e.g. 13w or 91d, got {text!r}", text=text))
    n, unit = int(m.group(1)), m.group(2) or "w"
    if unit == "d":
        if n % 7:
            raise ValueError(M_("--horizon: {n} days is not a whole number of weeks", n=n))
        n //= 7
    if not 1 <= n <= 104:
        raise ValueError(M_("--horizon: {n} weeks is outside 1..104", n=n))
    return n


def customer_groups(tables: dict[str, pd.DataFrame], by: str, as_of: pd.Timestamp) -> pd.Series:
    """customer id → group for ``by``: a customers column (source_channel, province), or ``segment``: the customers'
    own ``segment`` column when the table has one (not a contract column; e.g. Superstore's), else the RFM segment
    at ``as_of`` (:class:`training.segment.RFMScorer` on the buyers' summary, orders ``<= as_of`` only)."""
    if by not in GROUP_BY:
        raise ValueError(M_("--by: expected one of {value}, got {by!r}", value=", ".join(GROUP_BY), by=by))
    customers = tables.get("customers")
    if by == "segment" and (customers is None or "segment" not in customers.columns):
        from training.btyd import summarise_transactions
        from training.segment import RFMScorer

        summary = summarise_transactions(paid_orders(tables["orders"], as_of), as_of)
        seg = RFMScorer().fit(summary).transform(summary)["rfm_segment"]
        return pd.Series(seg.to_numpy(dtype=object), index=summary.index.astype(str), name="rfm_segment")
    if customers is None:
        raise ValueError(M_("--by {by}: the data dir has no customers table (customers.parquet)", by=by))
    if by not in customers.columns:
        raise ValueError(M_("--by {by}: table customers has no column {by!r}", by=by))
    s = customers.drop_duplicates("customer_id").set_index("customer_id")[by]
    s.index = s.index.astype(str)
    return s.astype(object).where(s.notna(), "unknown").astype(str).rename(by)


@dataclass
class ForecastRun:
    """What ``crmscore forecast`` made."""

    as_of: pd.Timestamp
    selected: str
    table: pd.DataFrame
    backtest: BacktestResult | None
    files: dict[str, Path]
    run_id: str | None
    notes: list[str] = field(default_factory=list)


def _backtest_and_rolling(
    orders: pd.DataFrame, t: pd.Timestamp, cfg: ForecastConfig, notes: list[str]
) -> tuple[BacktestResult, str]:
    """:func:`training.forecast_calibrate.backtest_and_choice` on the paid orders up to ``t``."""
    paid = paid_orders(orders, t)
    first = pd.Timestamp(paid["ts"].min())
    actual = weekly_revenue(paid, t, start=first)[TOTAL]
    with one_blas_thread():
        bt, on, more = backtest_and_choice(paid, t, first, actual, cfg)
    notes += more
    return bt, on


def _chart(history: pd.DataFrame, table: pd.DataFrame, selected: str, path: Path, weeks_shown: int = 52) -> None:
    """Actual weekly revenue, every method's forecast of the total, the selected one's 80% and 95% bands."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    h = history[TOTAL].iloc[-weeks_shown:]
    fig, ax = plt.subplots(figsize=(10, 4.2), dpi=110)
    ax.plot(h.index, h.to_numpy(), color="#333333", lw=1.5, label="actual")
    others = iter(("#ff7f0e", "#2ca02c"))
    for m in METHODS:
        f = table.loc[(table["group"] == TOTAL) & (table["method"] == m)]
        if f.empty:
            continue
        colour = "#1f77b4" if m == selected else next(others)
        x = pd.to_datetime(f["week_end"])
        if m == selected:
            ax.fill_between(x, f["lo95"], f["hi95"], color="#1f77b4", alpha=0.15, lw=0, label="95% interval")
            ax.fill_between(x, f["lo80"], f["hi80"], color="#1f77b4", alpha=0.3, lw=0, label="80% interval")
        ax.plot(
            x,
            f["forecast"],
            lw=2 if m == selected else 1,
            ls="-" if m == selected else "--",
            color=colour,
            label=f"{m.replace('_', '-')}{' (selected)' if m == selected else ''}",
        )
    ax.set_ylabel("weekly revenue")
    ax.set_title("Weekly revenue: actual and forecast")
    ax.legend(loc="upper left", fontsize=8, ncol=2)
    ax.grid(alpha=0.3)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(path, format="png")
    plt.close(fig)


#: what each choice criterion means (summary.json ``selected_on``)
SELECTED_ON = {
    "wape": "lowest backtest WAPE",
    "rolling_wis80": "lowest weighted interval score of the point and the calibrated 80% interval, out of time",
    "rolling_wis": "lowest weighted interval score of the point and the calibrated 80% and 95% intervals, out of time",
}

#: the stages :func:`run_forecast` reports to its progress callback (the backtest only with origins)
FORECAST_STAGES = 5


def run_forecast(
    data_dir: str | Path | None,
    as_of: str | pd.Timestamp,
    out_dir: str | Path,
    horizon_weeks: int = 13,
    by: str | None = None,
    origins: int | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
    log_mlflow: bool = True,
    cfg: ForecastConfig | None = None,
    progress: ProgressCallback = no_progress,
) -> ForecastRun:
    """Forecast the ``horizon_weeks`` weeks after ``as_of`` both ways, backtest both, write and log the results.

    Reads ``orders`` (required) and ``customers`` (for ``--by source_channel|province``) from ``data_dir``, or
    takes ``tables`` directly. The method with the lowest out-of-time weighted interval score of its calibrated
    forecast (``ForecastConfig.select_on``; backtest WAPE when that cannot be measured) is ``selected``; with
    ``by``, each group is backtested too and its intervals calibrated on its own errors; with no backtest
    possible, top-down is selected and a note says why. ``progress`` is told each of the
    :data:`FORECAST_STAGES` it reaches.
    """
    from features.contract import drop_pii
    from features.export import neutralise_frame
    from features.io import atomic_path, load_tables, write_text_atomic

    cfg = (cfg or ForecastConfig()).model_copy(update={"horizon_weeks": horizon_weeks})
    if origins is not None:
        cfg = cfg.model_copy(update={"backtest_origins": origins})
    progress("reading tables")
    if tables is None:
        if data_dir is None:
            raise ValueError(M_("no data: pass a data dir"))
        tables = load_tables(
            data_dir,
            required=("orders",),
            columns={"orders": ["customer_id", "ts", "amount", "status"], "customers": ["customer_id", *GROUP_BY]},
        )
    tables = {k: drop_pii(v) for k, v in tables.items()}
    t = pd.Timestamp(as_of)
    notes: list[str] = []
    orders = tables["orders"]
    last = paid_orders(orders, t)["ts"].max()
    if pd.notna(last) and t - last > pd.Timedelta(days=7):
        notes.append(
            f"the last paid order on or before T is {last}, more than a week before T: the last weeks are empty"
        )
    groups = customer_groups(tables, by, t) if by else None
    progress("forecasting")
    res: ForecastResult = forecast_at(orders, t, cfg, customer_groups=groups)
    notes += [f"{m} not made: {e}" for m, e in res.errors.items()]
    bt: BacktestResult | None = None
    selected_on = "wape"
    if cfg.backtest_origins > 0:
        progress("backtesting")
        try:
            bt, selected_on = _backtest_and_rolling(orders, t, cfg, notes)
            notes += bt.notes
        except ValueError as e:
            notes.append(str(e))
    selected = pick_method(bt.metrics, selected_on) if bt is not None else "top_down"
    made = set(res.table["method"])
    if selected not in made:
        selected = sorted(made)[0]
    if bt is None:
        notes.append(f"no backtest: {selected.replace('_', '-')} reported without a measured comparison")
    if res.bottom_up_fit is not None:
        notes += res.bottom_up_fit.notes
    if bt is not None and len(bt.origins) < cfg.backtest_origins:
        notes.append(
            f"backtest has {len(bt.origins)} of the {cfg.backtest_origins} origins asked for: too little history"
        )
    table = res.table.assign(selected=res.table["method"] == selected)
    calibration = None
    if bt is not None:
        # the total's intervals from the out-of-time backtest errors (training.forecast_calibrate)
        calibration = calibrated_backtest(bt.rows, cfg.levels, cfg.horizon_scale)
        bt.metrics |= calibration.metrics
        notes += calibration.notes
        table = apply_calibration(table, calibration, cfg.levels, TOTAL)
    groups_bt: GroupBacktest | None = None
    if bt is not None and by:
        # each group's own backtest at the same origins, groups as at each origin; its intervals calibrated
        paid = paid_orders(orders, t)
        with one_blas_thread():
            groups_bt = backtest_groups(
                paid, bt.origins, pd.Timestamp(paid["ts"].min()), cfg, lambda o: customer_groups(tables, by, o)
            )
        notes += groups_bt.notes
        for g, cal_g in groups_bt.calibrations.items():
            table = apply_calibration(table, cal_g, cfg.levels, g)
    table["week_start"] = pd.to_datetime(table["week_start"])
    table["week_end"] = pd.to_datetime(table["week_end"])

    progress("writing files")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files: dict[str, Path] = {}

    def csv(name: str, df: pd.DataFrame) -> None:
        with atomic_path(out / name) as tmp:
            neutralise_frame(df).to_csv(tmp, index=False, encoding="utf-8", float_format="%.2f")
        files[name] = out / name

    csv("forecast.csv", table)
    csv("history.csv", res.history.reset_index())
    if bt is not None:
        csv("backtest.csv", bt.rows)
    if groups_bt is not None and not groups_bt.rows.empty:
        csv("backtest_groups.csv", groups_bt.rows)
    summary = {
        "as_of": str(t),
        "horizon_weeks": cfg.horizon_weeks,
        "by": by,
        "selected": selected,
        "selected_on": SELECTED_ON.get(selected_on, selected_on) if bt is not None else None,
        "history_weeks": len(res.history),
        "backtest": None
        if bt is None
        else {
            "baseline": bt.baseline,
            "origins": [str(o.date()) for o in bt.origins],
            "metrics": bt.metrics,
        },
        "groups_backtest": None
        if groups_bt is None
        else {
            "method_reported": f"{selected} (the total's choice, for every group)",
            # NaN (e.g. no baseline for a group without history) as null: summary.json stays strict JSON
            "metrics": groups_bt.metrics.astype(object).where(groups_bt.metrics.notna(), None).to_dict("records"),
            "log_offsets": {g: c.offsets for g, c in groups_bt.calibrations.items()},
        },
        "bottom_up": None
        if res.bottom_up_fit is None
        else {
            "bgnbd": res.bottom_up_fit.bgnbd,
            "gamma_gamma": res.bottom_up_fit.gamma_gamma,
            "n_buyers": res.bottom_up_fit.n_buyers,
            "new_buyers_per_week": res.bottom_up_fit.new_per_week,
            "first_purchase_value": res.bottom_up_fit.first_value,
            "log_interval_offsets": res.bottom_up_fit.noise_quantiles,
        },
        "interval_calibration": None
        if calibration is None
        else {
            "method": "split conformal on log(actual / forecast) of the backtest weeks, per method, "
            + (
                "divided by sqrt(weeks ahead) (interval bounds f * exp(offset * sqrt(week)))"
                if calibration.scale == "sqrt"
                else "pooled over the weeks ahead (interval bounds f * exp(offset))"
            )
            + "; a level whose conformal rank would be the most extreme residual (95% with fewer than 79 "
            "residuals) extrapolated from the 80% offsets (normal quantile ratio about the median residual)"
            + "; coverage measured leave-one-origin-out (origins overlap in time)",
            "horizon_scale": calibration.scale,
            "log_offsets": calibration.offsets,
            "n_residuals": calibration.n_residuals,
        },
        "top_down": None
        if res.top_down_fit is None
        else {"order": list(res.top_down_fit.order), "fourier_terms": res.top_down_fit.fourier_terms},
        "notes": notes,
    }
    write_text_atomic(out / "summary.json", json.dumps(summary, indent=2, ensure_ascii=False, default=str))
    files["summary.json"] = out / "summary.json"
    with atomic_path(out / "forecast.png") as tmp:
        _chart(res.history, table, selected, tmp)
    files["forecast.png"] = out / "forecast.png"
    for n in notes:
        log.warning(n)

    if log_mlflow:
        progress("logging to MLflow")
    run_id = _log_run(cfg, t, by, selected, bt, res, files) if log_mlflow else None
    return ForecastRun(as_of=t, selected=selected, table=table, backtest=bt, files=files, run_id=run_id, notes=notes)


def _log_run(
    cfg: ForecastConfig,
    t: pd.Timestamp,
    by: str | None,
    selected: str,
    bt: BacktestResult | None,
    res: ForecastResult,
    files: dict[str, Path],
) -> str:
    import mlflow

    from training.registry import configure_tracking, start_job_run

    configure_tracking()
    with start_job_run(cfg.experiment, f"forecast-{t.date()}") as run:
        params: dict[str, object] = {
            # not "as_of"/"by": inside `mlflow run` those keys hold the entry point's own parameters already
            "cutoff": str(t),
            "horizon_weeks": cfg.horizon_weeks,
            "group_by": by or "total",
            "selected_method": selected,
            "backtest_origins": 0 if bt is None else len(bt.origins),
            "origin_step_weeks": cfg.origin_step_weeks,
            "baseline": "none" if bt is None else bt.baseline,
            "history_weeks": len(res.history),
            "new_customer_weeks": cfg.new_customer_weeks,
        }
        if res.top_down_fit is not None:
            params |= {"arima_order": str(res.top_down_fit.order), "fourier_terms": res.top_down_fit.fourier_terms}
        mlflow.log_params(params)
        metrics: dict[str, float] = {}
        if bt is not None:
            metrics |= {f"backtest_{k}": float(v) for k, v in bt.metrics.items() if np.isfinite(v)}
        if res.bottom_up_fit is not None:
            metrics |= {f"bgnbd_{k}": v for k, v in res.bottom_up_fit.bgnbd.items()}
            metrics |= {f"gamma_gamma_{k}": v for k, v in res.bottom_up_fit.gamma_gamma.items()}
            metrics["new_buyers_per_week"] = res.bottom_up_fit.new_per_week
        for m in METHODS:
            f = res.table.loc[(res.table["group"] == TOTAL) & (res.table["method"] == m), "forecast"]
            if len(f):
                metrics[f"forecast_total_{m}"] = float(f.sum())
        mlflow.log_metrics(metrics)
        for p in files.values():
            mlflow.log_artifact(str(p), artifact_path="forecast")
        return run.info.run_id
