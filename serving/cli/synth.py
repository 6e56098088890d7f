"""`crmscore synth`: write a demo CRM data dir (clean Parquet or messy exports) with its exact truth."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer

from serving.cli import output
from serving.i18n import _


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        message = _("{option}: {value!r} is not a date in YYYY-MM-DD form")
        raise ValueError(message.format(option=option, value=value)) from None


def synth_cmd(
    out: Annotated[Path, typer.Option("--out", help="output folder (created if missing)")],
    customers: Annotated[
        int, typer.Option("--customers", help="number of customers (leads included)")
    ] = 20_000,
    days: Annotated[int, typer.Option("--days", help="days of history, ending at --end")] = 365,
    seed: Annotated[int, typer.Option("--seed", help="random seed; same seed, same data")] = 0,
    messy: Annotated[
        bool, typer.Option("--messy", help="write real-world-looking CSV/Excel exports")
    ] = False,
    as_of: Annotated[
        str | None, typer.Option("--as-of", help="truth cut-off date T (default: --end minus --horizon days)")
    ] = None,
    horizon: Annotated[int, typer.Option("--horizon", help="outcome window H in days")] = 30,
    end: Annotated[str | None, typer.Option("--end", help="last day with data (default 2025-06-30)")] = None,
) -> None:
    """Generate synthetic CRM tables plus truth/ (true conversion and churn probabilities at as-of)."""
    import time

    from features.synth import generate_crm_data, write_crm_data

    start = time.perf_counter()
    try:
        with output.progress() as progress:
            result = generate_crm_data(
                n_customers=customers,
                days=days,
                seed=seed,
                as_of=_parse_date(as_of, "--as-of"),
                horizon_days=horizon,
                end=_parse_date(end, "--end"),
                progress=progress,
            )
            summary = write_crm_data(result, out, messy=messy, progress=progress)
    except (ValueError, OSError) as e:
        output.fail(e)
    summary["seconds"] = round(time.perf_counter() - start, 2)
    output.summary(summary, lambda: _lines(summary, out))


def _lines(summary: dict, out: Path) -> list[str]:
    rows = ", ".join(f"{name} {n:,}" for name, n in summary["rows"].items())
    mode = _("messy") if summary["mode"] == "messy" else _("clean")
    return [
        _("wrote {mode} data to {out}: {rows} ({seconds:.1f} s)").format(
            mode=mode, out=out, rows=rows, seconds=summary["seconds"]
        ),
        _("truth at as_of {as_of}, horizon {horizon} d: oracle AUC convert {convert}, churn {churn}").format(
            as_of=summary["as_of"], horizon=summary["horizon_days"],
            convert=_fmt(summary["oracle_auc_convert"]), churn=_fmt(summary["oracle_auc_churn"]),
        ),
    ]


def _fmt(x: float | None) -> str:
    return _("n/a") if x is None else f"{x:.3f}"


def register(app: typer.Typer) -> None:
    """Add `crmscore synth` to the root app."""
    app.command("synth", help="Generate a demo CRM data dir with exact truth (clean Parquet or --messy).")(
        output.command(synth_cmd)
    )
