"""`crmscore train lead|churn|table`: thin commands over `training.train` and `training.tabular`."""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli import output
from serving.i18n import _

train_app = typer.Typer(help="Train candidates, log them to MLflow, register the best as challenger, gate to champion.")


def _report(result) -> list[str]:
    m = result.test_metrics
    lines = [
        _("{model} v{version} ({candidate}) run {run_id}").format(
            model=result.model_name, version=result.version, candidate=result.best_candidate, run_id=result.run_id
        ),
        "  " + _("out-of-time: ROC-AUC {auc:.4f}  PR-AUC {pr_auc:.4f}  ECE {ece:.4f}  top-20% capture "
                 "{capture:.1%}  rows {rows:,}").format(
            auc=m["roc_auc"], pr_auc=m["pr_auc"], ece=m["ece"], capture=m["capture_top20"], rows=int(m["n_rows"])
        ),
        "  " + _("champion: {what} — {decision}").format(
            what=_("promoted") if result.promoted else _("kept"), decision=result.decision
        ),
    ]
    if "test_oracle_roc_auc" in m:
        lines.append("  " + _("demo-data oracle ROC-AUC {oracle:.4f}: model reaches {share:.1%} of it").format(
            oracle=m["test_oracle_roc_auc"], share=m["test_auc_share_of_oracle"]
        ))
    return lines


def result_dict(result) -> dict:
    """A training result as plain JSON-ready fields (``--json``)."""
    import dataclasses

    return dataclasses.asdict(result)


def _train_task(task: str, data: Path, config: Path | None, as_of: str | None) -> None:
    from features.config import ConfigError, load_config
    from features.io import DataDirError
    from training.config import TrainConfig
    from training.train import train_crm

    try:
        cfg = load_config(config, TrainConfig)
        cfg = cfg.model_copy(update={"task": task, **({"as_of": as_of} if as_of else {})})
        with output.progress() as progress:
            result = train_crm(data, cfg, progress)
    except (ConfigError, DataDirError, ValueError) as e:
        output.fail(e)
    output.summary(result_dict(result), lambda: _report(result))


@train_app.command("lead")
@output.command
def train_lead(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables"),
    config: Path | None = typer.Option(None, "--config", help="configs/lead.yaml"),
    as_of: str | None = typer.Option(None, "--as-of", help="latest (test) cutoff; default last event − horizon"),
) -> None:
    """Train the lead-scoring model (P(lead converts within the horizon))."""
    _train_task("lead", data, config, as_of)


@train_app.command("churn")
@output.command
def train_churn(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables"),
    config: Path | None = typer.Option(None, "--config", help="configs/churn.yaml"),
    as_of: str | None = typer.Option(None, "--as-of", help="latest (test) cutoff; default last event − horizon"),
) -> None:
    """Train the churn-risk model (P(active customer buys nothing within the horizon))."""
    _train_task("churn", data, config, as_of)


def register(app: typer.Typer) -> None:
    """Add the `train` group to the root app."""
    from serving.cli import cross_sell, table, uplift

    table.register(train_app)
    cross_sell.register(train_app)
    uplift.register(train_app)
    app.add_typer(train_app, name="train")
