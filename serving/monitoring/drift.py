"""Drift and performance monitoring of a registered model's production records (Evidently 0.7).

``crmscore monitor drift`` compares the rows the service and batch scoring recorded for one model
version over a time window (``serving.http.records`` layout, read by :func:`read_window_records`) with the
reference sample that training logged with that version (``evaluation/reference.parquet`` of its run):

* per-feature drift with Evidently's ``DataDriftPreset`` and its size-aware defaults (reference
  ≤ 1,000 non-missing values: Kolmogorov–Smirnov / chi-squared / Z-test p-values < 0.05; above:
  normed Wasserstein / Jensen–Shannon distance ≥ 0.1), and the share of drifted features;
* prediction drift: Evidently's test on ``probability`` plus the population stability index (PSI)
  over 10 quantile bins of the reference probabilities, computed here on every recorded row;
* missing-value share per feature and, for categorical features, the share of values never seen
  in the reference — both on every recorded row;
* with late outcomes (``customer_id, outcome_ts, label``): actual ROC-AUC, top-20% capture and
  calibration (mean predicted vs observed, ECE) per ISO week of the scoring time.

Only the per-feature Evidently tests run on a sample: a seeded sample stratified by deciles of the
predicted probability, at most ``max_current_rows`` / ``max_reference_rows`` rows (docs/monitoring.md
states what that costs in sensitivity). Results go to an HTML report, a JSON summary,
``<home>/drift/<model>/latest.json`` (served by ``GET /drift``), an Evidently workspace and an MLflow
run; an alert (drift share, PSI or AUC drop past ``configs/monitor.yaml``) gives exit code 3.
"""

from __future__ import annotations

import contextlib
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from features.io import atomic_path
from features.messages import M_
from features.progress import ProgressCallback, no_progress
from serving.monitoring.compare import (  # noqa: F401 - re-exported: the monitor's public names
    DriftComparison,
    compare,
    population_stability_index,
    sample_positions,
    stratified_sample,
)
from serving.monitoring.config import (  # noqa: F401 - re-exported
    EXIT_ALERT,
    EXIT_BAD_INPUT,
    EXIT_OK,
    OUTCOME_COLUMNS,
    PREDICTION_COLUMN,
    REFERENCE_ARTIFACT,
    TASK_OF_MODEL,
    EmptyWindowError,
    MonitorConfig,
    MonitorError,
    load_monitor_config,
)
from serving.monitoring.importance import model_importance, top_feature_rule
from serving.monitoring.outcomes import join_outcomes, performance_by_week, read_outcomes
from serving.monitoring.outputs import (  # noqa: F401 - re-exported
    add_to_workspace,
    describe_pruning,
    jsonable,
    post_webhook,
    prune_retention,
    retrain,
    write_json_atomic,
)
from serving.monitoring.sources import (  # noqa: F401 - re-exported
    ModelRef,
    load_reference,
    parse_window,
    read_window_records,
    resolve_model_version,
)

# ------------------------------------------------------------------------------------------------ the job


@dataclass
class MonitorResult:
    """Everything one monitoring run produced."""

    summary: dict[str, Any]
    exit_code: int
    out_dir: Path
    html_path: Path
    json_path: Path
    latest_path: Path
    mlflow_run_id: str | None = None
    workspace_snapshot_id: str | None = None
    webhook: str | None = None
    retrain: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)


