"""MLflow tracking and registry on a real PostgreSQL 15, and a CRM source database on the same server."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pandas as pd
import pytest

from features.io import write_parquet_atomic
from tests.fixtures.crm import make_tables

ROOT = Path(__file__).resolve().parents[2]

_TRAIN = """
import sys
from features.config import LabelConfig
from training.config import TrainConfig, XGBSearch
from training.train import train_crm
cfg = TrainConfig(task="churn", candidates=["logreg"], experiment="pg-concurrency",
                  labels=LabelConfig(n_cutoffs=3, cutoff_step_days=30, horizon_days=60, churn_lookback_days=365))
r = train_crm(sys.argv[1], cfg)
print("VERSION", r.version)
"""


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("crm")
    for name, df in make_tables(400, seed=21).items():
        write_parquet_atomic(df, d / f"{name}.parquet")
    return d


def test_four_training_jobs_at_once_register_every_version(postgres, data_dir, tmp_path, monkeypatch):
    url = postgres.url("mlflow")
    env = {**os.environ, "MLFLOW_TRACKING_URI": url, "MLFLOW_REGISTRY_URI": url, "PYTHONPATH": str(ROOT)}
    # create the schema once (here: this process has MLflow imported already), so the four jobs race on
    # registration, not on migrations
    from mlflow import MlflowClient

    MlflowClient(tracking_uri=url, registry_uri=url).search_experiments()
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _TRAIN, str(data_dir)],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(4)
    ]
    outs = [p.communicate(timeout=600) for p in procs]
    for p, (_out, err) in zip(procs, outs, strict=True):
        assert p.returncode == 0, err[-2000:]
    versions = sorted(
        int(line.split()[1]) for out, _ in outs for line in out.splitlines() if line.startswith("VERSION")
    )
    assert versions == [1, 2, 3, 4]

    monkeypatch.setenv("MLFLOW_TRACKING_URI", url)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", url)
    from training.registry import CHAMPION, configure_tracking, get_alias_version, set_champion

    configure_tracking()
    client = MlflowClient()
    assert len(client.search_model_versions("name='churn_risk'")) == 4
    assert get_alias_version("churn_risk", CHAMPION) in {"1", "2", "3", "4"}

    # aliases moved concurrently end consistent: the alias names one existing version, no errors
    errors: list[BaseException] = []

    def move(v: str) -> None:
        try:
            for _ in range(5):
                set_champion("churn_risk", v, f"concurrent move to {v}")
        except BaseException as e:  # noqa: BLE001 - collected and asserted below
            errors.append(e)

    threads = [threading.Thread(target=move, args=(str(v),)) for v in (1, 2, 3, 4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    final = get_alias_version("churn_risk", CHAMPION)
    assert final in {"1", "2", "3", "4"}
    assert str(client.get_model_version_by_alias("churn_risk", CHAMPION).version) == final
    rm = client.get_registered_model("churn_risk")
    assert str(rm.aliases[CHAMPION]) == final


def test_ingestion_reads_the_four_tables_from_postgres(postgres, tmp_path):
    import sqlalchemy as sa

    from features.ingest import ingest

    tables = make_tables(50, seed=22)
    engine = sa.create_engine(postgres.url("crm"))
    with engine.begin() as con:
        for name, df in tables.items():
            df.to_sql(name, con, if_exists="replace", index=False)
    summary = ingest(postgres.url("crm"), tmp_path / "out")
    for name, df in tables.items():
        counts = summary.tables[name]
        assert counts.read == len(df) == counts.accepted + counts.rejected + counts.duplicates
        assert (tmp_path / "out" / f"{name}.parquet").exists()
    back = pd.read_parquet(tmp_path / "out" / "orders.parquet")
    assert set(back["order_id"]) <= set(tables["orders"]["order_id"])
