"""Loading the served models, keeping them current (hot swap), and packing them into BentoML's store.

* :func:`load_model` loads one model at the served alias: the copy packed in a Bento when the service
  runs from a built Bento (``bentoml.models.get``), otherwise the MLflow registry (``models:/name/version``).
* :class:`ModelSlot` holds the model a request uses; a request reads the reference once, so a swap never
  mixes two versions inside one request.
* :class:`ModelWatcher` polls the registry alias in a background thread; when it moves, the new version
  is loaded and checked completely, then swapped in with one reference assignment (no request is dropped).
* :func:`pack_models` imports the champions into the local BentoML model store (``bentoml.mlflow.import_model``)
  so ``bentoml build`` can pack them into a Bento that runs without the registry.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from features.messages import M_, message_of
from serving.http.postprocess import FeatureInput
from serving.settings import ServingSettings, redact_uri
from training.explain import ReasonFolder

log = logging.getLogger("crmscore.serving")

KINDS = ("lead", "churn", "segments", "uplift")
_METRIC_PREFIX = "crmscore.test_"
#: Largest magnitude XGBoost takes: it computes in 32-bit floats, so a larger finite input (1e308 is valid
#: JSON) becomes infinity inside the model and ``DMatrix`` refuses it with an error (a 500 before this check).
F32_MAX = float(np.finfo(np.float32).max)


class ModelUnavailable(RuntimeError):
    """The model a request needs is not loaded; the message says which and why."""


class RegistryUnavailable(RuntimeError):
    """The MLflow registry cannot be reached (closed port, unreadable SQLite path...); the message names it."""


class ModelLoadError(RuntimeError):
    """A model version exists but its artifact cannot be loaded; the message names the model and version."""


class UntrustedModel(ModelLoadError):
    """A model artifact is not a skops file limited to :data:`training.model.TRUSTED_TYPES`."""


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


@dataclass
class Scored:
    """What scoring a batch of feature rows gives."""

    probability: np.ndarray
    reasons: list | None
    unknown: dict[int, list[str]]
    features: Any


@dataclass
class LoadedModel:
    """One loaded model version and what the hot path needs with it."""

    kind: str
    name: str
    version: str
    source: str
    model: Any
    tags: dict[str, str] = field(default_factory=dict)
    loaded_at: str = field(default_factory=_now)
    inputs: FeatureInput | None = None
    folder: ReasonFolder | None = None
    xgb_threads: int = 1

    # ------------------------------------------------------------------------------------ metadata
    @property
    def trained_at(self) -> str | None:
        """When the version was trained (version tag), if known."""
        return self.tags.get("crmscore.trained_at") or self.tags.get("as_of")

    @property
    def metrics(self) -> dict[str, float]:
        """Headline out-of-time metrics from the version tags."""
        out: dict[str, float] = {}
        for k, v in self.tags.items():
            if k.startswith(_METRIC_PREFIX):
                try:
                    out[k[len(_METRIC_PREFIX) :]] = float(v)
                except ValueError:
                    continue
            elif self.kind == "segments" and k in ("silhouette", "k"):
                try:
                    out[k] = float(v)
                except ValueError:
                    continue
        return out

    @property
    def features(self) -> list[str] | None:
        """Input feature names of a scorer or the uplift model (None for the segmenter)."""
        if self.inputs is None:
            names = getattr(self.model, "feature_names_in_", None)  # the uplift model's raw columns
            return None if names is None else [str(c) for c in names]
        return list(self.inputs.feature_names)

    @property
    def grade_thresholds(self) -> list[int] | None:
        """Minimum scores of grades A, B, C of a scorer."""
        t = getattr(self.model, "grade_thresholds_", None)
        return None if t is None else [int(x) for x in t]

    # ------------------------------------------------------------------------------------- scoring
    def check_range(self, Z: np.ndarray, row_path: str) -> None:
        """Refuse (422) a model-matrix value beyond the 32-bit float range, naming the row and the feature.

        ``row_path`` is a format string with ``{i}`` (row) and ``{name}`` (feature), e.g.
        ``leads[{i}].features.{name}``. One vectorised comparison (NaN compares false).
        """
        from serving.http.postprocess import RequestError

        if Z.size == 0:
            return
        with np.errstate(invalid="ignore"):
            big = np.abs(Z) > F32_MAX
        if not big.any():
            return
        i, j = (int(x) for x in np.argwhere(big)[0])
        name = f"column {j}"
        try:
            name = next(n for n, idx in self.model.reason_groups() if j in idx)
        except (AttributeError, StopIteration):  # the name is a courtesy; the refusal is what matters
            pass
        path = row_path.format(i=i, name=name)
        raise RequestError(
            422, M_("{path}: must be a number between -3.4e38 and 3.4e38 (the model computes in 32-bit floats)",
                    path=path)
        )

    def _feature_inputs(self) -> FeatureInput:
        """The feature input builder of a scorer; the segmenter has none."""
        if self.inputs is None:
            raise TypeError(f"{self.kind} model {self.name!r} (version {self.version}) does not score feature rows")
        return self.inputs

    def score(
        self, rows: Sequence[Mapping[str, Any]], top: int = 3, reasons: bool = True, field: str = "leads"
    ) -> Scored:
        """Calibrated probabilities, reasons (or None), unknown categories and raw features of feature rows."""
        Z, unknown, block = self._feature_inputs().build(rows, field)
        self.check_range(Z, field + "[{i}].features.{name}")
        return self._predict(Z, unknown, block, lambda: rows, top, reasons)

    def score_table(
        self, columns: Sequence[str], rows: Sequence[Sequence[Any]], top: int = 3, reasons: bool = True
    ) -> Scored:
        """Like :meth:`score` for a columnar feature table (``schemas.FeatureTable``)."""
        Z, unknown, block = self._feature_inputs().build_table(columns, rows)

        def as_dicts() -> list[dict[str, Any]]:
            return [dict(zip(columns, r, strict=True)) for r in rows]

        self.check_range(Z, "table.rows[{i}].{name}")
        return self._predict(Z, unknown, block, as_dicts, top, reasons)

    def _predict(self, Z: np.ndarray, unknown: dict, block: Any, rows_of: Any, top: int, reasons: bool) -> Scored:
        """The model's probability (as every path computes it) and, when asked, reasons (``training.explain``)."""
        import xgboost as xgb

        with xgb.config_context(nthread=self.xgb_threads):
            p = self.model.predict_proba_matrix(Z)
            why = None
            if reasons and top > 0 and self.folder is not None:
                why = self.folder.reasons(self.model.contributions_matrix(Z), rows_of(), top)
        return Scored(np.asarray(p, dtype="float64"), why, unknown, block)


