"""Where a monitoring run's results go: JSON files, the Evidently workspace, a webhook, retraining."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.io import atomic_path
from features.messages import M_
from serving.monitoring.config import PREDICTION_COLUMN, TASK_OF_MODEL, MonitorConfig

# ------------------------------------------------------------------------------------------------ outputs


def jsonable(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [jsonable(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    return v


def write_json_atomic(obj: Any, path: Path) -> Path:
    """Write ``obj`` as indented UTF-8 JSON through :func:`features.io.atomic_path` (no partial file, ever)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=2, ensure_ascii=False, allow_nan=False)
    return Path(path)


def add_to_workspace(snapshot: Any, path: str | Path, model_name: str) -> str:
    """Add the snapshot to the local Evidently workspace (project ``crmscore <model>``, created with a dashboard
    of drift share and prediction drift over time on first use); returns the snapshot id."""
    from evidently.sdk.models import PanelMetric
    from evidently.sdk.panels import counter_panel, line_plot_panel
    from evidently.ui.workspace import Workspace

    Path(path).mkdir(parents=True, exist_ok=True)
    ws = Workspace(str(path))
    name = f"crmscore {model_name}"
    found = ws.search_project(name)
    if found:
        project = found[0]
    else:
        project = ws.create_project(name, description=f"Drift of {model_name}: crmscore monitor drift")
        share = PanelMetric(
            legend="share of drifted columns", metric="DriftedColumnsCount", metric_labels={"value_type": "share"}
        )
        project.dashboard.add_panel(
            counter_panel(title="Share of drifted columns (last run)", values=[share], size="half")
        )
        project.dashboard.add_panel(
            line_plot_panel(
                title="Prediction drift (probability)",
                values=[
                    PanelMetric(legend="drift score", metric="ValueDrift", metric_labels={"column": PREDICTION_COLUMN})
                ],
                size="half",
            )
        )
        project.dashboard.add_panel(line_plot_panel(title="Share of drifted columns", values=[share]))
    return str(ws.add_run(project.id, snapshot, include_data=False).id)


def post_webhook(url: str, payload: dict[str, Any], timeout: float = 5.0) -> str:
    """POST the summary as JSON; returns ``sent (HTTP n)`` or ``failed: …`` (never raises)."""
    import httpx

    try:
        r = httpx.post(url, json=payload, timeout=timeout)
    except httpx.HTTPError as e:
        return f"failed: {type(e).__name__}: {str(e)[:200]}"
    if r.status_code >= 400:
        return f"failed: HTTP {r.status_code}"
    return f"sent (HTTP {r.status_code})"


def retrain(model_name: str, cfg: MonitorConfig) -> dict[str, Any]:
    """Start the training job for ``model_name`` on ``retrain_data_dir``; the promotion gate decides. Never raises."""
    try:
        from features.config import load_config
        from training.config import TrainConfig
        from training.train import train_crm

        tc = load_config(cfg.retrain_config, TrainConfig)
        if cfg.retrain_config is None:
            task = TASK_OF_MODEL.get(model_name)
            if task is None:
                return {"status": f"skipped: set retrain_config for model {model_name!r}"}
            tc = tc.model_copy(update={"task": task})
        tc = tc.model_copy(update={"model_name": model_name})
        if cfg.retrain_data_dir is None:
            raise ValueError(M_("retrain_data_dir is not set (the data dir the training job reads)"))
        res = train_crm(cfg.retrain_data_dir, tc)
    except Exception as e:  # noqa: BLE001 - a failed retrain is reported; the alert stands
        return {"status": f"failed: {type(e).__name__}: {str(e)[:300]}"}
    return {
        "status": "trained",
        "version": res.version,
        "promoted": res.promoted,
        "decision": res.decision,
        "run_id": res.run_id,
    }


# ------------------------------------------------------------------------------------------------ retention

#: Name of a per-run report folder (``<home>/drift/<model>/reports/<stamp>``).
REPORT_STAMP = "%Y%m%dT%H%M%SZ"


def _size(path: Path) -> tuple[int, int]:
    files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else [path]
    return len(files), sum(f.stat().st_size for f in files)


def prune_retention(home: Path, model_name: str, cfg: MonitorConfig, now: pd.Timestamp) -> dict[str, Any]:
    """Delete the model's record day partitions and per-run report folders past their retention.

    A record partition ``date=D`` goes when its whole day is older than ``records_retention_days``
    (``D + 1 day <= now - days``); a report folder when its time stamp is older than ``reports_retention_days``.
    Folders with other names are left alone. Returns what was deleted, per kind: the retention, the folders,
    and their file count and bytes; a folder that cannot be deleted is listed under ``errors``.
    """
    out: dict[str, Any] = {}
    kinds = (
        ("records", home / "records" / model_name, cfg.records_retention_days, "date=*"),
        ("reports", home / "drift" / model_name / "reports", cfg.reports_retention_days, "*"),
    )
    for kind, root, days, pattern in kinds:
        entry: dict[str, Any] = {"retention_days": days, "pruned": [], "files": 0, "bytes": 0, "errors": []}
        out[kind] = entry
        if days is None or not root.is_dir():
            continue
        cutoff = now - pd.Timedelta(days=days)
        for d in sorted(root.glob(pattern)):
            if not d.is_dir():
                continue
            try:
                if kind == "records":
                    old = pd.Timestamp(d.name.split("=", 1)[1], tz="UTC") + pd.Timedelta(days=1) <= cutoff
                else:
                    old = pd.to_datetime(d.name, format=REPORT_STAMP, utc=True) < cutoff
            except ValueError:
                continue
            if not old:
                continue
            n, size = _size(d)
            try:
                shutil.rmtree(d)
            except OSError as e:
                entry["errors"].append(f"{d.name}: {type(e).__name__}: {e}")
                continue
            entry["pruned"].append(d.name)
            entry["files"] += n
            entry["bytes"] += size
    return out


def describe_pruning(retention: dict[str, Any]) -> str:
    """One line for the CLI: what the retention settings deleted in this run."""
    parts = []
    for kind, what in (("records", "record day partition(s)"), ("reports", "report folder(s)")):
        e = retention.get(kind) or {}
        if e.get("retention_days") is None:
            parts.append(f"{kind} kept (no retention)")
            continue
        days = f"{e['retention_days']:g}"
        if e["pruned"]:
            parts.append(f"pruned {len(e['pruned'])} {what} older than {days} days "
                         f"({e['files']} files, {e['bytes'] / 1e6:.1f} MB)")
        else:
            parts.append(f"no {kind} older than {days} days")
        if e.get("errors"):
            parts.append(f"{len(e['errors'])} {kind} folder(s) could not be deleted: {e['errors'][0]}")
    return "; ".join(parts)
