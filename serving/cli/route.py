"""`crmscore route`: one owner per scored lead from configs/routing.yaml (territory, skill, free capacity)."""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli import output
from serving.i18n import translate


def route_cmd(
    leads: str = typer.Option(
        ..., "--leads", help="scored lead list (CSV / .xlsx / Parquet), e.g. crmscore score's output"
    ),
    as_of: str = typer.Option(..., "--as-of", help="the day routed (picks the reps working that day)"),
    out: Path = typer.Option(..., "--out", help="assignments CSV: lead_id, owner_id, rule, reason, grade"),
    config: Path = typer.Option(Path("configs/routing.yaml"), "--config", help="reps and rules"),
    summary: Path | None = typer.Option(None, "--summary", help="per-rep summary CSV (default: <out>.summary.csv)"),
    neutralise: bool = typer.Option(
        True, "--neutralise/--no-neutralise", help="prefix CSV cells starting with = + - @ with ' (spreadsheet "
        "formula injection); turn off only for machine consumers"
    ),
) -> None:
    """Assign each lead an owner; unassigned leads get the reason; prints a summary per rep.

    Runs as the principal of ``$CRMSCORE_KEY`` (else the local operator; role needs ``export_scores``); the
    export is written to the audit trail (docs/access.md)."""
    from features.config import ConfigError
    from features.export import neutralise_frame
    from features.io import atomic_path
    from serving.access.exports import record_export
    from training.routing import load_routing_config, route_leads
    from training.tabular import read_table

    principal = output.require_permission("export_scores")
    try:
        cfg = load_routing_config(str(config))
        frame, _ = read_table(leads)
        res = route_leads(frame, cfg, as_of)
    except (ConfigError, ValueError, KeyError) as e:
        output.fail(e)
    summary = summary or out.with_name(out.stem + ".summary.csv")
    for path, df in ((out, res.assignments), (summary, res.summary)):
        with atomic_path(path) as tmp:
            (neutralise_frame(df) if neutralise else df).to_csv(tmp, index=False, encoding="utf-8")
    record_export("export_scores", principal, [out, summary], res.assignments["lead_id"].astype(str).tolist(),
                  fields=[str(c) for c in res.assignments.columns],
                  command="route", rows=len(res.assignments))
    a = res.assignments
    placed = a["owner_id"] != ""
    kept = int((a["rule"] == "existing_owner").sum())
    result = {
        "output": str(out), "summary_file": str(summary), "leads": len(a), "kept_owner": kept,
        "assigned": int(placed.sum()) - kept, "unassigned": int((~placed).sum()),
        "unassigned_reasons": {str(r): int(k) for r, k in a.loc[~placed, "reason"].value_counts().items()},
        "per_rep": res.summary.to_dict("records"),
    }

    def lines() -> list[str]:
        out_lines = [translate(
            "{leads:,} leads: {kept_owner:,} kept their owner, {assigned:,} assigned, {unassigned:,} unassigned → "
            "{output}"
        ).format(**result)]
        for reason, k in list(result["unassigned_reasons"].items())[:10]:
            out_lines.append("  " + translate("unassigned: {n:,} × {reason}").format(n=k, reason=reason))
        out_lines.append(res.summary.to_string(index=False))
        out_lines.append(translate("per-rep summary → {file}").format(file=summary))
        return out_lines

    output.summary(result, lines)


def register(app: typer.Typer) -> None:
    """Add `route` to the root app."""
    app.command("route")(output.command(route_cmd))