def evaluate_alerts(summary: dict[str, Any], cfg: MonitorConfig) -> list[str]:
    """Alert messages for a summary (``data_drift``, ``prediction_drift``, optional ``performance``); empty = ok."""
    out = []
    dd, pdr = summary["data_drift"], summary["prediction_drift"]
    if dd["n_features"] and dd["share_drifted"] >= cfg.alert_drift_share:
        out.append(
            f"{dd['n_drifted']} of {dd['n_features']} features drifted ({dd['share_drifted']:.0%} ≥ "
            f"{cfg.alert_drift_share:.0%})"
        )
    out += (dd.get("top_feature_rule") or {}).get("alerts", [])
    psi = pdr["psi"]
    if psi is not None and math.isfinite(psi) and psi >= cfg.alert_psi:
        out.append(f"prediction drift: PSI {psi:.3f} ≥ {cfg.alert_psi}")
    perf = summary.get("performance")
    if perf and cfg.alert_auc_drop is not None:
        actual, expected = perf["overall"]["roc_auc"], perf.get("training_roc_auc")
        if (
            actual is not None
            and expected is not None
            and perf["overall"]["rows"] >= cfg.min_labelled_rows
            and expected - actual > cfg.alert_auc_drop
        ):
            out.append(
                f"ROC-AUC {actual:.3f} on late labels vs {expected:.3f} in training (drop > {cfg.alert_auc_drop})"
            )
    return out


#: the stages :func:`run_drift_monitor` reports to its progress callback (the late labels only with outcomes)
MONITOR_STAGES = 5


