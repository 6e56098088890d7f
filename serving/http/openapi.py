"""The base of every response model: optional fields documented so BentoML's OpenAPI page keeps them nullable.

BentoML 1.4 builds the OpenAPI document from pydantic's JSON schema but keeps only the first branch of an
``anyOf``, so ``str | None`` would be documented as a plain string and a null answer would break the contract
that clients (and the schemathesis tests) check. ``Answer`` rewrites each ``X | None`` property into OpenAPI 3.0's
``nullable`` form before BentoML sees it; the JSON itself is unchanged.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict

_NULL = {"type": "null"}


def _nullable(prop: dict[str, Any]) -> dict[str, Any]:
    """One property's schema with ``anyOf: [..., null]`` folded into ``nullable: true``."""
    branches = prop.get("anyOf")
    if not isinstance(branches, list) or _NULL not in branches:
        return prop
    rest = [b for b in branches if b != _NULL]
    out = {k: v for k, v in prop.items() if k != "anyOf"}
    if len(rest) == 1 and "$ref" in rest[0]:
        out["allOf"] = rest  # BentoML resolves the reference and keeps `nullable` beside it
    elif len(rest) == 1:
        out.update(rest[0])
        if "enum" in out:
            out["enum"] = [*out["enum"], None]
    elif all(set(b) == {"type"} for b in rest):
        pass  # several plain types: BentoML would keep only the first, so the type is left open
    else:
        out["anyOf"] = rest
    out["nullable"] = True
    return out


def document_nulls(schema: dict[str, Any]) -> None:
    """``json_schema_extra`` hook: rewrite the model's optional properties in place."""
    props = schema.get("properties", {})
    for name, prop in props.items():
        props[name] = _nullable(prop)


class Answer(BaseModel):
    """Base of response models (see the module docstring)."""

    model_config = ConfigDict(json_schema_extra=document_nulls)
