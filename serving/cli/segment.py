"""`crmscore segment fit`: RFM segments, value tiers, clusters and expected value, logged and registered."""

from __future__ import annotations

from pathlib import Path

import typer

segment_app = typer.Typer(
    name="segment",
    help="Customer segmentation: RFM segments, value tiers, behavioural clusters, P(alive) and expected value.",
    no_args_is_help=True,
)


@segment_app.command("fit")
def fit_cmd(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables (<table>.parquet)"),
    as_of: str | None = typer.Option(
        None, "--as-of", help="cutoff T, e.g. 2025-06-30; nothing after T is used (default: last paid order)"
    ),
    config: Path | None = typer.Option(None, "--config", help="segment YAML (configs/segment.yaml)"),
) -> None:
    """Fit the segmenter at a cutoff, log it to MLflow and register the `customer_segments` model."""
    import pandas as pd

    from features.config import ConfigError
    from features.io import DataDirError
    from training.segment import fit_segments

    try:
        if as_of is not None:
            try:
                as_of = str(pd.Timestamp(as_of))
            except ValueError:
                raise ValueError(f"--as-of: not a date: {as_of!r}") from None
        res = fit_segments(data, as_of, config)
    except (ConfigError, DataDirError, ValueError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    for w in res.warnings:
        typer.echo(f"warning: {w}", err=True)
    p = res.bgnbd_params
    hold = (
        f"holdout MAE {res.holdout['mae']:.3f}/customer, total {res.holdout['total_pct_error']:+.1f}%"
        if res.holdout
        else "holdout skipped"
    )
    top = ", ".join(f"{k} {v:,}" for k, v in sorted(res.segment_sizes.items(), key=lambda kv: -kv[1])[:4])
    typer.echo(
        f"{res.n_customers:,} customers ({res.n_buyers:,} buyers) as of {res.as_of}: {top}, ...\n"
        f"k={res.k} clusters (silhouette {res.silhouette:.3f}); BG/NBD r={p['r']:.3f} alpha={p['alpha']:.3f} "
        f"a={p['a']:.3f} b={p['b']:.3f}; {hold}\n"
        f"run {res.run_id}; customer_segments version {res.version}"
        + (" (champion)" if res.champion_set else " (challenger)")
    )


def register(app: typer.Typer) -> None:
    """Add the `segment` command group to the root app."""
    app.add_typer(segment_app, name="segment")
