"""Security: API keys on every data endpoint, PII never leaving the request, only trusted types loaded.

* every scoring / info / profile-page API endpoint answers 401 to a missing and to a wrong key (over HTTP,
  the shared ``limits_server``);
* distinctive PII values sent to the service reach neither the responses, the server log nor the drift
  record files; PII in the training data reaches no file of a `crmscore train lead` run (MLflow database
  and every artifact, skops zip members and Parquet values included);
* a logged model whose skops file needs a type outside ``training.model.TRUSTED_TYPES``, or that is
  pickled, is refused by the service's loader (MLflow alone would trust whatever list the artifact
  declares), also when it is the registry's champion.
"""

from __future__ import annotations

import io
import json
import shutil
import time
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from tests.integration.conftest import API_KEYS, Registry, Server, copy_registry

pytestmark = pytest.mark.slow

PII = {
    "name": "ZZPII_王小明",
    "phone": "+86-13900001111",
    "email": "pii@example.test",
    "address": "北京市朝阳区PII路1号",
}


# ------------------------------------------------------------------------------------------------ keys
ENDPOINTS = [
    ("POST", "/score_leads", {"leads": [{"customer_id": "k", "features": {}}]}),
    ("POST", "/predict_churn", {"leads": [{"customer_id": "k", "features": {}}]}),
    ("POST", "/segment", {"customers": [{"customer_id": "k", "summary": {"frequency": 1.0}}]}),
    ("POST", "/coupon_uplift", {"customers": [{"id": "k", "features": {}}]}),
    ("POST", "/route_lead", {"lead": {"lead_id": "k", "city": "上海"}}),
    ("GET", "/model_info", None),
    ("GET", "/drift", None),
    ("GET", "/forecast", None),
    ("GET", "/ui/api/status", None),
    ("POST", "/ui/api/search", {"q": "王"}),
    ("POST", "/ui/api/profile", {"customer_id": "k"}),
    ("POST", "/recommend", {"customer_id": "k"}),
    ("POST", "/next_action", {"customers": [{"customer_id": "k"}]}),
    ("POST", "/ui/api/next_steps", {"customer_id": "k"}),
]
BAD_AUTH = {
    "missing": None,
    "wrong-key": f"Bearer {API_KEYS[0]}-wrong",
    "prefix-of-a-key": f"Bearer {API_KEYS[0][:-1]}",
    "other-scheme": f"Basic {API_KEYS[0]}",
    "bearer-without-key": "Bearer",
}


def test_every_protected_path_is_in_the_parametrisation() -> None:
    from serving.http.service import PROTECTED

    assert {path for _, path, _ in ENDPOINTS} == set(PROTECTED)


@pytest.mark.parametrize("auth", list(BAD_AUTH), ids=list(BAD_AUTH))
@pytest.mark.parametrize(("method", "path", "body"), ENDPOINTS, ids=[p for _, p, _ in ENDPOINTS])
def test_endpoint_refuses_a_missing_or_wrong_key(
    limits_server: Server, method: str, path: str, body: Any, auth: str
) -> None:
    headers = {} if BAD_AUTH[auth] is None else {"Authorization": BAD_AUTH[auth]}
    r = httpx.request(method, f"{limits_server.url}{path}", json=body, headers=headers, timeout=30)
    assert r.status_code == 401, (r.status_code, r.text[:300])
    assert r.headers.get("www-authenticate", "").startswith("Bearer")
    err = r.json()["error"]
    assert "key" in err or "Authorization" in err
    assert API_KEYS[0] not in r.text and API_KEYS[1] not in r.text  # keys are never echoed
    # the same request with a valid key gets past the guard (whatever the endpoint then says)
    ok = httpx.request(method, f"{limits_server.url}{path}", json=body, headers=limits_server.headers, timeout=60)
    assert ok.status_code != 401, ok.text[:300]


# ------------------------------------------------------------------------------------------------- PII
def _pii_profile(cid: str) -> dict[str, Any]:
    return {"customer_id": cid, "created_at": "2025-01-02T03:04:05", "source_channel": "wechat", **PII}


