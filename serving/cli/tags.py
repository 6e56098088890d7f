"""`crmscore tags apply`: rule, product and manual tags as of a cutoff, as a long table with counts.

The per-customer context the rules read is :func:`serving.members.context.build_context` (also used by
``POST /segment``), re-exported here for the audience and actions commands.
"""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli import output
from serving.i18n import _
from serving.members.context import (  # noqa: F401 - also imported from here by audience and actions
    MISSING_HINT,
    PROFILE_COLUMNS,
    RFM_COLUMNS,
    SCORE_RESULT_COLUMNS,
    TIER_COLUMNS,
    build_context,
    context_fields,
    input_columns,
    read_scores,
)

tags_app = typer.Typer(
    name="tags",
    help="Customer tags (自动打标): rule tags, product tags and manual tags as of a cutoff.",
    no_args_is_help=True,
)


@tags_app.command("apply")
@output.command
def apply_cmd(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables (<table>.parquet)"),
    as_of: str = typer.Option(..., "--as-of", help="cutoff T, e.g. 2025-06-30; nothing after T is used"),
    out: Path = typer.Option(..., "--out", help="output folder (tags, tag_counts, context, summary.json)"),
    members: Path | None = typer.Option(
        None, "--members", help="a `members apply` output folder as of T (default: levels computed from the config)"
    ),
    scores: list[str] = typer.Option(
        [], "--scores", help="PREFIX=FILE or FILE with customer_id and score columns, e.g. churn=churn.csv; repeatable"
    ),
    previous: Path | None = typer.Option(
        None, "--previous", help="the previous run's output folder: manual tags and each tag's since are kept"
    ),
    manual: Path | None = typer.Option(None, "--manual", help="manual tags CSV: customer_id, tag, added_by, added_at"),
    remove: Path | None = typer.Option(
        None, "--remove", help="manual tag removals CSV: customer_id, tag, removed_by, removed_at"
    ),
    csv: bool = typer.Option(False, "--csv", help="also write the long table as tags.csv (large for many customers)"),
    config: Path | None = typer.Option(None, "--config", help="tags YAML (configs/tags.yaml)"),
    members_config: Path | None = typer.Option(None, "--members-config", help="members YAML (configs/members.yaml)"),
    segment_config: Path | None = typer.Option(None, "--segment-config", help="segment YAML (RFM grid, value tiers)"),
    neutralise: bool = typer.Option(
        True, "--neutralise/--no-neutralise", help="prefix CSV cells starting with = + - @ with ' (spreadsheet "
        "formula injection); turn off only for machine consumers"
    ),
) -> None:
    """Tag every customer as of T and write the long table (customer_id, tag, kind, since, source) and counts.

    Runs as the principal of ``$CRMSCORE_KEY`` (else the local operator): a list over every customer, so the
    role needs ``export_lists``; the export is written to the audit trail (docs/access.md)."""
    import time

    import pandas as pd

    from features.config import ConfigError
    from features.contract import drop_pii
    from features.io import DataDirError, load_tables
    from features.members.config import load_members_config, load_tags_config
    from features.members.levels import LevelInputError, compute_levels
    from features.members.outputs import (
        OutputDirError,
        read_levels,
        read_previous_tags,
        write_summary,
        write_table,
    )
    from features.members.tags import TagInputError, apply_tags, read_manual_tags, read_tag_removals, rule_fields
    from serving.access.exports import record_export
    from serving.cli.members import parse_as_of

    principal = output.require_permission("export_lists")
    t0 = time.perf_counter()
    progress = output.progress_bar(steps=5)  # the five stages below
    try:
        t = parse_as_of(as_of)
        cfg = load_tags_config(config)
        mcfg = load_members_config(members_config)
        needed = rule_fields(cfg)
        progress("reading tables")
        read = load_tables(data, required=("orders",), columns=input_columns(needed))
        tables = {k: drop_pii(v) for k, v in read.items()}
        progress("member levels")
        if members is not None:
            levels, msum = read_levels(members)
            if pd.Timestamp(msum["as_of"]) != t:
                raise ValueError(_("--members {dir} is as of {members_as_of}, not --as-of {t}").format(
                    dir=members, members_as_of=msum["as_of"], t=t
                ))
        else:
            levels = compute_levels(tables, t, mcfg).levels
        prev_long, prev_removed, prev_summary = (None, None, None)
        if previous is not None:
            prev_long, prev_removed, prev_summary = read_previous_tags(previous)
            if pd.Timestamp(prev_summary["as_of"]) >= t:
                raise ValueError(_("--previous {dir} is as of {prev_as_of}, not before --as-of {t}").format(
                    dir=previous, prev_as_of=prev_summary["as_of"], t=t
                ))
        added = read_manual_tags(manual, cfg) if manual is not None else None
        removed = read_tag_removals(remove, cfg) if remove is not None else None
        if prev_removed is not None:
            removed = prev_removed if removed is None else pd.concat([prev_removed, removed], ignore_index=True)
        score_frames = [read_scores(s) for s in scores]
        progress("customer context")
        ctx, notes = build_context(tables, t, levels, needed, score_frames, segment_config)
        fields = context_fields(ctx, mcfg.order)
        progress("applying tags")
        res = apply_tags(ctx, tables.get("orders"), t, cfg, fields, prev_long, added, removed, hint=MISSING_HINT)
    except (ConfigError, DataDirError, OutputDirError, LevelInputError, TagInputError, ValueError) as e:
        output.fail(e)
    res.summary |= {
        "config": str(config) if config else "embedded defaults",
        "members": str(members) if members else "computed from the members config",
        "member_level_order": list(mcfg.order),
        "context": notes,
        "context_columns": [c for c in ctx.columns if c != "customer_id"],
        "seconds": round(time.perf_counter() - t0, 2),
    }
    progress("writing")
    files = [*write_table(res.long, out, "tags", csv=csv, neutralise=neutralise),
             *write_table(res.counts, out, "tag_counts", neutralise=neutralise),
             *write_table(ctx, out, "context", csv=False)]
    if res.removals is not None:
        files += write_table(res.removals, out, "manual_removals", csv=False)
    files.append(write_summary(res.summary, out))
    record_export("export_lists", principal, files, ctx["customer_id"].astype(str).tolist(),
                  [str(c) for c in ctx.columns], command="tags apply", rows=len(ctx))
    progress.close()
    top = res.counts.sort_values("customers", ascending=False).head(5)
    s = res.summary
    output.summary(s, lambda: _(
        "{customers:,} customers as of {as_of}: {rows:,} tags on {tagged:,} customers; top: {top} → {out} in "
        "{seconds:.1f}s"
    ).format(
        customers=s["customers"], as_of=t, rows=s["rows"], tagged=s["customers_with_a_tag"],
        top=", ".join(f"{r.tag} {r.customers:,}" for r in top.itertuples()), out=out, seconds=s["seconds"],
    ))


def register(app: typer.Typer) -> None:
    """Add the `tags` command group to the root app."""
    app.add_typer(tags_app, name="tags")
