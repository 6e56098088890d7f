"""`crmscore route`: one owner per scored lead from configs/routing.yaml (territory, skill, free capacity)."""

from __future__ import annotations

from pathlib import Path

import typer


def route_cmd(
    leads: str = typer.Option(
        ..., "--leads", help="scored lead list (CSV / .xlsx / Parquet), e.g. crmscore score's output"
    ),
    as_of: str = typer.Option(..., "--as-of", help="the day routed (picks the reps working that day)"),
    out: Path = typer.Option(..., "--out", help="assignments CSV: lead_id, owner_id, rule, reason, grade"),
    config: Path = typer.Option(Path("configs/routing.yaml"), "--config", help="reps and rules"),
    summary: Path | None = typer.Option(None, "--summary", help="per-rep summary CSV (default: <out>.summary.csv)"),
) -> None:
    """Assign each lead an owner; unassigned leads get the reason; prints a summary per rep."""
    from features.config import ConfigError
    from features.export import neutralise_frame
    from features.io import atomic_path
    from training.routing import load_routing_config, route_leads
    from training.tabular import read_table

    try:
        cfg = load_routing_config(str(config))
        frame, _ = read_table(leads)
        res = route_leads(frame, cfg, as_of)
    except (ConfigError, ValueError, KeyError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    summary = summary or out.with_name(out.stem + ".summary.csv")
    for path, df in ((out, res.assignments), (summary, res.summary)):
        with atomic_path(path) as tmp:
            neutralise_frame(df).to_csv(tmp, index=False, encoding="utf-8")
    a = res.assignments
    placed = a["owner_id"] != ""
    kept = int((a["rule"] == "existing_owner").sum())
    typer.echo(
        f"{len(a):,} leads: {kept:,} kept their owner, {int(placed.sum()) - kept:,} assigned, "
        f"{int((~placed).sum()):,} unassigned → {out}"
    )
    for reason, k in a.loc[~placed, "reason"].value_counts().head(10).items():
        typer.echo(f"  unassigned: {k:,} × {reason}")
    typer.echo(res.summary.to_string(index=False))
    typer.echo(f"per-rep summary → {summary}")


def register(app: typer.Typer) -> None:
    """Add `route` to the root app."""
    app.command("route")(route_cmd)
