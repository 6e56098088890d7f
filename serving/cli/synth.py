"""`crmscore synth`: write a demo CRM data dir (clean Parquet or messy exports) with its exact truth."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Annotated

import typer


def _parse_date(value: str | None, option: str) -> date | None:
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{option}: {value!r} is not a date in YYYY-MM-DD form") from None


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
        result = generate_crm_data(
            n_customers=customers,
            days=days,
            seed=seed,
            as_of=_parse_date(as_of, "--as-of"),
            horizon_days=horizon,
            end=_parse_date(end, "--end"),
        )
        summary = write_crm_data(result, out, messy=messy)
    except (ValueError, OSError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=2) from None
    rows = ", ".join(f"{name} {n:,}" for name, n in summary["rows"].items())
    typer.echo(f"wrote {summary['mode']} data to {out}: {rows} ({time.perf_counter() - start:.1f} s)")
    auc_c, auc_ch = summary["oracle_auc_convert"], summary["oracle_auc_churn"]
    typer.echo(
        f"truth at as_of {summary['as_of']}, horizon {summary['horizon_days']} d: oracle AUC convert "
        f"{_fmt(auc_c)}, churn {_fmt(auc_ch)}"
    )


def _fmt(x: float | None) -> str:
    return "n/a" if x is None else f"{x:.3f}"


def register(app: typer.Typer) -> None:
    """Add `crmscore synth` to the root app."""
    app.command("synth", help="Generate a demo CRM data dir with exact truth (clean Parquet or --messy).")(
        synth_cmd
    )
