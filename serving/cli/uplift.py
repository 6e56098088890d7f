"""`crmscore train uplift` (a randomised campaign in the CRM tables) and `crmscore train uplift-table` (a flat table):
an uplift model — who the offer changes — compared in MLflow, registered and gated on held-out Qini."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from serving.cli import output
from serving.i18n import _

if TYPE_CHECKING:
    from serving.access.roles import Principal


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
    """Fit T-, class-transformation, X- and S-learners, compare them in MLflow, register the best, gate on Qini."""
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
        output.fail(e.args[0] if isinstance(e, KeyError) and e.args else e)  # KeyError's str() adds quotes
    _report(res, warnings)


def uplift_result_dict(res, **extra: object) -> dict:
    """An uplift result as plain JSON-ready fields (``--json``), with ``extra`` fields first."""
    import dataclasses

    return {**extra, **dataclasses.asdict(res)}


def _report(res, warnings: list[str], data: dict | None = None, head: list[str] | None = None) -> None:
    for w in warnings + res.warnings:
        output.note(w, "warning")
    output.summary(data if data is not None else uplift_result_dict(res), lambda: [*(head or []), *_lines(res)])


def _lines(res) -> list[str]:
    m, ci = res.test_metrics, res.intervals

    def iv(key: str) -> str:
        return f" [{ci[key][0]:+.4f}, {ci[key][1]:+.4f}]" if key in ci else ""

    lines = [
        _("{model} v{version} ({candidate}) run {run_id}").format(
            model=res.model_name, version=res.version, candidate=res.best_learner, run_id=res.run_id
        ),
        "  " + _("arms: control {control} vs treated {treated}; rows {rows}").format(
            control=repr(res.treatment["control"]), treated=", ".join(map(repr, res.treatment["treated"])),
            rows=res.rows,
        ),
        *(
            "  " + _("candidate {name}: validation Qini area {qini:+.5f}  fit {seconds:.1f}s").format(
                name=c, qini=v["qini_area"], seconds=v["fit_seconds"]
            )
            for c, v in res.candidates.items()
        ),
        "  " + _("held-out Qini area {qini:+.5f}{qini_ci}  by predicted response {by_response:+.5f}{by_response_ci}")
        .format(qini=m["qini_area"], qini_ci=iv("qini_area"), by_response=m["qini_area_by_response"],
                by_response_ci=iv("qini_area_by_response")),
        "  " + _("held-out uplift-curve area {area:+.5f}{area_ci}  by predicted response {by_response:+.5f}"
                 "{by_response_ci}").format(
            area=m["uplift_area"], area_ci=iv("uplift_area"), by_response=m["uplift_area_by_response"],
            by_response_ci=iv("uplift_area_by_response"),
        ),
        "  " + _("average effect (random targeting) {ate:+.4f}{ate_ci}").format(ate=m["ate"], ate_ci=iv("ate")),
    ]
    for p in (10, 20, 30):
        lines.append("  " + _(
            "top {p}%: uplift {uplift:+.4f}{uplift_ci}  random {random:+.4f}  by response {by_response:+.4f}  "
            "(model − random{random_ci}, model − by response{by_response_ci})"
        ).format(
            p=p, uplift=m[f"uplift_top{p}"], uplift_ci=iv(f"uplift_top{p}"), random=m[f"random_top{p}"],
            by_response=m[f"by_response_top{p}"], random_ci=iv(f"top{p}_minus_random"),
            by_response_ci=iv(f"top{p}_minus_by_response"),
        ))
    lines.append("  " + _("champion: {what} — {decision}").format(
        what=_("promoted") if res.promoted else _("kept"), decision=res.decision
    ))
    return lines


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
        output.fail(e.args[0] if isinstance(e, KeyError) and e.args else e)  # KeyError's str() adds quotes
    head = _("campaign {campaign}: sent {sent_at}, outcome = a paid order within {days} days").format(
        campaign=table.campaign, sent_at=table.sent_at, days=table.window_days
    )
    sent = {"campaign": table.campaign, "sent_at": table.sent_at, "window_days": table.window_days}
    _report(res, [], uplift_result_dict(res, **sent), [head])


def score_uplift_cmd(
    model: str, input: str, output: str, id_col: str | None, reasons: int, sort: bool, rejects: str | None,
    query: str | None, unsupported: Mapping[str, object], principal: Principal | None = None, neutralise: bool = True,
) -> None:
    """`crmscore score` with an uplift model (serving.batch.uplift): uplift, rank and decile per customer; the
    export is written to the audit trail as ``principal``'s (docs/access.md)."""
    import dataclasses

    from serving.access.exports import ids_of_output, record_export
    from serving.access.keys import principal_from_env
    from serving.batch.options import BatchError
    from serving.batch.uplift import score_uplift_batch
    from serving.cli import output as cli_output  # ``output`` is the output file here

    given = [k for k, v in unsupported.items() if v]
    try:
        if given:
            raise BatchError(_("{options}: not available with an uplift model (a flat customer list)").format(
                options=", ".join(given)
            ))
        s = score_uplift_batch(model, input, output, id_col, reasons, sort, rejects, query, neutralise=neutralise)
    except BatchError as e:
        cli_output.fail(e)
    files = [f for f in (s.output, s.rejects_file) if f and "://" not in f]
    record_export("export_scores", principal or principal_from_env(), files, ids_of_output(output, None, id_col),
                  rows=s.scored, output=s.output, model=s.model_name)
    cli_output.summary(dataclasses.asdict(s), lambda: _score_lines(s))


def _score_lines(s) -> list[str]:
    q = s.uplift_quantiles
    lines = [_(
        "{model} v{version} (uplift, {learner}): rows in {rows_in:,} = scored {scored:,} + rejected {rejected:,} + "
        "duplicates {duplicates:,}"
    ).format(
        model=s.model_name or s.model_uri, version=s.model_version or "?", learner=s.learner, rows_in=s.rows_in,
        scored=s.scored, rejected=s.rejected, duplicates=s.duplicates,
    )]
    if q:
        lines.append("  " + _("uplift p10 {p10:+.4f} / median {p50:+.4f} / p90 {p90:+.4f}").format(
            p10=q["p10"], p50=q["p50"], p90=q["p90"]
        ))
    lines.append("  " + _("{seconds:,.1f} s; wrote {output}").format(seconds=s.seconds, output=s.output))
    if s.rejects_file:
        top = ", ".join(f"{r} ({n:,})" for r, n in list(s.reject_reasons.items())[:3])
        lines.append("  " + _("rejects in {file}: {top}").format(file=s.rejects_file, top=top))
    return lines


def register(train_app: typer.Typer) -> None:
    """Add `uplift` and `uplift-table` to the `train` command group."""
    train_app.command("uplift")(output.command(train_uplift_cmd))
    train_app.command("uplift-table")(output.command(train_uplift_table_cmd))
