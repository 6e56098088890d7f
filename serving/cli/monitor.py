"""`crmscore monitor drift`: drift and late-label performance of a model's recorded production rows.

Exit codes (for cron and CI): 0 no alert, 3 alert (drift share, PSI or AUC drop past the thresholds
of ``configs/monitor.yaml``), 2 bad input or an empty window.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer

from serving.cli import output
from serving.i18n import _

monitor_app = typer.Typer(help="Drift and performance monitoring of recorded production scores (Evidently).")


@monitor_app.command("drift")
@output.command
def drift_cmd(
    model: str = typer.Option("lead_scoring", "--model", help="registered model name"),
    version: str | None = typer.Option(None, "--version", help="model version (default: the champion)"),
    since: str | None = typer.Option(None, "--since", help="window back from now: 90m, 24h, 7d, 2w"),
    date_from: str | None = typer.Option(None, "--from", help="window start (YYYY-MM-DD or ISO time, UTC)"),
    date_to: str | None = typer.Option(None, "--to", help="window end; a bare date includes that day"),
    outcomes: Path | None = typer.Option(
        None, "--outcomes", help="late labels: CSV/Parquet with customer_id, outcome_ts, label"
    ),
    out: Path | None = typer.Option(None, "--out", help="folder for the HTML report and JSON summary"),
    webhook: str | None = typer.Option(None, "--webhook", help="POST the JSON summary to this URL"),
    config: Path | None = typer.Option(None, "--config", help="configs/monitor.yaml (default: embedded defaults)"),
) -> None:
    """Compare a model version's recorded rows in a window with its training reference; exit 3 on an alert."""
    from features.config import ConfigError
    from serving.monitoring.drift import MONITOR_STAGES, MonitorError, load_monitor_config, run_drift_monitor

    try:
        cfg = load_monitor_config(config)
        with output.progress(steps=MONITOR_STAGES - (outcomes is None)) as progress:
            result = run_drift_monitor(
                model,
                version=version,
                since=since,
                date_from=date_from,
                date_to=date_to,
                outcomes=outcomes,
                out_dir=out,
                webhook=webhook,
                config=cfg,
                progress=progress,
            )
    except (ConfigError, MonitorError) as e:
        output.fail(e, output.ExitCode.BAD_INPUT)
    if output.session().json:
        output.summary(result.summary, "")
    else:
        _report(result)
    raise typer.Exit(code=result.exit_code)


def _pct(v: Any) -> str:
    return _("n/a") if v is None else f"{v:.1%}"


def _num(v: Any, fmt: str = ".3f") -> str:
    return _("n/a") if v is None else format(v, fmt)