def prepare_scorer(kind: str, name: str, version: str, source: str, scorer: Any, tags: dict[str, str],
                   xgb_threads: int = 1) -> LoadedModel:
    """Wrap a loaded ``CRMScorer``: thread count, request checks before its encoder, reason folder, warm-up."""
    est = getattr(scorer, "estimator_", None)
    if est is not None and hasattr(est, "get_booster"):
        est.set_params(n_jobs=xgb_threads)
        est.get_booster().set_param({"nthread": xgb_threads})
    folder = scorer.reason_folder() if scorer.supports_reasons else None
    loaded = LoadedModel(kind, name, str(version), source, scorer, dict(tags),
                         inputs=FeatureInput(scorer.preprocessor_), folder=folder, xgb_threads=xgb_threads)
    loaded.score([{}], reasons=True)  # warm-up: first-call costs are paid before the model serves
    return loaded


def prepare_uplift(kind: str, name: str, version: str, source: str, model: Any, tags: dict[str, str]) -> LoadedModel:
    """Wrap a loaded ``training.uplift.UpliftModel`` (POST /coupon_uplift): its reason folder, once."""
    if not hasattr(model, "predict_matrix"):
        raise ModelLoadError(M_(
            "{name} v{version}: a {type_name}, not an uplift model (UpliftModel)",
            name=name, version=version, type_name=type(model).__name__,
        ))
    return LoadedModel(kind, name, str(version), source, model, dict(tags), folder=model.reason_folder())


