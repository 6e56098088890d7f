"""The demo generator's randomised coupon campaign end to end: the planted effect recovered on held-out rows,
`crmscore train uplift --data DIR` (skops, trusted types), POST /coupon_uplift and POST /route_lead on the real
server over HTTP, and `crmscore score --model coupon_uplift@champion`.

One module-scoped data dir (4,000 demo customers, ~1,300 in the campaign) and one registry: a copy of the session
``crm_registry`` (lead and churn) plus ``coupon_uplift`` trained once by the command.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import ROOT, keep_mlflow_globals
from tests.integration.conftest import Registry, Server, copy_registry, running_server


@pytest.fixture(scope="module")
def coupon_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from features.synth import generate_crm_data, write_crm_data

    out = tmp_path_factory.mktemp("coupon_demo") / "data"
    write_crm_data(generate_crm_data(4000, 420, 5), out)
    return out


@pytest.fixture(scope="module")
def campaign(coupon_data: Path):
    from features.io import load_tables
    from training.uplift_crm import campaign_table

    return campaign_table(load_tables(coupon_data))


def test_campaign_is_randomised_and_point_in_time(campaign, coupon_data: Path) -> None:
    from training.uplift_crm import ARM_COLUMN, OUTCOME_COLUMN

    f = campaign.frame
    assert campaign.campaign == "CMP-RCT-COUPON" and campaign.window_days == 14
    arms = f[ARM_COLUMN].value_counts()
    assert set(arms.index) == {"treated", "control"} and abs(arms["treated"] - arms["control"]) < 0.1 * len(f)
    assert f["customer_id"].is_unique and f[OUTCOME_COLUMN].isin([0, 1]).all()
    # features are taken before the send: the campaign's own touches are not counted in them
    touches = pd.read_parquet(coupon_data / "marketing_touches.parquet")
    mine = touches[touches["campaign_id"].astype(str).str.startswith("CMP-RCT-COUPON")]
    assert (mine["sent_at"] >= campaign.sent_at).all()
    truth = pd.read_parquet(coupon_data / "truth" / "coupon_uplift.parquet")
    assert set(truth["customer_id"]) == set(f["customer_id"])


def test_planted_effect_is_recovered_on_the_held_out_half(campaign, coupon_data: Path) -> None:
    """Every learner, fitted on one half, ranks the other half better than random targeting (Qini area > 0, uplift
    in the top 30% above the average effect) and agrees with the planted τ."""
    from training.tabular import TableFeaturizer
    from training.uplift import LEARNERS, UpliftModel, average_effect, prepare_uplift_table, qini_area, uplift_at
    from training.uplift_crm import ARM_COLUMN, OUTCOME_COLUMN, feature_kinds

    X, t, y, _, _ = prepare_uplift_table(campaign.frame, ARM_COLUMN, OUTCOME_COLUMN, control="control")
    tau = pd.read_parquet(coupon_data / "truth" / "coupon_uplift.parquet").set_index("customer_id")["tau"]
    tau = tau.reindex(X["customer_id"].astype(str)).to_numpy()
    half = np.random.default_rng(0).random(len(t)) < 0.5
    ate = average_effect(t[~half], y[~half])
    assert ate > 0.03  # the coupon works on average
    for learner in LEARNERS:
        feat = TableFeaturizer(id_column="customer_id", column_kinds=feature_kinds(X))
        m = UpliftModel(learner, seed=1, params={"n_estimators": 100}).fit(X[half], t[half], y[half], feat)
        u = m.predict(X[~half])
        assert qini_area(u, t[~half], y[~half]) > 0, learner
        assert uplift_at(u, t[~half], y[~half], 0.3) > ate, learner
        assert np.corrcoef(u, tau[~half])[0, 1] > 0.3, learner
        # recent buyers (planted τ 0) get less uplift than lapsed ones (τ 0.3–0.6)
        assert u[tau[~half] == 0].mean() < u[tau[~half] >= 0.3].mean(), learner


# ------------------------------------------------------------------------------------ the command
@pytest.fixture(scope="module")
def uplift_registry(crm_registry: Registry, coupon_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """crm_registry's lead and churn models plus coupon_uplift v1 from `crmscore train uplift --data`."""
    from serving.cli.main import app

    reg = copy_registry(crm_registry, tmp_path_factory.mktemp("uplift_registry"))
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", reg.uri)
        mp.setenv("MLFLOW_REGISTRY_URI", reg.uri)
        mp.chdir(reg.root)
        res = CliRunner().invoke(app, ["train", "uplift", "--data", str(coupon_data), "--bootstrap", "0", "--json"])
        assert res.exit_code == 0, res.output
        got = json.loads(res.stdout)  # --json: one object, the campaign and the uplift result
        assert (got["campaign"], got["model_name"], got["version"]) == ("CMP-RCT-COUPON", "coupon_uplift", "1")
        assert got["promoted"] and got["decision"] == "no champion yet" and "PII" not in res.stdout, res.output
        import dataclasses

        from serving.cli.uplift import _lines
        from training.uplift import UpliftResult

        prose = _lines(UpliftResult(**{f.name: got[f.name] for f in dataclasses.fields(UpliftResult)}))
        assert "coupon_uplift v1" in prose[0] and prose[-1].endswith("promoted — no champion yet"), prose
        import mlflow

        runs = mlflow.search_runs(experiment_names=["crmscore-uplift"])
        assert set(runs["tags.mlflow.runName"]) >= {"t_learner", "class_transform", "x_learner", "s_learner"}
        reg.versions["coupon_uplift"] = "1"
    return reg