def run_drift_monitor(
    model_name: str,
    version: str | None = None,
    since: str | None = None,
    date_from: str | None = None,
    date_to: str | None = None,
    outcomes: str | Path | None = None,
    out_dir: str | Path | None = None,
    webhook: str | None = None,
    config: MonitorConfig | None = None,
    home: str | Path | None = None,
    now: Any = None,
    progress: ProgressCallback = no_progress,
) -> MonitorResult:
    """`crmscore monitor drift`: compare a version's recorded rows in a window with its training reference.

    Writes the HTML report and JSON summary to ``out_dir`` (default ``<home>/drift/<model>/reports/<time>``) and
    ``<home>/drift/<model>/latest.json``, adds the snapshot to the Evidently workspace, logs an MLflow
    run, POSTs the summary to ``webhook``, and retrains when configured. ``exit_code`` is 3 on an alert.
    Raises :class:`MonitorError` (exit 2) on bad input and :class:`EmptyWindowError` on an empty window.
    ``progress`` is told each of the :data:`MONITOR_STAGES` it reaches.
    """
    from serving.settings import crmscore_home
    from training.registry import configure_tracking

    cfg = config or MonitorConfig()
    home_path = Path(home) if home is not None else crmscore_home()
    if webhook and not re.match(r"https?://", webhook):
        raise MonitorError(M_("--webhook {webhook!r}: must be an http:// or https:// URL", webhook=webhook))
    start, end = parse_window(since, date_from, date_to, now, cfg.default_window_days)
    outcome_rows = read_outcomes(outcomes) if outcomes is not None else None
    progress("reading the recorded rows")
    configure_tracking()
    ref_model = resolve_model_version(model_name, version)
    reference = load_reference(ref_model.run_id, f"{model_name} v{ref_model.version}")
    features = [str(c) for c in reference.columns if c != PREDICTION_COLUMN]
    current, by_version = read_window_records(
        home_path, model_name, start, end, features, ref_model.version, with_customer_id=outcomes is not None
    )
    window = f"{start.isoformat()} → {end.isoformat()}"
    if len(current) == 0:
        others = ", ".join(f"v{k}: {v:,}" for k, v in by_version.items())
        raise EmptyWindowError(M_(
            "no recorded rows for {model_name} v{version} in {window} (records folder {folder}{other_versions}): "
            "rows are recorded by `crmscore serve` and `crmscore score`; widen --since or pick --version",
            model_name=model_name, version=ref_model.version, window=window, folder=home_path / "records" / model_name,
            other_versions=M_("; other versions in the window: {versions}", versions=others) if others else "",
        ))
    if len(current) < cfg.min_rows:
        raise EmptyWindowError(
            M_(
                "only {n_current} recorded row(s) for {model_name} v{version} in {window}; need at least {min_rows} "
                "(min_rows in the monitor config) for a drift test",
                n_current=len(current),
                model_name=model_name,
                version=ref_model.version,
                window=window,
                min_rows=cfg.min_rows,
            )
        )
    generated = pd.Timestamp.now(tz="UTC")
    progress("comparing with the training reference")
    cmp = compare(
        current,
        reference,
        cfg,
        timestamp=end,
        tags=[model_name, f"v{ref_model.version}"],
        metadata={
            "model_name": model_name,
            "model_version": ref_model.version,
            "window_from": start.isoformat(),
            "window_to": end.isoformat(),
        },
    )
    if cfg.top_features > 0:
        importance, how = model_importance(model_name, ref_model.version, reference)
        distances = {c: f.get("distance") for c, f in cmp.data_drift["features"].items()}
        rule = top_feature_rule(importance, distances, cfg.top_features, cfg.top_feature_distance, how)
        cmp.data_drift["top_feature_rule"] = {k: v for k, v in rule.items() if k != "warnings"}
        cmp.warnings[:0] = rule["warnings"]  # first: the CLI prints the first ten
    summary: dict[str, Any] = {
        "model_name": model_name,
        "model_version": ref_model.version,
        "reference_run_id": ref_model.run_id,
        "generated_at": generated.isoformat(),
        "window": {"from": start.isoformat(), "to": end.isoformat()},
        "rows": {
            **cmp.rows,
            "by_source": {str(k): int(v) for k, v in current["source"].value_counts().items() if v > 0},
            "other_versions_in_window": {str(k): int(v) for k, v in by_version.items() if str(k) != ref_model.version},
        },
        "sampling": cmp.sampling,
        "thresholds": {
            "alert_drift_share": cfg.alert_drift_share,
            "alert_psi": cfg.alert_psi,
            "alert_auc_drop": cfg.alert_auc_drop,
            "top_features": cfg.top_features,
            "top_feature_distance": cfg.top_feature_distance,
        },
        "data_drift": cmp.data_drift,
        "prediction_drift": cmp.prediction_drift,
        "performance": None,
        "warnings": list(cmp.warnings),
    }
    if outcome_rows is not None:
        progress("joining the late labels")
        labelled, counts = join_outcomes(
            current, outcome_rows, cfg.outcome_horizon_days, cfg.unmatched_outcome_as_negative
        )
        perf = performance_by_week(labelled)
        summary["performance"] = {
            "horizon_days": cfg.outcome_horizon_days,
            "join": counts,
            **perf,
            "training_roc_auc": ref_model.training_metric("roc_auc"),
            "training_capture_top20": ref_model.training_metric("capture_top20"),
            "training_ece": ref_model.training_metric("ece"),
        }
        if counts["labelled"] < cfg.min_labelled_rows:
            summary["warnings"].append(
                f"only {counts['labelled']} labelled row(s) (< min_labelled_rows {cfg.min_labelled_rows}): "
                "performance figures are indicative, no AUC alert"
            )
    alerts = evaluate_alerts(summary, cfg)
    summary["alerts"] = alerts
    summary["status"] = "drift" if alerts else "ok"
    summary["retention"] = prune_retention(home_path, model_name, cfg, generated)
    summary = jsonable(summary)

    progress("writing the report")
    stamp = generated.strftime("%Y%m%dT%H%M%SZ")
    drift_root = home_path / "drift" / model_name
    out = Path(out_dir) if out_dir is not None else drift_root / "reports" / stamp
    html_path = out / "drift_report.html"
    with _writing(out):
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(html_path) as tmp:
            cmp.snapshot.save_html(str(tmp))
    notes: list[str] = []
    snap_id = None
    ws_path = Path(cfg.workspace) if cfg.workspace else home_path / "evidently"
    try:
        snap_id = add_to_workspace(cmp.snapshot, ws_path, model_name)
        summary["evidently_workspace"] = {"path": str(ws_path), "snapshot_id": snap_id}
    except Exception as e:  # noqa: BLE001 - the report stands without the dashboard
        notes.append(f"Evidently workspace not updated: {type(e).__name__}: {str(e)[:200]}")
    json_path = out / "drift_summary.json"
    run_id = None
    if cfg.log_to_mlflow:
        progress("logging to MLflow")
        try:
            run_id = _log_mlflow(summary, html_path, json_path, cfg)
        except Exception as e:  # noqa: BLE001 - tracking down must not hide the drift verdict
            summary.pop("mlflow_run_id", None)
            notes.append(f"MLflow run not logged: {type(e).__name__}: {str(e)[:200]}")
    with _writing(out):
        if run_id is None or not json_path.is_file():
            write_json_atomic(summary, json_path)
    with _writing(drift_root):
        latest = write_json_atomic(summary, drift_root / "latest.json")
    code = EXIT_ALERT if alerts else EXIT_OK
    result = MonitorResult(summary, code, out, html_path, json_path, latest, run_id, snap_id, notes=notes)
    if webhook:
        result.webhook = post_webhook(webhook, summary, cfg.webhook_timeout_seconds)
    if alerts and cfg.retrain_on_alert:
        result.retrain = retrain(model_name, cfg)
    return result


