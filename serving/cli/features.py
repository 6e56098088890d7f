"""`crmscore features`: the feature table (and optional labels) of a data dir at a cutoff."""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli import output
from serving.i18n import _


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

    progress = output.progress_bar()
    try:
        cfg = load_config(config, FeatureConfig, section="features")
        label_cfg = load_config(config, LabelConfig, section="labels")
        progress("reading tables")
        tables = load_feature_tables(data)
        cutoff = pd.Timestamp(as_of)
    except (ConfigError, DataDirError, ValueError) as e:
        output.fail(e)
    t0 = time.perf_counter()
    progress("building features")
    feats = build_features(tables, cutoff, cfg)
    if horizon is not None:
        progress("building labels")
        lab = build_labels(tables, cutoff, horizon, label_cfg.churn_lookback_days)
        feats = feats.join(lab)
    progress("writing")
    write_parquet_atomic(feats.reset_index(), out)
    progress.close()
    result = {
        "out": str(out), "as_of": str(cutoff.date()), "customers": len(feats), "columns": int(feats.shape[1]),
        "horizon_days": horizon, "seconds": round(time.perf_counter() - t0, 2),
    }
    output.summary(result, lambda: _(
        "{customers:,} customers × {columns} columns as of {as_of} → {out} in {seconds:.1f}s"
    ).format(**result))


def register(app: typer.Typer) -> None:
    """Add `features` to the root app."""
    app.command("features")(output.command(features_cmd))
