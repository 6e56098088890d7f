"""`crmscore segment fit` end to end on generated tables: MLflow run, artifacts, registry, pyfunc reload."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import ROOT
from tests.fixtures.crm import make_tables
from training.segment import CustomerSegmenter, fit_segments, output_columns, summarise_customers

AS_OF = "2025-06-30"


@pytest.fixture()
def data_dir(tmp_path: Path) -> tuple[Path, dict[str, pd.DataFrame]]:
    tables = make_tables(n=300, seed=11)
    d = tmp_path / "data"
    d.mkdir()
    for name, df in tables.items():
        df.to_parquet(d / f"{name}.parquet", index=False)
    return d, tables


def _all_text(folder: Path) -> str:
    """Every logged file under ``folder`` as text (binary files decoded leniently)."""
    return "\n".join(p.read_bytes().decode("utf-8", "ignore") for p in folder.rglob("*") if p.is_file())


def test_fit_logs_registers_and_reloads_in_a_fresh_process(data_dir, tracking_uri, tmp_path) -> None:
    d, tables = data_dir
    res = fit_segments(d, AS_OF)
    assert res.version == "1" and res.champion_set
    assert res.n_customers == len(summarise_customers(tables, AS_OF))

    client = mlflow.MlflowClient()
    run = client.get_run(res.run_id)
    m = run.data.metrics
    for key in ("silhouette", "bgnbd_r", "bgnbd_alpha", "bgnbd_a", "bgnbd_b", "gg_p", "gg_q", "gg_v"):
        assert key in m, key
    assert m["bgnbd_holdout_mae"] >= 0 and "bgnbd_holdout_total_pct_error" in m
    seg_sizes = {k: v for k, v in m.items() if k.startswith("segment_size_")}
    assert sum(seg_sizes.values()) == res.n_customers
    assert sum(v for k, v in m.items() if k.startswith("cluster_size_")) == res.n_customers
    assert run.data.params["as_of"] == "2025-06-30 00:00:00"

    # artifacts: profiles and the chart, and no PII or customer id anywhere in what was logged
    art = Path(mlflow.artifacts.download_artifacts(run_id=res.run_id, dst_path=str(tmp_path / "art")))
    model_dir = Path(mlflow.artifacts.download_artifacts(res.model_uri, dst_path=str(tmp_path / "model")))
    names = {p.name for p in art.rglob("*")}
    assert {"segment_profiles.csv", "cluster_profiles.csv", "value_tier_profiles.csv", "segment_sizes.png"} <= names
    assert (art / "segments" / "segment_sizes.png").read_bytes()[:4] == b"\x89PNG"
    prof = pd.read_csv(art / "segments" / "segment_profiles.csv")
    assert prof["customers"].sum() == res.n_customers and "customer_id" not in prof.columns
    logged = _all_text(art) + _all_text(model_dir)
    customers = tables["customers"]
    for col in ("name", "phone", "email"):
        for value in customers[col].head(50):
            assert value not in logged, f"{col} leaked"
    assert not re.search(r"\bC\d{4}\b", logged), "a customer id was logged"

    # registry: champion now; a second fit (through the CLI) is a challenger and leaves the champion alone
    assert str(client.get_model_version_by_alias("customer_segments", "champion").version) == "1"
    from serving.cli import app

    out = CliRunner().invoke(app, ["segment", "fit", "--data", str(d), "--as-of", "2025-05-31"])
    assert out.exit_code == 0, out.output
    assert "version 2 (challenger)" in out.output
    assert str(client.get_model_version_by_alias("customer_segments", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("customer_segments", "challenger").version) == "2"

    # the registered pyfunc, loaded in a fresh interpreter, gives the same output as the fitted segmenter
    summary = summarise_customers(tables, AS_OF)
    summary.to_parquet(tmp_path / "in.parquet", index=False)
    script = (
        "import sys, mlflow, pandas as pd\n"
        "m = mlflow.pyfunc.load_model('models:/customer_segments@champion')\n"
        "m.predict(pd.read_parquet(sys.argv[1])).to_parquet(sys.argv[2], index=False)\n"
    )
    env = os.environ | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "in.parquet"), str(tmp_path / "out.parquet")],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    fresh = pd.read_parquet(tmp_path / "out.parquet")
    state = model_dir / "artifacts" / "segmenter.json"
    expected = CustomerSegmenter.load_json(state).predict(summary)
    assert list(fresh.columns) == output_columns(90)
    pd.testing.assert_frame_equal(fresh, expected, check_dtype=False)
    # and the same as the in-process pyfunc
    pd.testing.assert_frame_equal(mlflow.pyfunc.load_model(res.model_uri).predict(summary), expected, check_dtype=False)
    # models-from-code: the state is JSON, no pickled python object is stored with the model
    assert not [p.name for p in model_dir.rglob("*.pkl")]


def test_cli_bad_input_is_one_line_error(tmp_path, tracking_uri) -> None:
    from serving.cli import app

    runner = CliRunner()
    out = runner.invoke(app, ["segment", "fit", "--data", str(tmp_path / "nope")])
    assert out.exit_code == 2
    assert "data dir not found" in out.output and "Traceback" not in out.output

    d = tmp_path / "data"
    d.mkdir()
    make_tables(n=40, seed=1)["orders"].to_parquet(d / "orders.parquet", index=False)
    out = runner.invoke(app, ["segment", "fit", "--data", str(d), "--as-of", "1999-01-01"])
    assert out.exit_code == 2 and "no paid order on or before 1999-01-01" in out.output
    out = runner.invoke(app, ["segment", "fit", "--data", str(d), "--as-of", "soon"])
    assert out.exit_code == 2 and "--as-of: not a date" in out.output
    bad = tmp_path / "bad.yaml"
    bad.write_text("clustering:\n  k_min: 5\n  k_max: 3\n", encoding="utf-8")
    out = runner.invoke(app, ["segment", "fit", "--data", str(d), "--config", str(bad)])
    assert out.exit_code == 2 and "k_max" in out.output
