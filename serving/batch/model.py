"""The ``--model`` value resolved to a registry URI and loaded as a ``CRMScorer``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from features.messages import M_
from serving.batch.options import BatchError


@dataclass
class LoadedScorer:
    """A loaded ``CRMScorer`` and where it came from."""

    uri: str
    scorer: Any
    name: str | None = None
    version: str | None = None
    #: the id column the model was trained with, when it says (:func:`trained_id_column`)
    id_column: str | None = None

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
        raise BatchError(M_("--model is empty; give NAME@alias, NAME/version or a models:/ or runs:/ URI"))
    if s.startswith(("models:/", "runs:/")) or "://" in s or (Path(s) / "MLmodel").is_file():
        return s
    if "@" in s:
        name, alias = s.rsplit("@", 1)
        return f"models:/{name}@{alias}"
    if "/" in s:
        name, version = s.rsplit("/", 1)
        if version.isdigit():
            return f"models:/{name}/{version}"
        raise BatchError(M_(
            "--model {value!r}: the part after '/' must be a version number (or use NAME@alias)",
            value=s,
        ))
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

    assert alias is not None  # split_models_uri gives an alias whenever it gives no version
    return name, get_alias_version(name, alias)


def _first_line(e: BaseException) -> str:
    return str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__


def pin_model(spec: str) -> tuple[str, str | None, str | None, str]:
    """``--model`` as (URI, registered name, version, URI to load): an alias is resolved to its version once, and
    that version is what gets loaded (an alias may move meanwhile). Name and version are None for a run or a path,
    or when the registry cannot be read (the load that follows then words the error)."""
    from training.registry import configure_tracking

    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    uri = resolve_model_uri(spec)
    configure_tracking()
    try:
        name, version = _registry_version(uri)
    except Exception:  # noqa: BLE001 - the registry itself may be what failed: MLflow's load words the error
        name, version = None, None
    pinned = f"models:/{name}/{version}" if uri.startswith("models:/") and name and version else uri
    return uri, name, version, pinned

def load_scorer(spec: str) -> LoadedScorer:
    """Load the ``CRMScorer`` a ``--model`` value names from the MLflow registry (or a run / local path).

    The registry is read through ``MlflowClient`` only: an alias is resolved to its version once, and that
    version is loaded by the service's loader (``serving.http.loader.load_scorer_artifact``: skops with the
    trusted types of ``training.model.TRUSTED_TYPES``, no pickle), so the name and version reported are the
    ones scored. Raises :class:`BatchError` with one line when the model, version or alias does not exist or
    is not a crmscore scoring model.
    """
    from serving.http.loader import load_scorer_artifact

    uri, name, version, pinned = pin_model(spec)
    try:
        scorer = load_scorer_artifact(pinned)
    except Exception as e:  # noqa: BLE001 - MLflow raises many types for a missing model
        which = f" ({name} version {version})" if name and version else ""
        raise BatchError(M_(
            "cannot load model {uri}{which}: {reason}",
            uri=uri, which=which, reason=_first_line(e),
        )) from None
    if not (hasattr(scorer, "preprocessor_") and hasattr(scorer, "predict_proba_matrix")):
        raise BatchError(M_(
            "model {uri} is a {type_name}, not a crmscore scoring model (CRMScorer)",
            uri=uri, type_name=type(scorer).__name__,
        ))
    loaded = LoadedScorer(uri=uri, scorer=scorer, name=name, version=version)
    loaded.id_column = trained_id_column(loaded)
    return loaded


def trained_id_column(model: LoadedScorer) -> str | None:
    """The id column the model was trained with (``crmscore train table --id customerID`` → ``customerID``),
    or None when it does not say (the CRM lead and churn models: their rows are keyed by ``customer_id``).

    Read from the model itself (its table featurizer keeps ``id_column``), else from the ``id_column``
    parameter of the MLflow run that logged the registered version (``MlflowClient``).
    """
    featurizer = getattr(getattr(model.scorer, "preprocessor_", None), "featurizer_", None)
    col = getattr(featurizer, "id_column", None)
    if isinstance(col, str) and col:
        return col
    if not model.name or model.version is None or not model.version.isdigit():
        return None  # not a registered version: no run to ask
    try:
        from mlflow import MlflowClient

        client = MlflowClient()
        run_id = client.get_model_version(model.name, model.version).run_id
        col = client.get_run(run_id).data.params.get("id_column") if run_id else None
    except Exception:  # noqa: BLE001 - an unreadable run only loses the default, never the run
        return None
    return col or None


#: the id column of a model that does not name one (the CRM lead and churn models)
DEFAULT_ID_COLUMN = "customer_id"


def id_column_for(requested: str | None, model: LoadedScorer) -> tuple[str, str]:
    """The run's id column and where its name came from: ``--id-col`` when given, else the column the model
    was trained with (:attr:`LoadedScorer.id_column`), else ``customer_id``."""
    if requested:
        return requested, M_("the column --id-col names")
    if model.id_column:
        return model.id_column, M_("the id column {model} was trained with", model=model.name or model.uri)
    return DEFAULT_ID_COLUMN, M_("the default id column")
