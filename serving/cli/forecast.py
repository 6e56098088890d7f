"""`crmscore forecast`: weekly revenue forecast (bottom-up BG/NBD + Gamma-Gamma, top-down SARIMAX, their mean)."""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli import output
from serving.i18n import _


def forecast_cmd(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables (orders.parquet required)"),
    as_of: str = typer.Option(..., "--as-of", help="cutoff T, e.g. 2025-06-30; nothing after T is used"),
    horizon: str = typer.Option("13w", "--horizon", help="weeks to forecast: 13w, 13 or 91d"),
    by: str | None = typer.Option(None, "--by", help="also forecast per group: segment, source_channel or province"),
    out: Path = typer.Option(Path("forecast"), "--out", help="folder for forecast.csv, backtest.csv, chart, summary"),
    origins: int = typer.Option(4, "--origins", min=0, help="rolling backtest origins (0 = no backtest)"),
) -> None:
    """Forecast weekly paid revenue after T both ways, backtest both, report the better one and log to MLflow."""
    import json

    import pandas as pd

    from features.io import DataDirError
    from serving.access.exports import record_export
    from training.forecast_run import FORECAST_STAGES, parse_horizon, run_forecast

    principal = output.require_permission("export_reports")
    try:
        try:
            t = pd.Timestamp(as_of)
        except ValueError:
            raise ValueError(_("--as-of: not a date: {value!r}").format(value=as_of)) from None
        with output.progress(steps=FORECAST_STAGES) as progress:
            res = run_forecast(
                data, t, out, horizon_weeks=parse_horizon(horizon), by=by, origins=origins, progress=progress
            )
    except (DataDirError, ValueError) as e:
        output.fail(e)
    record_export("export_reports", principal, list(res.files.values()), command="forecast")
    for n in res.notes:
        output.note(n)
    output.summary(json.loads(res.files["summary.json"].read_text(encoding="utf-8")), lambda: _lines(res, out))


def _lines(res, out: Path) -> list[str]:
    total = res.table.loc[(res.table["group"] == "total") & res.table["selected"]]
    lines = [
        _("forecast of {weeks} weeks after {as_of}: {method} selected, total {total:,.0f} (weekly 80% interval "
          "summed {lo:,.0f} – {hi:,.0f})").format(
            weeks=len(total), as_of=res.as_of, method=res.selected.replace("_", "-"), total=total["forecast"].sum(),
            lo=total["lo80"].sum(), hi=total["hi80"].sum(),
        )
    ]
    if res.backtest is not None:
        m = res.backtest.metrics
        lines.append(
            _("backtest ({origins} origin(s), baseline {baseline}): WAPE baseline {wape:.3f}").format(
                origins=int(m["n_origins"]), baseline=res.backtest.baseline, wape=m["wape_baseline"]
            )
            + "".join(
                ", " + _("{method} {wape:.3f} (80% coverage {coverage:.2f})").format(
                    method=k, wape=m[f"wape_{k}"], coverage=m[f"coverage80_{k}"]
                )
                for k in ("bottom_up", "top_down", "combined")
                if f"wape_{k}" in m
            )
        )
        wis = {k: m[f"rolling_wis80_{k}"] for k in ("bottom_up", "top_down", "combined") if f"rolling_wis80_{k}" in m}
        if wis:
            lines.append(
                _("out of time, calibrated: weighted interval score of the point and 80% interval (lower is better) "
                  "{scores}").format(scores=", ".join(
                    f"{k} {v:.3f} ({m[f'rolling_coverage80_{k}']:.0%})" for k, v in wis.items()
                ))
            )
    run = _("; run {run_id}").format(run_id=res.run_id) if res.run_id else ""
    lines.append(_("files in {out}").format(out=out) + run)
    return lines


def register(app: typer.Typer) -> None:
    """Add the `forecast` command to the root app."""
    app.command("forecast")(output.command(forecast_cmd))
