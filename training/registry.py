"""MLflow Model Registry flow with aliases: challenger → champion, promotion gate, rollback.

Registry stages are deprecated in MLflow 3; this module only uses aliases and version tags.
Champion history is kept as a registered-model tag so `rollback` can move the alias back.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.messages import M_

CHAMPION = "champion"
CHALLENGER = "challenger"
_HISTORY_TAG = "crmscore.champion_history"


class RegistryError(RuntimeError):
    """A registry operation cannot be done; the message names the model and version."""


def configure_tracking(uri: str | None = None) -> str:
    """Point MLflow at ``uri``, else ``$MLFLOW_TRACKING_URI``, else a SQLite file in the working directory.

    Returns the URI in use. Called inside commands, never at import time.
    """
    import mlflow

    uri, registry = tracking_uris(uri)
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(registry)
    return uri


def tracking_uris(uri: str | None = None) -> tuple[str, str]:
    """The (tracking, registry) URIs :func:`configure_tracking` sets, worked out without importing MLflow."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path.cwd() / 'mlflow.db'}"
    return uri, os.environ.get("MLFLOW_REGISTRY_URI") or uri


def start_job_run(experiment: str, run_name: str) -> Any:
    """The parent run a training job logs into, as a context manager (``mlflow.ActiveRun``).

    Inside ``mlflow run`` (``MLFLOW_RUN_ID`` in the environment) it is the run MLflow opened, in the experiment
    chosen with ``mlflow run --experiment-name`` (``experiment`` and ``run_name`` are not used: the run and its
    name are MLflow's). ``mlflow.start_run()`` resumes that run and removes ``MLFLOW_RUN_ID`` from the
    environment, so runs started inside it with ``nested=True`` are new child runs. Otherwise a new run named
    ``run_name`` in ``experiment``, created when missing.
    """
    import mlflow

    if os.environ.get("MLFLOW_RUN_ID"):
        return mlflow.start_run()
    mlflow.set_experiment(experiment)
    return mlflow.start_run(run_name=run_name)


def split_models_uri(model_uri: str) -> tuple[str, str | None, str | None] | None:
    """``(name, alias, version)`` of ``models:/NAME@alias`` (version None) or ``models:/NAME/3`` (alias None);
    None for any other URI."""
    import re

    m = re.fullmatch(r"models:/([^/@]+)(?:@([^/]+)|/(\d+))", model_uri)
    return (m.group(1), m.group(2), m.group(3)) if m else None


def _client():
    from mlflow import MlflowClient

    return MlflowClient()


def _history(name: str) -> list[str]:
    rm = _client().get_registered_model(name)
    raw = (rm.tags or {}).get(_HISTORY_TAG)
    return json.loads(raw) if raw else []


def get_alias_version(name: str, alias: str) -> str | None:
    """The version an alias points at, or None when the model or alias does not exist."""
    from mlflow.exceptions import MlflowException

    try:
        return str(_client().get_model_version_by_alias(name, alias).version)
    except MlflowException:
        return None


def set_alias(client: Any, name: str, alias: str, version: str, attempts: int = 5) -> None:
    """``client.set_registered_model_alias`` that survives a concurrent move of the same alias.

    MLflow's SQL store looks the alias up and then inserts or updates it, so two jobs setting a new alias at
    once can both try the insert; the loser gets a unique-constraint error (PostgreSQL ``UniqueViolation``,
    SQLite ``UNIQUE constraint failed``). Trying again finds the row and updates it: last writer wins.
    """
    import time

    from mlflow.exceptions import MlflowException

    for attempt in range(attempts):
        try:
            client.set_registered_model_alias(name, alias, str(version))
            return
        except MlflowException as e:
            text = str(e)
            if attempt == attempts - 1 or ("UniqueViolation" not in text and "UNIQUE constraint" not in text):
                raise
            time.sleep(0.05 * (attempt + 1))


def register_challenger(name: str, model_uri: str, tags: dict[str, Any] | None = None) -> str:
    """Register ``model_uri`` as a new version of ``name`` and point the ``challenger`` alias at it."""
    import mlflow

    mv = mlflow.register_model(model_uri, name, tags={k: str(v) for k, v in (tags or {}).items()})
    client = _client()
    set_alias(client, name, CHALLENGER, mv.version)
    return str(mv.version)


