"""`crmscore train table` on the real Olist marketing funnel: a lead (MQL) converted when its mql_id is
among the closed deals. Only lead-table fields are features; the split is out-of-time on first contact."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import typer
from typer.testing import CliRunner

from tests.conftest import shared_file

FAST_CONFIG = """\
candidates: [logreg, xgboost]
xgb_search: {n_trials: 1, n_estimators: [200], max_depth: [3], learning_rate: [0.06], subsample: [0.8],
             colsample_bytree: [0.8], min_child_weight: [5.0]}
"""


def _cli() -> typer.Typer:
    from serving.cli.table import register

    app, train = typer.Typer(), typer.Typer()
    register(train)
    app.add_typer(train, name="train")
    return app


def test_olist_lead_conversion_out_of_time(shared_data: Path, tracking_uri: str, tmp_path: Path) -> None:
    from mlflow import MlflowClient

    leads = pd.read_csv(shared_file(shared_data, "olist_funnel/olist_marketing_qualified_leads_dataset.csv"), dtype=str)
    deals = pd.read_csv(shared_file(shared_data, "olist_funnel/olist_closed_deals_dataset.csv"), dtype=str)
    # only the lead table's own fields: every closed-deal column exists only for won leads (a leak)
    table = leads[["mql_id", "first_contact_date", "landing_page_id", "origin"]].assign(
        converted=np.where(leads["mql_id"].isin(set(deals["mql_id"])), "yes", "no")
    )
    path = tmp_path / "olist_leads.csv"
    table.to_csv(path, index=False)
    cfg = tmp_path / "table.yaml"
    cfg.write_text(FAST_CONFIG)
    res = CliRunner().invoke(
        _cli(),
        ["train", "table", "--table", str(path), "--target", "converted", "--id", "mql_id",
         "--time-col", "first_contact_date", "--name", "olist_leads", "--config", str(cfg)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "out-of-time test" in res.output

    client = MlflowClient()
    mv = client.get_model_version_by_alias("olist_leads", "champion")
    run = client.get_run(mv.run_id)
    m = run.data.metrics
    print(
        f"\nOlist leads, out-of-time test from {run.data.params['split.test_from'][:10]} "
        f"({int(m['test_n_rows'])} leads, base rate {m['test_base_rate']:.1%}, {run.data.params['best_candidate']}): "
        f"ROC-AUC {m['test_roc_auc']:.4f}, top-20% capture {m['test_capture_top20']:.1%}, "
        f"PR-AUC {m['test_pr_auc']:.4f}"
    )
    assert m["test_roc_auc"] > 0.5
    assert m["test_capture_top20"] > 0.2  # better than contacting leads at random
