"""Property-based API test: Schemathesis generates requests from the service's own OpenAPI document.

The document is the one BentoML 1.4 serves at ``GET /docs.json`` (the ``@bentoml.api`` endpoints plus the
mounted FastAPI GET endpoints). For every operation Schemathesis sends schema-valid and schema-invalid
requests (with the API key) to the shared ``limits_server``; no answer may be a 5xx, and every answer whose
status the document describes must match its schema and content type. Bounded: at most ``MAX_EXAMPLES``
cases per operation and mode, no deadline.

Schemathesis' pytest plugin (``schemathesis.pytest.from_fixture``) does not run under pytest 9 (it sets
``node._nodeid``), so the operations' Hypothesis strategies are driven directly (``APIOperation.as_strategy``).
"""

from __future__ import annotations

from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import content_type_conformance, response_schema_conformance

from tests.integration.conftest import Server

pytestmark = pytest.mark.slow
MAX_EXAMPLES = 30
CHECKS = [not_a_server_error, response_schema_conformance, content_type_conformance]
OPERATIONS = ["POST /score_leads", "POST /predict_churn", "POST /segment", "GET /model_info", "GET /drift"]


@pytest.fixture(scope="module")
def api_schema(limits_server: Server) -> Any:
    """The service's OpenAPI document, loaded over HTTP; requests go to the same server."""
    return schemathesis.openapi.from_url(f"{limits_server.url}/docs.json", timeout=60)


def _operation(api_schema: Any, label: str) -> Any:
    for result in api_schema.get_all_operations():
        op = result.ok()
        if f"{op.method.upper()} {op.path}" == label:
            return op
    raise AssertionError(f"{label} is not in the OpenAPI document")


def test_the_document_lists_the_scoring_and_info_operations(api_schema: Any) -> None:
    labels = {f"{r.ok().method.upper()} {r.ok().path}" for r in api_schema.get_all_operations()}
    assert set(OPERATIONS) <= labels


CASES = [
    pytest.param(label, mode, id=f"{label}-{mode.value}")
    for label in OPERATIONS
    for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
    if mode is GenerationMode.POSITIVE or label.startswith("POST")  # a GET without parameters has no invalid form
]


@pytest.mark.parametrize(("label", "mode"), CASES)
def test_operation_conforms_to_the_openapi_document(
    api_schema: Any, limits_server: Server, label: str, mode: GenerationMode
) -> None:
    op = _operation(api_schema, label)
    seen: list[int] = []

    @given(case=op.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        derandomize=True,
        database=None,
    )
    def run(case: Any) -> None:
        # this server has no segments model: a valid /segment body gets its documented 503 "not loaded" answer
        checks = [c for c in CHECKS if c is not not_a_server_error] if label == "POST /segment" else CHECKS
        r = case.call_and_validate(base_url=limits_server.url, headers=limits_server.headers, checks=checks, timeout=60)
        seen.append(r.status_code)
        if r.status_code >= 500:
            assert label == "POST /segment" and r.status_code == 503, (label, r.status_code, r.text[:300])
            assert "customer_segments" in r.text and "not loaded" in r.text, r.text[:300]

    run()
    assert seen, "no request was sent"
    assert all(s < 500 or s == 503 for s in seen), seen  # 503 only for /segment without a segments model
