"""Real data: UCI Online Retail ingested with order lines (configs/mapping.online_retail.yaml), association rules
and the out-of-time cross-sell evaluation. Skips with the reason when ../shared/data is absent."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

pytestmark = [pytest.mark.realdata, pytest.mark.slow]


@pytest.fixture(scope="module")
def retail_dir(online_retail_ingested: tuple[Path, object]) -> tuple[Path, object]:
    """The session's ingest of Online Retail with its order lines (``online_retail_ingested``)."""
    return online_retail_ingested


def test_order_lines_ingested_with_the_row_invariant(retail_dir):
    out, summary = retail_dir
    t = summary.tables["order_items"]
    assert t.read == 541_909 == t.accepted + t.rejected + t.duplicates
    assert t.reasons == {"unit_price is below the minimum 0": 2}
    assert summary.tables["orders"].accepted == 406_829  # the orders table is as before
    items = pd.read_parquet(out / "order_items.parquet")
    assert items["order_id"].iloc[0] == "536365" and items["line"].iloc[0] == 1


def test_out_of_time_figures_on_online_retail(retail_dir):
    from training.cross_sell import CrossSellConfig, evaluate_split, load_lines

    out, _ = retail_dir
    cfg = CrossSellConfig()
    lines = load_lines(out, cfg.exclude_skus)
    assert lines["customer_id"].nunique() == 4_335
    ev, model = evaluate_split(lines, cfg)
    assert ev.split["as_of"] == "2011-09-10"
    assert (
        pd.Timestamp(ev.split["last_train_ts"]) <= pd.Timestamp("2011-09-10") < pd.Timestamp(ev.split["first_test_ts"])
    )
    m = ev.metrics
    # the figures of docs/cross_sell.md, to the rounding there
    assert m["popularity"]["recall_at_10_all"] == pytest.approx(0.0296, abs=5e-4)
    assert m["personal_top_frequency"]["recall_at_10_all"] == pytest.approx(0.1341, abs=5e-4)
    assert m["item_item"]["recall_at_10_all"] > 3 * m["popularity"]["recall_at_10_all"]
    # the goal: the model beats the stronger baseline (personal top-frequency) on recall@10 over all products
    assert ev.params["own"] == "repeat"
    assert m["item_item"]["recall_at_10_all"] == pytest.approx(0.1384, abs=5e-4)
    assert m["item_item"]["recall_at_10_all"] > m["personal_top_frequency"]["recall_at_10_all"]
    # with past products left out, new-to-customer recall is over twice popularity's
    assert m["item_item_explore"]["recall_at_10_new"] > 2 * m["popularity"]["recall_at_10_new"]
    assert m["item_item_explore"]["recall_at_10_new"] > 1.2 * m["popularity_explore"]["recall_at_10_new"]
    assert len(model.rules) > 1000 and (model.rules["lift"] >= cfg.rules.min_lift).all()
