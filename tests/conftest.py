"""Shared fixtures: paths to the real public data (skipped when absent) and a throwaway MLflow store."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
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
