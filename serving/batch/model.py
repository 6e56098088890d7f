"""The ``--model`` value resolved to a registry URI and loaded as a ``CRMScorer``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from serving.batch.options import BatchError


@dataclass
class LoadedScorer:
    """A loaded ``CRMScorer`` and where it came from."""

    uri: str
    scorer: Any
    name: str | None = None
    version: str | None = None

    @property
    def numeric(self) -> list[str]:
        """Numeric input features, in the model's order."""
        return list(self.scorer.preprocessor_.numeric_features_)

    @property
    def categorical(self) -> list[str]:
        """Categorical input features, in the model's order."""
        return list(self.scorer.preprocessor_.categorical_features_)

    @property
    def features(self) -> list[str]:
        """All input features, in the model's order."""
        return [str(c) for c in self.scorer.feature_names_in_]


def resolve_model_uri(spec: str) -> str:
    """``NAME@alias`` → ``models:/NAME@alias``, ``NAME/3`` → ``models:/NAME/3``, a bare ``NAME`` → its champion;
    URIs (``models:/…``, ``runs:/…``, ``file://…``) and local model directories pass through."""
    s = spec.strip()
    if not s:
        raise BatchError("--model is empty; give NAME@alias, NAME/version or a models:/ or runs:/ URI")
    if s.startswith(("models:/", "runs:/")) or "://" in s or (Path(s) / "MLmodel").is_file():
        return s
    if "@" in s:
        name, alias = s.rsplit("@", 1)
        return f"models:/{name}@{alias}"
    if "/" in s:
        name, version = s.rsplit("/", 1)
        if version.isdigit():
            return f"models:/{name}/{version}"
        raise BatchError(f"--model {s!r}: the part after '/' must be a version number (or use NAME@alias)")
    return f"models:/{s}@champion"


def _registry_version(uri: str) -> tuple[str | None, str | None]:
    from training.registry import split_models_uri

    parts = split_models_uri(uri)
    if parts is None:
        run = re.fullmatch(r"runs:/([0-9a-f]+)/.*", uri)
        return None, (f"run {run.group(1)}" if run else None)
    name, alias, version = parts
    if version is not None:
        return name, version
    from training.registry import get_alias_version

    return name, get_alias_version(name, alias)


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def load_scorer(spec: str) -> LoadedScorer:
    """Load the ``CRMScorer`` a ``--model`` value names from the MLflow registry (or a run / local path).

    Raises :class:`BatchError` with one line when the model, version or alias does not exist or is not a
    crmscore scoring model.
    """
    from serving.http.loader import load_local_scorer, load_scorer_artifact
    from training.registry import configure_tracking, locate_sqlite_version, tracking_uris

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = resolve_model_uri(spec)
    scorer: Any = None
    # a model in a local SQLite registry is found and loaded without importing MLflow (same checks, same
    # skops load); everything else, and every error message, goes through MLflow
    local = locate_sqlite_version(uri, tracking_uris()[1])
    if local is not None:
        name, version, model_dir = local
        try:
            scorer = load_local_scorer(model_dir)  # None: a model with code paths, left to MLflow
        except Exception as e:  # noqa: BLE001 - skops and the checks raise several types
            raise BatchError(f"cannot load model {uri} ({name} version {version}): {_first_line(e)}") from None
    if scorer is None:
        configure_tracking()
        try:  # the service's loader: skops with training.model.TRUSTED_TYPES only, no pickle
            scorer = load_scorer_artifact(uri)
        except Exception as e:  # noqa: BLE001 - MLflow raises many types for a missing model
            try:  # name the version too (an alias alone does not say which artifact is broken)
                name, version = _registry_version(uri)
            except Exception:  # noqa: BLE001 - the registry itself may be what failed
                name, version = None, None
            which = f" ({name} version {version})" if name and version else ""
            raise BatchError(f"cannot load model {uri}{which}: {_first_line(e)}") from None
        local = None
    if not (hasattr(scorer, "preprocessor_") and hasattr(scorer, "predict_proba_matrix")):
        raise BatchError(f"model {uri} is a {type(scorer).__name__}, not a crmscore scoring model (CRMScorer)")
    name, version = local[:2] if local is not None else _registry_version(uri)
    return LoadedScorer(uri=uri, scorer=scorer, name=name, version=version)