def test_uplift_model_is_logged_with_skops_and_loads_with_the_trusted_types(uplift_registry: Registry) -> None:
    import mlflow

    from serving.http.loader import check_trusted, load_scorer_artifact

    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mlflow.set_tracking_uri(uplift_registry.uri)
        mlflow.set_registry_uri(uplift_registry.uri)
        local = mlflow.artifacts.download_artifacts(artifact_uri="models:/coupon_uplift/1")
        flavor = check_trusted(local)
        assert flavor["serialization_format"] == "skops"
        assert "training.uplift.UpliftModel" in flavor["skops_trusted_types"]
        model = load_scorer_artifact(local)
    from training.uplift import LEARNERS

    assert model.learner in LEARNERS


# ------------------------------------------------------------------------------------------- HTTP
@pytest.fixture(scope="module")
def uplift_server(uplift_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    env = {"CRMSCORE_PIN_MODELS": "1", "CRMSCORE_ROUTING_CONFIG": str(ROOT / "configs" / "routing.yaml")}
    with running_server(uplift_registry, tmp_path_factory.mktemp("uplift_svc"), env) as s:
        yield s


def _rows(campaign, n: int) -> list[dict]:
    from training.uplift_crm import ARM_COLUMN, OUTCOME_COLUMN

    f = campaign.frame.drop(columns=[ARM_COLUMN, OUTCOME_COLUMN]).head(n)
    return json.loads(f.to_json(orient="records"))


def test_coupon_uplift_over_http(uplift_server: Server, campaign) -> None:
    rows = _rows(campaign, 6)
    body = {"customers": [{"id": r.pop("customer_id"), "features": r} for r in rows]}
    r = httpx.post(f"{uplift_server.url}/coupon_uplift", json=body, headers=uplift_server.headers, timeout=60)
    assert r.status_code == 200, r.text
    out = r.json()
    assert out["model"] == "coupon_uplift" and out["model_version"] == "1"
    res = out["results"]
    assert [x["id"] for x in res] == [c["id"] for c in body["customers"]]
    assert all(-1 <= x["uplift"] <= 1 for x in res)
    assert sorted(x["rank"] for x in res) == list(range(1, 7))
    best = min(res, key=lambda x: x["rank"])
    assert best["uplift"] == max(x["uplift"] for x in res)
    assert any(x["reasons"]["positive"] or x["reasons"]["negative"] for x in res)
    info = httpx.get(f"{uplift_server.url}/model_info", headers=uplift_server.headers, timeout=30).json()
    assert info["models"]["uplift"]["loaded"] and info["models"]["uplift"]["name"] == "coupon_uplift"
    assert "days_since_last_order" in info["models"]["uplift"]["features"]
    assert "qini_area" in info["models"]["uplift"]["metrics"]


@pytest.mark.parametrize(
    ("features", "status", "message"),
    [
        ({"no_such_feature": 1}, 422, "customers[0].features: unknown feature(s) no_such_feature"),
        ({"age": "old"}, 422, "customers[0].features.age: must be a number"),
        ({"age": 1e308}, 422, "32-bit floats"),
    ],
)
def test_coupon_uplift_bad_input_names_the_field(uplift_server: Server, features, status, message) -> None:
    body = {"customers": [{"id": "c1", "features": features}]}
    r = httpx.post(f"{uplift_server.url}/coupon_uplift", json=body, headers=uplift_server.headers, timeout=60)
    assert r.status_code == status, r.text
    assert message in r.json()["error"]


def test_new_endpoints_need_the_api_key(uplift_server: Server) -> None:
    for path, body in (("/coupon_uplift", {"customers": []}), ("/route_lead", {"lead": {"lead_id": "x"}})):
        assert httpx.post(f"{uplift_server.url}{path}", json=body, timeout=30).status_code == 401


def _route(server: Server, body: dict) -> httpx.Response:
    return httpx.post(f"{server.url}/route_lead", json=body, headers=server.headers, timeout=30)


def test_route_lead_over_http(uplift_server: Server) -> None:
    # 2025-06-02 is a Monday; configs/routing.yaml: r001 (上海, retail, 20/day) and r002 (上海, manufacturing, 15)
    lead = {"lead_id": "L1", "city": "上海", "industry": "retail", "grade": "A", "score": 91}
    r = _route(uplift_server, {"lead": lead, "as_of": "2025-06-02"})
    assert r.status_code == 200, r.text
    assert r.json() == {"lead_id": "L1", "owner_id": "r001", "team": "east", "rule": "territory+skill",
                        "reason": "", "grade": "A"}
    # r001 already has its 20 leads today and r005 ('*', 40/day) 30: r002 has the largest share free
    today = {"r001": 20, "r005": 30}
    r = _route(uplift_server, {"lead": lead, "as_of": "2025-06-02", "assigned_today": today})
    assert r.json()["owner_id"] == "r002" and r.json()["rule"] == "territory"
    # an existing owner is kept; an unknown territory goes to the '*' inside-sales rep; on Sunday nobody works
    r = _route(uplift_server, {"lead": {**lead, "owner_id": "r777"}, "as_of": "2025-06-02"})
    assert r.json()["owner_id"] == "r777" and r.json()["rule"] == "existing_owner"
    r = _route(uplift_server, {"lead": {"lead_id": "L2", "city": "拉萨"}, "as_of": "2025-06-02"})
    assert r.json()["owner_id"] == "r005"
    r = _route(uplift_server, {"lead": lead, "as_of": "2025-06-01"})
    assert r.json()["owner_id"] is None and "works on sun" in r.json()["reason"]
    # an existing owner who is not a configured rep has no team: null, and the OpenAPI page says it may be
    r = _route(uplift_server, {"lead": {**lead, "owner_id": "r777"}, "as_of": "2025-06-02"})
    assert r.json()["team"] is None
    doc = httpx.get(f"{uplift_server.url}/docs.json", timeout=30).json()
    answer = doc["paths"]["/route_lead"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
    props = answer["properties"] if "properties" in answer else doc["components"]["schemas"][
        answer["$ref"].rsplit("/", 1)[-1]]["properties"]
    assert props["team"].get("nullable") is True and props["owner_id"].get("nullable") is True


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"lead": {"lead_id": "L1", "city": "上海"}, "as_of": "not a date"}, "as_of"),
        ({"lead": {"lead_id": "L1", "city": "上海"}, "assigned_today": {"nobody": 1}}, "unknown rep id(s) nobody"),
        ({"lead": {"lead_id": "L1"}, "assigned_today": {"r001": -1}}, "assigned_today"),
        ({"lead": {"city": "上海"}}, "lead_id"),
    ],
)
def test_route_lead_bad_input_names_the_field(uplift_server: Server, body: dict, message: str) -> None:
    r = _route(uplift_server, body)
    assert r.status_code == 422, r.text
    assert message in r.text


