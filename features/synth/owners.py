"""Owners and teams of the synthetic customers (``owner_id``, ``team_id``): the access scope of sales reps and
managers (docs/access.md).

Assigned from the customer id alone (CRC-32), so the other generated columns and their random streams are
unchanged. The reps and teams match ``configs/routing.yaml``; about one lead in ten has no owner yet.
"""

from __future__ import annotations

import zlib

import numpy as np
import pandas as pd

#: (owner id, team id) of the synthetic sales reps, as in configs/routing.yaml.
REPS: tuple[tuple[str, str], ...] = (
    ("r001", "east"), ("r002", "east"), ("r003", "north"), ("r004", "south"), ("r005", "inside_sales"),
)
#: Share of customers without an owner (no team either).
UNOWNED_SHARE = 0.1


def add_owners(customers: pd.DataFrame) -> pd.DataFrame:
    """``customers`` with ``owner_id`` and ``team_id`` filled from a hash of ``customer_id``."""
    h = np.array([zlib.crc32(str(c).encode()) for c in customers["customer_id"].tolist()], dtype=np.int64)
    unowned = (h % 1000) < int(UNOWNED_SHARE * 1000)
    pick = (h // 1000) % len(REPS)
    owners = np.array([r[0] for r in REPS], dtype=object)[pick]
    teams = np.array([r[1] for r in REPS], dtype=object)[pick]
    owners[unowned] = None
    teams[unowned] = None
    out = customers.copy()
    out["owner_id"] = pd.array(owners, dtype="string")
    out["team_id"] = pd.array(teams, dtype="string")
    return out
