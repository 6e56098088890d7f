"""What a principal may see of the profile index: scope, masking and the audit line of each view and search.

The profile page's routes (``serving/ui/routes.py``) call these helpers with the principal the API-key guard
put on the request (``scope["crmscore.principal"]``). A customer outside the principal's scope is answered as
a customer that does not exist (404, the same message) and never appears in search results.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import numpy as np

from features.messages import M_
from serving.access import audit
from serving.access.masking import mask_record
from serving.access.roles import Principal, scope_mask

log = logging.getLogger("crmscore.access")

#: The principal of a request that did not pass the API-key guard (in-process calls, tests of the page code).
IN_PROCESS = Principal("in-process", "admin", source="in-process")
#: The one answer for an unknown and an out-of-scope customer (no existence leak).
NOT_FOUND = M_("customer_id: no customer with this id in the data")


def principal_of(request: Any) -> Principal:
    """The principal the API-key guard set on ``request`` (its ASGI scope), else :data:`IN_PROCESS`."""
    p = getattr(request, "scope", {}).get("crmscore.principal")
    return p if isinstance(p, Principal) else IN_PROCESS


def allowed_rows(index: Any, principal: Principal) -> np.ndarray | None:
    """Boolean mask of the index's customers the principal may see (None: all), cached per scope on the index."""
    if not principal.scoped:
        return None
    cache: dict[tuple[str, str | None, str | None], np.ndarray] = index.__dict__.setdefault("_scope_masks", {})
    key = (principal.role, principal.team, principal.owner_id)
    if key not in cache:
        cust = index.customers
        none = _none_series(len(cust))
        owner = cust["owner_id"] if "owner_id" in cust.columns else none
        team = cust["team_id"] if "team_id" in cust.columns else none
        cache[key] = scope_mask(principal, owner, team)
    return cache[key]


def _none_series(n: int) -> Any:
    import pandas as pd

    return pd.Series([None] * n, dtype="string")


def visible_row(index: Any, principal: Principal, customer_id: str) -> int | None:
    """The customer's row when it exists and is in scope, else None (answered as 404 either way)."""
    row = index.row_of(customer_id)
    if row is None:
        return None
    allowed = allowed_rows(index, principal)
    return row if allowed is None or bool(allowed[row]) else None


def shown(record: dict[str, Any], principal: Principal) -> dict[str, Any]:
    """The record as the principal may see it (PII masked for roles without PII access)."""
    return record if principal.sees_pii else mask_record(record)


def service_audit_path(home: Path | None) -> Path | None:
    """The audit file of a service whose ``CRMSCORE_HOME`` is ``home`` ($CRMSCORE_AUDIT_FILE wins)."""
    import os

    if os.environ.get("CRMSCORE_AUDIT_FILE") or home is None:
        return None
    return Path(home) / "audit" / "audit.jsonl"


def record_view(action: str, principal: Principal, customers: list[str], fields: list[str], home: Path | None,
                **detail: Any) -> None:
    """Append the audit line of a view or search (a failure propagates: the caller answers 500)."""
    audit.append(action, principal, customers, fields, masked=not principal.sees_pii,
                 path=service_audit_path(home), **detail)


def apply_tombstones(service: Any, index: Any) -> None:
    """Blank the PII of customers forgotten (``crmscore forget``) since the index was loaded."""
    from serving.access.erasure import TombstoneWatcher, drop_from_index

    watcher = service.__dict__.get("_tombstones")
    if watcher is None:
        path = service_audit_path(getattr(service, "home", None)) or audit.audit_path()
        watcher = service.__dict__.setdefault("_tombstones", TombstoneWatcher(path))
    ids = watcher.new_ids()
    if ids:
        n = drop_from_index(index, ids)
        log.info("profile index: PII of %d forgotten customer(s) removed", n)
