"""`crmscore members apply`: member levels as of a cutoff (upgrade only, manual changes, history, progress)."""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli import output
from serving.i18n import _

members_app = typer.Typer(
    name="members",
    help="Member levels (会员等级): thresholds on paid spend / orders, upgrade only, manual changes kept.",
    no_args_is_help=True,
)

#: the columns members apply reads (no PII)
#: what levels read: the event tables map to no column (load_tables then reads only their row count)
LEVEL_INPUT_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "created_at"),
    "orders": ("customer_id", "ts", "amount", "status"),
    "interactions": (),
    "marketing_touches": (),
}


def parse_as_of(as_of: str):
    """``--as-of`` as a Timestamp, with an error naming the option."""
    import pandas as pd

    try:
        return pd.Timestamp(as_of)
    except ValueError:
        raise ValueError(_("--as-of: not a date: {value!r}").format(value=as_of)) from None


@members_app.command("apply")
@output.command
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
    neutralise: bool = typer.Option(
        True, "--neutralise/--no-neutralise", help="prefix CSV cells starting with = + - @ with ' (spreadsheet "
        "formula injection); turn off only for machine consumers"
    ),
) -> None:
    """Compute every customer's member level as of T and write levels, history and counts.

    Runs as the principal of ``$CRMSCORE_KEY`` (else the local operator): a list over every customer, so the
    role needs ``export_lists``; the export is written to the audit trail (docs/access.md)."""
    import time

    from features.config import ConfigError
    from features.io import DataDirError, load_tables
    from features.members.config import load_members_config
    from features.members.levels import LevelInputError, compute_levels, read_manual_changes
    from features.members.outputs import OutputDirError, read_previous_levels, write_summary, write_table
    from serving.access.exports import record_export

    principal = output.require_permission("export_lists")
    t0 = time.perf_counter()
    progress = output.progress_bar(steps=3)  # reading tables, computing levels, writing
    try:
        t = parse_as_of(as_of)
        cfg = load_members_config(config)
        progress("reading tables")
        tables = load_tables(data, required=("orders",), columns=LEVEL_INPUT_COLUMNS)
        prev = read_previous_levels(previous) if previous is not None else None
        changes = read_manual_changes(manual, cfg) if manual is not None else None
        progress("computing levels")
        res = compute_levels(tables, t, cfg, prev, changes)
    except (ConfigError, DataDirError, OutputDirError, LevelInputError, ValueError) as e:
        output.fail(e)
    res.summary["config"] = str(config) if config else "embedded defaults"
    res.summary["seconds"] = round(time.perf_counter() - t0, 2)
    progress("writing")
    files = [*write_table(res.levels, out, "levels", neutralise=neutralise),
             *write_table(res.history, out, "history", neutralise=neutralise), write_summary(res.summary, out)]
    record_export("export_lists", principal, files, res.levels["customer_id"].astype(str).tolist(),
                  [str(c) for c in res.levels.columns], command="members apply", rows=len(res.levels))
    progress.close()
    s = res.summary
    names = {x.id: x.zh if output.session().lang == "zh" else x.id for x in cfg.levels}
    counts = ", ".join(f"{names[k]} {v:,}" for k, v in s["levels"].items())
    output.summary(s, lambda: _(
        "{customers:,} customers as of {as_of}: {counts}; {upgraded:,} upgraded, {manual:,} manual, "
        "{carried:,} carried over → {out} in {seconds:.1f}s"
    ).format(
        customers=s["customers"], as_of=t, counts=counts, upgraded=s["upgraded_by_threshold"],
        manual=s["manual_applied"], carried=s["carried_over"], out=out, seconds=s["seconds"],
    ))


def register(app: typer.Typer) -> None:
    """Add the `members` command group to the root app."""
    app.add_typer(members_app, name="members")
