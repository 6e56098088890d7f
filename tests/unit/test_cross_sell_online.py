"""The online path of POST /recommend (``OnlineRecommender``) gives, per customer, what the batch
``crmscore recommend`` function gives: the same products in the same order, scores and evidence sentences."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from tests.heap import tracked_reachable
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


@pytest.mark.parametrize(("own", "level"), [("repeat", "customer"), ("decayed", "basket")])
def test_prepared_customers_equal_their_lines_read_per_request(own: str, level: str) -> None:
    """The service's start-up aggregation of every customer (``aggregate_all``) gives, through ``recommend_for``,
    the body that reading the customer's lines per request gives, for every customer and request shape: same
    products, bit-identical scores, same evidence, as_of and history_lines; and the batch function agrees."""
    from serving.http.cross_sell import CrossSellState, CustomerLines, recommend_for
    from serving.http.schemas_actions import RecommendRequest

    lines = _lines(50, seed=11)
    t = pd.Timestamp(lines["ts"].max())
    model = ItemItemModel.fit(lines, t, 0.6, 90.0, "customer", 4, 1, own=own, beta=0.2)
    model.rules = association_rules(
        lines, model.vocab, RuleThresholds(level=level, min_support=0.02, min_confidence=0.1, min_lift=1.0)
    )
    model.rules_level = level
    # what the model does not know, a product twice in one basket, a customer with unknown products only, and
    # a basket whose lines have two times (c4-0 exists already: the per-request path only is the reference there)
    extra = pd.DataFrame(
        {
            "customer_id": ["c3", "c3", "c5", "c5", "zz", "c4", "c4"],
            "basket": ["c3-x", "c3-x", "c5-x", "c5-x", "zz-0", "c4-0", "c4-0"],
            "ts": [T0 + pd.Timedelta(days=d) for d in (401, 401, 200, 200, 30, 5, 5)],
            "sku": ["ZZZ", "A", "B", "B", "ZZZ", "B", "B"],
            "product_name": ["?", "商品A", "商品B", "商品B", "?", "商品B", "商品B"],
        }
    )
    lines = pd.concat([lines, extra], ignore_index=True)
    ids = pd.Index([*pd.unique(lines["customer_id"]), "no-lines"])
    online = OnlineRecommender(model)
    prepared = CustomerLines(lines, ids)
    prepared.prepare(online)
    per_request = CustomerLines(lines, ids)
    per_request.prepare(online)
    per_request.purchased = None  # the reference: every request reads the customer's lines
    states = [CrossSellState(name="cross_sell", alias="champion", model=model, online=online, version="1",
                             lines=x) for x in (prepared, per_request)]
    shapes = [(10, None), (3, 0), (12, 400), (1, 30)]
    for cid in ids:
        for k, exclude in shapes:
            req = RecommendRequest.model_construct(customer_id=cid, purchases=None, k=k, exclude_days=exclude,
                                                   as_of=None)
            got, want = (recommend_for(st, req) for st in states)
            assert got == want, (cid, k, exclude)
    # the batch function, as of each customer's last line, agrees too (scores to rounding)
    for cid in ["c0", "c3", "c5", "zz", "no-lines"]:
        body = recommend_for(states[0], RecommendRequest.model_construct(
            customer_id=cid, purchases=None, k=8, exclude_days=30, as_of=None))
        batch = recommend(model, lines, pd.Index([cid]), pd.Timestamp(body["as_of"]), k=8, exclude_recent_days=30)
        recs = body["recommendations"]
        assert [r["sku"] for r in recs] == batch["sku"].tolist(), cid
        assert [r["evidence"] for r in recs] == batch["evidence"].tolist(), cid
        assert [r["score"] for r in recs] == pytest.approx(batch["score"].tolist(), rel=1e-9, abs=1e-12)
    zz = recommend_for(states[0], RecommendRequest.model_construct(
        customer_id="zz", purchases=None, k=3, exclude_days=None, as_of=None))
    assert zz["history_lines"] == 1 and all(r["evidence"].startswith("popular:") for r in zz["recommendations"])


def test_worker_purchase_data_adds_no_object_per_customer_the_garbage_collector_scans() -> None:
    """A worker's /recommend data (lines, prepared products, sku index, sentences) is arrays, one list per text
    column and dicts of strings to numbers, none of which the cyclic collector scans per element: the tracked
    objects a full collection walks do not grow with the customers (measured on Online Retail: 97 for the whole
    cross-sell state in a worker of ~508,000, docs/cross_sell.md "Garbage collection")."""
    from serving.http.cross_sell import CrossSellState, CustomerLines

    counts = []
    for n in (40, 400):
        lines = _lines(n, seed=5)
        t = pd.Timestamp(lines["ts"].max())
        model = ItemItemModel.fit(lines, t, 0.6, 90.0, "customer", 4, 1, own="repeat", beta=0.2)
        model.rules = association_rules(
            lines, model.vocab, RuleThresholds(level="customer", min_support=0.02, min_confidence=0.1, min_lift=1.0)
        )
        online = OnlineRecommender(model)
        data = CustomerLines(lines, pd.Index(pd.unique(lines["customer_id"])))
        data.prepare(online)
        assert len(data.number) == n
        st = CrossSellState(name="cross_sell", alias="champion", model=model, online=online, version="1", lines=data)
        counts.append(tracked_reachable(st))
    # x10 customers: per-customer objects would add hundreds; scipy's CSR matrix may cache a flag or two
    assert counts[1] - counts[0] <= 2 and max(counts) < 200, counts


def test_a_category_model_reads_the_service_data_and_purchases_as_categories(tmp_path) -> None:
    """A model trained with ``item: category``: the service reads its data dir's lines as categories, a request's
    purchases by their ``category``, and a purchase without one is refused naming the field."""
    from serving.http.cross_sell import CrossSellState, _load_lines, recommend_for
    from serving.http.postprocess import RequestError
    from serving.http.schemas_actions import Purchase, RecommendRequest
    from training.cross_sell import CrossSellConfig, load_lines

    orders = pd.DataFrame({"order_id": [f"o{i}" for i in range(6)], "customer_id": ["a", "a", "b", "b", "c", "c"],
                           "ts": [T0 + pd.Timedelta(days=i) for i in range(6)], "status": "paid"})
    cats = ["奶粉", "纸尿裤", "奶粉", "纸尿裤", "奶粉", "玩具"]
    items = pd.DataFrame({"order_id": orders["order_id"], "line": 1, "sku": [f"P{i}" for i in range(6)],
                          "category": cats, "quantity": 1.0})
    orders.to_parquet(tmp_path / "orders.parquet")
    items.to_parquet(tmp_path / "order_items.parquet")
    lines, error = _load_lines(str(tmp_path), CrossSellConfig(), "category")
    assert error is None and lines is not None and sorted(lines.of("a").skus) == ["奶粉", "纸尿裤"]
    data = load_lines(tmp_path, item="category")
    model = ItemItemModel.fit(data, pd.Timestamp(data["ts"].max()), 0.6, 90.0, "customer", 4, 1)
    model.item = "category"
    online = OnlineRecommender(model)
    lines.prepare(online)
    st = CrossSellState(name="cross_sell", alias="champion", model=model, online=online, version="1", lines=lines)
    body = recommend_for(st, RecommendRequest.model_construct(customer_id="c", purchases=None, k=5,
                                                              exclude_days=0, as_of=None))
    assert body["recommendations"] and {r["sku"] for r in body["recommendations"]} <= set(cats)
    bought = [Purchase(sku="P9", category="奶粉", ts=T0 + pd.Timedelta(days=9))]
    body = recommend_for(st, RecommendRequest.model_construct(customer_id="new", purchases=bought, k=5,
                                                              exclude_days=0, as_of=None))
    assert body["history_lines"] == 1 and "纸尿裤" in {r["sku"] for r in body["recommendations"]}
    with pytest.raises(RequestError, match=r"purchases\[1\]\.category"):
        recommend_for(st, RecommendRequest.model_construct(
            customer_id="new", purchases=[*bought, Purchase(sku="P1", ts=T0)], k=5, exclude_days=0, as_of=None))
