"""The member programme's hand-kept inputs for demo data: a small manual-tags file.

CRM staff tag some customers by hand (VIP关怀 after a call, 投诉跟进 after a complaint). The demo writes
``manual_tags.csv`` (``customer_id, tag, added_by, added_at``; the format ``crmscore tags apply --manual``
reads) beside the tables: a seeded few dozen customers, dated before the data's as-of so that every row is
in force at it, with tag names from the default ``configs/tags.yaml``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

#: the file written beside the tables
MANUAL_TAGS_FILE = "manual_tags.csv"
#: manual tags of the default tags config, and who adds them
MANUAL_TAGS = (("VIP关怀", "vip_desk"), ("投诉跟进", "service_team"))
#: share of customers given a manual tag (at least 5, at most 200)
SHARE = 0.01


def manual_tags(customers: pd.DataFrame, as_of: pd.Timestamp | str, seed: int) -> pd.DataFrame:
    """A seeded manual-tags table for ``customers`` created on or before ``as_of``, every row dated at or before it."""
    t = pd.Timestamp(as_of)
    rng = np.random.default_rng(seed + 17)
    created = pd.to_datetime(customers["created_at"])
    pool = customers.loc[(created <= t).fillna(False).to_numpy(dtype=bool), ["customer_id", "created_at"]]
    n = int(min(max(round(len(pool) * SHARE), 5), 200, len(pool)))
    if n == 0:
        return pd.DataFrame(columns=["customer_id", "tag", "added_by", "added_at"])
    pick = pool.iloc[np.sort(rng.choice(len(pool), size=n, replace=False))]
    which = rng.integers(0, len(MANUAL_TAGS), size=n)
    since = pd.to_datetime(pick["created_at"]).to_numpy(dtype="datetime64[ns]")
    span = (np.datetime64(t, "ns") - since).astype("timedelta64[s]").astype(np.int64)
    added = since + (rng.random(n) * np.maximum(span, 0)).astype("timedelta64[s]")
    return pd.DataFrame(
        {
            "customer_id": pick["customer_id"].astype(str).to_numpy(),
            "tag": [MANUAL_TAGS[k][0] for k in which],
            "added_by": [MANUAL_TAGS[k][1] for k in which],
            "added_at": pd.to_datetime(added).strftime("%Y-%m-%d %H:%M:%S"),
        }
    )


def write_manual_tags(customers: pd.DataFrame, as_of: pd.Timestamp | str, seed: int, out: Path) -> str:
    """Write :func:`manual_tags` to ``out/manual_tags.csv`` (UTF-8); returns the file name."""
    manual_tags(customers, as_of, seed).to_csv(Path(out) / MANUAL_TAGS_FILE, index=False, encoding="utf-8")
    return MANUAL_TAGS_FILE
