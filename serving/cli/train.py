"""`crmscore train lead|churn|table`: thin commands over `training.train` and `training.tabular`."""

from __future__ import annotations

from pathlib import Path

import typer

train_app = typer.Typer(help="Train candidates, log them to MLflow, register the best as challenger, gate to champion.")


def _report(result) -> None:
    m = result.test_metrics
    typer.echo(
        f"{result.model_name} v{result.version} ({result.best_candidate}) run {result.run_id}\n"
        f"  out-of-time: ROC-AUC {m['roc_auc']:.4f}  PR-AUC {m['pr_auc']:.4f}  ECE {m['ece']:.4f}  "
        f"top-20% capture {m['capture_top20']:.1%}  rows {int(m['n_rows']):,}\n"
        f"  champion: {'promoted' if result.promoted else 'kept'} — {result.decision}"
    )
    if "test_oracle_roc_auc" in m:
        typer.echo(
            f"  demo-data oracle ROC-AUC {m['test_oracle_roc_auc']:.4f}: "
            f"model reaches {m['test_auc_share_of_oracle']:.1%} of it"
        )


def _train_task(task: str, data: Path, config: Path | None, as_of: str | None) -> None:
    from features.config import ConfigError, load_config
    from features.io import DataDirError
    from training.config import TrainConfig
    from training.train import train_crm

    try:
        cfg = load_config(config, TrainConfig)
        cfg = cfg.model_copy(update={"task": task, **({"as_of": as_of} if as_of else {})})
        result = train_crm(data, cfg)
    except (ConfigError, DataDirError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    _report(result)


@train_app.command("lead")
def train_lead(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables"),
    config: Path | None = typer.Option(None, "--config", help="configs/lead.yaml"),
    as_of: str | None = typer.Option(None, "--as-of", help="latest (test) cutoff; default last event − horizon"),
) -> None:
    """Train the lead-scoring model (P(lead converts within the horizon))."""
    _train_task("lead", data, config, as_of)


@train_app.command("churn")
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
