"""`crmscore train cross_sell` end to end on a small data dir: MLflow run, rules table, registration, the gate
both ways, and `crmscore recommend` / `crmscore actions` from the command line."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

pytestmark = pytest.mark.slow


def _data_dir(root: Path) -> Path:
    """120 customers over 200 days: A with B, C with D; orders hold customer and time, order_items the lines."""
    rng = np.random.default_rng(3)
    orders, items = [], []
    start = pd.Timestamp("2025-01-01")
    n = 0
    for c in range(120):
        for _ in range(int(rng.integers(2, 6))):
            n += 1
            oid = f"o{n}"
            day = int(rng.integers(0, 200))
            orders.append(
                {
                    "order_id": oid,
                    "customer_id": f"c{c}",
                    "ts": start + pd.Timedelta(days=day),
                    "amount": 10.0,
                    "status": "paid",
                    "items": 2,
                    "category": "x",
                }
            )
            pair = [["A", "B"], ["C", "D"], ["A", "E"], ["F"]][int(rng.integers(0, 4)) if c % 2 else c % 4]
            for i, sku in enumerate(pair, start=1):
                items.append(
                    {
                        "order_id": oid,
                        "line": i,
                        "sku": sku,
                        "product_name": f"商品{sku}",
                        "category": None,
                        "quantity": 1.0,
                        "unit_price": 5.0,
                    }
                )
    d = root / "data"
    d.mkdir()
    pd.DataFrame(orders).to_parquet(d / "orders.parquet")
    pd.DataFrame(items).to_parquet(d / "order_items.parquet")
    customers = pd.DataFrame(
        {
            "customer_id": [f"c{c}" for c in range(120)],
            "created_at": start,
            "marketing_consent": [c % 5 != 0 for c in range(120)],
        }
    )
    customers.to_parquet(d / "customers.parquet")
    return d


def test_train_registers_gates_both_ways_and_recommends(tracking_uri, tmp_path: Path):
    from mlflow import MlflowClient

    from serving.cli.main import app

    data = _data_dir(tmp_path)
    cfg = tmp_path / "xs.yaml"
    cfg.write_text("horizon_days: 40\nmin_item_buyers: 1\nrules: {min_support: 0.05, min_lift: 1.1}\n")
    run = CliRunner().invoke(app, ["train", "cross_sell", "--data", str(data), "--config", str(cfg)])
    assert run.exit_code == 0, run.output
    assert "promoted — no champion yet" in run.output and "personal_top_frequency" in run.output
    client = MlflowClient()
    assert str(client.get_model_version_by_alias("cross_sell", "champion").version) == "1"
    r = client.search_runs([client.get_experiment_by_name("crmscore-cross_sell").experiment_id])[0]
    assert "test_item_item.recall_at_10_all" in r.data.metrics and "test_popularity.ndcg_at_10_new" in r.data.metrics
    assert r.data.params["split.as_of"] and any(a.path == "rules" for a in client.list_artifacts(r.info.run_id))
    # the same data again with a margin nobody can clear: registered as challenger, champion kept
    cfg.write_text("horizon_days: 40\nmin_item_buyers: 1\npromotion_margin: 0.5\n")
    run = CliRunner().invoke(app, ["train", "cross_sell", "--data", str(data), "--config", str(cfg)])
    assert run.exit_code == 0, run.output
    assert "kept — recall_at_10_all gain +0.0000 below margin 0.5000" in run.output
    assert str(client.get_model_version_by_alias("cross_sell", "champion").version) == "1"
    assert str(client.get_model_version_by_alias("cross_sell", "challenger").version) == "2"
    # the same data, no margin: the challenger is as good, so it is promoted
    cfg.write_text("horizon_days: 40\nmin_item_buyers: 1\n")
    run = CliRunner().invoke(app, ["train", "cross_sell", "--data", str(data), "--config", str(cfg), "--json"])
    got = json.loads(run.stdout)  # --json: one object
    assert got["promoted"] and got["decision"].startswith("recall_at_10_all gain +0.0000 ≥ margin"), run.output
    assert got["version"] == "3" and "item_item" in got["metrics"] and got["n_rules"] >= 0
    assert str(client.get_model_version_by_alias("cross_sell", "champion").version) == "3"

    ids = tmp_path / "customers.csv"
    ids.write_text("customer_id\nc1\nc2\nnew\n")
    out = tmp_path / "recs.csv"
    rec = CliRunner().invoke(
        app,
        [
            "recommend",
            "--input",
            str(ids),
            "--output",
            str(out),
            "--data",
            str(data),
            "--k",
            "3",
            "--exclude-days",
            "0",
        ],
    )
    assert rec.exit_code == 0, rec.output
    recs = pd.read_csv(out, encoding="utf-8-sig", dtype={"customer_id": str})
    assert set(recs["customer_id"]) == {"c1", "c2", "new"}
    assert list(recs.columns) == ["customer_id", "rank", "sku", "product_name", "score", "evidence"]
    assert recs["evidence"].str.len().gt(0).all()

    # a postage line (a non-product code of the config) long after every product line does not move the batch's
    # as-of: the command reads the lines as the service does, so the products bought lately stay left out
    from training.cross_sell import CrossSellConfig, load_lines
    from training.cross_sell_job import load_model, recommend

    lines = load_lines(data, CrossSellConfig().exclude_skus)
    want = recommend(load_model("models:/cross_sell@champion"), lines, pd.Index([f"c{c}" for c in range(120)]),
                     None, 3, 30)
    orders = pd.read_parquet(data / "orders.parquet")
    late = {"order_id": "post-1", "customer_id": "c1", "ts": pd.Timestamp("2026-06-01"), "amount": 1.0,
            "status": "paid", "items": 1, "category": "x"}
    pd.concat([orders, pd.DataFrame([late])], ignore_index=True).to_parquet(data / "orders.parquet")
    items = pd.read_parquet(data / "order_items.parquet")
    post = {"order_id": "post-1", "line": 1, "sku": "POST", "product_name": "postage", "category": None,
            "quantity": 1.0, "unit_price": 1.0}
    pd.concat([items, pd.DataFrame([post])], ignore_index=True).to_parquet(data / "order_items.parquet")
    ids.write_text("customer_id\n" + "".join(f"c{c}\n" for c in range(120)))
    rec = CliRunner().invoke(app, ["recommend", "--input", str(ids), "--output", str(out), "--data", str(data),
                                   "--k", "3", "--exclude-days", "30"])
    assert rec.exit_code == 0, rec.output
    got = pd.read_csv(out, encoding="utf-8-sig", dtype={"customer_id": str})
    assert got[["customer_id", "sku"]].values.tolist() == want[["customer_id", "sku"]].values.tolist()


def test_actions_cli_counts_and_consent(tmp_path: Path):
    from serving.cli.main import app

    data = _data_dir(tmp_path)
    scores = tmp_path / "leads.csv"
    scores.write_text("customer_id,grade\n" + "".join(f"c{c},{'ABCD'[c % 4]}\n" for c in range(120)))
    out = tmp_path / "actions.csv"
    r = CliRunner().invoke(
        app, ["actions", "--data", str(data), "--as-of", "2025-07-01", "--out", str(out), "--scores", f"lead={scores}"]
    )
    assert r.exit_code == 2 and "churn_grade" in r.output  # the rules read churn grades: named, with the hint
    churn = tmp_path / "churn.csv"
    churn.write_text("customer_id,grade\n" + "".join(f"c{c},D\n" for c in range(120)))
    r = CliRunner().invoke(
        app,
        [
            "actions",
            "--data",
            str(data),
            "--as-of",
            "2025-07-01",
            "--out",
            str(out),
            "--scores",
            f"lead={scores}",
            "--scores",
            f"churn={churn}",
        ],
    )
    assert r.exit_code == 0, r.output
    acts = pd.read_csv(out, encoding="utf-8-sig", dtype={"customer_id": str}).set_index("customer_id")
    assert len(acts) == 120
    assert acts.loc["c0", "action_id"] == "service_only"  # c0 has no consent (and an A-grade lead)
    assert acts.loc["c4", "action_id"] == "sales_call_24h"  # A-grade lead with consent
    assert acts.loc["c1", "action_id"] == "batch_coupon"
    from serving.access import audit  # the export's audit line (the tests' private trail): files and every id

    line = audit.query(path=audit.audit_path())[-1]
    assert (line["action"], line["detail"]["command"]) == ("export_lists", "actions")
    assert str(out.resolve()) in line["detail"]["files"] and line["customers_total"] == line["detail"]["rows"] > 0
    counts = pd.read_csv(tmp_path / "actions_counts.csv", encoding="utf-8-sig")
    assert counts["customers"].sum() == 120 and counts.iloc[0]["action_id"] == "service_only"
    assert counts.set_index("action_id").loc["service_only", "customers"] == 24