# ------------------------------------------------------------------------------------------- loading
def _configure_registry(settings: ServingSettings) -> None:
    from training.registry import configure_tracking

    configure_tracking(settings.resolved_registry_uri())


_NETWORK_DB = ("postgresql", "mysql", "mssql")


def check_registry(uri: str | None = None, timeout: float = 5.0) -> None:
    """Fail fast with :class:`RegistryUnavailable` when a database registry cannot be connected to.

    MLflow retries a failing database connection for about 100 s before it raises, which would hold a worker's
    start-up (and each hot-swap poll) that long; one plain connection with a timeout answers in milliseconds.
    Only network databases are probed: a SQLite file is created by MLflow when missing, and its errors are fast.
    """
    import mlflow

    uri = uri or mlflow.get_registry_uri()
    scheme = uri.split(":", 1)[0].split("+", 1)[0].lower()
    if scheme not in _NETWORK_DB:
        return
    import sqlalchemy

    args = {"connect_timeout": int(max(1, timeout))} if scheme in ("postgresql", "mysql") else {}
    engine = sqlalchemy.create_engine(uri, connect_args=args, poolclass=sqlalchemy.pool.NullPool)
    try:
        with engine.connect():
            pass
    except Exception as e:  # noqa: BLE001 - drivers raise many types
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:300]
        raise RegistryUnavailable(M_(
            "model registry {uri} is unreachable: {reason}",
            uri=redact_uri(uri), reason=first,
        )) from None
    finally:
        engine.dispose()


