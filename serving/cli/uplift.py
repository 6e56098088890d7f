"""`crmscore train uplift` (a randomised campaign in the CRM tables) and `crmscore train uplift-table` (a flat table):
an uplift model — who the offer changes — compared in MLflow, registered and gated on held-out Qini."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import typer


def _split_list(value: str | None) -> list[str]:
    return [v.strip() for v in (value or "").split(",") if v.strip()]


def train_uplift_table_cmd(
    table: str = typer.Option(..., "--table", help="CSV / .xlsx / Parquet file, or a SQLAlchemy URL"),
    treatment: str = typer.Option(..., "--treatment", help="column saying which arm each row was in"),
    outcome: str = typer.Option(..., "--outcome", help="binary outcome column (yes/no, 1/0, or --positive)"),
    control: str | None = typer.Option(None, "--control", help="control value (default: control/none/No E-Mail/0)"),
    treated: list[str] = typer.Option([], "--treated", help="treated value; repeat for several (default: all others)"),
    exclude: str | None = typer.Option(
        None, "--exclude", help="comma-separated columns that are not features (other outcomes: they leak)"
    ),
    id_column: str | None = typer.Option(None, "--id", help="row id column (never a feature)"),
    positive: str | None = typer.Option(None, "--positive", help="outcome value counted as positive"),
    name: str = typer.Option("coupon_uplift", "--name", help="registered model name"),
    seed: int = typer.Option(42, "--seed"),
    margin: float = typer.Option(0.0005, "--margin", help="held-out Qini gain needed to replace the champion"),
    bootstrap: int = typer.Option(200, "--bootstrap", help="bootstrap resamples for the intervals (0: none)"),
) -> None:
    """Fit T-, class-transformation and X-learners, compare them in MLflow, register the best, gate on Qini."""
    from training.registry import configure_tracking
    from training.tabular import read_table
    from training.uplift import train_uplift_table

    try:
        frame, warnings = read_table(table)
        configure_tracking()
        res = train_uplift_table(
            frame,
            treatment,
            outcome,
            control=control,
            treated=treated,
            exclude=_split_list(exclude),
            id_column=id_column,
            positive=positive,
            name=name,
            seed=seed,
            margin=margin,
            n_boot=bootstrap,
            source=table.rsplit("/", 1)[-1],
        )
    except (ValueError, KeyError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2) from None
    _report(res, warnings)


def _report(res, warnings: list[str]) -> None:
    for w in warnings + res.warnings:
        typer.echo(f"warning: {w}", err=True)
    m, ci = res.test_metrics, res.intervals

    def iv(key: str) -> str:
        return f" [{ci[key][0]:+.4f}, {ci[key][1]:+.4f}]" if key in ci else ""

    typer.echo(
        f"{res.model_name} v{res.version} ({res.best_learner}) run {res.run_id}\n"
        f"  arms: control {res.treatment['control']!r} vs treated {', '.join(map(repr, res.treatment['treated']))}; "
        f"rows {res.rows}\n"
        + "".join(
            f"  candidate {c}: validation Qini area {v['qini_area']:+.5f}  fit {v['fit_seconds']:.1f}s\n"
            for c, v in res.candidates.items()
        )
        + f"  held-out Qini area {m['qini_area']:+.5f}{iv('qini_area')}  "
        f"by predicted response {m['qini_area_by_response']:+.5f}{iv('qini_area_by_response')}\n"
        f"  held-out uplift-curve area {m['uplift_area']:+.5f}{iv('uplift_area')}  "
        f"by predicted response {m['uplift_area_by_response']:+.5f}{iv('uplift_area_by_response')}\n"
        f"  average effect (random targeting) {m['ate']:+.4f}{iv('ate')}"
    )
    for p in (10, 20, 30):
        typer.echo(
            f"  top {p}%: uplift {m[f'uplift_top{p}']:+.4f}{iv(f'uplift_top{p}')}  random {m[f'random_top{p}']:+.4f}  "
            f"by response {m[f'by_response_top{p}']:+.4f}  (model − random{iv(f'top{p}_minus_random')}, "
            f"model − by response{iv(f'top{p}_minus_by_response')})"
        )
    typer.echo(f"  champion: {'promoted' if res.promoted else 'kept'} — {res.decision}")


def train_uplift_cmd(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables (marketing_touches, orders…)"),
    campaign: str | None = typer.Option(
        None, "--campaign", help="campaign_id of the randomised campaign (default: the latest one with a "
        "'<id>-HOLDOUT' control arm)"
    ),
    window: int = typer.Option(14, "--window", help="days after the send in which a paid order counts"),
    name: str = typer.Option("coupon_uplift", "--name", help="registered model name"),
    seed: int = typer.Option(42, "--seed"),
    margin: float = typer.Option(0.0005, "--margin", help="held-out Qini gain needed to replace the champion"),
    bootstrap: int = typer.Option(200, "--bootstrap", help="bootstrap resamples for the intervals (0: none)"),
) -> None:
    """Uplift model of a randomised campaign in the CRM tables (point-in-time features at the send)."""
    from features.io import DataDirError
    from training.registry import configure_tracking
    from training.uplift_crm import train_uplift_crm

    try:
        configure_tracking()
        res, table = train_uplift_crm(
            data, campaign=campaign, window_days=window, name=name, seed=seed, margin=margin, n_boot=bootstrap
        )
    except (DataDirError, ValueError, KeyError) as e:
        message = e.args[0] if isinstance(e, KeyError) and e.args else e
        typer.echo(f"error: {message}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"campaign {table.campaign}: sent {table.sent_at}, outcome = a paid order within {table.window_days} days"
    )
    _report(res, [])


def score_uplift_cmd(
    model: str, input: str, output: str, id_col: str | None, reasons: int, sort: bool, rejects: str | None,
    query: str | None, unsupported: Mapping[str, object],
) -> None:
    """`crmscore score` with an uplift model (serving.batch.uplift): uplift, rank and decile per customer."""
    from serving.batch.options import BatchError
    from serving.batch.uplift import score_uplift_batch

    given = [k for k, v in unsupported.items() if v]
    try:
        if given:
            raise BatchError(f"{', '.join(given)}: not available with an uplift model (a flat customer list)")
        s = score_uplift_batch(model, input, output, id_col, reasons, sort, rejects, query)
    except BatchError as e:
        typer.echo(f"error: {' '.join(str(e).split())}", err=True)
        raise typer.Exit(code=2) from None
    q = s.uplift_quantiles
    typer.echo(
        f"{s.model_name or s.model_uri} v{s.model_version or '?'} (uplift, {s.learner}): rows in {s.rows_in:,} = "
        f"scored {s.scored:,} + rejected {s.rejected:,} + duplicates {s.duplicates:,}"
    )
    if q:
        typer.echo(f"  uplift p10 {q['p10']:+.4f} / median {q['p50']:+.4f} / p90 {q['p90']:+.4f}")
    typer.echo(f"  {s.seconds:,.1f} s; wrote {s.output}")
    if s.rejects_file:
        top = ", ".join(f"{r} ({n:,})" for r, n in list(s.reject_reasons.items())[:3])
        typer.echo(f"  rejects in {s.rejects_file}: {top}")


def register(train_app: typer.Typer) -> None:
    """Add `uplift` and `uplift-table` to the `train` command group."""
    train_app.command("uplift")(train_uplift_cmd)
    train_app.command("uplift-table")(train_uplift_table_cmd)
