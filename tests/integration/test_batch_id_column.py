"""`crmscore score` keys rows by the id column the model was trained with (`crmscore train table --id
customerID` → `customerID`) unless `--id-col` says otherwise, and a missing id column is a sentence that
names the file, the column and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

CONFIG = "candidates: [logreg]\n"


def _cli() -> typer.Typer:
    from serving.cli.score import register as register_score
    from serving.cli.table import register as register_table

    app, train = typer.Typer(), typer.Typer()
    register_table(train)
    app.add_typer(train, name="train")
    register_score(app)
    return app


def _table(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    plan = rng.choice(["Month-to-month", "One year", "Two year"], n)
    charges = rng.uniform(20, 120, n).round(2)
    logit = 1.0 - 0.05 * tenure + 0.02 * (charges - 70) + np.where(plan == "Month-to-month", 1.0, -0.5)
    churn = np.where(rng.random(n) < 1 / (1 + np.exp(-logit)), "Yes", "No")
    ids = [f"{rng.integers(1000, 9999)}-{''.join(rng.choice(list('ABCDEFGHJK'), 5))}" for _ in range(n)]
    ids = [f"{x}{i}" for i, x in enumerate(ids)]  # unique
    return pd.DataFrame({"customerID": ids, "tenure": tenure, "Contract": plan, "MonthlyCharges": charges,
                         "Churn": churn})


@pytest.fixture()
def table_model(tracking_uri: str, tmp_path: Path) -> str:
    """A raw-table model registered as ``tiny_churn``, trained with ``--id customerID``."""
    src = tmp_path / "train.csv"
    _table(800, 1).to_csv(src, index=False)
    cfg = tmp_path / "table.yaml"
    cfg.write_text(CONFIG)
    r = CliRunner().invoke(_cli(), ["train", "table", "--table", str(src), "--target", "Churn", "--id", "customerID",
                                    "--name", "tiny_churn", "--config", str(cfg), "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.stdout)  # --json: one object, the training result and the table report
    assert (got["model_name"], got["version"], got["promoted"]) == ("tiny_churn", "1", True)
    assert got["report"]["column_kinds"]["customerID"] == "id" and got["report"]["rows_used"] == 800
    return "tiny_churn@champion"


def test_score_uses_the_trained_id_column_unless_id_col_says_otherwise(table_model, tmp_path):
    from serving.batch import load_scorer

    assert load_scorer(table_model).id_column == "customerID"
    leads = _table(300, 2).drop(columns=["Churn"])
    src = tmp_path / "leads.csv"
    leads.to_csv(src, index=False)
    out = tmp_path / "scored.csv"
    r = CliRunner().invoke(_cli(), ["score", "--model", table_model, "--input", str(src), "--output", str(out),
                                    "--no-records"])
    assert r.exit_code == 0, r.output
    scored = pd.read_csv(out, dtype={"customerID": str})
    assert list(scored.columns[:2]) == ["customerID", "probability"]
    assert sorted(scored["customerID"]) == sorted(leads["customerID"])
    summary = json.loads(Path(f"{out}.summary.json").read_text(encoding="utf-8"))
    assert summary["rows_in"] == 300 == summary["scored"] + summary["rejected"] + summary["duplicates"]
    rejects = pd.read_csv(Path(f"{out}.rejects.csv"), encoding="utf-8-sig")
    assert list(rejects.columns) == ["row", "customerID", "column", "value", "reason"]

    # an export whose id column has another name: a sentence naming the file, the column and --id-col
    renamed = tmp_path / "renamed.csv"
    leads.rename(columns={"customerID": "Customer No"}).to_csv(renamed, index=False)
    out2 = tmp_path / "scored2.csv"
    r = CliRunner().invoke(_cli(), ["score", "--model", table_model, "--input", str(renamed), "--output", str(out2),
                                    "--no-records"])
    assert r.exit_code == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert lines == [
        f"error: {renamed} has no id column 'customerID' (the id column tiny_churn was trained with): name the "
        "column that holds the ids with --id-col (for example --id-col Customer No)."
    ], r.stderr
    assert not out2.exists()

    # --id-col names it
    r = CliRunner().invoke(_cli(), ["score", "--model", table_model, "--input", str(renamed), "--output", str(out2),
                                    "--id-col", "Customer No", "--no-records"])
    assert r.exit_code == 0, r.output
    again = pd.read_csv(out2, dtype={"Customer No": str})
    assert list(again.columns[:1]) == ["Customer No"]
    assert np.array_equal(again["probability"].to_numpy(), scored["probability"].to_numpy())
