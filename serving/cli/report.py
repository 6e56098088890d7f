"""`crmscore report`: the CRM analysis report (sales, funnel, channels, campaigns, regions, members, retention,
satisfaction, scoring, forecast)."""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli import output
from serving.i18n import _


def report_cmd(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables (customers, orders required)"),
    as_of: str = typer.Option(..., "--as-of", help="cutoff T, e.g. 2025-06-30; nothing after T is used"),
    out: Path = typer.Option(Path("report"), "--out", help="folder for report.html and one CSV per table"),
    forecast: Path | None = typer.Option(
        None, "--forecast", help="--out folder of a `crmscore forecast` run to show (default: a top-down forecast)"
    ),
    scores: list[str] = typer.Option(
        [], "--scores", help="lead=FILE / churn=FILE: crmscore score output for the Scoring section (repeatable)"
    ),
) -> None:
    """Write one self-contained HTML report plus one CSV per table, and log them to MLflow (crmscore-report)."""
    import pandas as pd

    from features.io import DataDirError
    from serving.access.exports import record_export
    from serving.report.run import build_report

    principal = output.require_permission("export_reports")
    try:
        try:
            t = pd.Timestamp(as_of)
        except ValueError:
            raise ValueError(_("--as-of: not a date: {value!r}").format(value=as_of)) from None
        from serving.report.scoring import read_score_file

        given = dict(read_score_file(s) for s in scores)
        with output.progress() as progress:
            res = build_report(data, t, out, forecast_dir=forecast, progress=progress, scores=given)
    except (DataDirError, ValueError) as e:
        output.fail(e)
    record_export("export_reports", principal, [res.html, *res.csvs.values()], command="report")
    for n in res.notes:
        output.note(n)
    result = {
        "html": str(res.html), "csvs": {k: str(v) for k, v in res.csvs.items()}, "out": str(out), "run_id": res.run_id,
        "notes": list(res.notes), "lang": output.session().lang,
    }
    output.summary(
        result,
        lambda: _("report {html} and {n} CSV file(s) in {out}").format(html=res.html, n=len(res.csvs), out=out)
        + (_("; run {run_id}").format(run_id=res.run_id) if res.run_id else ""),
    )


def register(app: typer.Typer) -> None:
    """Add the `report` command to the root app."""
    app.command("report")(output.command(report_cmd))