def registry_version(name: str, alias: str) -> tuple[str, dict[str, str]] | None:
    """The version an alias points at and its tags, or None when the model or alias does not exist.

    Raises :class:`RegistryUnavailable` when the registry itself cannot be reached or opened.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    check_registry()
    try:
        mv = MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException:
        return None
    except Exception as e:  # noqa: BLE001 - SQLAlchemy / OS errors: the store itself is broken
        first = (str(e).strip().splitlines() or [""])[0][:300]
        uri = redact_uri(mlflow.get_registry_uri())
        raise RegistryUnavailable(M_(
            "model registry {uri} is unreachable: {error_type}: {reason}",
            uri=uri, error_type=type(e).__name__, reason=first,
        )) from None
    return str(mv.version), dict(mv.tags or {})


def check_trusted(model_dir: str | Path) -> dict[str, Any]:
    """Refuse a logged scikit-learn model unless it is a skops file whose trusted types are all ours; returns
    its ``MLmodel`` sklearn flavor.

    MLflow loads a skops model with the ``skops_trusted_types`` written in its own ``MLmodel`` file, so an
    artifact could widen the list itself; here the list must be a subset of ``training.model.TRUSTED_TYPES``
    (skops then refuses any other type inside the file), and pickle formats are refused outright.
    """
    import yaml

    from training.model import TRUSTED_TYPES

    mlmodel = Path(model_dir) / "MLmodel"
    try:
        flavor = (yaml.safe_load(mlmodel.read_text(encoding="utf-8")) or {}).get("flavors", {}).get("sklearn")
    except (OSError, yaml.YAMLError) as e:
        raise ModelLoadError(M_(
            "cannot read {file}: {error_type}: {error}",
            file=mlmodel.name, error_type=type(e).__name__, error=e,
        )) from None
    if not isinstance(flavor, dict):
        raise UntrustedModel(M_("not a scikit-learn model (no sklearn flavor in MLmodel)"))
    fmt = flavor.get("serialization_format")
    if fmt != "skops":
        raise UntrustedModel(M_(
            "serialization format {serialization!r} is refused; only skops models are loaded",
            serialization=fmt,
        ))
    extra = sorted(set(flavor.get("skops_trusted_types") or []) - set(TRUSTED_TYPES))
    if extra:
        raise UntrustedModel(M_(
            "untrusted type(s) {types} (trusted: training.model.TRUSTED_TYPES)",
            types=', '.join(extra),
        ))
    return flavor


def _local_artifact(uri: str) -> str:
    """A model URI as a local directory (downloaded from the artifact store unless it already is one)."""
    if Path(uri).is_dir():
        return uri
    import mlflow

    return mlflow.artifacts.download_artifacts(artifact_uri=uri)


def load_scorer_artifact(uri: str) -> Any:
    """Download (when remote) and load a logged ``CRMScorer`` after :func:`check_trusted`."""
    import mlflow

    local = _local_artifact(uri)
    check_trusted(local)
    return mlflow.sklearn.load_model(local)


def check_segments_code(local: str | Path) -> None:
    """Refuse a customer_segments pyfunc unless it is this release's models-from-code entry.

    The segments model holds no pickled object: MLflow runs the Python file stored in the artifact
    (``model_code_path``), which reads ``segmenter.json``. Running a file from a registry is running code
    from it, so the file must equal the one ``crmscore segment fit`` writes; anything else (a pickled
    ``python_model``, an edited or foreign code file) raises :class:`UntrustedModel`.
    """
    import yaml

    from training.segment import _MODEL_CODE

    local = Path(local)
    meta = yaml.safe_load((local / "MLmodel").read_text(encoding="utf-8")) or {}
    pyfunc = (meta.get("flavors") or {}).get("python_function") or {}
    if pyfunc.get("loader_module") != "mlflow.pyfunc.loaders.code_model" or pyfunc.get("python_model"):
        raise UntrustedModel(M_("not a models-from-code pyfunc (a pickled python_model is refused)"))
    code = local / Path(str(pyfunc.get("model_code_path") or "")).name
    if not code.is_file():
        raise UntrustedModel(M_("model code file {file} is missing from the artifact", file=code.name or '?'))
    if code.read_text(encoding="utf-8") != _MODEL_CODE:
        raise UntrustedModel(M_("model code {name} differs from this release's; refusing to run it", name=code.name))


def load_segments_artifact(uri: str) -> Any:
    """Download (when remote) and load a customer_segments pyfunc after :func:`check_segments_code`."""
    import mlflow

    local = _local_artifact(uri)
    check_segments_code(local)
    return mlflow.pyfunc.load_model(local)


def _load_error(name: str, version: str, where: str, e: Exception) -> ModelLoadError:
    why = str(e).strip().splitlines()[0][:300] if str(e).strip() else ""
    kind = "" if isinstance(e, ModelLoadError) else f"{type(e).__name__}: "
    cls = UntrustedModel if isinstance(e, UntrustedModel) else ModelLoadError
    return cls(f"{name} v{version} ({where}): cannot load the model artifact: {kind}{why}")


def _bento_model(name: str) -> Any | None:
    import bentoml
    from bentoml.exceptions import NotFound

    try:
        return bentoml.models.get(f"{name}:latest")
    except (NotFound, ValueError):
        return None


def _from_bento(kind: str, name: str, settings: ServingSettings) -> LoadedModel | None:
    bm = _bento_model(name)
    if bm is None:
        return None

    path = bm.path_of("mlflow_model")
    meta = dict(bm.info.metadata or {})
    version = str(meta.pop("registry_version", bm.tag.version))
    tags = {str(k): str(v) for k, v in meta.items()}
    try:
        if kind == "segments":
            return LoadedModel(kind, name, version, "bento", load_segments_artifact(path), tags)
        if kind == "uplift":
            return prepare_uplift(kind, name, version, "bento", load_scorer_artifact(path), tags)
        scorer = load_scorer_artifact(path)
        return prepare_scorer(kind, name, version, "bento", scorer, tags, settings.xgb_threads)
    except Exception as e:  # noqa: BLE001 - name the model and version, whatever broke
        raise _load_error(name, version, f"Bento model {bm.tag}", e) from e


def _from_registry(kind: str, name: str, settings: ServingSettings, version: str | None = None,
                   tags: dict[str, str] | None = None) -> LoadedModel | None:

    if version is None:
        found = registry_version(name, settings.alias)
        if found is None:
            return None
        version, tags = found
    uri = f"models:/{name}/{version}"
    try:
        if kind == "segments":
            return LoadedModel(kind, name, version, "registry", load_segments_artifact(uri), tags or {})
        if kind == "uplift":
            return prepare_uplift(kind, name, version, "registry", load_scorer_artifact(uri), tags or {})
        scorer = load_scorer_artifact(uri)
        return prepare_scorer(kind, name, version, "registry", scorer, tags or {}, settings.xgb_threads)
    except Exception as e:  # noqa: BLE001 - name the model and version, whatever broke
        raise _load_error(name, version, uri, e) from e


def model_source(settings: ServingSettings, in_bento: bool) -> str:
    """Where models come from: ``bento`` when serving a built Bento (source auto), else the registry."""
    if settings.model_source == "auto":
        return "bento" if in_bento else "registry"
    return settings.model_source


def load_model(kind: str, settings: ServingSettings, in_bento: bool = False) -> LoadedModel | None:
    """Load the served version of ``kind`` (lead, churn, segments, uplift); None when it does not exist anywhere.

    From a Bento, a model that was not packed is looked up in the registry only when one is configured
    explicitly (``registry_uri`` or ``$MLFLOW_TRACKING_URI``), never in a default SQLite file.
    """
    name = getattr(settings.models, kind)
    if model_source(settings, in_bento) == "bento":
        loaded = _from_bento(kind, name, settings)
        if loaded is not None or settings.model_source == "bento" or settings.resolved_registry_uri() is None:
            return loaded
    _configure_registry(settings)
    return _from_registry(kind, name, settings)


# ---------------------------------------------------------------------------------------- hot swap
class ModelSlot:
    """The current model of one kind; readers take ``slot.current`` once per request."""

    def __init__(self, kind: str, name: str, alias: str) -> None:
        self.kind = kind
        self.name = name
        self.alias = alias
        self.current: LoadedModel | None = None
        #: why the slot is empty (an ``M_`` message: GET /model_info and the 503 show it in the request's language)
        self.error: str | None = None

    def require(self) -> LoadedModel:
        """The current model, or :class:`ModelUnavailable` naming the model and the reason."""
        m = self.current
        if m is None:
            why = self.error or M_("not registered")
            raise ModelUnavailable(M_(
                "model {name}@{alias} is not loaded: {why}",
                name=self.name, alias=self.alias, why=why,
            ))
        return m

    def swap(self, model: LoadedModel) -> None:
        """Make ``model`` current (one reference assignment: atomic for readers)."""
        self.current = model
        self.error = None


class ModelSlots(dict[str, ModelSlot]):
    """The service's slots, one per kind (``lead``, ``churn``, ``segments``, ``uplift``), loaded at start-up."""

    #: Where the models come from (:func:`model_source`): ``registry`` (watched) or ``bento`` (packed).
    source: str = "registry"

    @classmethod
    def load(cls, settings: ServingSettings, in_bento: bool = False) -> ModelSlots:
        """Load each model at the served alias; a model that cannot be loaded leaves its slot empty with
        the reason in ``slot.error`` (its endpoint answers 503 with it), never stopping the others."""
        slots = cls({k: ModelSlot(k, getattr(settings.models, k), settings.alias) for k in KINDS})
        slots.source = model_source(settings, in_bento)
        for kind, slot in slots.items():
            slot.error = slots._load_one(kind, slot, settings, in_bento)
        return slots

    def _load_one(self, kind: str, slot: ModelSlot, s: ServingSettings, in_bento: bool) -> str | None:
        """Load one slot; returns why it stays empty (None when loaded)."""
        try:
            loaded = load_model(kind, s, in_bento=in_bento)
        except RegistryUnavailable as e:
            if self.source == "bento":  # only an unpacked model was looked up: not a failure
                missing = M_("{name} is not packed in this Bento and the registry lookup failed: {error}",
                             name=slot.name, error=e)
                log.warning("%s", missing)
                return missing
            log.error("loading %s@%s failed: %s", slot.name, s.alias, e)
            return M_("loading failed: {error}", error=e)
        except Exception as e:  # noqa: BLE001 - one broken model must not stop the others
            # ModelLoadError messages name the model, version and URI; anything else gets the model name
            if isinstance(e, ModelLoadError):
                full: str = message_of(e) or str(e)
                why = full if len(full) <= 500 else str(full)[:500]
            else:
                why = f"{slot.name}@{s.alias}: {type(e).__name__}: {str(e)[:300]}"
            log.exception("loading failed: %s", why)
            return M_("loading failed: {error}", error=why)
        if loaded is None:
            log.warning("%s@%s not found; its endpoint answers 503", slot.name, s.alias)
            if self.source == "bento":
                return M_("{name} is not packed in this Bento", name=slot.name)
            return M_("no version of {name} has the alias '{alias}'", name=slot.name, alias=s.alias)
        slot.swap(loaded)
        log.info("loaded %s v%s from %s", loaded.name, loaded.version, loaded.source)
        return None

    def watch(
        self, settings: ServingSettings, on_swap: Any = None, also: Sequence[Callable[[], Any]] = ()
    ) -> ModelWatcher | None:
        """Start the hot-swap watcher (None when pinned or serving a Bento's packed models); ``also``: checks
        of models kept outside the slots, run at each poll (:class:`ModelWatcher`)."""
        if settings.pin_models or self.source != "registry":
            return None
        watcher = ModelWatcher(list(self.values()), settings, on_swap=on_swap, also=also)
        watcher.start()
        return watcher


