"""`crmscore report`: the CRM analysis report (sales, funnel, channels, campaigns, regions, retention, forecast)."""

from __future__ import annotations

from pathlib import Path

import typer


def report_cmd(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables (customers, orders required)"),
    as_of: str = typer.Option(..., "--as-of", help="cutoff T, e.g. 2025-06-30; nothing after T is used"),
    out: Path = typer.Option(Path("report"), "--out", help="folder for report.html and one CSV per table"),
    forecast: Path | None = typer.Option(
        None, "--forecast", help="--out folder of a `crmscore forecast` run to show (default: a top-down forecast)"
    ),
) -> None:
    """Write one self-contained HTML report plus one CSV per table, and log them to MLflow (crmscore-report)."""
    import pandas as pd

    from features.io import DataDirError
    from serving.report.run import build_report

    try:
        try:
            t = pd.Timestamp(as_of)
        except ValueError:
            raise ValueError(f"--as-of: not a date: {as_of!r}") from None
        res = build_report(data, t, out, forecast_dir=forecast)
    except (DataDirError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for n in res.notes:
        typer.echo(f"note: {n}", err=True)
    typer.echo(
        f"report {res.html} and {len(res.csvs)} CSV file(s) in {out}" + (f"; run {res.run_id}" if res.run_id else "")
    )


def register(app: typer.Typer) -> None:
    """Add the `report` command to the root app."""
    app.command("report")(report_cmd)