# ------------------------------------------------------------------------------------------ batch
def test_score_coupon_uplift_in_batch(uplift_registry: Registry, campaign, tmp_path: Path) -> None:
    from serving.cli.main import app
    from training.uplift_crm import ARM_COLUMN, OUTCOME_COLUMN

    f = campaign.frame.drop(columns=[ARM_COLUMN, OUTCOME_COLUMN]).head(50).copy()
    f["age"] = f["age"].astype(object)
    f.loc[f.index[3], "age"] = "abc"  # unreadable number → rejected
    f.loc[f.index[4], "customer_id"] = ""  # blank id → rejected
    f = pd.concat([f, f.iloc[[10]]])  # a repeated id → one duplicate
    src, out = tmp_path / "customers.csv", tmp_path / "ranked.csv"
    f.to_csv(src, index=False)
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", uplift_registry.uri)
        mp.setenv("MLFLOW_REGISTRY_URI", uplift_registry.uri)
        args = ["score", "--model", "coupon_uplift@champion", "--input", str(src), "--output", str(out)]
        res = CliRunner().invoke(app, [*args, "--reasons", "2", "--sort"])
    assert res.exit_code == 0, res.output
    assert "rows in 51 = scored 48 + rejected 2 + duplicates 1" in res.output, res.output
    ranked = pd.read_csv(out)
    assert list(ranked.columns[:4]) == ["customer_id", "uplift", "rank", "decile"]
    assert ranked["rank"].tolist() == list(range(1, 49)) and ranked["uplift"].is_monotonic_decreasing
    assert ranked["reasons_for"].notna().any() or ranked["reasons_against"].notna().any()
    rejects = pd.read_csv(tmp_path / "ranked.rejects.csv")
    assert set(rejects["reason"]) == {"age: not a number", "blank id (customer_id)"}



