"""`crmscore train cross_sell`: association rules and the item-item next-basket model, evaluated out of time,
logged to MLflow and registered through the challenger/champion gate (``training.cross_sell_job``)."""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli import output
from serving.i18n import _


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
        output.fail(e)
    import dataclasses

    output.summary({"model_name": cfg.model_name, "k": cfg.k, **dataclasses.asdict(r)}, lambda: _lines(cfg, r))


def _lines(cfg, r) -> list[str]:
    k = cfg.k
    p = r.params
    lines = [
        _("{model} v{version} run {run_id}: T {as_of}, window {horizon} d, {items:,} products, {rules:,} rules, "
          "{seconds:.1f}s").format(
            model=cfg.model_name, version=r.version, run_id=r.run_id, as_of=r.split["as_of"],
            horizon=r.split["horizon_days"], items=r.split["items"], rules=r.n_rules, seconds=r.seconds,
        ),
        "  " + _("params: own {own}, alpha {alpha}, beta {beta}, half-life {half_life} d, co-occurrence "
                 "{cooccurrence}").format(
            own=p["own"], alpha=p["alpha"], beta=p["beta"], half_life=p["half_life_days"],
            cooccurrence=p["cooccurrence"],
        ),
        "  " + _("{method:<24} recall@{k} all/repeat/new      NDCG@{k} all/repeat/new").format(
            method=_("method"), k=k
        ),
    ]
    for method, m in r.metrics.items():
        lines.append(
            f"  {method:<24} {m[f'recall_at_{k}_all']:.4f} {m[f'recall_at_{k}_repeat']:.4f} "
            f"{m[f'recall_at_{k}_new']:.4f}    {m[f'ndcg_at_{k}_all']:.4f} {m[f'ndcg_at_{k}_repeat']:.4f} "
            f"{m[f'ndcg_at_{k}_new']:.4f}"
        )
    lines.append("  " + _("champion: {what} — {decision}").format(
        what=_("promoted") if r.promoted else _("kept"), decision=r.decision
    ))
    return lines


def register(train_app: typer.Typer) -> None:
    """Add `cross_sell` to the `train` command group."""
    train_app.command("cross_sell")(output.command(train_cross_sell_cmd))
