"""The scoring service over real HTTP: the session's pinned `crmscore serve` subprocess (``limits_server``, shared
with the forecast-endpoint, hostile-input, security, schemathesis and soak modules), so no server of its own.

Covers: one and many leads (precomputed features and raw profile + events), batch/online agreement,
exact reasons, every bad-input class (4xx naming the field, never a 500), API keys, PII never returned,
logged or recorded, /model_info, /metrics, /drift, /segment without a segments model, drift records.
"""

from __future__ import annotations

import json
import math
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from serving.http.schemas import ModelInfo, ScoreResponse
from tests.integration.conftest import API_KEYS, LIMITS_MAX_BATCH, BuiltBento, Registry, Server

pytestmark = pytest.mark.slow

PII = {"name": "王秘密PIIname", "phone": "13999988877", "email": "secret.pii@example.com", "address": "秘密路42号PII"}
MAX_BATCH = LIMITS_MAX_BATCH


@pytest.fixture(scope="module")
def server(limits_server: Server) -> Server:
    """The session's server with the small registry, models pinned and a batch limit of ``MAX_BATCH`` leads (one
    start-up less; the checks below hold whatever other modules sent it before)."""
    return limits_server


@pytest.fixture(scope="module")
def client(server: Server) -> httpx.Client:
    """An HTTP client with a valid key."""
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def data(crm_registry: Registry) -> dict[str, Any]:
    """The data dir's tables, a cutoff, and the batch feature table at that cutoff."""
    from features.build import build_features
    from features.io import load_tables

    tables = load_tables(crm_registry.data)
    as_of = pd.Timestamp(tables["orders"]["ts"].max()).normalize()
    feats = build_features(tables, as_of)
    return {"tables": tables, "as_of": as_of, "features": feats}


def _py(v: Any) -> Any:
    if v is None or v is pd.NA or v is pd.NaT:
        return None
    if isinstance(v, pd.Timestamp):
        return v.isoformat()
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and math.isnan(v):
        return None
    return v


def feature_lead(data: dict, cid: str) -> dict[str, Any]:
    """A lead with its batch-computed features (exact floats)."""
    row = data["features"].loc[cid]
    return {"customer_id": cid, "features": {k: _py(v) for k, v in row.items()}}


def profile_lead(data: dict, cid: str, pii: bool = False) -> dict[str, Any]:
    """The same lead as a raw profile plus all its events, scored at the cutoff."""
    t = data["tables"]
    cust = t["customers"].set_index("customer_id").loc[cid]
    profile = {"customer_id": cid, **{k: _py(v) for k, v in cust.items()}}
    if pii:
        profile.update(PII)
    events: dict[str, list] = {}
    for name in ("interactions", "orders", "marketing_touches"):
        df = t[name]
        rows = df[df["customer_id"] == cid].drop(columns="customer_id")
        events[name] = [{k: _py(v) for k, v in r.items()} for r in rows.to_dict("records")]
    return {"profile": profile, "events": events, "as_of": data["as_of"].isoformat()}


def post(client: httpx.Client, path: str, body: Any) -> httpx.Response:
    """POST JSON (or raw bytes)."""
    if isinstance(body, (bytes, str)):
        return client.post(path, content=body, headers={"Content-Type": "application/json"})
    return client.post(path, json=body)


# ------------------------------------------------------------------------------------------ scoring
def test_one_lead_with_features(client: httpx.Client, data: dict, crm_registry: Registry) -> None:
    from training.scores import to_grade, to_score

    cid = data["features"].index[0]
    r = post(client, "/score_leads", {"leads": [feature_lead(data, cid)]})
    assert r.status_code == 200, r.text
    body = ScoreResponse.model_validate(r.json())
    assert body.model == "lead_scoring" and body.model_version == crm_registry.versions["lead_scoring"]
    (res,) = body.results
    assert res.customer_id == cid and 0 < res.probability < 1
    assert res.score == int(to_score([res.probability])[0])
    info = client.get("/model_info").json()
    assert res.grade == str(to_grade([res.score], info["models"]["lead"]["grade_thresholds"])[0])
    assert res.reasons is not None and len(res.reasons.positive) <= 3 and len(res.reasons.negative) <= 3
    assert all(x.contribution > 0 for x in res.reasons.positive)
    assert all(x.contribution < 0 for x in res.reasons.negative)
    assert (res.model, res.model_version) == (body.model, body.model_version)