@contextlib.contextmanager
def _writing(where: Path) -> Iterator[None]:
    """Turn an OS error while writing an output (a full disk, a read-only folder) into a one-line
    :class:`MonitorError` naming the folder (exit 2); the atomic writes leave no partial file behind."""
    try:
        yield
    except OSError as e:
        reason = e.strerror or str(e)
        raise MonitorError(M_(
            "cannot write the monitor's output to {where}: {reason}",
            where=where, reason=reason,
        )) from None


def _log_mlflow(summary: dict[str, Any], html_path: Path, json_path: Path, cfg: MonitorConfig) -> str:
    """One run in ``cfg.experiment``: tags, window params, drift metrics, the HTML report and the JSON summary."""
    import mlflow

    dd, pdr = summary["data_drift"], summary["prediction_drift"]
    mlflow.set_experiment(cfg.experiment)
    name = f"drift-{summary['model_name']}-v{summary['model_version']}-{summary['window']['to'][:10]}"
    with mlflow.start_run(run_name=name) as run:
        summary["mlflow_run_id"] = run.info.run_id
        mlflow.set_tags(
            {
                "crmscore.model_name": summary["model_name"],
                "crmscore.model_version": summary["model_version"],
                "crmscore.reference_run_id": summary["reference_run_id"],
                "crmscore.monitor.status": summary["status"],
            }
        )
        mlflow.log_params(
            {
                "window_from": summary["window"]["from"],
                "window_to": summary["window"]["to"],
                "rows_current": summary["rows"]["current"],
                "rows_reference": summary["rows"]["reference"],
                "current_rows_tested": summary["sampling"]["current_rows_tested"],
                "reference_rows_tested": summary["sampling"]["reference_rows_tested"],
                **{f"threshold.{k}": v for k, v in summary["thresholds"].items()},
            }
        )
        metrics: dict[str, float] = {
            "share_drifted": dd["share_drifted"],
            "n_drifted": dd["n_drifted"],
            "psi": pdr["psi"],
            "prediction_drift_score": pdr["evidently"]["score"],
            "mean_probability_current": pdr["mean_probability_current"],
            "alert": float(bool(summary["alerts"])),
        }
        for c, f in dd["features"].items():
            metrics[f"feature_drift.{c}"] = f.get("score")
            metrics[f"missing_share.{c}"] = f.get("missing_share_current")
        perf = summary.get("performance")
        if perf:
            for k in ("roc_auc", "capture_top20", "ece", "rows"):
                metrics[f"actual_{k}"] = perf["overall"][k]
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and math.isfinite(float(v))})
        mlflow.log_artifact(str(html_path), artifact_path="monitoring")
        write_json_atomic(summary, json_path)
        mlflow.log_artifact(str(json_path), artifact_path="monitoring")
    return run.info.run_id
