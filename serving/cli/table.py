"""`crmscore train table`: train on any flat table (CSV / Excel / Parquet / SQL) with a binary target."""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli import output
from serving.i18n import _


def _split_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def train_table_cmd(
    table: str = typer.Option(
        ..., "--table", help="CSV / .xlsx / Parquet file, or a SQLAlchemy URL (sqlite:///crm.db)"
    ),
    target: str = typer.Option(..., "--target", help="binary target column (yes/no, true/false, 1/0, or --positive)"),
    name: str = typer.Option(..., "--name", help="registered model name"),
    id_column: str | None = typer.Option(None, "--id", help="row id column (never a feature)"),
    exclude: str | None = typer.Option(None, "--exclude", help="comma-separated columns that are not features"),
    time_col: str | None = typer.Option(None, "--time-col", help="date column: split out-of-time on it"),
    positive: str | None = typer.Option(None, "--positive", help="target value counted as positive"),
    config: Path | None = typer.Option(None, "--config", help="configs/table.yaml"),
    query: str | None = typer.Option(None, "--query", help="SQL query (with a SQLAlchemy URL as --table)"),
    sql_table: str | None = typer.Option(None, "--sql-table", help="table name (with a SQLAlchemy URL as --table)"),
    sheet: str | None = typer.Option(None, "--sheet", help="sheet name of an .xlsx workbook (default: first)"),
    drop_leaks: bool = typer.Option(False, "--drop-leaks", help="drop columns that alone reach ROC-AUC ≥ 0.95"),
) -> None:
    """Train, log, register and gate a model on a flat table; the logged model scores the raw columns."""
    from features.config import ConfigError, load_config
    from training.config import TrainConfig
    from training.registry import configure_tracking
    from training.tabular import read_table, train_table

    try:
        cfg = load_config(config, TrainConfig).model_copy(update={"task": "table", "model_name": name})
        frame, warnings = read_table(table, sql_table=sql_table, query=query, sheet=sheet)
        configure_tracking()
        out = train_table(
            frame,
            target,
            cfg,
            id_column=id_column,
            exclude=_split_list(exclude),
            time_column=time_col,
            positive=positive,
            drop_leaks=drop_leaks,
            source=table,
            warnings=warnings,
        )
    except (ConfigError, ValueError, KeyError) as e:
        output.fail(e.args[0] if isinstance(e, KeyError) and e.args else e)  # KeyError's str() adds quotes
    for w in out.report.warnings:
        output.note(w, "warning")
    output.summary(table_result_dict(out), lambda: _lines(out))


def table_result_dict(out) -> dict:
    """The table job's result as plain JSON-ready fields (``--json``): the training result and the table report."""
    import dataclasses

    return {**dataclasses.asdict(out.train), "report": dataclasses.asdict(out.report)}


def _lines(out) -> list[str]:
    rep, res = out.report, out.train
    kinds = rep.column_kinds
    used = [c for c in kinds if c not in rep.dropped]
    by_kind = ", ".join(
        f"{k} {sum(v == k for v in kinds.values())}" for k in ("numeric", "bool", "date", "categorical")
    )
    cols = _("{n} columns: {used} used ({kinds})").format(n=len(kinds), used=len(used), kinds=by_kind)
    if rep.dropped:
        cols += _("; dropped {what}").format(what=", ".join(f"{c} ({r})" for c, r in rep.dropped.items()))
    m = res.test_metrics
    split = _("out-of-time") if rep.split.get("method") == "out_of_time" else _("stratified hold-out")
    return [
        cols,
        _("{model} v{version} ({candidate}) run {run_id}").format(
            model=res.model_name, version=res.version, candidate=res.best_candidate, run_id=res.run_id
        ),
        "  " + _("{split} test: ROC-AUC {auc:.4f}  PR-AUC {pr_auc:.4f}  ECE {ece:.4f}  top-20% capture {capture:.1%}  "
                 "base rate {base:.1%}  rows {rows:,}").format(
            split=split, auc=m["roc_auc"], pr_auc=m["pr_auc"], ece=m["ece"], capture=m["capture_top20"],
            base=m["base_rate"], rows=int(m["n_rows"]),
        ),
        "  " + _("champion: {what} — {decision}").format(
            what=_("promoted") if res.promoted else _("kept"), decision=res.decision
        ),
    ]


def register(train_app: typer.Typer) -> None:
    """Add `table` to the `train` command group."""
    train_app.command("table")(output.command(train_table_cmd))