def test_many_leads_mixed_sources_keep_order(client: httpx.Client, data: dict) -> None:
    ids = list(data["features"].index[:6])
    leads = [feature_lead(data, c) if i % 2 else profile_lead(data, c) for i, c in enumerate(ids)]
    r = post(client, "/predict_churn", {"leads": leads, "reasons": False})
    assert r.status_code == 200, r.text
    body = ScoreResponse.model_validate(r.json())
    assert body.model == "churn_risk"
    assert [x.customer_id for x in body.results] == ids
    assert all(x.reasons is None for x in body.results)


def test_batch_and_online_features_give_the_same_probability(client: httpx.Client, data: dict) -> None:
    ids = list(data["features"].index[10:14])
    by_features = post(client, "/score_leads", {"leads": [feature_lead(data, c) for c in ids]}).json()
    # one profile per request (features.build.build_online_features) and all in one (batched tables)
    singles = [post(client, "/score_leads", {"leads": [profile_lead(data, c)]}).json() for c in ids]
    together = post(client, "/score_leads", {"leads": [profile_lead(data, c) for c in ids]}).json()
    p_feat = [x["probability"] for x in by_features["results"]]
    p_single = [s["results"][0]["probability"] for s in singles]
    p_together = [x["probability"] for x in together["results"]]
    np.testing.assert_allclose(p_single, p_feat, rtol=0, atol=1e-12)
    np.testing.assert_allclose(p_together, p_feat, rtol=0, atol=1e-12)
    assert [x["reasons"] for x in together["results"]] == [x["reasons"] for x in by_features["results"]]


