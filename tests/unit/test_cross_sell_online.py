"""The online path of POST /recommend (``OnlineRecommender``) gives, per customer, what the batch
``crmscore recommend`` function gives: the same products in the same order, scores and evidence sentences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from training.cross_sell import ItemItemModel, RuleThresholds, association_rules
from training.cross_sell_job import recommend
from training.cross_sell_online import OnlineRecommender

T0 = pd.Timestamp("2025-01-01")


def _lines(n_customers: int = 60, seed: int = 4) -> pd.DataFrame:
    """Random baskets over 12 products with A → B and C → D planted; two-year window."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(n_customers):
        for o in range(int(rng.integers(1, 7))):
            day = int(rng.integers(0, 400))
            items = list(rng.choice(list("ACEFGHIJKL"), size=int(rng.integers(1, 4)), replace=False))
            items += ["B"] if "A" in items and rng.random() < 0.7 else []
            items += ["D"] if "C" in items and rng.random() < 0.7 else []
            for sku in items:
                rows.append(
                    {
                        "customer_id": f"c{c}",
                        "basket": f"c{c}-{o}",
                        "ts": T0 + pd.Timedelta(days=day),
                        "sku": sku,
                        "product_name": f"商品{sku}",
                    }
                )
    return pd.DataFrame(rows)


@pytest.mark.parametrize(
    ("own", "exclude", "level"), [("repeat", 30, "customer"), ("decayed", 0, "basket"), ("repeat", 0, "basket")]
)
def test_online_equals_batch_for_every_customer(own: str, exclude: int, level: str) -> None:
    lines = _lines()
    t = pd.Timestamp(lines["ts"].max())
    model = ItemItemModel.fit(lines, t, 0.7, 120.0, "customer", 5, 1, own=own, beta=0.3)
    model.rules = association_rules(
        lines, model.vocab, RuleThresholds(level=level, min_support=0.02, min_confidence=0.1, min_lift=1.0)
    )
    model.rules_level = level
    assert len(model.rules)
    ids = pd.Index([*sorted(lines["customer_id"].unique()), "nobody"])
    as_of = t - pd.Timedelta(days=20)  # lines after as_of are not read by either path
    batch = recommend(model, lines, ids, as_of, k=6, exclude_recent_days=exclude)
    online = OnlineRecommender(model)
    evidence_kinds = set()
    for cid in ids:
        mine = lines[lines["customer_id"] == cid]
        got = online.recommend(
            mine["sku"].to_numpy(), mine["ts"].to_numpy(), mine["basket"].to_numpy(), as_of, 6, exclude
        )
        want = batch[batch["customer_id"] == cid]
        assert [g["sku"] for g in got] == want["sku"].tolist(), cid
        assert [g["rank"] for g in got] == want["rank"].tolist()
        assert [g["score"] for g in got] == pytest.approx(want["score"].tolist(), rel=1e-9, abs=1e-12)
        assert [g["evidence"] for g in got] == want["evidence"].tolist(), cid
        evidence_kinds |= {g["evidence"].split(" ")[0] for g in got}
    # every kind of sentence was compared: bought before, a rule, neighbours, popularity (no history)
    assert {"bought", "popular:"} <= evidence_kinds
    assert any("base rate" in e for e in batch["evidence"])


def test_unknown_products_and_later_lines_are_not_read() -> None:
    lines = _lines(20)
    t = pd.Timestamp(lines["ts"].max())
    model = ItemItemModel.fit(lines, t, 0.7, 120.0, "customer", 5, 1, own="repeat")
    online = OnlineRecommender(model)
    ts = np.array([T0, T0 + pd.Timedelta(days=500)], dtype="datetime64[ns]")
    got = online.recommend(
        np.array(["A", "B"], dtype=object), ts, np.array(["o1", "o2"], dtype=object), T0 + pd.Timedelta(days=100), 3, 0
    )
    # B was bought after as_of: not history, so A is the one product "bought before"
    assert got[0]["sku"] == "A" and got[0]["evidence"].startswith("bought it 1× before, last 100 days ago")
    only_unknown = online.recommend(np.array(["ZZZ"], dtype=object), ts[:1], np.array(["o1"], dtype=object), T0, 3)
    assert all(g["evidence"].startswith("popular:") for g in only_unknown)
    assert [g["sku"] for g in only_unknown] == list(model.vocab.skus[np.argsort(-model.popularity, kind="stable")][:3])


def test_service_histories_need_no_customers_table(tmp_path) -> None:
    """A data dir with orders and order lines only (Online Retail's ingest) is enough for /recommend by id."""
    from serving.http.cross_sell import _load_lines
    from training.cross_sell import CrossSellConfig

    orders = pd.DataFrame({"order_id": ["o1", "o2"], "customer_id": ["a", "b"], "ts": [T0, T0], "status": "paid"})
    items = pd.DataFrame({"order_id": ["o1", "o2"], "line": [1, 1], "sku": ["X", "Y"], "quantity": [1.0, 1.0]})
    orders.to_parquet(tmp_path / "orders.parquet")
    items.to_parquet(tmp_path / "order_items.parquet")
    lines, error = _load_lines(str(tmp_path), CrossSellConfig())
    assert error is None and lines is not None
    assert lines.known("a") and not lines.known("c") and list(lines.of("b").skus) == ["Y"]
    pd.DataFrame({"customer_id": ["c"]}).to_parquet(tmp_path / "customers.parquet")  # a customer with no line
    lines, _ = _load_lines(str(tmp_path), CrossSellConfig())
    assert lines is not None and lines.known("c") and len(lines.of("c").skus) == 0