def set_champion(name: str, version: str, reason: str) -> None:
    """Point ``champion`` at ``version``, remembering the previous champion for rollback."""
    client = _client()
    try:
        client.get_model_version(name, str(version))
    except Exception as e:  # noqa: BLE001 - MLflow raises several types here
        raise RegistryError(M_("model {name!r} has no version {version}", name=name, version=version)) from e
    previous = get_alias_version(name, CHAMPION)
    if previous == str(version):
        return
    history = _history(name)
    if previous is not None:
        history.append(previous)
    client.set_registered_model_tag(name, _HISTORY_TAG, json.dumps(history[-50:]))
    set_alias(client, name, CHAMPION, str(version))
    client.set_model_version_tag(name, str(version), "crmscore.promotion_reason", reason)


def rollback(name: str) -> str:
    """Move ``champion`` back to the previous champion; returns that version."""
    client = _client()
    history = _history(name)
    if not history:
        raise RegistryError(M_("model {name!r} has no previous champion to roll back to", name=name))
    target = history.pop()
    current = get_alias_version(name, CHAMPION)
    client.set_registered_model_tag(name, _HISTORY_TAG, json.dumps(history))
    set_alias(client, name, CHAMPION, target)
    client.set_model_version_tag(name, target, "crmscore.promotion_reason", f"rollback from version {current}")
    return target


def list_models() -> list[dict[str, Any]]:
    """Every registered model with its versions, aliases and headline tags."""
    client = _client()
    out = []
    for rm in client.search_registered_models():
        versions = client.search_model_versions(f"name='{rm.name}'")
        aliases = dict(rm.aliases or {})
        out.append(
            {
                "name": rm.name,
                "aliases": {k: str(v) for k, v in aliases.items()},
                "versions": [
                    {
                        "version": str(v.version),
                        "run_id": v.run_id,
                        "created": v.creation_timestamp,
                        "tags": dict(v.tags or {}),
                    }
                    for v in sorted(versions, key=lambda v: int(v.version))
                ],
            }
        )
    return out


@dataclass(frozen=True)
class PromotionDecision:
    """What the gate decided and the figures it compared."""

    promote: bool
    reason: str
    challenger_auc: float
    champion_auc: float | None
    challenger_ece: float
    champion_ece: float | None

    def as_tags(self) -> dict[str, str]:
        """The decision as model-version tags."""
        return {
            "crmscore.gate.promote": str(self.promote).lower(),
            "crmscore.gate.reason": self.reason,
            "crmscore.gate.challenger_auc": f"{self.challenger_auc:.6f}",
            "crmscore.gate.champion_auc": "" if self.champion_auc is None else f"{self.champion_auc:.6f}",
            "crmscore.gate.challenger_ece": f"{self.challenger_ece:.6f}",
            "crmscore.gate.champion_ece": "" if self.champion_ece is None else f"{self.champion_ece:.6f}",
        }


def decide_promotion(
    challenger_auc: float,
    challenger_ece: float,
    champion_auc: float | None,
    champion_ece: float | None,
    margin: float,
    ece_tolerance: float = 0.0,
) -> PromotionDecision:
    """Promote when there is no champion, or the challenger's AUC beats it by ``margin`` on the same data
    and its calibration error is not worse (beyond ``ece_tolerance``)."""
    if champion_auc is None or champion_ece is None:
        return PromotionDecision(True, "no champion yet", challenger_auc, None, challenger_ece, None)
    gain = challenger_auc - champion_auc
    if gain < margin:
        reason = f"AUC gain {gain:+.4f} below margin {margin:.4f}"
        return PromotionDecision(False, reason, challenger_auc, champion_auc, challenger_ece, champion_ece)
    if challenger_ece > champion_ece + ece_tolerance:
        reason = f"calibration worse: ECE {challenger_ece:.4f} > {champion_ece:.4f}"
        return PromotionDecision(False, reason, challenger_auc, champion_auc, challenger_ece, champion_ece)
    reason = f"AUC gain {gain:+.4f} ≥ margin {margin:.4f}, ECE {challenger_ece:.4f} ≤ {champion_ece:.4f}"
    return PromotionDecision(True, reason, challenger_auc, champion_auc, challenger_ece, champion_ece)


def tag_version(name: str, version: str, tags: dict[str, str]) -> None:
    """Set several tags on one model version."""
    client = _client()
    for k, v in tags.items():
        client.set_model_version_tag(name, str(version), k, v)