def test_reasons_are_exact_contributions_that_sum_to_the_margin(
    client: httpx.Client, data: dict, crm_registry: Registry, isolated_mlflow: pytest.MonkeyPatch
) -> None:
    monkeypatch = isolated_mlflow
    import mlflow

    monkeypatch.setenv("MLFLOW_TRACKING_URI", crm_registry.uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", crm_registry.uri)
    from training.registry import configure_tracking

    configure_tracking(crm_registry.uri)
    scorer = mlflow.sklearn.load_model(f"models:/lead_scoring/{crm_registry.versions['lead_scoring']}")
    ids = list(data["features"].index[20:25])
    X = data["features"].loc[ids]
    Z = scorer.preprocessor_.transform(X)
    contribs = scorer.contributions_matrix(Z)
    np.testing.assert_allclose(contribs.sum(axis=1), scorer.margin_matrix(Z), atol=1e-4)
    folded = {name: contribs[:, idx].sum(axis=1) for name, idx in scorer.reason_groups()}
    r = post(client, "/score_leads", {"leads": [feature_lead(data, c) for c in ids]})
    np.testing.assert_allclose([x["probability"] for x in r.json()["results"]],
                               scorer.predict_proba(X)[:, 1], atol=1e-9)
    for i, res in enumerate(r.json()["results"]):
        reasons = res["reasons"]["positive"] + res["reasons"]["negative"]
        for reason in reasons:
            assert reason["contribution"] == pytest.approx(folded[reason["feature"]][i], abs=1e-6)
        pos = sorted((v[i] for v in folded.values() if v[i] > 0), reverse=True)[:3]
        assert [x["contribution"] for x in res["reasons"]["positive"]] == pytest.approx(pos, abs=1e-6)


def test_table_input_gives_the_same_scores_as_lead_objects(client: httpx.Client, data: dict) -> None:
    ids = list(data["features"].index[50:56])
    leads = [feature_lead(data, c) for c in ids]
    columns = list(leads[0]["features"])
    table = {"customer_ids": ids, "columns": columns, "rows": [[x["features"][c] for c in columns] for x in leads]}
    a = post(client, "/score_leads", {"leads": leads}).json()
    b = post(client, "/score_leads", {"table": table}).json()
    assert b["results"] == a["results"]
    r = post(client, "/score_leads", {"table": {**table, "rows": table["rows"][:-1]}})
    assert r.status_code == 422 and r.json()["error"].startswith("table: 5 rows for 6 customer_ids")
    r = post(client, "/score_leads", {"leads": leads, "table": table})
    assert r.status_code == 422 and "either 'leads' or 'table'" in r.json()["error"]


def test_unknown_category_is_scored_and_reported(client: httpx.Client, data: dict) -> None:
    lead = feature_lead(data, data["features"].index[0])
    lead["features"]["province"] = "火星省"
    r = post(client, "/score_leads", {"leads": [lead]})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["unknown_categories"] == ["province"]


# ---------------------------------------------------------------------------------------- bad input
def _lead(**features: Any) -> dict:
    return {"leads": [{"customer_id": "x1", "features": features}]}


BAD = [
    pytest.param(_lead(age="old"), 422, "leads[0].features.age", id="string-for-number"),
    pytest.param(_lead(age=[1]), 422, "leads[0].features.age", id="list-value"),
    pytest.param(b'{"leads": [{"customer_id": "x", "features": {"age": NaN}}]}', 422, "leads[0].features.age",
                 id="nan"),
    pytest.param(b'{"leads": [{"customer_id": "x", "features": {"age": Infinity}}]}', 422,
                 "leads[0].features.age", id="infinity"),
    pytest.param(b'{"leads": [{"customer_id": "x", "features": {"age": 1e999}}]}', 422, "leads[0].features.age",
                 id="overflow"),
    pytest.param(_lead(not_a_feature=1.0), 422, "leads[0].features", id="unknown-feature"),
    pytest.param({"leads": [{"features": {"age": 30}}]}, 422, "leads[0]", id="missing-customer-id"),
    pytest.param({"leads": [{"customer_id": "x"}]}, 422, "leads[0]", id="neither-features-nor-profile"),
    pytest.param({"leads": [{"profile": {"customer_id": "x", "age": "thirty"}}]}, 422, "leads[0].profile.age",
                 id="profile-wrong-type"),
    pytest.param({"leads": [{"profile": {"customer_id": "x", "shoe_size": 42}}]}, 422,
                 "leads[0].profile.shoe_size", id="profile-unknown-field"),
    pytest.param({"leads": [{"profile": {"customer_id": "x"}, "events": {"orders": [
        {"ts": "2025-01-01T00:00:00", "amount": 10, "status": "shipped"}]}}]}, 422,
        "leads[0].events.orders[0].status", id="event-bad-status"),
    pytest.param({"leads": [{"profile": {"customer_id": "x"}, "events": {"interactions": [
        {"channel": "web", "event_type": "visit"}]}}]}, 422, "leads[0].events.interactions[0].ts",
        id="event-missing-ts"),
    pytest.param({"leads": []}, 422, "leads", id="empty-list"),
    pytest.param({}, 422, "leads", id="missing-leads"),
    pytest.param(b'{"table": {"customer_ids": ["a"], "columns": ["age"], "rows": [[NaN]]}}', 422,
                 "table.rows[0][0]", id="table-nan"),
    pytest.param({"table": {"customer_ids": ["a"], "columns": ["age"], "rows": [["x"]]}}, 422,
                 "table.rows[0].age", id="table-string-for-number"),
    pytest.param({"table": {"customer_ids": ["a"], "columns": ["age"], "rows": [[1, 2]]}}, 422, "table",
                 id="table-ragged"),
    pytest.param({"leads": "everyone"}, 422, "leads", id="leads-not-a-list"),
    pytest.param([1, 2], 422, "body", id="body-not-an-object"),
    pytest.param(b'{"leads": [', 400, "body", id="malformed-json"),
    pytest.param(b"", 422, "leads", id="empty-body"),
    pytest.param({"leads": [{"customer_id": "x", "features": {}}] * (MAX_BATCH + 1)}, 413, "leads",
                 id="oversized-batch"),
]


@pytest.mark.parametrize(("body", "status", "field"), BAD)
def test_bad_input_gets_a_4xx_naming_the_field(client: httpx.Client, body: Any, status: int, field: str) -> None:
    r = post(client, "/score_leads", body)
    assert r.status_code == status, r.text
    err = r.json()
    assert err["error"].startswith(f"{field}:") or err["error"].startswith(f"{field}[") or field in err["error"]
    assert err["error"].split(":", 1)[1].strip()  # a reason follows the field


def test_bad_content_type_and_segment_input(client: httpx.Client) -> None:
    r = client.post("/score_leads", content=b"leads=1", headers={"Content-Type": "text/plain"})
    assert r.status_code == 415 and "Content-Type" in r.json()["error"]
    r = post(client, "/segment", {"customers": [{"summary": {"frequency": 1.0}}]})
    assert r.status_code == 422 and r.json()["error"].startswith("customers[0]")


def test_no_bad_input_ever_gives_a_500(client: httpx.Client) -> None:
    bodies = [b"null", b"[]", b'"x"', b"{}", b'{"leads": null}', b'{"leads": [null]}', b'{"leads": [1]}',
              b'{"leads": [{"customer_id": 5, "features": {}}]}', b'{"leads": [{"profile": null}]}',
              b'{"leads": [{"profile": {"customer_id": "x", "created_at": "not a date"}}]}',
              b'{"leads": [{"profile": {"customer_id": "x"}, "as_of": 1e30}]}', b"\xff\xfe", b'{"reasons": "maybe"}']
    for b in bodies:
        for path in ("/score_leads", "/predict_churn", "/segment"):
            r = post(client, path, b)
            assert 400 <= r.status_code < 500 or r.status_code == 503, (path, b, r.status_code, r.text)


# ------------------------------------------------------------------------------------------------ auth
def test_scoring_needs_a_valid_key_health_stays_open(server: Server, data: dict) -> None:
    body = {"leads": [feature_lead(data, data["features"].index[0])]}
    with httpx.Client(base_url=server.url, timeout=30) as anon:
        assert anon.post("/score_leads", json=body).status_code == 401
        for bad in ("Bearer nope", "Basic dGVzdA==", f"Bearer {API_KEYS[0]}x", "Bearer"):
            r = anon.post("/score_leads", json=body, headers={"Authorization": bad})
            assert r.status_code == 401, bad
            assert r.headers.get("www-authenticate", "").startswith("Bearer")
        assert anon.get("/model_info").status_code == 401
        assert anon.post("/score_leads", json=body, headers={"Authorization": f"Bearer {API_KEYS[1]}"}).is_success
        for path in ("/healthz", "/livez", "/readyz", "/metrics"):
            assert anon.get(path).status_code == 200, path


# ------------------------------------------------------------------------------------------------- PII
def test_pii_is_never_returned_logged_or_recorded(client: httpx.Client, server: Server, data: dict) -> None:
    from serving.http.records import read_records

    cid = data["features"].index[30]
    r = post(client, "/score_leads", {"leads": [profile_lead(data, cid, pii=True)]})
    assert r.status_code == 200, r.text
    bad = post(client, "/score_leads", {"leads": [{"profile": {**PII, "customer_id": "p", "age": "x"}}]})
    assert bad.status_code == 422
    for text in (r.text, bad.text):
        assert not any(v in text for v in PII.values())
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rec = read_records(server.home, "lead_scoring")
        if (rec["customer_id"] == cid).any():
            break
        time.sleep(0.3)
    assert (rec["customer_id"] == cid).any()
    assert not set(PII) & set(rec.columns)
    files = list((Path(server.home) / "records").rglob("*.parquet"))
    raw = b"".join(f.read_bytes() for f in files)
    assert not any(v.encode() in raw for v in PII.values())
    assert not any(v in server.log_text() for v in PII.values())


# ------------------------------------------------------------------------------------- info & metrics
def test_model_info_reports_versions_training_time_and_metrics(client: httpx.Client, crm_registry: Registry) -> None:
    r = client.get("/model_info")
    assert r.status_code == 200
    info = ModelInfo.model_validate(r.json())
    lead, churn, seg = info.models["lead"], info.models["churn"], info.models["segments"]
    assert lead.loaded and lead.version == crm_registry.versions["lead_scoring"] and lead.source == "registry"
    assert churn.loaded and churn.version == crm_registry.versions["churn_risk"]
    assert lead.trained_at and pd.Timestamp(lead.trained_at) <= pd.Timestamp.now(tz="UTC")
    assert {"roc_auc", "ece"} <= set(lead.metrics)
    assert lead.grade_thresholds and len(lead.grade_thresholds) == 3 and "tenure_days" in lead.features
    assert not seg.loaded and "customer_segments" in seg.error
    assert info.pinned and info.max_batch == MAX_BATCH


def test_segment_without_a_registered_model_is_503(client: httpx.Client) -> None:
    summary = {"recency_days": 3.0, "frequency": 1.0, "monetary": 10.0}
    r = post(client, "/segment", {"customers": [{"customer_id": "c1", "summary": summary}]})
    assert r.status_code == 503
    assert "customer_segments" in r.json()["error"] and "not loaded" in r.json()["error"]


def test_metrics_and_drift(client: httpx.Client, server: Server, data: dict) -> None:
    post(client, "/score_leads", {"leads": [feature_lead(data, data["features"].index[0])]})
    metrics = httpx.get(f"{server.url}/metrics").text
    assert 'crmscore_requests_total{endpoint="/score_leads",model="lead_scoring"}' in metrics
    assert "crmscore_request_latency_seconds_bucket" in metrics
    assert 'crmscore_request_errors_total{endpoint="/score_leads",model="lead_scoring",status="422"}' in metrics
    assert client.get("/drift").json() == {}
    p = Path(server.home) / "drift" / "lead_scoring" / "latest.json"
    p.parent.mkdir(parents=True)
    p.write_text(json.dumps({"share_drifted": 0.1, "as_of": "2025-06-30"}))
    assert client.get("/drift").json() == {"lead_scoring": {"share_drifted": 0.1, "as_of": "2025-06-30"}}


def test_scored_requests_are_recorded_with_their_features(client: httpx.Client, server: Server, data: dict) -> None:
    from serving.http.records import read_records

    ids = list(data["features"].index[40:43])
    since = pd.Timestamp.now(tz="UTC")
    r = post(client, "/predict_churn", {"leads": [feature_lead(data, c) for c in ids], "reasons": False})
    assert r.status_code == 200
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        rec = read_records(server.home, "churn_risk", since=since)
        if len(rec) >= 3:
            break
        time.sleep(0.3)
    rec = rec.set_index("customer_id").loc[ids]
    assert (rec["source"] == "http").all() and (rec["model_name"] == "churn_risk").all()
    np.testing.assert_allclose(rec["probability"], [x["probability"] for x in r.json()["results"]])
    assert list(rec["grade"]) == [x["grade"] for x in r.json()["results"]]
    np.testing.assert_allclose(rec["tenure_days"], data["features"].loc[ids, "tenure_days"])
    assert list(rec["province"]) == list(data["features"].loc[ids, "province"])


def test_openapi_lists_every_endpoint(server: Server) -> None:
    spec = httpx.get(f"{server.url}/docs.json", timeout=30).json()
    assert {"/score_leads", "/predict_churn", "/segment", "/model_info", "/drift"} <= set(spec["paths"])
    schemas = spec["components"]["schemas"]
    assert "Lead" in schemas and "FeatureTable" in schemas and "LeadScore" in schemas


def test_bento_build_serves_without_the_registry(crm_registry: Registry, built_bento: BuiltBento,
                                                tmp_path: Path) -> None:
    """`crmscore bento build` packs the champions; the built Bento loads them with no registry configured.

    The Bento is the session's (``built_bento``: built with the registry); one subprocess loads it from that
    ``BENTOML_HOME`` with no registry in its environment.
    """
    import os
    import subprocess
    import sys

    assert built_bento.tag.startswith("crmscore:")
    assert {m.split(":")[0] for m in built_bento.models} == {"lead_scoring", "churn_risk"}  # what was packed
    env = {**os.environ, "BENTOML_HOME": str(built_bento.bentoml_home), "BENTOML_DO_NOT_TRACK": "true",
           "CRMSCORE_API_KEYS": "k", "CRMSCORE_HOME": str(tmp_path / "home")}
    for var in ("MLFLOW_TRACKING_URI", "MLFLOW_REGISTRY_URI"):
        env.pop(var, None)
    code = f"""
import json
import bentoml
inst = bentoml.load({built_bento.tag!r})()
out = {{k: [s.current.source, s.current.version] if s.current else None for k, s in inst.slots.items()}}
print("RESULT", json.dumps({{"slots": out, "watcher": inst.watcher is not None}}))
"""
    run = subprocess.run([sys.executable, "-c", code], env=env, cwd=str(tmp_path), capture_output=True, text=True,
                         timeout=300)
    line = next((x for x in run.stdout.splitlines() if x.startswith("RESULT ")), None)
    assert line is not None, run.stderr[-2000:]
    got = json.loads(line[7:])
    assert got["slots"]["lead"] == ["bento", crm_registry.versions["lead_scoring"]]
    assert got["slots"]["churn"] == ["bento", crm_registry.versions["churn_risk"]]
    assert got["slots"]["segments"] is None and not got["watcher"]
    assert not list(tmp_path.rglob("mlflow.db"))  # no stray registry was created


# ----------------------------------------------------------------------------------------- languages
def test_error_messages_follow_the_request_language(server: Server, client: httpx.Client) -> None:
    """The human text of a refusal follows ``Accept-Language`` (or ``?lang=``), one error per endpoint group:
    the guard (401, 415), scoring (413, 422), segments (503), cross-sell (503), the forecast (404) and the profile
    page's API (422, 404). JSON keys, field names and status codes are the same as in English."""
    from serving.i18n.catalogue import all_messages
    from tests.unit.test_i18n import untranslated

    assert all_messages()  # the catalogue the check below reads
    summary = {"recency_days": 3.0, "frequency": 1.0, "monetary": 10.0}
    cases: list[tuple[str, str, Any, dict[str, str], int, str, str]] = [
        ("POST", "/score_leads", None, {"Authorization": ""}, 401, "missing Authorization header",
         "缺少 Authorization 请求头"),
        ("POST", "/score_leads", b"leads=1", {"Content-Type": "text/plain"}, 415,
         "body: Content-Type must be application/json", "body：Content-Type 必须是 application/json"),
        ("POST", "/score_leads", {"leads": [{"customer_id": f"c{i}", "features": {}} for i in range(MAX_BATCH + 1)]},
         {}, 413, f"leads: {MAX_BATCH + 1:,} items exceed the limit of {MAX_BATCH:,} per request",
         f"leads：{MAX_BATCH + 1:,} 项超出每个请求 {MAX_BATCH:,} 项的上限"),
        ("POST", "/score_leads", {"leads": []}, {}, 422, "leads: List should have at least 1 item after validation",
         "leads：至少应有 1 项，实际为 0 项"),  # pydantic's errors, rewritten by the middleware
        ("POST", "/predict_churn", {}, {}, 422, "body: give either 'leads' or 'table', not both or neither",
         "body：请给出 'leads' 或 'table' 之一"),  # a request validator's message
        ("POST", "/segment", {"customers": [{"customer_id": "c1", "summary": summary}]}, {}, 503,
         "fit and register customer_segments with `crmscore segment fit`",
         "请用 `crmscore segment fit` 拟合并注册 customer_segments"),
        ("POST", "/recommend", {"customer_id": "c1"}, {}, 503, "is not loaded", "未加载"),
        ("GET", "/forecast", None, {}, 404, "no forecast yet", "尚无预测"),
        ("POST", "/ui/api/profile", {"customer_id": "c1"}, {}, 503, "the profile page has no data",
         "客户画像页没有数据"),  # this server has no --data; the page API's 4xx texts: tests/unit/test_i18n.py
    ]
    for method, path, body, headers, status, en, zh in cases:
        answers = {}
        for lang, extra, params in (("en", {}, {}), ("zh", {"Accept-Language": "zh-CN,zh;q=0.9,en;q=0.8"}, {}),
                                    ("zh", {}, {"lang": "zh"})):
            hdrs = httpx.Headers(client.headers)
            for k, v in {**extra, **headers}.items():
                if v:
                    hdrs[k] = v
                elif k in hdrs:  # "Authorization": "" sends no key
                    del hdrs[k]
            kw: dict[str, Any] = {"content": body} if isinstance(body, bytes) else {"json": body} if body else {}
            r = httpx.request(method, f"{server.url}{path}", headers=hdrs, params=params, timeout=60, **kw)
            assert r.status_code == status, (path, lang, r.text)
            err = r.json()
            assert set(err) == {"error", "errors"}, err
            assert (zh if lang == "zh" else en) in err["error"], (path, lang, err)
            assert untranslated(err["error"] + " " + " ".join(e["reason"] for e in err["errors"]), lang) == [], err
            answers.setdefault(lang, []).append(err)
        en_fields = [e["field"] for e in answers["en"][0]["errors"]]
        assert all([e["field"] for e in a["errors"]] == en_fields for a in answers["zh"]), answers  # fields stay
