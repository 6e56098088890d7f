"""POST /recommend and POST /next_action on the real service over HTTP, and the associations planted in the
demo data recovered.

One module server: the session registry (``crm_registry``: lead and churn champions on generated data) copied,
``cross_sell`` trained into the copy on the same data dir (its ``order_items`` carry the planted associations),
served with ``--data`` so customers are looked up by id.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pandas as pd
import pytest

from tests.integration.conftest import Registry, Server, copy_registry, keep_mlflow_globals, running_server

pytestmark = pytest.mark.slow

#: basket-level rules with thresholds low enough for the small demo data
RULES = {"level": "basket", "min_support": 0.002, "min_confidence": 0.1, "min_lift": 1.5}


def test_planted_associations_are_recovered_from_demo_data(crm_registry: Registry):
    from training.cross_sell import RuleThresholds, Vocabulary, association_rules, load_lines

    planted = pd.read_parquet(crm_registry.data / "truth" / "associations.parquet")
    assert len(planted) >= 5
    lines = load_lines(crm_registry.data)
    rules = association_rules(lines, Vocabulary.of(lines), RuleThresholds(**RULES))
    best = rules.sort_values(["lift", "consequent"], ascending=[False, True]).drop_duplicates("antecedent")
    best = best.set_index("antecedent")
    for a, b in zip(planted["antecedent"], planted["consequent"], strict=True):
        assert a in best.index, f"no rule from planted antecedent {a}"
        assert best.loc[a, "consequent"] == b, f"{a}: strongest consequent {best.loc[a, 'consequent']}, planted {b}"
        assert best.loc[a, "lift"] > 3


@pytest.fixture(scope="module")
def xs(crm_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Registry, str]]:
    from training.cross_sell import CrossSellConfig
    from training.cross_sell_job import train_cross_sell

    root = tmp_path_factory.mktemp("xs_svc")
    reg = copy_registry(crm_registry, root / "reg")
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", reg.uri)
        mp.setenv("MLFLOW_REGISTRY_URI", reg.uri)
        mp.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
        mp.chdir(reg.root)
        # one grid point: the fixture serves a model, the grid is tested elsewhere
        cfg = CrossSellConfig.model_validate({"rules": RULES, "model": {"own": ["repeat"], "beta": [0.3]}})
        result = train_cross_sell(reg.data, cfg)
    assert result.promoted
    env = {"CRMSCORE_DATA_DIR": str(reg.data), "CRMSCORE_PIN_MODELS": "1"}
    with running_server(reg, root / "svc", env) as s:
        yield s, reg, result.version


def _post(s: Server, path: str, body: object, auth: bool = True) -> httpx.Response:
    return httpx.post(f"{s.url}{path}", json=body, headers=s.headers if auth else {}, timeout=60)


def _paid_lines(reg: Registry) -> pd.DataFrame:
    from training.cross_sell import load_lines

    return load_lines(reg.data)


def test_recommend_a_known_customer_with_evidence_leaving_out_recent_purchases(xs):
    s, reg, version = xs
    lines = _paid_lines(reg)
    # a customer with several baskets: its last day's products are recent, so left out
    per = lines.groupby("customer_id")["basket"].nunique()
    cid = str(per[per >= 3].index[0])
    mine = lines[lines["customer_id"] == cid]
    last = mine["ts"].max()
    recent = set(mine.loc[mine["ts"] > last - pd.Timedelta(days=30), "sku"])
    r = _post(s, "/recommend", {"customer_id": cid, "k": 5})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["model"] == "cross_sell" and body["model_version"] == version
    assert body["customer_id"] == cid and body["history_lines"] == len(mine) and body["excluded_days"] == 30
    recs = body["recommendations"]
    assert [x["rank"] for x in recs] == list(range(1, len(recs) + 1)) and 0 < len(recs) <= 5
    assert not recent & {x["sku"] for x in recs}
    assert all(x["evidence"] for x in recs)
    scores = [x["score"] for x in recs]
    assert scores == sorted(scores, reverse=True)
    # nothing left out: the customer's recent products may come back
    r0 = _post(s, "/recommend", {"customer_id": cid, "k": 5, "exclude_days": 0})
    assert r0.status_code == 200 and r0.json()["excluded_days"] == 0


def test_recommend_from_sent_purchases_finds_the_planted_partner(xs):
    s, _, _ = xs
    body = {
        "customer_id": "walk-in-1",
        "purchases": [{"sku": "M01", "ts": "2025-06-01T10:00:00", "order_id": "x1"}],  # 奶粉, planted → 纸尿裤
        "k": 3,
    }
    r = _post(s, "/recommend", body)
    assert r.status_code == 200, r.text
    recs = r.json()["recommendations"]
    assert "M01" not in {x["sku"] for x in recs}  # bought within the last 30 days
    top = {x["sku"]: x for x in recs}
    assert "M02" in top, recs
    assert "纸尿裤" in top["M02"]["evidence"] and "奶粉" in top["M02"]["evidence"]


def test_recommend_refuses_bad_input_naming_the_field(xs):
    s, _, _ = xs
    r = _post(s, "/recommend", {"customer_id": "no-such-customer"})
    assert r.status_code == 404 and r.json()["error"].startswith("customer_id:")
    for body, field in (
        ({"k": 3}, "customer_id"),
        ({"customer_id": "C00000001", "k": 0}, "k"),
        ({"customer_id": "C00000001", "exclude_days": -1}, "exclude_days"),
        ({"customer_id": "C1", "purchases": [{"sku": "M01", "ts": "yesterday"}]}, "purchases[0].ts"),
        ({"customer_id": "C1", "purchases": [{"ts": "2025-06-01T10:00:00"}]}, "purchases[0].sku"),
        ({"customer_id": "C1", "purchases": [{"sku": "M01", "ts": "9999-12-31T00:00:00"}]}, "purchases[0].ts"),
        ({"customer_id": "C00000001", "as_of": "0001-01-01T00:00:00"}, "as_of"),
        ({"customer_id": "C1", "name": "张三"}, "name"),
    ):
        r = _post(s, "/recommend", body)
        assert r.status_code == 422, (body, r.text)
        assert field in r.json()["error"], (field, r.json())
    assert _post(s, "/recommend", {"customer_id": "C1"}, auth=False).status_code == 401


def test_next_action_precedence_consent_and_reasons(xs):
    s, _, _ = xs
    customers = [
        # an A-grade lead without consent: service only (consent comes first)
        {"customer_id": "a", "lead_grade": "A", "marketing_consent": False},
        # unknown consent counts as none
        {"customer_id": "b", "lead_grade": "A"},
        # important and at risk outranks an A-grade lead
        {
            "customer_id": "c",
            "lead_grade": "A",
            "churn_grade": "B",
            "value_tier": "important",
            "marketing_consent": True,
        },
        {"customer_id": "d", "lead_grade": "A", "marketing_consent": True},
        {"customer_id": "e", "lead_grade": "C", "marketing_consent": True},
        {"customer_id": "f", "recency_days": 200, "marketing_consent": True},
        {"customer_id": "g", "recency_days": 20, "marketing_consent": True, "tags": ["vip"]},
    ]
    r = _post(s, "/next_action", {"customers": customers})
    assert r.status_code == 200, r.text
    got = {x["customer_id"]: x for x in r.json()["results"]}
    assert [x["customer_id"] for x in r.json()["results"]] == list("abcdefg")
    assert {k: v["action_id"] for k, v in got.items()} == {
        "a": "service_only", "b": "service_only", "c": "retention_call", "d": "sales_call_24h",
        "e": "batch_coupon", "f": "win_back", "g": "no_action",
    }  # fmt: skip
    assert got["a"]["marketing"] is False and got["d"]["marketing"] is True
    assert "电销" in got["d"]["action"] and got["c"]["reason"] == "important customer with high churn risk"


def test_next_action_refuses_bad_input_naming_the_field(xs):
    s, _, _ = xs
    for body, field in (
        ({"customers": []}, "customers"),
        ({"customers": [{"customer_id": "a", "lead_grade": "E"}]}, "customers[0].lead_grade"),
        ({"customers": [{"customer_id": "a", "recency_days": -1}]}, "customers[0].recency_days"),
        ({"customers": [{"customer_id": "a", "phone": "13800000000"}]}, "customers[0].phone"),
        ({"customers": [{"customer_id": "a"}, {"customer_id": "a"}]}, "customers[1].customer_id"),
    ):
        r = _post(s, "/next_action", body)
        assert r.status_code == 422, (body, r.text)
        assert field in r.json()["error"], (field, r.json())
    assert _post(s, "/next_action", {"customers": [{"customer_id": "a"}]}, auth=False).status_code == 401


def test_ui_next_steps_of_a_known_customer(xs):
    s, reg, version = xs
    cid = str(_paid_lines(reg)["customer_id"].iloc[0])
    r = _post(s, "/ui/api/next_steps", {"customer_id": cid})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["customer_id"] == cid
    assert body["action"]["action_id"] and body["action"]["reason"]
    assert body["recommendations"]["model_version"] == version and body["recommendations"]["recommendations"]
    assert _post(s, "/ui/api/next_steps", {"customer_id": "nobody"}).status_code == 404
    assert _post(s, "/ui/api/next_steps", {"customer_id": cid}, auth=False).status_code == 401
