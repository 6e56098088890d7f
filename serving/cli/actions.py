"""`crmscore actions`: next best action per customer as of T (ordered rules in ``configs/actions.yaml``)."""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli import output
from serving.i18n import translate


def actions_cmd(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables (<table>.parquet)"),
    as_of: str = typer.Option(..., "--as-of", help="cutoff T, e.g. 2025-06-30; nothing after T is used"),
    out: Path = typer.Option(..., "--out", help="actions CSV (one row per customer); counts go beside it"),
    scores: list[str] = typer.Option(
        [], "--scores", help="PREFIX=FILE with customer_id and score columns: lead=leads.csv, churn=churn.csv"
    ),
    tags: Path | None = typer.Option(None, "--tags", help="a `tags apply` output folder as of T (for tag:NAME)"),
    members: Path | None = typer.Option(None, "--members", help="a `members apply` output folder as of T"),
    config: Path | None = typer.Option(None, "--config", help="actions YAML (configs/actions.yaml)"),
    members_config: Path | None = typer.Option(None, "--members-config", help="members YAML (configs/members.yaml)"),
    segment_config: Path | None = typer.Option(None, "--segment-config", help="segment YAML (RFM grid, value tiers)"),
    neutralise: bool = typer.Option(
        True, "--neutralise/--no-neutralise", help="prefix CSV cells starting with = + - @ with ' (spreadsheet "
        "formula injection); turn off only for machine consumers"
    ),
) -> None:
    """One action per customer with its reason (first matching rule wins), and the customers per action.

    Runs as the principal of ``$CRMSCORE_KEY`` (else the local operator): a list over every customer, so the
    role needs ``export_lists``; the export is written to the audit trail (docs/access.md)."""
    import time

    import numpy as np
    import pandas as pd

    from features.config import ConfigError, load_config
    from features.contract import drop_pii
    from features.io import DataDirError, load_tables
    from features.members.config import load_members_config
    from features.members.levels import LevelInputError, compute_levels
    from features.members.outputs import OutputDirError, read_levels, read_previous_tags, write_csv_atomic
    from features.members.tags import TagInputError
    from serving.access.exports import record_export
    from serving.cli.members import parse_as_of
    from serving.cli.tags import MISSING_HINT, build_context, context_fields, input_columns, read_scores
    from training.cross_sell_actions import ActionsConfig, action_counts, assign_actions, rule_fields

    principal = output.require_permission("export_lists")
    t0 = time.perf_counter()
    try:
        t = parse_as_of(as_of)
        cfg = load_config(config, ActionsConfig)
        mcfg = load_members_config(members_config)
        needed, tag_names = rule_fields(cfg)
        tables = {k: drop_pii(v) for k, v in load_tables(data, required=("orders",), columns=input_columns()).items()}
        if members is not None:
            levels, msum = read_levels(members)
            if pd.Timestamp(msum["as_of"]) != t:
                raise ValueError(f"--members {members} is as of {msum['as_of']}, not --as-of {t}")
        else:
            levels = compute_levels(tables, t, mcfg).levels
        ctx, _ = build_context(tables, t, levels, needed, [read_scores(s) for s in scores], segment_config)
        tag_arrays = None
        if tags is not None:
            long, _, tsum = read_previous_tags(tags)
            if pd.Timestamp(tsum["as_of"]) != t:
                raise ValueError(f"--tags {tags} is as of {tsum['as_of']}, not --as-of {t}")
            ids = pd.Index(ctx["customer_id"].astype("string"))
            tag_arrays = {}
            for name, grp in long.groupby("tag", sort=False):
                arr = np.zeros(len(ids), dtype=bool)
                pos = ids.get_indexer(grp["customer_id"].astype("string"))
                arr[pos[pos >= 0]] = True
                tag_arrays[str(name)] = arr
            for name in tag_names:  # a configured tag nobody carries is all false, not unknown
                tag_arrays.setdefault(name, np.zeros(len(ids), dtype=bool))
        elif tag_names:
            raise ValueError(f"the action rules name tag:{tag_names[0]}: give --tags DIR (a `tags apply` folder)")
        actions = assign_actions(ctx, cfg, context_fields(ctx, mcfg.order), tag_arrays, hint=MISSING_HINT)
    except (ConfigError, DataDirError, OutputDirError, LevelInputError, TagInputError, ValueError) as e:
        output.fail(e)
    counts = action_counts(actions, cfg)
    counts_path = out.with_name(f"{out.stem}_counts.csv")
    write_csv_atomic(actions, out, neutralise=neutralise)
    write_csv_atomic(counts, counts_path, neutralise=neutralise)
    record_export("export_lists", principal, [out, counts_path], customers=actions["customer_id"].astype(str).tolist(),
                  fields=[str(c) for c in actions.columns], command="actions", rows=len(actions))
    result = {
        "output": str(out), "counts_file": str(counts_path), "customers": len(actions), "as_of": str(t.date()),
        "seconds": round(time.perf_counter() - t0, 2), "counts": counts.to_dict("records"),
    }
    output.summary(result, lambda: [
        translate("{customers:,} customers as of {as_of} → {output} ({seconds:.1f}s)").format(**result),
        *(f"  {r.customers:>9,}  {r.action_id:<16} {r.action}" for r in counts.itertuples()),
        translate("counts → {file}").format(file=counts_path),
    ])


def register(app: typer.Typer) -> None:
    """Add the `actions` command to the root app."""
    app.command("actions")(output.command(actions_cmd))
