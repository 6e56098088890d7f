"""Hostile input over real HTTP: oversized bodies and batches, deep nesting, non-UTF-8, float limits, bad JSON.

One shared server (``limits_server``: ``max_batch`` 1,000, ``max_body_mb`` 1). Every request must get a 4xx
with a JSON message naming the field (never a 500), and the server must still score afterwards. Cases the
module ``test_service_http.py`` already covers exactly (``NaN``/``Infinity``/``1e999`` as a feature value,
``max_batch + 1`` leads, ``{"leads": [`` truncated) are not repeated here; the variants below are new.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from tests.integration.conftest import LIMITS_MAX_BATCH, Server

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def client(limits_server: Server) -> Iterator[httpx.Client]:
    """An HTTP client with a valid key."""
    with httpx.Client(base_url=limits_server.url, headers=limits_server.headers, timeout=120) as c:
        yield c


@pytest.fixture(scope="module")
def numeric_feature(client: httpx.Client) -> str:
    """A numeric input feature of the served lead model."""
    names = client.get("/model_info").json()["models"]["lead"]["features"]
    assert "tenure_days" in names
    return "tenure_days"


def raw_post(client: httpx.Client, body: bytes, path: str = "/score_leads") -> httpx.Response:
    """POST raw bytes as JSON."""
    return client.post(path, content=body, headers={"Content-Type": "application/json"})


def assert_clear_4xx(r: httpx.Response, status: int | tuple[int, ...], field: str) -> str:
    """The response is ``status`` with our JSON error shape and a message that starts with ``field``."""
    statuses = (status,) if isinstance(status, int) else status
    assert r.status_code in statuses, (r.status_code, r.text[:500])
    err = r.json()
    assert set(err) >= {"error"}, err
    assert err["error"].startswith(field), err["error"]
    assert err["error"].split(":", 1)[1].strip(), err["error"]  # a reason follows the field
    return err["error"]


def assert_alive(client: httpx.Client, feature: str) -> None:
    """Health probes answer and a valid lead is still scored."""
    assert client.get("/livez").status_code == 200
    r = client.post("/score_leads", json={"leads": [{"customer_id": "alive", "features": {feature: 3.0}}]})
    assert r.status_code == 200, r.text
    assert r.json()["results"][0]["customer_id"] == "alive"


# ------------------------------------------------------------------------------------------ size limits
def test_body_over_the_limit_is_413_with_or_without_content_length(client: httpx.Client, numeric_feature: str) -> None:
    big = json.dumps({"leads": [{"customer_id": "x" * 150, "features": {numeric_feature: 1.0}}] * 8000}).encode()
    assert len(big) > 1024 * 1024
    msg = assert_clear_4xx(raw_post(client, big), 413, "body")
    assert f"{len(big):,} bytes exceed the limit of 1 MB" in msg

    def chunks() -> Iterator[bytes]:  # no Content-Length: the middleware counts what it receives
        for i in range(0, len(big), 64 * 1024):
            yield big[i : i + 64 * 1024]

    r = client.post("/score_leads", content=chunks(), headers={"Content-Type": "application/json"})
    assert "content-length" not in r.request.headers
    msg = assert_clear_4xx(r, 413, "body")
    assert "larger than the limit of 1 MB" in msg
    assert_alive(client, numeric_feature)


def test_ten_thousand_leads_are_refused_naming_leads(client: httpx.Client, numeric_feature: str) -> None:
    n = 10_000
    body = {"leads": [{"customer_id": f"c{i}", "features": {}} for i in range(n)], "reasons": False}
    raw = json.dumps(body, separators=(",", ":")).encode()
    assert len(raw) < 1024 * 1024  # under the body limit: the batch limit is what refuses it
    msg = assert_clear_4xx(raw_post(client, raw), (413, 422), "leads")
    assert f"{n:,} items exceed the limit of {LIMITS_MAX_BATCH:,}" in msg
    table = {"customer_ids": [f"c{i}" for i in range(n)], "columns": [numeric_feature], "rows": [[1.0]] * n}
    r = raw_post(client, json.dumps({"table": table}, separators=(",", ":")).encode())
    assert_clear_4xx(r, (413, 422), "table.rows")
    summary = {"recency_days": 1.0, "frequency": 1.0, "monetary": 1.0}
    customers = [{"customer_id": f"c{i}", "summary": summary} for i in range(n)]
    r = raw_post(client, json.dumps({"customers": customers}, separators=(",", ":")).encode(), "/segment")
    assert_clear_4xx(r, (413, 422), "customers")
    assert_alive(client, numeric_feature)


# ---------------------------------------------------------------------------------------- deep nesting
DEPTH = 10_000


def _nested_arrays(depth: int) -> str:
    return "[" * depth + "]" * depth


def _nested_objects(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


NESTED = [
    pytest.param(_nested_arrays(DEPTH).encode(), "/score_leads", id="body-arrays"),
    pytest.param(_nested_objects(DEPTH).encode(), "/score_leads", id="body-objects"),
    pytest.param(
        ('{"leads": [{"customer_id": "x", "features": {"tenure_days": ' + _nested_arrays(DEPTH) + "}}]}").encode(),
        "/score_leads",
        id="feature-value-arrays",
    ),
    pytest.param(
        ('{"leads": [{"customer_id": "x", "features": {"tenure_days": ' + _nested_objects(DEPTH) + "}}]}").encode(),
        "/predict_churn",
        id="feature-value-objects",
    ),
    pytest.param(
        (
            '{"table": {"customer_ids": ["a"], "columns": ["tenure_days"], "rows": [' + _nested_arrays(DEPTH) + "]}}"
        ).encode(),
        "/score_leads",
        id="table-rows-arrays",
    ),
    pytest.param(
        ('{"customers": [{"customer_id": "x", "summary": ' + _nested_objects(DEPTH) + "}]}").encode(),
        "/segment",
        id="segment-summary-objects",
    ),
]


@pytest.mark.parametrize(("body", "path"), NESTED)
def test_deeply_nested_json_is_a_4xx(client: httpx.Client, numeric_feature: str, body: bytes, path: str) -> None:
    r = raw_post(client, body, path)
    assert 400 <= r.status_code < 500, (r.status_code, r.text[:300])
    err = r.json()["error"]
    assert err.split(":", 1)[0].strip() and err.split(":", 1)[1].strip(), err
    assert len(r.content) < 20_000  # the nested input is not echoed back
    assert_alive(client, numeric_feature)


# ------------------------------------------------------------------------------------------ encodings
ENCODINGS = [
    pytest.param(b'{"leads": [{"customer_id": "\xff\xfe\xfd", "features": {}}]}', id="invalid-utf8-in-string"),
    pytest.param('{"leads": [{"customer_id": "王小明", "features": {}}]}'.encode("gb18030"), id="gb18030-body"),
    pytest.param('{"leads": [{"customer_id": "x", "features": {}}]}'.encode("utf-16"), id="utf16-body"),
    pytest.param(b'{"leads": [{"customer_id": "\xc0\xaf", "features": {}}]}', id="overlong-utf8"),
    pytest.param(b'{"leads": [{"customer_id": "\xed\xa0\x80", "features": {}}]}', id="utf8-surrogate"),
    pytest.param(b"\x00\x01\x02\x03", id="binary"),
]


@pytest.mark.parametrize("body", ENCODINGS)
def test_non_utf8_body_is_400_naming_the_body(client: httpx.Client, numeric_feature: str, body: bytes) -> None:
    r = raw_post(client, body)
    assert_clear_4xx(r, 400, "body")
    assert_alive(client, numeric_feature)


# ---------------------------------------------------------------------------------------- float limits
FLOATS_OK = [
    pytest.param("3.4e38", 3.4e38, id="just-under-float32-max"),
    pytest.param("-3.4e38", -3.4e38, id="just-over-float32-min"),
    pytest.param("5e-324", 5e-324, id="smallest-subnormal"),
    pytest.param("-0.0", -0.0, id="minus-zero"),
    pytest.param("1e-400", 0.0, id="underflow-to-zero"),
]


def _lead_body(feature: str, token: str) -> bytes:
    return f'{{"leads": [{{"customer_id": "f", "features": {{"{feature}": {token}}}}}]}}'.encode()


def _table_body(feature: str, token: str) -> bytes:
    return f'{{"table": {{"customer_ids": ["f"], "columns": ["{feature}"], "rows": [[{token}]]}}}}'.encode()


@pytest.mark.parametrize(("token", "value"), FLOATS_OK)
def test_finite_numbers_in_range_are_scored(
    client: httpx.Client, numeric_feature: str, token: str, value: float
) -> None:
    r = raw_post(client, _lead_body(numeric_feature, token))
    assert r.status_code == 200, r.text
    res = r.json()["results"][0]
    assert 0 < res["probability"] < 1 and 1 <= res["score"] <= 99
    reasons = res["reasons"]["positive"] + res["reasons"]["negative"]
    assert all(x["value"] == value for x in reasons if x["feature"] == numeric_feature)  # the value sent
    r2 = raw_post(client, _table_body(numeric_feature, token))
    assert r2.status_code == 200, r2.text
    assert r2.json()["results"][0]["probability"] == res["probability"]


FLOATS_BAD = [
    # finite doubles beyond the model's 32-bit floats (XGBoost's DMatrix refused them: a 500 before the fix)
    pytest.param("1e308", 422, "3.4e38", id="1e308"),
    pytest.param("-1e308", 422, "3.4e38", id="minus-1e308"),
    pytest.param("1.7976931348623157e308", 422, "3.4e38", id="max-double"),
    pytest.param("3.5e38", 422, "3.4e38", id="just-over-float32-max"),
    # not finite once parsed
    pytest.param("1e309", 422, "finite", id="1e309-overflows-to-inf"),
    pytest.param("-1e309", 422, "finite", id="minus-1e309"),
    pytest.param("Infinity", 422, "finite", id="infinity-token"),
    pytest.param("-Infinity", 422, "finite", id="minus-infinity-token"),
    pytest.param("NaN", 422, "finite", id="nan-token"),
    # not JSON at all
    pytest.param("nan", 400, "JSON", id="lowercase-nan"),
    pytest.param("inf", 400, "JSON", id="lowercase-inf"),
    pytest.param("0x10", 400, "JSON", id="hex"),
    pytest.param("1" * 400, 422, "", id="400-digit-integer"),
]


@pytest.mark.parametrize(("token", "status", "reason"), FLOATS_BAD)
def test_numbers_at_float_limits_are_refused_naming_the_field(
    client: httpx.Client, numeric_feature: str, token: str, status: int, reason: str
) -> None:
    field = "body" if status == 400 else f"leads[0].features.{numeric_feature}"
    msg = assert_clear_4xx(raw_post(client, _lead_body(numeric_feature, token)), status, field)
    assert reason in msg, msg
    field = "body" if status == 400 else "table.rows[0]"
    msg = assert_clear_4xx(raw_post(client, _table_body(numeric_feature, token)), status, field)
    assert reason in msg, msg
    profile = f'{{"leads": [{{"profile": {{"customer_id": "p", "points_balance": {token}}}}}]}}'.encode()
    r = raw_post(client, profile)
    assert r.status_code < 500, r.text[:300]
    if status == 400:
        assert_clear_4xx(r, 400, "body")
    elif reason == "finite":
        assert_clear_4xx(r, 422, "leads[0].profile.points_balance")
    assert_alive(client, numeric_feature)


# ------------------------------------------------------------------------------------------ malformed
MALFORMED = [
    b'{"leads": [{"customer_id": "x", "features": {}},]}',
    b"{'leads': []}",
    b'{"leads": [{"customer_id": "x}]}',
    b'{"leads": [{"customer_id": "x", "features": {}}]}}',
    b'{"leads": [{"customer_id": "x", "features": {}}]} trailing',
    b"{",
    b"leads=1",
    b'{"leads": [{"customer_id": "x", "features": {"tenure_days": 1.}}]}',
    b'{"leads": [{"customer_id": "x", "features": {"tenure_days": 01}}]}',
    b'{"leads": [{"customer_id": "x" "features": {}}]}',
    b'\xef\xbb\xbf{"leads": [{"customer_id": "x", "features": {}}]}',  # a UTF-8 BOM is not JSON either
    b'{"leads": [{"customer_id": "x\x01", "features": {}}]}',  # raw control character in a string
]


@pytest.mark.parametrize("body", MALFORMED, ids=[f"malformed-{i}" for i in range(len(MALFORMED))])
def test_malformed_json_is_400_naming_the_body(client: httpx.Client, numeric_feature: str, body: bytes) -> None:
    for path in ("/score_leads", "/segment"):
        msg = assert_clear_4xx(raw_post(client, body, path), 400, "body")
        assert "JSON" in msg or "UTF-8" in msg or "utf-8" in msg, msg
    assert_alive(client, numeric_feature)


def test_the_server_survived_everything_without_a_500(
    limits_server: Server, client: httpx.Client, numeric_feature: str
) -> None:
    assert_alive(client, numeric_feature)
    metrics = httpx.get(f"{limits_server.url}/metrics", timeout=30).text
    five_xx = [
        line
        for line in metrics.splitlines()
        if line.startswith("crmscore_request_errors_total") and 'status="5' in line
    ]
    assert not five_xx, five_xx
    assert limits_server.proc.poll() is None
    assert "Traceback" not in limits_server.log_text()