@pytest.fixture(scope="module")
def uplift_ranked(uplift_registry: Registry, coupon_data: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`crmscore features` at the demo's cut-off, then `crmscore score --model coupon_uplift@champion` on them."""
    from serving.cli.main import app

    d = tmp_path_factory.mktemp("uplift_ranked")
    feats, ranked = d / "features.parquet", d / "ranked.csv"
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", uplift_registry.uri)
        mp.setenv("MLFLOW_REGISTRY_URI", uplift_registry.uri)
        for args in (
            ["features", "--data", str(coupon_data), "--as-of", "2025-05-31", "--out", str(feats)],
            ["score", "--model", "coupon_uplift@champion", "--input", str(feats), "--output", str(ranked)],
        ):
            res = CliRunner().invoke(app, args)
            assert res.exit_code == 0, (args[0], res.output)
    return ranked


def test_next_best_action_rules_read_the_uplift(uplift_ranked: Path, coupon_data: Path, tmp_path: Path) -> None:
    """`crmscore score` with the uplift model, then `crmscore actions --scores coupon=FILE` with `uplift > x`."""
    from serving.cli.main import app

    actions, cfg = tmp_path / "actions.csv", tmp_path / "actions.yaml"
    shipped = (ROOT / "configs" / "actions.yaml").read_text(encoding="utf-8")
    cfg.write_text(
        "rules:\n  - {name: coupon, action: coupon, channel: sms, reason: the coupon changes them most, "
        'rule: "uplift > 0.1"}\n' + shipped[shipped.index("default:"):],
        encoding="utf-8",
    )
    args = ["actions", "--data", str(coupon_data), "--as-of", "2025-05-31", "--scores", f"coupon={uplift_ranked}",
            "--config", str(cfg), "--out", str(actions)]  # fmt: skip
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    scored = pd.read_csv(uplift_ranked).set_index("customer_id")["uplift"]
    chosen = pd.read_csv(actions).set_index("customer_id")["action_id"]
    assert (chosen == "coupon").any() and (chosen != "coupon").any()
    pd.testing.assert_series_equal(chosen.eq("coupon"), scored.reindex(chosen.index).gt(0.1), check_names=False)


def test_tags_and_audiences_read_the_uplift(uplift_ranked: Path, coupon_data: Path, tmp_path: Path) -> None:
    """`crmscore tags apply --scores coupon=FILE` with a tag rule on `uplift > x` (rank and decile prefixed), then
    `crmscore audience export` on the tag and on `uplift` directly: the same customers as the scored file says."""
    from serving.cli.main import app

    tags_yaml, tags_out = tmp_path / "tags.yaml", tmp_path / "tags"
    tags_yaml.write_text(
        "tags:\n  - {name: 发券对象, en: Coupon target, kind: rule, rule: \"uplift > 0.1 and coupon_decile <= 5\"}\n",
        encoding="utf-8",
    )
    runner = CliRunner()
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("CRMSCORE_KEY", raising=False)  # the local operator (admin) exports
        mp.setenv("CRMSCORE_AUDIT_FILE", str(tmp_path / "audit.jsonl"))
        res = runner.invoke(app, ["tags", "apply", "--data", str(coupon_data), "--as-of", "2025-05-31",
                                  "--scores", f"coupon={uplift_ranked}", "--config", str(tags_yaml),
                                  "--out", str(tags_out)])  # fmt: skip
        assert res.exit_code == 0, res.output
        lists = {}
        for key, where in (("tag", "tag:发券对象"), ("rule", "uplift > 0.1 and coupon_decile <= 5")):
            lists[key] = tmp_path / f"{key}.csv"
            res = runner.invoke(app, ["audience", "export", "--data", str(coupon_data), "--tags", str(tags_out),
                                      "--where", where, "--purpose", "service", "--columns", "uplift",
                                      "--out", str(lists[key]), "--no-mlflow"])  # fmt: skip
            assert res.exit_code == 0, (where, res.output)
    scored = pd.read_csv(uplift_ranked).set_index("customer_id")
    want = set(scored.index[(scored["uplift"] > 0.1) & (scored["decile"] <= 5)].astype(str))
    assert want and len(want) < len(scored)
    tagged = pd.read_parquet(tags_out / "tags.parquet")
    assert set(tagged.loc[tagged["tag"] == "发券对象", "customer_id"].astype(str)) == want
    for key, path in lists.items():
        got = pd.read_csv(path, dtype={"customer_id": str}).set_index("customer_id")
        assert set(got.index) == want, key
        assert (got["uplift"] > 0.1).all(), key


# ------------------------------------------------------------------------------------ property-based
@pytest.mark.parametrize("label", ["POST /coupon_uplift", "POST /route_lead"])
@pytest.mark.parametrize("positive", [True, False], ids=["valid", "invalid"])
def test_new_endpoints_conform_to_the_openapi_document(uplift_server: Server, label: str, positive: bool) -> None:
    """Schemathesis (as tests/integration/test_schemathesis.py): generated valid and invalid bodies never get a 5xx
    and every documented answer matches its schema."""
    import schemathesis
    from hypothesis import HealthCheck, given, settings
    from schemathesis import GenerationMode
    from schemathesis.checks import not_a_server_error
    from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

    schema = schemathesis.openapi.from_url(f"{uplift_server.url}/docs.json", timeout=60)
    op = next(r.ok() for r in schema.get_all_operations() if f"{r.ok().method.upper()} {r.ok().path}" == label)
    mode = GenerationMode.POSITIVE if positive else GenerationMode.NEGATIVE
    checks = [not_a_server_error, response_schema_conformance, content_type_conformance]

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True,
              database=None)  # fmt: skip
    def run(case) -> None:
        r = case.call_and_validate(base_url=uplift_server.url, headers=uplift_server.headers, checks=checks, timeout=60)
        assert r.status_code < 500, (label, r.status_code, r.text[:300])

    run()