def _events() -> dict[str, list]:
    return {
        "interactions": [{"ts": "2025-06-01T10:00:00", "channel": "app", "event_type": "visit"}],
        "orders": [{"ts": "2025-06-02T10:00:00", "amount": 12.5, "status": "paid"}],
        "marketing_touches": [],
    }


def _no_pii(text: str | bytes, where: str) -> None:
    for field, value in PII.items():
        needle = value.encode() if isinstance(text, bytes) else value
        assert needle not in text, f"PII {field} found in {where}"


def test_pii_reaches_no_response_log_or_record_file(limits_server: Server) -> None:
    from serving.http.records import read_records

    lead = {"profile": _pii_profile("pii-lead-1"), "events": _events(), "as_of": "2025-06-30T00:00:00"}
    responses = []
    with httpx.Client(base_url=limits_server.url, headers=limits_server.headers, timeout=60) as c:
        for path in ("/score_leads", "/predict_churn"):
            r = c.post(path, json={"leads": [lead], "reasons": True})
            assert r.status_code == 200, r.text
            responses.append(r)
        customer = {"profile": _pii_profile("pii-cust-1"), "events": _events(), "as_of": "2025-06-30T00:00:00"}
        responses.append(c.post("/segment", json={"customers": [customer]}))  # 503 without a segments model
        # refusals must not quote the PII either: a bad field next to PII, PII where a number belongs
        responses.append(c.post("/score_leads", json={"leads": [{"profile": {**_pii_profile("p2"), "age": "x"}}]}))
        responses.append(
            c.post("/score_leads", json={"leads": [{"customer_id": "p3", "features": {"age": PII["name"]}}]})
        )
        responses.append(c.post("/ui/api/search", json={"q": PII["name"]}))
        # malformed JSON ending in PII: BentoML's own error log quoted the body's first and last bytes
        cut = json.dumps({"leads": [{"profile": {"customer_id": "m", "email": PII["email"], "phone": PII["phone"]}}]})
        cut = cut[: cut.rindex(PII["phone"]) + len(PII["phone"]) + 1]  # ends right after the phone number
        responses.append(c.post("/score_leads", content=cut.encode(), headers={"Content-Type": "application/json"}))
        assert responses[-1].status_code == 400, responses[-1].text
        assert [r.status_code for r in responses[3:5]] == [422, 422]
        for r in responses:
            _no_pii(r.text, f"the response of {r.request.url.path} ({r.status_code})")
    deadline = time.monotonic() + 20
    rec = pd.DataFrame()
    while time.monotonic() < deadline:  # records are flushed every 0.3 s in the tests
        rec = read_records(limits_server.home, "lead_scoring")
        if (rec["customer_id"] == "pii-lead-1").any() if len(rec) else False:
            break
        time.sleep(0.3)
    assert (rec["customer_id"] == "pii-lead-1").any(), "the PII lead was not recorded at all"
    assert not set(PII) & set(rec.columns)
    files = [p for p in (Path(limits_server.home) / "records").rglob("*") if p.is_file()]
    assert files
    for f in files:
        _no_pii(f.read_bytes(), str(f))
        if f.suffix == ".parquet":
            _no_pii(pd.read_parquet(f).astype(str).to_csv(), f"the values of {f}")
    _no_pii(limits_server.log_text(), "the server log")


def _file_texts(path: Path) -> Iterator[tuple[str, bytes]]:
    """The bytes of a file, plus (for zips such as skops files, and Parquet) the decoded contents."""
    raw = path.read_bytes()
    yield str(path), raw
    if zipfile.is_zipfile(io.BytesIO(raw)):
        with zipfile.ZipFile(io.BytesIO(raw)) as z:
            for member in z.namelist():
                yield f"{path}!{member}", z.read(member)
    if path.suffix == ".parquet":
        yield f"{path} (values)", pd.read_parquet(path).astype(str).to_csv().encode()