def _report(result: Any) -> None:
    from serving.monitoring.outputs import describe_pruning

    s = result.summary
    dd, pdr, rows = s["data_drift"], s["prediction_drift"], s["rows"]
    smp = s["sampling"]
    typer.echo(_(
        "{model} v{version}  {start} → {end} UTC  {current:,} recorded rows vs {reference:,} reference rows "
        "(per-feature tests on {tested_current:,} vs {tested_reference:,})"
    ).format(
        model=s["model_name"], version=s["model_version"], start=s["window"]["from"][:19], end=s["window"]["to"][:19],
        current=rows["current"], reference=rows["reference"], tested_current=smp["current_rows_tested"],
        tested_reference=smp["reference_rows_tested"],
    ))
    top = []
    for c in dd["drifted_features"][:8]:
        f = dd["features"][c]
        score = f.get("score")
        top.append(f"{c} ({f.get('method', '?')}{'' if score is None else ' ' + _num(score)})")
    more = f" … +{len(dd['drifted_features']) - 8}" if len(dd["drifted_features"]) > 8 else ""
    typer.echo("  " + _("feature drift: {n}/{of} drifted ({share}, alert at {alert:.0%})").format(
        n=dd["n_drifted"], of=dd["n_features"], share=_pct(dd["share_drifted"]),
        alert=s["thresholds"]["alert_drift_share"],
    ) + (f": {', '.join(top)}{more}" if top else ""))
    ev = pdr["evidently"]
    typer.echo("  " + _(
        "prediction drift: PSI {psi} (alert at {alert}), {method} {score}; mean probability {before} → {after}"
    ).format(
        psi=_num(pdr["psi"]), alert=s["thresholds"]["alert_psi"], method=ev["method"], score=_num(ev["score"]),
        before=_num(pdr["mean_probability_reference"]), after=_num(pdr["mean_probability_current"]),
    ))
    perf = s.get("performance")
    if perf:
        o, j = perf["overall"], perf["join"]
        typer.echo("  " + _(
            "performance ({labelled:,} labelled, {pending:,} pending): ROC-AUC {auc} (training {training}), "
            "top-20% capture {capture}, mean predicted {predicted} vs observed {observed}, ECE {ece}"
        ).format(
            labelled=j["labelled"], pending=j["pending"], auc=_num(o["roc_auc"]),
            training=_num(perf["training_roc_auc"]),
            capture=_pct(o["capture_top20"]), predicted=_num(o["mean_predicted"]), observed=_num(o["observed_rate"]),
            ece=_num(o["ece"]),
        ))
        for w in perf["weeks"]:
            typer.echo("    " + _(
                "{week}: rows {rows:,}  AUC {auc}  capture@20% {capture}  predicted {predicted} / observed {observed}"
                "  ECE {ece}"
            ).format(
                week=w["week"], rows=w["rows"], auc=_num(w["roc_auc"]), capture=_pct(w["capture_top20"]),
                predicted=_num(w["mean_predicted"]), observed=_num(w["observed_rate"]), ece=_num(w["ece"]),
            ))
    rule = dd.get("top_feature_rule")
    if rule and rule.get("applied"):
        top_text = ", ".join(f"{t['feature']} {_num(t['distance'], '.2f')}" for t in rule["top_features"][:5])
        typer.echo("  " + _("top {k} features by mean |contribution| (alert at distance {threshold}): {top}").format(
            k=rule["top_k"], threshold=rule["distance_threshold"], top=top_text
        ) + (" …" if len(rule["top_features"]) > 5 else ""))
    if s.get("retention"):
        typer.echo("  " + _("retention: {what}").format(what=describe_pruning(s["retention"])))
    for w in s["warnings"][:10]:
        typer.echo(f"  {_('warning')}: {w}")
    if len(s["warnings"]) > 10:
        typer.echo("  " + _("… {n} more warning(s) in the JSON summary").format(n=len(s["warnings"]) - 10))
    for n in result.notes:
        typer.echo(f"  {_('note')}: {n}")
    if s["alerts"]:
        typer.echo("  " + _("ALERT: {alerts}").format(alerts="; ".join(s["alerts"])))
    else:
        typer.echo("  " + _("status: ok"))
    typer.echo("  " + _("report: {html}").format(html=result.html_path))
    typer.echo("  " + _("summary: {json} (latest: {latest})").format(json=result.json_path, latest=result.latest_path))
    if result.mlflow_run_id:
        typer.echo("  " + _("MLflow run: {run_id}").format(run_id=result.mlflow_run_id))
    if result.webhook:
        typer.echo("  " + _("webhook: {status}").format(status=result.webhook), err=result.webhook.startswith("failed"))
    r = result.retrain
    if r:
        if r["status"] == "trained":
            kept = _("promoted to champion") if r["promoted"] else _("champion kept")
            typer.echo("  " + _("retrain: trained v{version} (run {run_id}), {kept}: {decision}").format(
                version=r["version"], run_id=r["run_id"], kept=kept, decision=r["decision"]
            ))
        else:
            typer.echo("  " + _("retrain: {status}").format(status=r["status"]), err=r["status"].startswith("failed"))


def register(app: typer.Typer) -> None:
    """Add the `monitor` group (command `drift`) to the root app."""
    app.add_typer(monitor_app, name="monitor")
