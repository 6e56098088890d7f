"""Shared fixtures: paths to the real public data (skipped when absent) and a throwaway MLflow store."""

from __future__ import annotations

import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

# spinning OpenMP threads make xgboost 10-30x slower when the 2 cores are shared (servers, Spark)
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("CRMSCORE_SHARED_DATA", ROOT.parent / "shared" / "data"))


@pytest.fixture(scope="session")
def _session_audit_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("audit") / "audit.jsonl"


@pytest.fixture(autouse=True)
def _private_audit_trail(_session_audit_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """CLI exports run in a test append to a throwaway audit trail, never to ``./.crmscore`` of the checkout (a
    test that reads the trail sets ``CRMSCORE_AUDIT_FILE`` itself; servers started by module or session fixtures
    are started before this runs and keep their own ``<home>/audit``)."""
    if not os.environ.get("CRMSCORE_AUDIT_FILE"):
        monkeypatch.setenv("CRMSCORE_AUDIT_FILE", str(_session_audit_file))


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The ../shared/data folder of real public CRM data; skips the test when it is absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data folder {SHARED_DATA} is absent (only present beside the project checkout)")
    return SHARED_DATA


def shared_file(shared_data: Path, rel: str) -> Path:
    """One file under ../shared/data, skipping with the reason when it is missing."""
    p = shared_data / rel
    if not p.is_file():
        pytest.skip(f"real data file {p} is absent")
    return p


@pytest.fixture()
def tracking_uri(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A fresh SQLite MLflow tracking store and registry for one test (MLflow's process-wide URIs, which a
    command run in-process sets, are restored afterwards)."""
    keep_mlflow_globals(monkeypatch)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", uri)
    monkeypatch.chdir(tmp_path)
    return uri


@pytest.fixture(scope="session")
def postgres():
    """A throwaway PostgreSQL 15 cluster (skips when PostgreSQL is not installed)."""
    from tests.pg import PostgresCluster, find_pg_bin

    bindir = find_pg_bin()
    if bindir is None:
        pytest.skip("PostgreSQL binaries not found (.ci/run installs Debian's postgresql package)")
    cluster = PostgresCluster(bindir).start()
    yield cluster
    cluster.stop()


@pytest.fixture(autouse=True)
def _no_leaked_mlflow_state(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """``mlflow.set_experiment`` exports ``MLFLOW_EXPERIMENT_ID`` into ``os.environ``; undo it after every test,
    so no later subprocess inherits an experiment id of another test's store. A command run in-process also
    sets MLflow's process-wide tracking and registry URIs (``configure_tracking``): they are put back after
    every test too, without importing MLflow for tests that do not."""
    monkeypatch.delenv("MLFLOW_EXPERIMENT_ID", raising=False)
    names = ("mlflow.tracking._tracking_service.utils", "mlflow.tracking._model_registry.utils")
    attrs = ("_tracking_uri", "_registry_uri")
    before = [getattr(sys.modules[m], a, None) if m in sys.modules else None for m, a in zip(names, attrs, strict=True)]
    yield
    for m, a, value in zip(names, attrs, before, strict=True):
        if m in sys.modules:
            setattr(sys.modules[m], a, value)


def keep_mlflow_globals(mp: pytest.MonkeyPatch) -> None:
    """Have ``mp`` restore MLflow's process-wide tracking/registry URI and active experiment on undo, so a
    test pointing MLflow at its own store does not leak it into later tests."""
    import mlflow.tracking._model_registry.utils as reg_utils
    import mlflow.tracking._tracking_service.utils as tracking_utils
    import mlflow.tracking.fluent as fluent

    mp.setattr(tracking_utils, "_tracking_uri", tracking_utils._tracking_uri)
    mp.setattr(reg_utils, "_registry_uri", reg_utils._registry_uri)
    mp.setattr(fluent, "_active_experiment_id", fluent._active_experiment_id)
    # mlflow.set_experiment also exports MLFLOW_EXPERIMENT_ID into os.environ, which every later subprocess would
    # inherit (an experiment id of this test's store: "does not exist" in another one)
    mp.delenv("MLFLOW_EXPERIMENT_ID", raising=False)


# ------------------------------------------------------------------------ the session's small trained registry
@dataclass
class Registry:
    """A trained throwaway registry."""

    root: Path
    data: Path
    uri: str
    versions: dict[str, str]


def _write_data(data: Path) -> None:
    from features.io import write_parquet_atomic

    try:
        from features.synth import generate_crm_data, write_crm_data

        write_crm_data(generate_crm_data(1500, 420, 3), data)
        return
    except ImportError:
        pass
    from tests.fixtures.crm import make_tables

    for name, df in make_tables(1500, seed=3).items():
        write_parquet_atomic(df, data / f"{name}.parquet")


@pytest.fixture(scope="session")
def crm_registry(tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """lead_scoring and churn_risk champions (v1) trained on random CRM tables in a SQLite store."""
    from features.config import LabelConfig
    from training.config import TrainConfig, XGBSearch
    from training.train import train_crm

    root = tmp_path_factory.mktemp("crm_registry")
    data = root / "data"
    _write_data(data)
    uri = f"sqlite:///{root / 'mlflow.db'}"
    versions = {}
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_REGISTRY_URI", uri)
        # the logged models' pip requirements do not matter here; inferring them costs a subprocess each
        mp.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
        mp.chdir(root)
        search = XGBSearch(n_trials=1, n_estimators=[60], max_depth=[4])
        labels = LabelConfig(n_cutoffs=3, horizon_days=60, churn_lookback_days=365)
        for task in ("lead", "churn"):
            cfg = TrainConfig(task=task, xgb_search=search, candidates=["xgboost"], labels=labels, xgb_threads=1)
            result = train_crm(data, cfg)
            versions[result.model_name] = result.version
    return Registry(root, data, uri, versions)


def copy_registry(reg: Registry, dest: Path) -> Registry:
    """A private copy of the registry database (artifacts stay shared and read-only)."""
    dest.mkdir(parents=True, exist_ok=True)
    shutil.copy2(reg.root / "mlflow.db", dest / "mlflow.db")
    return Registry(dest, reg.data, f"sqlite:///{dest / 'mlflow.db'}", dict(reg.versions))
