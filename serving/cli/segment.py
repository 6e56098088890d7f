"""`crmscore segment fit`: RFM segments, value tiers, clusters and expected value, logged and registered."""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli import output
from serving.i18n import _

segment_app = typer.Typer(
    name="segment",
    help="Customer segmentation: RFM segments, value tiers, behavioural clusters, P(alive) and expected value.",
    no_args_is_help=True,
)


@segment_app.command("fit")
@output.command
def fit_cmd(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables (<table>.parquet)"),
    as_of: str | None = typer.Option(
        None, "--as-of", help="cutoff T, e.g. 2025-06-30; nothing after T is used (default: last paid order)"
    ),
    config: Path | None = typer.Option(None, "--config", help="segment YAML (configs/segment.yaml)"),
) -> None:
    """Fit the segmenter at a cutoff, log it to MLflow and register the `customer_segments` model."""
    import dataclasses

    import pandas as pd

    from features.config import ConfigError
    from features.io import DataDirError
    from training.segment import fit_segments

    try:
        if as_of is not None:
            try:
                as_of = str(pd.Timestamp(as_of))
            except ValueError:
                raise ValueError(_("--as-of: not a date: {value!r}").format(value=as_of)) from None
        with output.progress() as progress:
            res = fit_segments(data, as_of, config, progress=progress)
    except (ConfigError, DataDirError, ValueError) as e:
        output.fail(e)
    for w in res.warnings:
        output.note(w, "warning")
    output.summary(dataclasses.asdict(res), lambda: _lines(res))


def _lines(res) -> list[str]:
    p = res.bgnbd_params
    hold = (
        _("holdout MAE {mae:.3f}/customer, total {pct:+.1f}%").format(
            mae=res.holdout["mae"], pct=res.holdout["total_pct_error"]
        )
        if res.holdout
        else _("holdout skipped")
    )
    top = ", ".join(f"{k} {v:,}" for k, v in sorted(res.segment_sizes.items(), key=lambda kv: -kv[1])[:4])
    return [
        _("{customers:,} customers ({buyers:,} buyers) as of {as_of}: {top}, ...").format(
            customers=res.n_customers, buyers=res.n_buyers, as_of=res.as_of, top=top
        ),
        _("k={k} clusters (silhouette {silhouette:.3f}); BG/NBD r={r:.3f} alpha={alpha:.3f} a={a:.3f} b={b:.3f}; "
          "{holdout}").format(k=res.k, silhouette=res.silhouette, holdout=hold, **p),
        _("run {run_id}; customer_segments version {version}").format(run_id=res.run_id, version=res.version)
        + " (" + (_("champion") if res.champion_set else _("challenger")) + ")",
    ]


def register(app: typer.Typer) -> None:
    """Add the `segment` command group to the root app."""
    app.add_typer(segment_app, name="segment")
