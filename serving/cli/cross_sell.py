"""`crmscore train cross_sell`: association rules and the item-item next-basket model, evaluated out of time,
logged to MLflow and registered through the challenger/champion gate (``training.cross_sell_job``)."""

from __future__ import annotations

from pathlib import Path

import typer


def train_cross_sell_cmd(
    data: Path = typer.Option(..., "--data", help="data dir with orders and order_items (<table>.parquet)"),
    config: Path | None = typer.Option(None, "--config", help="configs/cross_sell.yaml"),
    as_of: str | None = typer.Option(None, "--as-of", help="T: train up to T, test (T, T + horizon]"),
) -> None:
    """Train the cross-sell model, compare it with popularity and personal top-frequency, register and gate."""
    from features.config import ConfigError, load_config
    from training.cross_sell import CrossSellConfig, CrossSellDataError
    from training.cross_sell_job import train_cross_sell

    try:
        cfg = load_config(config, CrossSellConfig)
        if as_of:
            cfg = cfg.model_copy(update={"as_of": as_of})
        r = train_cross_sell(data, cfg)
    except (ConfigError, CrossSellDataError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    k = cfg.k
    typer.echo(
        f"{cfg.model_name} v{r.version} run {r.run_id}: T {r.split['as_of']}, window {r.split['horizon_days']} d, "
        f"{r.split['items']:,} products, {r.n_rules:,} rules, {r.seconds:.1f}s\n"
        f"  params: own {r.params['own']}, alpha {r.params['alpha']}, beta {r.params['beta']}, "
        f"half-life {r.params['half_life_days']} d, co-occurrence {r.params['cooccurrence']}"
    )
    typer.echo(f"  {'method':<24} recall@{k} all/repeat/new      NDCG@{k} all/repeat/new")
    for method, m in r.metrics.items():
        typer.echo(
            f"  {method:<24} {m[f'recall_at_{k}_all']:.4f} {m[f'recall_at_{k}_repeat']:.4f} "
            f"{m[f'recall_at_{k}_new']:.4f}    {m[f'ndcg_at_{k}_all']:.4f} {m[f'ndcg_at_{k}_repeat']:.4f} "
            f"{m[f'ndcg_at_{k}_new']:.4f}"
        )
    typer.echo(f"  champion: {'promoted' if r.promoted else 'kept'} — {r.decision}")


def register(train_app: typer.Typer) -> None:
    """Add `cross_sell` to the `train` command group."""
    train_app.command("cross_sell")(train_cross_sell_cmd)
