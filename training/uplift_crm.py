"""Uplift from a randomised campaign in the CRM tables (`crmscore train uplift --data DIR`).

A randomised campaign is recorded in ``marketing_touches``: the treated arm under its campaign id, the control
(holdout) arm under the same id with the suffix ``-HOLDOUT`` (rows of customers who were in the test and were sent
nothing). Each customer's features are the point-in-time features of the feature builder
(:func:`features.build.build_features`) one second before the campaign's first send, so nothing the campaign
caused is seen; the outcome is a paid order in (sent_at, sent_at + window]. The table of features, arm and outcome
then goes through the same uplift job as a flat table (:func:`training.uplift.train_uplift_table`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.messages import M_
from training.uplift import UpliftError, UpliftResult, train_uplift_table

HOLDOUT_SUFFIX = "-HOLDOUT"
ARM_COLUMN = "arm"
OUTCOME_COLUMN = "bought_in_window"


@dataclass
class CampaignTable:
    """One row per customer of a randomised campaign: point-in-time features, arm and outcome."""

    frame: pd.DataFrame
    campaign: str
    sent_at: pd.Timestamp
    window_days: int
    warnings: list[str] = field(default_factory=list)


def randomised_campaigns(touches: pd.DataFrame) -> list[str]:
    """Campaign ids that have a control arm (``<id>-HOLDOUT``), latest first send first."""
    ids = set(touches["campaign_id"].dropna().astype(str))
    found = [c for c in ids if not c.endswith(HOLDOUT_SUFFIX) and c + HOLDOUT_SUFFIX in ids]
    first = touches.assign(campaign_id=touches["campaign_id"].astype(str)).groupby("campaign_id")["sent_at"].min()
    return sorted(found, key=lambda c: (first.get(c), c), reverse=True)


def campaign_table(
    tables: dict[str, pd.DataFrame], campaign: str | None = None, window_days: int = 14, config: Any = None
) -> CampaignTable:
    """The uplift table of ``campaign`` (default: the latest randomised campaign) from the contract tables."""
    from features.build import build_features

    if window_days < 1:
        raise UpliftError(M_("--window {window_days}: must be at least 1 day", window_days=window_days))
    touches = tables.get("marketing_touches")
    if touches is None or touches.empty:
        raise UpliftError(M_("marketing_touches: the table is missing or empty; a randomised campaign is read from it"))
    known = randomised_campaigns(touches)
    if campaign is None:
        if not known:
            raise UpliftError(
                M_(
                    "marketing_touches: no randomised campaign — no campaign_id has a control arm recorded as "
                    "'<campaign_id>{HOLDOUT_SUFFIX}'",
                    HOLDOUT_SUFFIX=HOLDOUT_SUFFIX,
                )
            )
        campaign = known[0]
    elif campaign not in known:
        ids = touches["campaign_id"].astype(str)
        why = "does not occur" if not (ids == campaign).any() else f"has no control arm {campaign + HOLDOUT_SUFFIX!r}"
        raise UpliftError(
            M_(
                "--campaign {campaign!r} {why} in marketing_touches (randomised campaigns: {value})",
                campaign=campaign, why=why, value=", ".join(known) or "none",
            )
        )
    warn: list[str] = []
    ids = touches["campaign_id"].astype(str)
    rows = touches.loc[ids.isin([campaign, campaign + HOLDOUT_SUFFIX]), ["customer_id", "campaign_id", "sent_at"]]
    rows = rows.assign(treated=(rows["campaign_id"].astype(str) == campaign).astype(int))
    per = rows.groupby("customer_id", observed=True).agg(
        treated=("treated", "max"), arms=("treated", "nunique"), sent_at=("sent_at", "min")
    )
    both = per["arms"] > 1
    if both.any():
        warn.append(f"{int(both.sum())} customer(s) in both arms of {campaign!r} left out")
        per = per.loc[~both]
    sent = pd.Timestamp(per["sent_at"].min())
    as_of = sent - pd.Timedelta(seconds=1)
    feats = build_features(tables, as_of, config, customer_ids=per.index.astype(str).tolist())
    missing = len(per) - len(feats)
    if missing > 0:
        warn.append(f"{missing} customer(s) of the campaign not in customers (or created after the send) left out")
    per = per.reindex(feats.index)
    orders = tables.get("orders")
    bought = np.zeros(len(per), dtype=int)
    if orders is not None and not orders.empty:
        paid = orders.loc[orders["status"].astype(str) == "paid", ["customer_id", "ts"]]
        paid = paid.loc[paid["customer_id"].isin(per.index)]
        start = paid["customer_id"].map(per["sent_at"])
        inside = (paid["ts"] > start) & (paid["ts"] <= start + pd.Timedelta(days=window_days))
        hit = set(paid.loc[inside, "customer_id"].astype(str))
        bought = per.index.astype(str).isin(list(hit)).astype(int)
    frame = feats.reset_index()
    frame[ARM_COLUMN] = np.where(per["treated"].to_numpy() == 1, "treated", "control")
    frame[OUTCOME_COLUMN] = bought
    return CampaignTable(frame, campaign, sent, window_days, warn)


def feature_kinds(features: pd.DataFrame) -> dict[str, str]:
    """Kinds of the feature builder's columns, known rather than guessed from names (a column such as
    ``n_ch_email_30d`` counts e-mail events and is no PII; the builder never outputs PII)."""
    from pandas.api.types import is_bool_dtype, is_numeric_dtype

    out: dict[str, str] = {}
    for c in features.columns:
        if c == "customer_id":
            out[c] = "id"
        elif is_bool_dtype(features[c]):
            out[c] = "bool"
        elif is_numeric_dtype(features[c]):
            out[c] = "numeric"
        else:
            out[c] = "categorical"
    return out


def train_uplift_crm(
    data: str | Path,
    campaign: str | None = None,
    window_days: int = 14,
    name: str = "coupon_uplift",
    seed: int = 42,
    margin: float = 0.0005,
    n_boot: int = 200,
) -> tuple[UpliftResult, CampaignTable]:
    """Build the campaign's uplift table from the data dir and run the uplift job on it (see the module)."""
    from features.io import load_tables

    tables = load_tables(data, required=("customers", "marketing_touches"))
    table = campaign_table(tables, campaign, window_days)
    result = train_uplift_table(
        table.frame,
        ARM_COLUMN,
        OUTCOME_COLUMN,
        control="control",
        treated=["treated"],
        id_column="customer_id",
        name=name,
        seed=seed,
        margin=margin,
        n_boot=n_boot,
        source=Path(data).name,
        task="uplift",
        column_kinds=feature_kinds(table.frame.drop(columns=[ARM_COLUMN, OUTCOME_COLUMN])),
        extra_params={
            "campaign_id": table.campaign,
            "campaign_sent_at": str(table.sent_at),
            "features_as_of": str(table.sent_at - pd.Timedelta(seconds=1)),
            "window_days": window_days,
        },
    )
    result.warnings[:0] = table.warnings
    return result, table