def test_pii_in_training_data_reaches_no_file_of_a_training_run(
    crm_registry: Registry, tmp_path: Path, isolated_mlflow: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from serving.cli.train import train_app

    data = tmp_path / "data"
    shutil.copytree(crm_registry.data, data)
    path = data / "customers.parquet"
    customers = pd.read_parquet(path)
    for field, value in PII.items():  # distinctive PII on every customer, one variant per row
        customers[field] = [f"{value}{i}" if i else value for i in range(len(customers))]
    customers.to_parquet(path, index=False)
    cfg = tmp_path / "lead.yaml"
    cfg.write_text(
        json.dumps(
            {
                "candidates": ["xgboost"],
                "xgb_search": {"n_trials": 1, "n_estimators": [30], "max_depth": [3]},
                "labels": {"n_cutoffs": 3, "horizon_days": 60, "churn_lookback_days": 365},
                "xgb_threads": 1,
            }
        ),
        encoding="utf-8",
    )
    store = tmp_path / "store"
    store.mkdir()
    uri = f"sqlite:///{store / 'mlflow.db'}"
    mp = isolated_mlflow
    mp.chdir(store)  # the default artifact root (./mlruns) lands inside the store
    mp.setenv("MLFLOW_TRACKING_URI", uri)
    mp.setenv("MLFLOW_REGISTRY_URI", uri)
    mp.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
    result = CliRunner().invoke(train_app, ["lead", "--data", str(data), "--config", str(cfg)])
    assert result.exit_code == 0, result.output
    assert "lead_scoring v1" in result.output
    _no_pii(result.output, "the output of crmscore train lead")
    files = [p for p in store.rglob("*") if p.is_file()]
    assert any(p.name == "MLmodel" for p in files) and any(p.suffix == ".skops" for p in files)
    checked = 0
    for f in files:
        for where, content in _file_texts(f):
            _no_pii(content, where)
            checked += 1
    assert checked >= len(files)


# ----------------------------------------------------------------------------------------- trusted types
class Untrusted:
    """A harmless class that is not on the trusted list: a stand-in for a malicious payload."""

    def __init__(self, note: str = "not trusted") -> None:
        self.note = note


UNTRUSTED = f"{Untrusted.__module__}.Untrusted"


@pytest.fixture()
def scorer_and_registry(
    crm_registry: Registry, tmp_path: Path, isolated_mlflow: pytest.MonkeyPatch
) -> tuple[Any, Registry]:
    """The session's lead scorer, loaded from a private copy of the registry that MLflow now points at."""
    import mlflow

    from training.registry import configure_tracking

    reg = copy_registry(crm_registry, tmp_path / "registry")
    isolated_mlflow.setenv("MLFLOW_TRACKING_URI", reg.uri)
    isolated_mlflow.setenv("MLFLOW_REGISTRY_URI", reg.uri)
    configure_tracking(reg.uri)
    return mlflow.sklearn.load_model(f"models:/lead_scoring/{reg.versions['lead_scoring']}"), reg


def _save(scorer: Any, path: Path, fmt: str = "skops", trusted: list[str] | None = None) -> Path:
    import mlflow

    # explicit (empty) requirements: inferring them runs a subprocess per model
    mlflow.sklearn.save_model(
        scorer, str(path), serialization_format=fmt, skops_trusted_types=trusted, pip_requirements=[]
    )
    return path


def test_loader_refuses_untrusted_types_and_pickles(scorer_and_registry: tuple[Any, Registry], tmp_path: Path) -> None:
    import mlflow
    import yaml

    from serving.http.loader import UntrustedModel, check_trusted, load_scorer_artifact
    from training.model import TRUSTED_TYPES

    scorer, reg = scorer_and_registry
    genuine = load_scorer_artifact(f"models:/lead_scoring/{reg.versions['lead_scoring']}")
    assert type(genuine).__name__ == "CRMScorer"

    scorer.payload_ = Untrusted()
    widened = _save(scorer, tmp_path / "widened", trusted=[*TRUSTED_TYPES, UNTRUSTED])
    # MLflow on its own trusts the list the artifact declares, so it would load this model
    assert type(mlflow.sklearn.load_model(str(widened)).payload_) is Untrusted
    with pytest.raises(UntrustedModel, match=UNTRUSTED):
        check_trusted(widened)
    with pytest.raises(UntrustedModel, match=UNTRUSTED):
        load_scorer_artifact(str(widened))

    # the MLmodel file lists only trusted types, but the skops file holds another one: skops refuses it
    disguised = tmp_path / "disguised"
    shutil.copytree(widened, disguised)
    mlmodel = yaml.safe_load((disguised / "MLmodel").read_text(encoding="utf-8"))
    mlmodel["flavors"]["sklearn"]["skops_trusted_types"] = list(TRUSTED_TYPES)
    (disguised / "MLmodel").write_text(yaml.safe_dump(mlmodel), encoding="utf-8")
    check_trusted(disguised)
    with pytest.raises(Exception, match="Untrusted") as caught:
        load_scorer_artifact(str(disguised))
    assert UNTRUSTED in str(caught.value)

    del scorer.payload_
    pickled = _save(scorer, tmp_path / "pickled", fmt="cloudpickle")
    with pytest.raises(UntrustedModel, match="cloudpickle"):
        load_scorer_artifact(str(pickled))


def test_untrusted_champion_is_refused_naming_model_and_version(
    scorer_and_registry: tuple[Any, Registry], tmp_path: Path
) -> None:
    import mlflow

    from serving.http.loader import UntrustedModel, load_model
    from serving.settings import load_settings
    from training.model import TRUSTED_TYPES
    from training.registry import set_champion

    scorer, reg = scorer_and_registry
    scorer.payload_ = Untrusted()
    path = _save(scorer, tmp_path / "evil", trusted=[*TRUSTED_TYPES, UNTRUSTED])
    version = str(mlflow.register_model(str(path), "lead_scoring").version)
    set_champion("lead_scoring", version, "security test")
    with pytest.raises(UntrustedModel) as caught:
        load_model("lead", load_settings())
    msg = str(caught.value)
    assert f"lead_scoring v{version}" in msg and UNTRUSTED in msg

    # batch scoring loads through the same check (`crmscore score` then exits 2 with this one line)
    from serving.batch import BatchError, load_scorer

    with pytest.raises(BatchError) as refused:
        load_scorer("lead_scoring@champion")
    assert f"lead_scoring version {version}" in str(refused.value) and UNTRUSTED in str(refused.value)


def test_segments_model_runs_only_this_releases_code(
    crm_registry: Registry, tmp_path: Path, isolated_mlflow: pytest.MonkeyPatch
) -> None:
    """customer_segments is a models-from-code pyfunc: the loader runs its code file only when it is ours."""
    import mlflow

    from serving.http.loader import UntrustedModel, load_model, load_segments_artifact
    from serving.settings import load_settings
    from training.registry import set_champion
    from training.segment import fit_segments

    reg = copy_registry(crm_registry, tmp_path / "reg")
    isolated_mlflow.setenv("MLFLOW_TRACKING_URI", reg.uri)
    isolated_mlflow.setenv("MLFLOW_REGISTRY_URI", reg.uri)
    isolated_mlflow.chdir(tmp_path)
    res = fit_segments(reg.data)
    genuine = load_segments_artifact(res.model_uri)  # this release's code: loads and predicts
    assert genuine.metadata.get_output_schema() is not None

    local = Path(mlflow.artifacts.download_artifacts(artifact_uri=res.model_uri, dst_path=str(tmp_path / "m")))
    code = local / "customer_segments_model.py"
    code.write_text(code.read_text(encoding="utf-8") + "\nimport os  # added by someone else\n", "utf-8")
    with pytest.raises(UntrustedModel, match="differs from this release"):
        load_segments_artifact(str(local))

    version = str(mlflow.register_model(str(local), "customer_segments").version)
    set_champion("customer_segments", version, "security test")
    with pytest.raises(UntrustedModel) as caught:
        load_model("segments", load_settings())
    assert f"customer_segments v{version}" in str(caught.value)
