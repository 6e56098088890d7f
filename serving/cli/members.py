"""`crmscore members apply`: member levels as of a cutoff (upgrade only, manual changes, history, progress)."""

from __future__ import annotations

from pathlib import Path

import typer

members_app = typer.Typer(
    name="members",
    help="Member levels (会员等级): thresholds on paid spend / orders, upgrade only, manual changes kept.",
    no_args_is_help=True,
)

#: the columns members apply reads (no PII)
LEVEL_INPUT_COLUMNS = {"customers": ("customer_id", "created_at"), "orders": ("customer_id", "ts", "amount", "status")}


def parse_as_of(as_of: str):
    """``--as-of`` as a Timestamp, with an error naming the option."""
    import pandas as pd

    try:
        return pd.Timestamp(as_of)
    except ValueError:
        raise ValueError(f"--as-of: not a date: {as_of!r}") from None


@members_app.command("apply")
def apply_cmd(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables (<table>.parquet)"),
    as_of: str = typer.Option(..., "--as-of", help="cutoff T, e.g. 2025-06-30; nothing after T is used"),
    out: Path = typer.Option(..., "--out", help="output folder (levels, history, summary.json)"),
    previous: Path | None = typer.Option(
        None, "--previous", help="the previous run's output folder: levels are kept (upgrade only)"
    ),
    manual: Path | None = typer.Option(
        None, "--manual", help="manual changes CSV: customer_id, level, changed_by, changed_at, reason"
    ),
    config: Path | None = typer.Option(None, "--config", help="members YAML (configs/members.yaml)"),
) -> None:
    """Compute every customer's member level as of T and write levels, history and counts."""
    import time

    from features.config import ConfigError
    from features.io import DataDirError, load_tables
    from features.members.config import load_members_config
    from features.members.levels import LevelInputError, compute_levels, read_manual_changes
    from features.members.outputs import OutputDirError, read_previous_levels, write_summary, write_table

    t0 = time.perf_counter()
    try:
        t = parse_as_of(as_of)
        cfg = load_members_config(config)
        tables = load_tables(data, required=("orders",), columns=LEVEL_INPUT_COLUMNS)
        prev = read_previous_levels(previous) if previous is not None else None
        changes = read_manual_changes(manual, cfg) if manual is not None else None
        res = compute_levels(tables, t, cfg, prev, changes)
    except (ConfigError, DataDirError, OutputDirError, LevelInputError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    res.summary["config"] = str(config) if config else "embedded defaults"
    res.summary["seconds"] = round(time.perf_counter() - t0, 2)
    write_table(res.levels, out, "levels")
    write_table(res.history, out, "history")
    write_summary(res.summary, out)
    s = res.summary
    names = {x.id: x.zh for x in cfg.levels}
    counts = ", ".join(f"{names[k]} {v:,}" for k, v in s["levels"].items())
    typer.echo(
        f"{s['customers']:,} customers as of {t}: {counts}; {s['upgraded_by_threshold']:,} upgraded, "
        f"{s['manual_applied']:,} manual, {s['carried_over']:,} carried over → {out} in {s['seconds']:.1f}s"
    )


def register(app: typer.Typer) -> None:
    """Add the `members` command group to the root app."""
    app.add_typer(members_app, name="members")
