"""`crmscore segment fit` (RFM segments, value tiers, clusters and expected value, logged and registered) and
`crmscore segment apply` (the registered model applied to every customer of a data dir, locally or on Spark)."""

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


@segment_app.command("apply")
@output.command
def apply_cmd(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables (<table>.parquet); with "
                              "--engine spark also a tables YAML (docs/spark.md)"),
    as_of: str = typer.Option(..., "--as-of", help="cutoff T, e.g. 2025-06-30; nothing after T is used"),
    out: Path = typer.Option(..., "--out", help="output .csv or .parquet: one row per customer"),
    model: str = typer.Option("customer_segments@champion", "--model", help="NAME@alias, NAME/version, or a "
                              "models:/ or runs:/ URI"),
    engine: str = typer.Option("local", "--engine", help="local (pandas, one process) or spark"),
    spark_master: str = typer.Option("local[*]", "--spark-master", help="Spark master URL for --engine spark"),
    rejects: Path | None = typer.Option(None, "--rejects", help="rejects CSV (default <out>.rejects.csv)"),
    neutralise: bool = typer.Option(
        True, "--neutralise/--no-neutralise", help="prefix CSV cells starting with = + - @ with ' (spreadsheet "
        "formula injection); turn off only for machine consumers"
    ),
) -> None:
    """RFM scores and segment, value tier, cluster, P(alive) and expected value of every customer as of T, with
    the registered customer_segments model; rejects and a summary beside the output."""
    from features.config import ConfigError
    from serving.batch import BatchError
    from serving.batch.segment_apply import apply_segments

    principal = output.require_permission("export_scores")
    try:
        with output.progress() as progress:
            res = apply_segments(data, as_of, out, model=model, engine=engine, master=spark_master,
                                 rejects=rejects, neutralise=neutralise, progress=progress)
    except (BatchError, ConfigError) as e:
        output.fail(e)
    from serving.access.exports import ids_of_file, record_export

    record_export("export_scores", principal, [res.output, res.rejects_file], ids_of_file(res.output),
                  rows=res.segmented, output=res.output)
    output.summary(res.model_dump(), lambda: _apply_lines(res))


def _apply_lines(res) -> list[str]:
    top = ", ".join(f"{k} {v:,}" for k, v in sorted(res.rfm_segments.items(), key=lambda kv: -kv[1])[:4])
    tiers = ", ".join(f"{k} {v:,}" for k, v in res.value_tiers.items())
    lines = [
        _("{model} v{version} ({engine}): rows in {rows_in:,} = segmented {segmented:,} + rejected {rejected:,} + "
          "duplicates {duplicates:,}").format(
            model=res.model_name or res.model_uri, version=res.model_version or "?", engine=res.engine,
            rows_in=res.rows_in, segmented=res.segmented, rejected=res.rejected, duplicates=res.duplicates),
        "  " + _("as of {as_of}: {buyers:,} buyers; {top}; value tiers: {tiers}").format(
            as_of=res.as_of, buyers=res.buyers, top=top, tiers=tiers),
        "  " + _("{seconds:,.1f} s; wrote {out}").format(seconds=res.seconds, out=res.output),
    ]
    if res.rejected:
        reasons = ", ".join(f"{r} ({n:,})" for r, n in list(res.reject_reasons.items())[:3])
        lines.append("  " + _("rejects in {file}: {top}").format(file=res.rejects_file, top=reasons))
    lines.append("  " + _("summary in {file}").format(file=res.summary_file))
    return lines


def register(app: typer.Typer) -> None:
    """Add the `segment` command group to the root app."""
    app.add_typer(segment_app, name="segment")
