"""`crmscore features`: the feature table (and optional labels) of a data dir at a cutoff."""

from __future__ import annotations

from pathlib import Path

import typer


def features_cmd(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables (<table>.parquet)"),
    as_of: str = typer.Option(..., "--as-of", help="cutoff T, e.g. 2025-06-30; nothing after T is used"),
    out: Path = typer.Option(..., "--out", help="output Parquet file"),
    horizon: int | None = typer.Option(
        None, "--horizon", help="also add labels for the horizon (T, T+H] in days"
    ),
    config: Path | None = typer.Option(None, "--config", help="features YAML (configs/features.yaml)"),
) -> None:
    """Build point-in-time features per customer as of a cutoff."""
    import time

    import pandas as pd

    from features.build import build_features
    from features.config import ConfigError, FeatureConfig, LabelConfig, load_config
    from features.io import DataDirError, load_feature_tables, write_parquet_atomic
    from features.labels import build_labels

    try:
        cfg = load_config(config, FeatureConfig, section="features")
        label_cfg = load_config(config, LabelConfig, section="labels")
        tables = load_feature_tables(data)
        cutoff = pd.Timestamp(as_of)
    except (ConfigError, DataDirError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    t0 = time.perf_counter()
    feats = build_features(tables, cutoff, cfg)
    if horizon is not None:
        lab = build_labels(tables, cutoff, horizon, label_cfg.churn_lookback_days)
        feats = feats.join(lab)
    write_parquet_atomic(feats.reset_index(), out)
    typer.echo(
        f"{len(feats):,} customers × {feats.shape[1]} columns as of {cutoff.date()} → {out} "
        f"in {time.perf_counter() - t0:.1f}s"
    )


def register(app: typer.Typer) -> None:
    """Add `features` to the root app."""
    app.command("features")(features_cmd)