def next_poll_delay(interval: float, now: float | None = None) -> float:
    """Seconds until the next poll tick: the next multiple of ``interval`` since the Unix epoch.

    Every worker of a service (and every replica on machines with synchronised clocks) polls at the same
    wall-clock ticks, so they see a moved alias at the same poll and switch within one model load of each
    other, instead of at phases that depended on when each worker started (up to a whole interval apart).
    """
    now = time.time() if now is None else now
    delay = interval - (now % interval)
    return delay if delay > 1e-3 else delay + interval


class ModelWatcher(threading.Thread):
    """Polls the registry alias of each slot at every ``interval`` tick and swaps in new versions.

    Contract (docs/serving.md, "Hot swap"): a worker checks the alias at the wall-clock ticks of
    :func:`next_poll_delay`; when it moved, the new version is loaded completely while the old one serves,
    then one reference is replaced. From then on every request that worker starts is scored by the new
    version. A failed check or load is logged and retried at the next tick; nothing ends the thread but
    :meth:`stop`.
    """

    def __init__(
        self, slots: Sequence[ModelSlot], settings: ServingSettings, on_swap: Any = None,
        also: Sequence[Callable[[], Any]] = (),
    ) -> None:
        super().__init__(name="crmscore-model-watcher", daemon=True)
        self.slots = list(slots)
        #: checks of models kept outside the slots (the cross-sell state), each run at every poll after the
        #: slots: it swaps its model in itself and returns (name, new version), or None when nothing moved
        self.also = list(also)
        self.settings = settings
        self.interval = settings.poll_interval_seconds
        self.on_swap = on_swap
        self.polls = 0
        self._stop_event = threading.Event()

    def stop(self) -> None:
        """Ask the thread to end after its current check."""
        self._stop_event.set()

    def check_once(self) -> list[tuple[str, str]]:
        """One poll of every slot; returns (name, new version) of the swaps made."""
        swapped = []
        for slot in self.slots:
            cur = slot.current
            if cur is not None and cur.source != "registry":
                continue
            try:
                found = registry_version(slot.name, slot.alias)
                if found is None or (cur is not None and found[0] == cur.version):
                    continue
                new = _from_registry(slot.kind, slot.name, self.settings, found[0], found[1])
            except Exception as e:  # noqa: BLE001 - a bad new version must not stop serving the old one
                if cur is None:
                    slot.error = M_("loading failed: {error}", error=e)
                log.error("hot swap of %s@%s failed, keeping %s: %s", slot.name, slot.alias,
                          "nothing" if cur is None else f"v{cur.version}", e)
                continue
            if new is None:
                continue
            slot.swap(new)
            swapped.append((slot.name, new.version))
            log.info("hot swap: %s@%s now v%s (was %s)", slot.name, slot.alias, new.version,
                     "none" if cur is None else f"v{cur.version}")
            if self.on_swap is not None:
                try:
                    self.on_swap(slot, new)
                except Exception:  # noqa: BLE001 - a metrics hook must not end the watcher
                    log.exception("hot swap hook failed")
        for check in self.also:
            try:
                moved = check()
            except Exception:  # noqa: BLE001 - a bad new version must not stop serving the old one
                log.exception("hot swap check failed")
                continue
            if moved is not None:
                swapped.append(moved)
        return swapped

    def run(self) -> None:
        """Poll at every tick until stopped; an unexpected error is logged and the next tick comes anyway
        (before, it ended the thread silently and that worker kept its version for good)."""
        try:
            _configure_registry(self.settings)
        except Exception:  # noqa: BLE001 - the next check reports the registry's state
            log.exception("configuring the model registry failed")
        while not self._stop_event.wait(next_poll_delay(self.interval)):
            try:
                self.check_once()
            except Exception:  # noqa: BLE001 - keep watching
                log.exception("hot-swap check failed; next check at the next tick")
            self.polls += 1


