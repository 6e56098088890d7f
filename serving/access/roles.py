"""Roles, the permission matrix over every endpoint and CLI export, principals and customer scope.

A :class:`Principal` is who a request (or a CLI command) runs as: a name, one of :data:`ROLES`, a team and, for
sales reps, an owner id. :data:`PERMISSIONS` says which actions each role may take; :data:`ENDPOINT_ACTIONS`
maps every protected HTTP path to its action. A customer outside a principal's scope (:meth:`Principal.sees`)
is answered exactly like a customer that does not exist.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["admin", "manager", "sales", "analyst", "integration"]
#: The roles, most powerful first.
ROLES: tuple[Role, ...] = ("admin", "manager", "sales", "analyst", "integration")

#: Every action a principal can take: HTTP endpoints and CLI exports.
ACTIONS: tuple[str, ...] = (
    "score",  # POST /score_leads, /predict_churn, /recommend, /next_action
    "segment",  # POST /segment
    "model_info",  # GET /model_info
    "drift",  # GET /drift
    "forecast",  # GET /forecast
    "ui",  # GET /ui/api/status, POST /ui/api/search, /ui/api/profile, /ui/api/next_steps
    "export_scores",  # crmscore score (lead, churn, uplift), segment apply, route: the caller's list scored
    "export_lists",  # crmscore actions, recommend, tags apply, members apply: lists over every customer
    "export_reports",  # crmscore report, forecast: aggregate tables (no customer rows)
    "export_audience",  # crmscore audience export
    "export_pii",  # PII columns in an export (audience --include-pii, score --keep name,phone...)
    "audit",  # crmscore audit, crmscore audit verify
    "forget",  # crmscore forget
    "keys",  # crmscore keys add|revoke|list
)

#: Which roles may take each action (docs/access.md prints this table).
PERMISSIONS: Mapping[str, frozenset[Role]] = {
    "score": frozenset(ROLES),
    "segment": frozenset(ROLES),
    "model_info": frozenset({"admin", "manager", "sales", "analyst"}),
    "drift": frozenset({"admin", "manager", "analyst"}),
    "forecast": frozenset({"admin", "manager", "sales", "analyst"}),
    "ui": frozenset({"admin", "manager", "sales", "analyst"}),
    "export_scores": frozenset(ROLES),
    "export_lists": frozenset({"admin", "analyst"}),
    "export_reports": frozenset({"admin", "manager", "sales", "analyst"}),
    "export_audience": frozenset({"admin", "manager", "sales", "analyst"}),
    "export_pii": frozenset({"admin", "manager", "sales"}),
    "audit": frozenset({"admin"}),
    "forget": frozenset({"admin"}),
    "keys": frozenset({"admin"}),
}

#: Protected HTTP path → action (``/metrics`` and the health probes are open; ``GET /ui`` is the static page).
#: A protected path missing here is refused to every role (403): the guard fails closed.
ENDPOINT_ACTIONS: Mapping[str, str] = {
    "/score_leads": "score",
    "/predict_churn": "score",
    "/segment": "segment",
    "/model_info": "model_info",
    "/drift": "drift",
    "/forecast": "forecast",
    "/coupon_uplift": "score",
    "/route_lead": "score",
    "/ui/api/status": "ui",
    "/ui/api/search": "ui",
    "/ui/api/profile": "ui",
    "/recommend": "score",
    "/next_action": "score",
    "/ui/api/next_steps": "ui",
}

#: Every CLI command that writes a file for people → its action (docs/access.md). A command writing such a file
#: must be here: a unit test compares this with the CLI's commands (the rest are listed there with the reason).
CLI_EXPORTS: Mapping[str, str] = {
    "score": "export_scores",
    "segment apply": "export_scores",
    "route": "export_scores",
    "actions": "export_lists",
    "recommend": "export_lists",
    "tags apply": "export_lists",
    "members apply": "export_lists",
    "report": "export_reports",
    "forecast": "export_reports",
    "audience export": "export_audience",
}

#: Roles that see PII values unmasked.
PII_ROLES: frozenset[Role] = frozenset({"admin", "manager", "sales"})


@dataclass(frozen=True)
class Principal:
    """Who a request or a command runs as.

    ``team`` limits a manager to the customers whose ``team_id`` is theirs; ``owner_id`` limits a sales rep to
    the customers whose ``owner_id`` is theirs. ``source`` says where the principal came from (``keys file``,
    ``CRMSCORE_API_KEYS``, ``local``) for the audit trail.
    """

    name: str
    role: Role
    team: str | None = None
    owner_id: str | None = None
    source: str = "keys file"

    def may(self, action: str) -> bool:
        """Whether the role permits ``action`` (one of :data:`ACTIONS`)."""
        return self.role in PERMISSIONS[action]

    @property
    def sees_pii(self) -> bool:
        """Whether PII values are shown to this principal unmasked."""
        return self.role in PII_ROLES

    @property
    def scoped(self) -> bool:
        """Whether the principal sees only part of the customers (manager: a team; sales: an owner id)."""
        return self.role in ("manager", "sales")

    def sees(self, owner_id: Any, team_id: Any) -> bool:
        """Whether a customer with this ``owner_id`` and ``team_id`` is in the principal's scope."""
        if self.role == "manager":
            return self.team is not None and _text(team_id) == self.team
        if self.role == "sales":
            return self.owner_id is not None and _text(owner_id) == self.owner_id
        return True

    def audit_fields(self) -> dict[str, Any]:
        """The principal as the audit trail records it (no key, no hash)."""
        return {"principal": self.name, "role": self.role, "team": self.team, "owner_id": self.owner_id}


def _text(v: Any) -> str | None:
    if v is None or (isinstance(v, float) and v != v):
        return None
    try:
        import pandas as pd

        if v is pd.NA:
            return None
    except ImportError:  # pragma: no cover - pandas is a dependency
        pass
    return str(v)


def scope_mask(principal: Principal, owner_ids: Any, team_ids: Any) -> Any:
    """Boolean numpy mask of the customers (owner and team id columns, pandas Series) in ``principal``'s scope."""
    import numpy as np

    n = len(owner_ids)
    if principal.role == "manager":
        if principal.team is None:
            return np.zeros(n, dtype=bool)
        return (team_ids.astype("string") == principal.team).fillna(False).to_numpy(dtype=bool)
    if principal.role == "sales":
        if principal.owner_id is None:
            return np.zeros(n, dtype=bool)
        return (owner_ids.astype("string") == principal.owner_id).fillna(False).to_numpy(dtype=bool)
    return np.ones(n, dtype=bool)


def cli_markdown() -> str:
    """The CLI exports and their actions as a Markdown table, as docs/access.md shows it."""
    head = "| command | action | " + " | ".join(ROLES) + " |\n|---|---|" + "---|" * len(ROLES) + "\n"
    rows = "".join(
        f"| `crmscore {c}` | {a} | " + " | ".join("yes" if r in PERMISSIONS[a] else "no" for r in ROLES) + " |\n"
        for c, a in CLI_EXPORTS.items()
    )
    return head + rows


def matrix_markdown() -> str:
    """The permission matrix as a Markdown table (roles × actions), as docs/access.md shows it."""
    head = "| action | " + " | ".join(ROLES) + " |\n|---|" + "---|" * len(ROLES) + "\n"
    rows = "".join(
        f"| {a} | " + " | ".join("yes" if r in PERMISSIONS[a] else "no" for r in ROLES) + " |\n" for a in ACTIONS
    )
    return head + rows
