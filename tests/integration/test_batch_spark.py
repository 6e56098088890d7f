"""`crmscore score --engine spark` on ``local[2]`` gives the local engine's results row by row.

The engine runs on the session's ``local[2]`` session (``spark``), as it would on a CRM team's active one.
Skipped (with the reason) when pyspark or a Java runtime is missing.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from tests.integration.conftest import Registry, keep_mlflow_globals

pytestmark = pytest.mark.slow
AS_OF = "2025-06-01"
MODEL = "lead_scoring@champion"


@pytest.fixture(scope="module")
def reg(crm_registry: Registry, spark, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The session registry, the session's Spark session active (the engine reuses it; skips without Spark)."""
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", crm_registry.uri)
        mp.setenv("MLFLOW_REGISTRY_URI", crm_registry.uri)
        mp.setenv("CRMSCORE_HOME", str(tmp_path_factory.mktemp("spark_home")))
        yield crm_registry


def _leads(reg: Registry, tmp_path: Path) -> Path:
    """The registry's customers as feature rows, with a blank id, a bad number and a duplicate mixed in."""
    import mlflow

    from features.build import CRMSnapshot
    from features.io import load_tables

    scorer = mlflow.sklearn.load_model(f"models:/{MODEL}")
    f = scorer.builder.transform(CRMSnapshot(load_tables(reg.data), pd.Timestamp(AS_OF))).reset_index()
    f["owner"] = [f"销售{i % 5}" for i in range(len(f))]
    f = f.astype(object)
    f.loc[3, "customer_id"] = None
    f.loc[7, "age"] = "abc"
    f.loc[2, "owner"] = "=1+2"  # a spreadsheet formula: both engines neutralise it
    f.loc[11, "customer_id"] = f.loc[20, "customer_id"]  # an earlier duplicate: row 20 is kept
    path = tmp_path / "leads.csv"
    f.to_csv(path, index=False)
    return path


def test_spark_engine_matches_local_engine_row_by_row(reg, tmp_path):
    from serving.batch import BatchOptions, score_batch
    from serving.batch.spark import score_batch_spark

    src = _leads(reg, tmp_path)
    common = dict(model=MODEL, input=str(src), reasons=2, keep=["owner"], records=False)
    local = score_batch(BatchOptions(output=str(tmp_path / "local.csv"), chunk_size=200, **common))
    spark = score_batch_spark(BatchOptions(output=str(tmp_path / "spark.csv"), **common), master="local[2]")

    read = lambda p: pd.read_csv(p, dtype=str, keep_default_na=False)  # noqa: E731
    a, b = read(tmp_path / "local.csv"), read(tmp_path / "spark.csv")
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b) == local.scored
    assert a["customer_id"].tolist() == b["customer_id"].tolist()
    np.testing.assert_allclose(a["probability"].astype(float), b["probability"].astype(float), rtol=0, atol=1e-12)
    for col in ("score", "grade", "rank", "decile", "owner", "reason_pos_1", "reason_pos_2", "reason_neg_1",
                "reason_neg_2"):
        assert a[col].tolist() == b[col].tolist(), col
    assert a.loc[2, "owner"] == b.loc[2, "owner"] == "'=1+2"

    ra = pd.read_csv(tmp_path / "local.csv.rejects.csv", dtype=str, keep_default_na=False, encoding="utf-8-sig")
    rb = pd.read_csv(tmp_path / "spark.csv.rejects.csv", dtype=str, keep_default_na=False)
    assert ra["row"].tolist() == rb["row"].tolist() == ["5", "9"]
    assert ra["reason"].tolist() == rb["reason"].tolist() == ["customer_id is blank", "age is not a number"]

    for key in ("rows_in", "scored", "rejected", "duplicates", "grades", "score_quantiles"):
        assert getattr(local, key) == getattr(spark, key), key
    assert spark.rows_in == spark.scored + spark.rejected + spark.duplicates
    assert json.loads((tmp_path / "spark.csv.summary.json").read_text())["engine"].startswith("spark")
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
