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
    engine: str = typer.Option(
        "local", "--engine", help="local (NumPy, one process) or spark (--data may then be a tables YAML; --out is "
        "a Parquet directory partitioned by customer; docs/spark.md)"
    ),
    spark_master: str = typer.Option("local[*]", "--spark-master", help="Spark master URL for --engine spark"),
) -> None:
    """Build point-in-time features per customer as of a cutoff."""
    import time

    if engine == "spark":
        _features_spark(data, as_of, out, horizon, config, spark_master)
        return
    if engine != "local":
        output.fail(_("--engine {engine!r}: use local or spark").format(engine=engine))

    import pandas as pd

    from features.build import build_features
    from features.config import ConfigError, FeatureConfig, LabelConfig, load_config
    from features.engines.inputs import check_data_dir
    from features.io import DataDirError, load_feature_tables, write_parquet_atomic
    from features.labels import build_labels

    progress = output.progress_bar()
    try:
        cfg = load_config(config, FeatureConfig, section="features")
        label_cfg = load_config(config, LabelConfig, section="labels")
        check_data_dir(data)  # the same input checks as the Spark engine
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


def _features_spark(data: Path, as_of: str, out: Path, horizon: int | None, config: Path | None, master: str) -> None:
    import time

    import pandas as pd

    from features.config import ConfigError, FeatureConfig, load_config
    from features.engines.spark_features import build_features_spark, write_partitioned
    from features.engines.spark_session import SparkUnavailable, spark_session
    from features.io import DataDirError

    t0 = time.perf_counter()
    try:
        if horizon is not None:
            raise ValueError("--horizon (labels) is local-engine only: build labels with --engine local")
        cfg = load_config(config, FeatureConfig, section="features")
        cutoff = pd.Timestamp(as_of)
        spark = spark_session(master, "crmscore-features")
        feats = build_features_spark(spark, data, cutoff, cfg)
        rows = write_partitioned(feats, out, spark.sparkContext.defaultParallelism)
    except (ConfigError, DataDirError, ValueError, SparkUnavailable) as e:
        output.fail(e)
    typer.echo(
        f"{rows:,} customers × {len(feats.columns) - 1} columns as of {cutoff.date()} → {out}/ (Spark, "
        f"{spark.sparkContext.master}) in {time.perf_counter() - t0:.1f}s"
    )


def register(app: typer.Typer) -> None:
    """Add `features` to the root app."""
    app.command("features")(output.command(features_cmd))
