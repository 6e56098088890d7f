"""The public API: ``generate_crm_data``, ``realise_labels``, ``compute_oracle_aucs``, ``write_crm_data``."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.messages import M_
from features.progress import ProgressCallback, no_progress
from features.synth.bant import add_bant_answers
from features.synth.baskets import build_order_items, planted_truth
from features.synth.coupon import add_coupon_campaign
from features.synth.feedback import FEEDBACK_FILE, write_feedback
from features.synth.member_inputs import MANUAL_TAGS_FILE, write_manual_tags
from features.synth.messy import _MESSY_FILES, _write_messy
from features.synth.owners import add_owners
from features.synth.params import CHURN_LOOKBACK_DAYS, DAY, DEFAULT_END, DEFAULT_HORIZON_DAYS, _Timeline
from features.synth.simulate import _check_args, _draw_static, _simulate
from features.synth.tables import (
    _build_customers,
    _build_interactions,
    _build_orders,
    _build_touches,
    _build_truth,
    _ids,
    _rate,
)


@dataclass
class SynthResult:
    """The generated tables (contract dtypes), the exact truth at ``as_of`` and run metadata."""

    customers: pd.DataFrame
    interactions: pd.DataFrame
    orders: pd.DataFrame
    marketing_touches: pd.DataFrame
    truth: pd.DataFrame
    meta: dict[str, Any] = field(default_factory=dict)
    #: the randomised coupon campaign's arm and planted effect per customer (features/synth/coupon.py)
    coupon_truth: pd.DataFrame | None = None
    #: optional order lines with planted associations (features.synth.baskets); written in clean mode
    order_items: pd.DataFrame | None = None

    def tables(self) -> dict[str, pd.DataFrame]:
        """The four contract tables by name."""
        return {
            "customers": self.customers,
            "interactions": self.interactions,
            "orders": self.orders,
            "marketing_touches": self.marketing_touches,
        }


# ---------------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------------


def generate_crm_data(
    n_customers: int,
    days: int,
    seed: int,
    as_of: date | None = None,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    end: date | None = None,
    progress: ProgressCallback = no_progress,
) -> SynthResult:
    """Generate a synthetic CRM: customers, interactions, orders, marketing touches and the exact truth.

    ``end`` is the last day with data (default 2025-06-30); the data covers the ``days`` days up to and
    including it. The as-of cut-off T is ``as_of`` at 00:00:00; the default is ``end - horizon`` (the
    latest cut-off whose outcome window (T, T+H] lies inside the data, as `latest_labelable_cutoff`
    finds). The truth covers customers created at or before T: ``p_convert`` for leads (no paid order at
    or before T), ``p_churn`` for active customers (a paid order in (T-180d, T]). Same arguments →
    identical frames. ``progress`` is told the stages (customers, simulating, tables, truth).
    """
    end = end or DEFAULT_END
    _check_args(n_customers, days, horizon_days)
    start = end - timedelta(days=days - 1)
    if as_of is None:
        as_of = end - timedelta(days=horizon_days)
    if as_of <= start:
        raise ValueError(M_(
            "as_of {as_of} must be after the data start {start} (end {end}, days {days})",
            as_of=as_of, start=start, end=end, days=days,
        ))
    if as_of + timedelta(days=horizon_days) > end + timedelta(days=1):
        raise ValueError(
            M_(
                "as_of {as_of} + horizon {horizon_days} days runs past the data end {end}; use as_of <= {latest_as_of}",
                as_of=as_of,
                horizon_days=horizon_days,
                end=end,
                latest_as_of=end + timedelta(days=1) - timedelta(days=horizon_days),
            )
        )
    tl = _Timeline(start, days)
    t_sec = (as_of - start).days * DAY
    seeds = np.random.SeedSequence(seed).spawn(3)
    rng_static, rng_sim, rng_pii = (np.random.default_rng(s) for s in seeds)

    progress("drawing customers", 0, n_customers)
    static = _draw_static(n_customers, tl, rng_static)
    progress("simulating behaviour", 0, n_customers)
    sim = _simulate(static, tl, t_sec, horizon_days, rng_sim)
    ids = _ids("C", n_customers, 8)

    progress("building tables", 0, 5)
    customers = add_owners(add_bant_answers(_build_customers(static, ids, tl, rng_pii), static["z"], seed))
    progress("building tables", 1, 5)
    interactions = _build_interactions(sim, ids, tl)
    progress("building tables", 2, 5)
    orders = _build_orders(sim, ids, tl)
    progress("building tables", 3, 5)
    touches = _build_touches(sim, ids, tl)
    progress("building tables", 4, 5)
    truth = _build_truth(sim["truth"], ids)
    coupon = add_coupon_campaign(customers, orders, touches, as_of, seed)
    orders, touches = coupon.orders, coupon.touches
    progress("building tables", 5, 5)

    progress("labels and oracle AUC")
    labels = realise_labels(customers, orders, as_of, horizon_days, CHURN_LOOKBACK_DAYS)
    aucs = compute_oracle_aucs(truth, labels)
    meta: dict[str, Any] = {
        "as_of": as_of.isoformat(),
        "horizon_days": horizon_days,
        "churn_lookback_days": CHURN_LOOKBACK_DAYS,
        "oracle_auc_convert": aucs["convert"],
        "oracle_auc_churn": aucs["churn"],
        "seed": seed,
        "n_customers": n_customers,
        "days": days,
        "data_start": start.isoformat(),
        "data_end": end.isoformat(),
        "n_leads": int(labels["is_lead"].sum()),
        "n_active": int(labels["is_active"].sum()),
        "convert_rate": _rate(labels.loc[labels["is_lead"], "converted"]),
        "churn_rate": _rate(labels.loc[labels["is_active"], "churned"]),
        "coupon_campaign": coupon.meta,
        "rows": {
            "customers": len(customers),
            "interactions": len(interactions),
            "orders": len(orders),
            "marketing_touches": len(touches),
        },
    }
    return SynthResult(
        customers, interactions, orders, touches, truth, meta, coupon_truth=coupon.truth,
        order_items=build_order_items(orders, seed),
    )


def realise_labels(
    customers: pd.DataFrame,
    orders: pd.DataFrame,
    as_of: date | str | pd.Timestamp,
    horizon_days: int = DEFAULT_HORIZON_DAYS,
    lookback_days: int = CHURN_LOOKBACK_DAYS,
) -> pd.DataFrame:
    """The labels the data realises at cut-off T = ``as_of`` 00:00 (the project's label definition).

    Population: customers with created_at <= T. A lead has no paid order with ts <= T and converts if
    it has a paid order in (T, T+H]. An active customer has a paid order in (T-lookback, T] and churns
    if it has no paid order in (T, T+H]. Returns customer_id, is_lead, converted, is_active, churned.
    """
    t = pd.Timestamp(as_of)
    t_end = t + pd.Timedelta(days=horizon_days)
    paid = orders.loc[orders["status"] == "paid", ["customer_id", "ts"]]
    before = paid.loc[paid["ts"] <= t, "customer_id"].unique()
    window = paid.loc[(paid["ts"] > t) & (paid["ts"] <= t_end), "customer_id"].unique()
    since = t - pd.Timedelta(days=lookback_days)
    recent = paid.loc[(paid["ts"] > since) & (paid["ts"] <= t), "customer_id"].unique()
    pop = customers.loc[customers["created_at"] <= t, "customer_id"].drop_duplicates()
    is_lead = ~pop.isin(before)
    bought = pop.isin(window)
    is_active = pop.isin(recent)
    return pd.DataFrame(
        {
            "customer_id": pop.to_numpy(),
            "is_lead": is_lead.to_numpy(),
            "converted": (is_lead & bought).to_numpy(),
            "is_active": is_active.to_numpy(),
            "churned": (is_active & ~bought).to_numpy(),
        }
    )


def compute_oracle_aucs(truth: pd.DataFrame, labels: pd.DataFrame) -> dict[str, float | None]:
    """ROC-AUC of the true probabilities against realised labels (None when a class is missing)."""
    from sklearn.metrics import roc_auc_score

    m = truth.merge(labels, on="customer_id", how="inner", suffixes=("", "_label"))
    out: dict[str, float | None] = {}
    for task, pop_col, p_col, y_col in (
        ("convert", "is_lead", "p_convert", "converted"),
        ("churn", "is_active", "p_churn", "churned"),
    ):
        sub = m[m[pop_col]]
        y = sub[y_col].to_numpy(dtype=bool)
        out[task] = float(roc_auc_score(y, sub[p_col].to_numpy())) if 0 < y.sum() < len(y) else None
    return out


def write_crm_data(
    result: SynthResult, out: Path, messy: bool = False, progress: ProgressCallback = no_progress
) -> dict[str, Any]:
    """Write the tables to ``out`` (clean Parquet data dir, or messy real-world exports) plus ``truth/``.

    Returns a summary: mode, files written, row counts and the oracle AUCs. ``progress`` counts tables written.
    """
    progress("writing files", 0, len(result.tables()) + 1)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    truth_dir = out / "truth"
    truth_dir.mkdir(exist_ok=True)
    result.truth.to_parquet(truth_dir / "truth.parquet", index=False)
    truth_meta = {
        k: result.meta[k]
        for k in (
            "as_of",
            "horizon_days",
            "churn_lookback_days",
            "oracle_auc_convert",
            "oracle_auc_churn",
            "seed",
            "n_customers",
        )
    }
    truth_meta.update(
        {
            k: result.meta[k]
            for k in ("data_start", "data_end", "n_leads", "n_active", "convert_rate", "churn_rate")
        }
    )
    (truth_dir / "truth.json").write_text(
        json.dumps(truth_meta, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    files = ["truth/truth.parquet", "truth/truth.json"]
    if result.coupon_truth is not None:
        result.coupon_truth.to_parquet(truth_dir / "coupon_uplift.parquet", index=False)
        files.append("truth/coupon_uplift.parquet")
    # a folder holds one mode: drop this generator's files of the other mode from an earlier run
    stale = _MESSY_FILES if not messy else (
        *(f"{name}.parquet" for name in result.tables()), MANUAL_TAGS_FILE, FEEDBACK_FILE, "order_items.parquet"
    )
    for name in stale:
        (out / name).unlink(missing_ok=True)
    progress("writing files", 1, len(result.tables()) + 1)
    if messy:
        manifest = _write_messy(result, out)
        files += [t["file"] for t in manifest["tables"].values()] + ["messy_manifest.json"]
        rows = {name: t["rows_written"] for name, t in manifest["tables"].items()}
    else:
        for i, (name, df) in enumerate(result.tables().items(), start=2):
            df.to_parquet(out / f"{name}.parquet", index=False)
            files.append(f"{name}.parquet")
            progress("writing files", i, len(result.tables()) + 1)
        rows = {name: len(df) for name, df in result.tables().items()}
        files.append(write_manual_tags(result.customers, result.meta["as_of"], result.meta["seed"], out))
        files.append(write_feedback(result.interactions, result.orders, result.meta["seed"], out))
        if result.order_items is not None:  # order lines and the associations planted in them
            result.order_items.to_parquet(out / "order_items.parquet", index=False)
            planted_truth().to_parquet(truth_dir / "associations.parquet", index=False)
            files += ["order_items.parquet", "truth/associations.parquet"]
            rows["order_items"] = len(result.order_items)
    (out / "README.md").write_text(_readme(result, messy), encoding="utf-8")
    files.append("README.md")
    return {
        "out": str(out),
        "mode": "messy" if messy else "clean",
        "files": files,
        "rows": rows,
        "oracle_auc_convert": result.meta["oracle_auc_convert"],
        "oracle_auc_churn": result.meta["oracle_auc_churn"],
        "as_of": result.meta["as_of"],
        "horizon_days": result.meta["horizon_days"],
    }



def _readme(result: SynthResult, messy: bool) -> str:
    m = result.meta
    head = (
        "# Synthetic CRM data (crmscore synth)\n\n"
        f"Generated with seed {m['seed']}: {m['n_customers']} customers, {m['days']} days of data "
        f"({m['data_start']} .. {m['data_end']}). All names, phones, emails and addresses are fake.\n\n"
        f"`truth/truth.parquet` holds, for every customer created at or before the as-of cut-off "
        f"T = {m['as_of']} 00:00:00, the exact probability of a paid order in (T, T+{m['horizon_days']}d]: "
        "`p_convert` for leads (no paid order at or before T), `p_churn` = 1 - that probability for active "
        f"customers (a paid order in (T-{CHURN_LOOKBACK_DAYS}d, T]). `truth/truth.json` records the oracle "
        "ROC-AUCs of those probabilities against the labels realised in these tables.\n\n"
    )
    if not messy:
        return head + (
            "Clean mode: `customers.parquet`, `interactions.parquet`, `orders.parquet` and "
            "`marketing_touches.parquet` carry the contract columns and dtypes; this folder is a data dir.\n"
        )
    return head + (
        "Messy mode: real-world-looking exports, to be cleaned by `crmscore ingest`.\n\n"
        "| file | format | encoding |\n|---|---|---|\n"
        "| customers.csv | CSV | GB18030 |\n"
        "| orders.csv | CSV | UTF-8 with BOM |\n"
        "| interactions.csv | CSV | UTF-8 |\n"
        "| marketing_touches.xlsx | Excel (first sheet), or marketing_touches.csv in UTF-8 when it has more "
        "rows than an Excel sheet holds | - |\n\n"
        "Headers are the contract column names; customers.csv has one extra column `updated_at` (ISO "
        "timestamps): when a customer_id appears more than once, the row with the latest `updated_at` is the "
        "current one (exact duplicate lines also occur). Timestamps come in several formats, all with "
        "second precision: `2024-03-05 14:03:22`, `2024/3/5 14:03:22`, `05/03/2024 14:03:22` (day first), "
        "`2024年3月5日 14:03:22`, and Excel serial day numbers with six decimals (round to the second). "
        "Amounts may carry `¥`/`$` signs and thousands separators (the number is the amount; the sign is "
        "decoration). Booleans are spelled True/False, 是/否, Y/N or 1/0. Some values are padded with "
        "spaces, some are blank, `N/A` or malformed (e.g. age `abc`, amount `--`).\n\n"
        "`messy_manifest.json` states exactly how many rows of each kind were injected, per table and "
        "column. Fault counts are over the rows written; every injected fault sits on its own row, and "
        "duplicates copy fault-free rows only.\n"
    )


