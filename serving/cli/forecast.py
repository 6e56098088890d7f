"""`crmscore forecast`: weekly revenue forecast (bottom-up BG/NBD + Gamma-Gamma and top-down SARIMAX), backtested."""

from __future__ import annotations

from pathlib import Path

import typer


def forecast_cmd(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables (orders.parquet required)"),
    as_of: str = typer.Option(..., "--as-of", help="cutoff T, e.g. 2025-06-30; nothing after T is used"),
    horizon: str = typer.Option("13w", "--horizon", help="weeks to forecast: 13w, 13 or 91d"),
    by: str | None = typer.Option(None, "--by", help="also forecast per group: segment, source_channel or province"),
    out: Path = typer.Option(Path("forecast"), "--out", help="folder for forecast.csv, backtest.csv, chart, summary"),
    origins: int = typer.Option(4, "--origins", min=0, help="rolling backtest origins (0 = no backtest)"),
) -> None:
    """Forecast weekly paid revenue after T both ways, backtest both, report the better one and log to MLflow."""
    import pandas as pd

    from features.io import DataDirError
    from training.forecast_run import parse_horizon, run_forecast

    try:
        try:
            t = pd.Timestamp(as_of)
        except ValueError:
            raise ValueError(f"--as-of: not a date: {as_of!r}") from None
        res = run_forecast(data, t, out, horizon_weeks=parse_horizon(horizon), by=by, origins=origins)
    except (DataDirError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for n in res.notes:
        typer.echo(f"note: {n}", err=True)
    total = res.table.loc[(res.table["group"] == "total") & res.table["selected"]]
    lines = [
        f"forecast of {len(total)} weeks after {res.as_of}: {res.selected.replace('_', '-')} selected, "
        f"total {total['forecast'].sum():,.0f} (weekly 80% interval summed {total['lo80'].sum():,.0f}"
        f" – {total['hi80'].sum():,.0f})"
    ]
    if res.backtest is not None:
        m = res.backtest.metrics
        lines.append(
            f"backtest ({int(m['n_origins'])} origin(s), baseline {res.backtest.baseline}): WAPE baseline "
            f"{m['wape_baseline']:.3f}"
            + "".join(
                f", {k} {m[f'wape_{k}']:.3f} (80% coverage {m[f'coverage80_{k}']:.2f})"
                for k in ("bottom_up", "top_down")
                if f"wape_{k}" in m
            )
        )
    lines.append(f"files in {out}" + (f"; run {res.run_id}" if res.run_id else ""))
    typer.echo("\n".join(lines))


def register(app: typer.Typer) -> None:
    """Add the `forecast` command to the root app."""
    app.command("forecast")(forecast_cmd)
