"""POST /route_lead as plain functions: the routing config the service loads and one lead routed with it."""

from __future__ import annotations

import os
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from features.messages import M_, message_of
from serving.http.postprocess import RequestError
from training.routing import RoutingConfig, RoutingError, load_routing_config, route_leads

#: where the service looks for the routing config when $CRMSCORE_ROUTING_CONFIG is not set
DEFAULT_ROUTING_CONFIG = Path("configs/routing.yaml")


def load_service_routing() -> tuple[RoutingConfig | None, str | None]:
    """(config, None), or (None, why there is none): ``$CRMSCORE_ROUTING_CONFIG``, else ``configs/routing.yaml``
    in the working directory. A bad file is reported, not raised: only /route_lead depends on it."""
    path = os.environ.get("CRMSCORE_ROUTING_CONFIG") or (
        str(DEFAULT_ROUTING_CONFIG) if DEFAULT_ROUTING_CONFIG.is_file() else None
    )
    if path is None:
        where = DEFAULT_ROUTING_CONFIG
        return None, M_("no routing config: set CRMSCORE_ROUTING_CONFIG or put {where} in the working directory",
                        where=where)
    try:
        return load_routing_config(path), None
    except Exception as e:  # noqa: BLE001 - ConfigError, OSError: the endpoint answers 503 with it
        return None, M_("routing config {path}: {error}", path=path, error=e)


def route_one(
    config: RoutingConfig, lead: Mapping[str, Any], as_of: str | None, assigned_today: Mapping[str, int]
) -> dict[str, Any]:
    """The /route_lead body for one lead (``lead``: the request's lead as a dict, ``fields`` flattened in)."""
    row = {k: v for k, v in lead.items() if k != "fields"}
    for k, v in (lead.get("fields") or {}).items():
        if k in row:
            raise RequestError(422, M_("{path}: already a field of the lead; send it once", path=f"lead.fields.{k}"))
        row[k] = v
    row[config.id_field] = row.pop("lead_id")
    day = as_of or datetime.now(UTC).date().isoformat()
    frame = pd.DataFrame([row])
    try:
        res = route_leads(frame, config, day, assigned=assigned_today)
    except RoutingError as e:
        inner = message_of(e)
        error: str
        if inner is not None and inner.template == "--as-of {as_of!r} is not a date":
            field, error = "as_of", M_("as_of {as_of!r} is not a date", **inner.fields)  # the request's name
        else:
            field, error = ("assigned_today" if "assigned" in str(e) else "lead"), inner or str(e)
        raise RequestError(422, M_("{field}: {error}", field=field, error=error)) from None
    except (ValueError, KeyError, TypeError) as e:  # a rule reading a field the lead does not have
        raise RequestError(422, M_("lead: {error}", error=e)) from None
    a = res.assignments.iloc[0]
    owner = str(a["owner_id"]) or None
    team = {r.id: r.team for r in config.reps}.get(owner) if owner else None
    return {
        "lead_id": str(lead["lead_id"]),
        "owner_id": owner,
        "team": team,
        "rule": str(a["rule"]),
        "reason": str(a["reason"]),
        "grade": str(a["grade"]),
    }
