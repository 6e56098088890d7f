"""The Spark feature engine (``--engine spark``) against the NumPy core, on ``local[2]``.

The session's Spark session (``spark``); the data is the session registry's demo data dir (1,500 customers).
Skipped (with the reason) when pyspark or a Java runtime is missing.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.integration.conftest import Registry, keep_mlflow_globals

pytestmark = pytest.mark.slow
CUTOFFS = ("2025-01-15", "2025-04-30 12:00:00", "2025-06-01")
MODEL = "lead_scoring@champion"


def _spark_features(spark, data: Path, as_of: str) -> pd.DataFrame:
    from features.engines.spark_features import build_features_spark

    return build_features_spark(spark, data, as_of).toPandas().set_index("customer_id").sort_index()


def _local_features(data: Path, as_of: str) -> pd.DataFrame:
    from features.build import build_features
    from features.io import load_feature_tables

    return build_features(load_feature_tables(data), as_of).sort_index()


def assert_same_features(local: pd.DataFrame, spark: pd.DataFrame) -> None:
    """Every feature of every customer: exactly equal where the NumPy values are whole numbers (counts,
    flags, depths), within 1e-9 relative otherwise; categories equal as text."""
    assert list(spark.columns) == list(local.columns)
    assert spark.index.tolist() == local.index.tolist()
    for c in local.columns:
        a, b = local[c], spark[c]
        if a.dtype == object:
            assert a.fillna("<missing>").tolist() == b.fillna("<missing>").tolist(), c
            continue
        x, y = a.to_numpy(dtype=float), b.to_numpy(dtype=float)
        finite = np.isfinite(x)
        assert np.array_equal(np.isnan(x), np.isnan(y)), c
        if np.array_equal(x[finite], np.round(x[finite])):
            assert np.array_equal(x[finite], y[finite]), c
        else:
            np.testing.assert_allclose(y[finite], x[finite], rtol=1e-9, atol=0, err_msg=c)


@pytest.mark.parametrize("as_of", CUTOFFS)
def test_spark_features_equal_numpy_core(spark, crm_registry: Registry, as_of: str):
    local = _local_features(crm_registry.data, as_of)
    assert len(local) > 100
    assert local["interactions_90d"].sum() > 0 and local["orders_total"].sum() > 0
    assert_same_features(local, _spark_features(spark, crm_registry.data, as_of))


def _copy_with_events(src: Path, dest: Path, at: pd.Timestamp) -> None:
    """``src``'s tables plus, for ten customers created before ``at``, an interaction, a paid order and an
    opened, clicked, answered touch at ``at``."""
    from features.io import load_tables, write_parquet_atomic

    tables = load_tables(src)
    cust = tables["customers"]
    ids = cust.loc[cust["created_at"] < at - pd.Timedelta(days=1), "customer_id"].iloc[:10].astype(str).tolist()
    add = {
        "interactions": pd.DataFrame({"customer_id": ids, "ts": at, "channel": "web", "event_type": "add_to_cart"}),
        "orders": pd.DataFrame({"order_id": [f"X{i}" for i in range(10)], "customer_id": ids, "ts": at,
                                "amount": 99.5, "status": "paid", "items": 1, "category": "x"}),
        "marketing_touches": pd.DataFrame({"touch_id": [f"T{i}" for i in range(10)], "customer_id": ids,
                                           "campaign_id": "c", "channel": "sms", "sent_at": at, "opened_at": at,
                                           "clicked_at": at, "coupon_claimed": True, "responded": True}),
    }
    for name, df in tables.items():
        if name in add:
            df = df.astype({c: object for c in df.columns if isinstance(df[c].dtype, pd.CategoricalDtype)})
            extra = add[name].astype({c: df[c].dtype for c in add[name].columns if c in df.columns})
            df = pd.concat([df, extra], ignore_index=True)
        write_parquet_atomic(df, dest / f"{name}.parquet")


def test_spark_events_after_cutoff_change_nothing(spark, crm_registry: Registry, tmp_path: Path):
    as_of = pd.Timestamp("2025-04-30")
    before = _spark_features(spark, crm_registry.data, str(as_of))
    _copy_with_events(crm_registry.data, tmp_path / "after", as_of + pd.Timedelta(seconds=1))
    pd.testing.assert_frame_equal(_spark_features(spark, tmp_path / "after", str(as_of)), before, check_exact=True)
    # the same events one second before the cutoff do change the features
    _copy_with_events(crm_registry.data, tmp_path / "before", as_of - pd.Timedelta(seconds=1))
    changed = _spark_features(spark, tmp_path / "before", str(as_of))
    assert (changed["orders_total"] - before["orders_total"]).sum() == 10
    assert (changed["responses_total"] - before["responses_total"]).sum() == 10


def _cli(*args: str):
    from serving.cli.main import app

    return CliRunner().invoke(app, list(args))


def test_features_cli_spark_writes_partitioned_parquet_equal_to_local(spark, crm_registry: Registry, tmp_path):
    out = tmp_path / "feats"
    res = _cli("features", "--data", str(crm_registry.data), "--as-of", "2025-06-01", "--out", str(out),
               "--engine", "spark", "--spark-master", "local[2]")
    assert res.exit_code == 0, res.output
    assert out.is_dir() and len(list(out.glob("part-*.parquet"))) >= 1
    assert [p.name for p in tmp_path.iterdir()] == ["feats"]  # no work directory left beside
    res = _cli("features", "--data", str(crm_registry.data), "--as-of", "2025-06-01", "--out",
               str(tmp_path / "local.parquet"))
    assert res.exit_code == 0, res.output
    local = pd.read_parquet(tmp_path / "local.parquet").set_index("customer_id").sort_index()
    assert_same_features(local, pd.read_parquet(out).set_index("customer_id").sort_index())


def _bad_dirs(src: Path, root: Path) -> dict[str, Path]:
    from features.io import load_tables, write_parquet_atomic

    tables = load_tables(src)
    no_customers = root / "no_customers"
    for name in ("interactions", "orders"):
        write_parquet_atomic(tables[name], no_customers / f"{name}.parquet")
    text_ts = root / "text_ts"
    for name, df in tables.items():
        if name == "orders":
            df = df.assign(ts=df["ts"].astype(str))
        write_parquet_atomic(df, text_ts / f"{name}.parquet")
    no_amount = root / "no_amount"
    for name, df in tables.items():
        write_parquet_atomic(df.drop(columns=["amount"]) if name == "orders" else df, no_amount / f"{name}.parquet")
    return {"missing table": no_customers, "wrong type": text_ts, "missing column": no_amount}


def test_bad_input_gives_the_same_error_on_both_engines(spark, crm_registry: Registry, tmp_path: Path):
    expected = {"missing table": "missing table(s) customers", "wrong type": "column orders.ts is string, expected "
                "datetime", "missing column": "table orders lacks column(s) amount"}
    for what, data in _bad_dirs(crm_registry.data, tmp_path).items():
        errors = []
        for engine in ("local", "spark"):
            res = _cli("features", "--data", str(data), "--as-of", "2025-06-01", "--out",
                       str(tmp_path / f"{what}-{engine}"), "--engine", engine, "--spark-master", "local[2]")
            assert res.exit_code == 2, (what, engine, res.output)
            errors.append(res.output.strip())
        assert errors[0] == errors[1], what
        assert expected[what] in errors[0], errors[0]
        assert not list(tmp_path.glob(f"*{what}-*"))


@pytest.fixture()
def registry_env(crm_registry: Registry, tmp_path: Path):
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", crm_registry.uri)
        mp.setenv("MLFLOW_REGISTRY_URI", crm_registry.uri)
        mp.setenv("CRMSCORE_HOME", str(tmp_path / "home"))
        yield crm_registry


def test_score_from_raw_tables_on_spark_equals_local_row_by_row(spark, registry_env: Registry, tmp_path: Path):
    from serving.batch import BatchOptions, score_batch
    from serving.batch.spark import score_batch_spark

    common = dict(model=MODEL, input=str(registry_env.data), as_of="2025-03-01", reasons=2,
                  keep=["member_level"], records=False)
    local = score_batch(BatchOptions(output=str(tmp_path / "local.csv"), **common))
    spark_sum = score_batch_spark(BatchOptions(output=str(tmp_path / "spark.csv"), **common), master="local[2]")

    read = lambda p: pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig")  # noqa: E731
    a, b = read(tmp_path / "local.csv"), read(tmp_path / "spark.csv")
    assert list(a.columns) == list(b.columns)
    assert len(a) == len(b) == local.scored > 100
    assert a["customer_id"].tolist() == b["customer_id"].tolist()
    np.testing.assert_allclose(a["probability"].astype(float), b["probability"].astype(float), rtol=1e-9, atol=1e-12)
    for col in ("score", "grade", "rank", "decile", "member_level", "reason_pos_1", "reason_neg_1"):
        assert a[col].tolist() == b[col].tolist(), col
    ra = read(tmp_path / "local.csv.rejects.csv").sort_values("row", key=lambda s: s.astype(int))
    rb = read(tmp_path / "spark.csv.rejects.csv").sort_values("row", key=lambda s: s.astype(int))
    assert len(ra) == local.rejected > 0  # customers created after the cutoff
    for col in ("row", "customer_id", "column", "value", "reason"):
        assert ra[col].tolist() == rb[col].tolist(), col
    for key in ("rows_in", "scored", "rejected", "duplicates", "grades", "score_quantiles", "as_of"):
        assert getattr(local, key) == getattr(spark_sum, key), key
    assert spark_sum.rows_in == spark_sum.scored + spark_sum.rejected + spark_sum.duplicates
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