# ------------------------------------------------------------------------------------------- packing
def _registry_label(settings: ServingSettings) -> str:
    """A short stable label of the registry a model was packed from (BentoML label values are limited)."""
    import hashlib

    import mlflow

    return hashlib.sha256(mlflow.get_registry_uri().encode()).hexdigest()[:16]


def pack_models(settings: ServingSettings, kinds: Sequence[str] = KINDS) -> list[str]:
    """Import the served version of each model into the local BentoML store; returns the BentoML tags.

    Models missing from the registry are skipped (the service answers 503 for them). The registry
    version and its tags are kept as the BentoML model's metadata, so /model_info reads the same.
    """
    import bentoml
    from bentoml.exceptions import NotFound

    _configure_registry(settings)
    tags = []
    for kind in kinds:
        name = getattr(settings.models, kind)
        found = registry_version(name, settings.alias)
        if found is None:
            log.warning("%s@%s not in the registry: not packed", name, settings.alias)
            continue
        version, vtags = found
        meta = {"registry_version": version, **{k: v for k, v in vtags.items() if k.startswith("crmscore.")}}
        if kind == "segments":
            meta.update({k: vtags[k] for k in ("as_of", "silhouette", "k") if k in vtags})
        try:
            stored = bentoml.models.list(name)
        except NotFound:
            stored = []
        same = [m for m in stored if (m.info.labels or {}).get("registry_version") == version
                and (m.info.labels or {}).get("registry") == _registry_label(settings)]
        if same:  # already packed: reuse it
            tags.append(str(max(same, key=lambda m: m.info.creation_time).tag))
            continue
        bm = bentoml.mlflow.import_model(
            name,
            f"models:/{name}/{version}",
            labels={"registry_version": version, "alias": settings.alias, "kind": kind,
                    "registry": _registry_label(settings)},
            metadata=meta,
        )
        tags.append(str(bm.tag))
    return tags
