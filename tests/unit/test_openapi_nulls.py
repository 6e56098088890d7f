"""Response models document their optional fields as OpenAPI 3.0 `nullable` (BentoML keeps one anyOf branch)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from serving.http.openapi import Answer
from serving.http.schemas import LeadScore
from serving.http.schemas_uplift import RouteLeadResponse


class _Inner(Answer):
    x: int


class _Sample(Answer):
    text: str | None = Field(description="kept")
    grade: Literal["A", "B"] | None = None
    anything: float | bool | str | None = None
    inner: _Inner | None = None
    plain: int = 1


def test_optional_fields_become_nullable_with_their_type() -> None:
    props = _Sample.model_json_schema()["properties"]
    assert props["text"] == {"type": "string", "nullable": True, "description": "kept", "title": "Text"}
    assert props["grade"]["enum"] == ["A", "B", None] and props["grade"]["nullable"] is True
    assert "type" not in props["anything"] and "anyOf" not in props["anything"] and props["anything"]["nullable"]
    assert props["inner"]["allOf"] == [{"$ref": "#/$defs/_Inner"}] and props["inner"]["nullable"] is True
    assert props["plain"] == {"default": 1, "title": "Plain", "type": "integer"}


def test_the_answers_of_the_service_use_it() -> None:
    assert LeadScore.model_json_schema()["properties"]["fit_score"]["nullable"] is True
    team = RouteLeadResponse.model_json_schema()["properties"]["team"]
    assert team["type"] == "string" and team["nullable"] is True
    # the JSON itself is unchanged
    answer = RouteLeadResponse(lead_id="L", owner_id=None, team=None, rule="r", reason="x", grade="A")
    assert answer.model_dump()["team"] is None
