"""The per-customer context the rule tags, audiences and actions read, built the same way in batch and online.

:func:`build_context` assembles it: member levels (computed, or read from ``--members DIR``), the non-PII
profile, RFM scores and segment, P(alive) and value tier (the project's own ``training.segment`` code, fitted at
T), point-in-time features (only when a rule names one) and any ``--scores`` frame (lead / churn grades, or the
segment model's own output). Only what the rules need is computed. ``crmscore tags apply`` calls it over a data
dir; ``POST /segment`` (:mod:`serving.members.online`) calls it over the tables of the customers of a request.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from features.contract import BANT_COLUMNS
from features.messages import M_

#: profile columns of the customers table rules may use (never PII); member_level becomes crm_member_level
PROFILE_COLUMNS = (
    "source_channel",
    "province",
    "city",
    "industry",
    "company_size",
    "job_title",
    "gender",
    "age",
    "points_balance",
    "marketing_consent",
    "member_level",
    *BANT_COLUMNS,
)
RFM_COLUMNS = ("r_score", "f_score", "m_score", "rfm_segment")
TIER_COLUMNS = ("p_alive", "value_tier", "value_tier_zh")
#: columns of a scores file given as PREFIX=FILE that get the prefix (batch scoring's result columns)
SCORE_RESULT_COLUMNS = ("probability", "score", "grade", "rank", "decile")
#: buyers the BG/NBD model behind P(alive) is fitted on (a seeded random sample when there are more): its four
#: parameters are pinned down well by 25,000 buyers (the likelihood costs a pass over every buyer per step)
BGNBD_SAMPLE = 25_000
MISSING_HINT = M_(
    "; lead and churn grades come from --scores lead=FILE / churn=FILE (crmscore score output), "
    "member levels from the members config or --members DIR"
)


def read_scores(spec: str) -> tuple[str, Any]:
    """One ``--scores`` value: ``FILE`` or ``PREFIX=FILE`` (Parquet or CSV with a customer_id column)."""
    import pandas as pd

    prefix, _, path = spec.rpartition("=") if "=" in spec else ("", "", spec)
    p = Path(path)
    if not p.is_file():
        raise ValueError(f"--scores: file not found: {p}")
    df = pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pd.read_csv(p, encoding="utf-8-sig")
    if "customer_id" not in df.columns:
        raise ValueError(f"--scores {p}: no customer_id column (columns: {', '.join(map(str, df.columns[:20]))})")
    from features.contract import PII_COLUMNS

    df = df.drop(columns=[c for c in df.columns if c in PII_COLUMNS])
    if prefix:
        df = df.rename(columns={c: f"{prefix}_{c}" for c in SCORE_RESULT_COLUMNS if c in df.columns})
    df["customer_id"] = df["customer_id"].astype("string")
    dup = df["customer_id"].duplicated()
    if dup.any():
        raise ValueError(f"--scores {p}: customer_id {df.loc[dup, 'customer_id'].iloc[0]!r} appears twice")
    return str(p), df.set_index("customer_id")


def build_context(
    tables: dict[str, Any],
    as_of: Any,
    levels: Any,
    needed: list[str],
    scores: Sequence[tuple[str, Any]] = (),
    segment_config: Path | None = None,
    bant_config: Path | None = None,
) -> tuple[Any, dict[str, Any]]:
    """The per-customer context frame (one row per customer of ``levels``) and notes on what was computed.

    ``needed`` are the fields the rules read: RFM, P(alive) / value tier and features are computed only
    when needed (P(alive) fits BG/NBD at T on the buyers; RFM quintiles are learned at T).
    """
    import numpy as np
    import pandas as pd

    notes: dict[str, Any] = {}
    ctx = levels[["customer_id", *LEVEL_CONTEXT_COLUMNS]].copy()
    ctx["customer_id"] = ctx["customer_id"].astype("string")
    ids = pd.Index(ctx["customer_id"])
    need = set(needed)
    customers = tables.get("customers")
    if customers is not None:
        from features.members.levels import positions_in

        pos = positions_in(ids, customers["customer_id"])
        row_of = np.full(len(ids), -1, dtype=np.int64)  # customers-table row of each context customer
        ok = pos >= 0
        row_of[pos[ok]] = np.flatnonzero(ok)
        for c in PROFILE_COLUMNS:
            if c in customers.columns:
                vals = customers[c].reset_index(drop=True).reindex(row_of)  # -1: no row → missing
                ctx["crm_member_level" if c == "member_level" else c] = vals.to_numpy()
        if any(c in customers.columns for c in BANT_COLUMNS):
            from features.members.bant import bant_frame, fit_scores, load_bant_config

            answers = bant_frame(ctx)  # typed: decision_maker is a true/false field in rules
            for c in BANT_COLUMNS:
                ctx[c] = answers[c].array
            fit = fit_scores(answers, load_bant_config(bant_config))
            ctx["fit_score"] = fit["fit_score"].to_numpy()
            ctx["fit_grade"] = fit["fit_grade"].array
            graded = int(fit["fit_grade"].notna().sum())
            notes["fit_grade"] = f"BANT fit grade ({bant_config or 'embedded defaults'}) of {graded:,} leads"
    from training.segment import SegmentConfig, input_columns

    seg_cfg = SegmentConfig()
    if segment_config is not None:
        from features.config import load_config

        seg_cfg = load_config(segment_config, SegmentConfig)
    summary_cols = set(input_columns(seg_cfg.window_days)[1:])
    if need & (summary_cols | set(RFM_COLUMNS) | set(TIER_COLUMNS)):
        from training.segment import RFMScorer, ValueTierer

        summ = _summary_by_position(tables, ids, as_of, seg_cfg.window_days, need)
        summ["frequency"] = summ["frequency"].fillna(0.0)
        summ["monetary"] = summ["monetary"].fillna(0.0)
        summ["avg_repeat_value"] = summ["avg_repeat_value"].fillna(0.0)
        X = summ  # the models read columns by name and rows by position: no copy with a customer_id column
        for c in summ.columns:
            ctx[c] = summ[c].to_numpy()
        notes["rfm"] = "not needed"
        if need & (set(RFM_COLUMNS) | set(TIER_COLUMNS)):
            rfm = RFMScorer(grid=seg_cfg.rfm.grid, no_purchase_segment=seg_cfg.rfm.no_purchase_segment).fit(X)
            sc = rfm.transform(X)
            for c in RFM_COLUMNS:
                ctx[c] = sc[c].to_numpy()
            notes["rfm"] = f"quintiles learned at {as_of} on {int(X['recency_days'].notna().sum()):,} buyers"
        if need & set(TIER_COLUMNS):
            from training.btyd import BGNBDModel

            has = X["recency_days"].notna().to_numpy()
            buyers = X.loc[has]
            # the parameters of a 4-parameter model are pinned down by a sample; P(alive) is then given to all
            fit_on = buyers.sample(BGNBD_SAMPLE, random_state=0) if len(buyers) > BGNBD_SAMPLE else buyers
            bg = BGNBDModel(
                time_unit_days=seg_cfg.btyd.time_unit_days,
                horizon_days=seg_cfg.horizon_days,
                penalizer=seg_cfg.btyd.penalizer,
            ).fit(fit_on)
            p_alive = np.full(len(X), np.nan)
            p_alive[has] = bg.predict_p_alive(X.loc[has])
            ctx["p_alive"] = p_alive
            vt = seg_cfg.value_tiers
            tierer = ValueTierer(
                rules=[r.model_dump(exclude_none=True) for r in vt.rules], labels=vt.labels, default=vt.default
            ).fit()
            tiers = tierer.transform(ctx[[*RFM_COLUMNS, "p_alive"]])
            ctx["value_tier"] = tiers["value_tier"].to_numpy()
            ctx["value_tier_zh"] = tiers["value_tier_zh"].to_numpy()
            notes["p_alive"] = f"BG/NBD fitted at {as_of} on {len(fit_on):,} of {int(has.sum()):,} buyers"
    overridden = []
    for path, df in scores:
        cov = ids.isin(df.index)
        notes.setdefault("scores", {})[path] = {"columns": list(map(str, df.columns)), "customers": int(cov.sum())}
        for c in df.columns:
            if c in ctx.columns:
                overridden.append(f"{c} (from {path})")
            ctx[c] = df[c].reindex(ids).to_numpy()
    if overridden:
        notes["overridden_by_scores"] = overridden
    missing = need - set(ctx.columns)
    if missing:
        from features.build import build_features
        from features.config import FeatureConfig

        feats = build_features(tables, as_of, FeatureConfig())
        feats.index = feats.index.astype("string")
        add = [c for c in feats.columns if c in missing]
        for c in add:
            ctx[c] = feats[c].reindex(ids).to_numpy()
        notes["features"] = add
    if not ctx.index.equals(pd.RangeIndex(len(ctx))):
        ctx = ctx.reset_index(drop=True)
    return ctx, notes


#: event tables the context reads only for engagement columns or point-in-time features
EVENT_TABLES = ("interactions", "marketing_touches")
#: level columns the context copies from the levels frame
LEVEL_CONTEXT_COLUMNS = (
    "member_level",
    "member_level_zh",
    "level_rank",
    "window_spend",
    "window_orders",
    "next_level",
    "level_progress",
    "progress",
)


def input_columns(needed: Sequence[str] | None = None) -> dict[str, tuple[str, ...]]:
    """Columns tags read from each table: what the feature builder and the RFM summary read, plus category.

    With ``needed`` (the rule fields, :func:`features.members.tags.rule_fields`), the event tables map to no
    column at all when every needed field comes from the levels, the profile, BANT, the purchase summary,
    RFM or the value tier: ``load_tables`` then reads only their row count instead of, say, 20 million
    interactions. Any other field (engagement, a feature, a ``--scores`` column) keeps them.
    """
    from features.build import FEATURE_INPUT_COLUMNS

    cols = {k: tuple(v) for k, v in FEATURE_INPUT_COLUMNS.items()}
    cols["customers"] = tuple(dict.fromkeys([*cols["customers"], *PROFILE_COLUMNS]))
    cols["orders"] = (*cols["orders"], "category")
    if needed is not None:
        from training.segment import SegmentConfig
        from training.segment import input_columns as summary_columns

        without_events = {
            *LEVEL_CONTEXT_COLUMNS,
            *PROFILE_COLUMNS,
            "crm_member_level",
            "fit_score",
            "fit_grade",
            *summary_columns(SegmentConfig().window_days)[1:6],
            *RFM_COLUMNS,
            *TIER_COLUMNS,
        }
        if set(needed) <= without_events:
            cols |= {t: () for t in EVENT_TABLES}
    return cols


def _summary_by_position(tables: dict[str, Any], ids: Any, as_of: Any, window_days: int, need: set[str]) -> Any:
    """The RFM summary (``training.segment.INPUT_DOC``) of the customers ``ids``, one row each in that order.

    When the rules need only the purchase columns (recency, frequency, monetary, tenure) they come from
    ``training.btyd.summarise_transactions`` (what ``summarise_customers`` calls) over the paid orders with each
    customer id replaced by its integer position: grouping integers is many times faster than hashing and
    sorting a million Python strings. Engagement columns (interactions, touches, rates) need the whole
    ``training.segment.summarise_customers``.
    """
    import numpy as np
    import pandas as pd

    from features.members.levels import positions_in
    from training.segment import input_columns, summarise_customers

    cols = input_columns(window_days)[1:]
    if need & set(cols[5:]):
        return summarise_customers(tables, as_of, window_days).set_index("customer_id").reindex(ids)[cols]
    from training.btyd import summarise_transactions

    orders = tables["orders"]
    t = pd.Timestamp(as_of)
    paid = (orders["status"] == "paid").fillna(False).to_numpy(dtype=bool) & (orders["ts"] <= t).fillna(False).to_numpy(
        dtype=bool
    )
    sub = orders.loc[paid, ["customer_id", "ts", "amount"]]
    pos = positions_in(ids, sub["customer_id"])
    keep = pos >= 0
    coded = pd.DataFrame(
        {"customer_id": pos[keep], "ts": sub["ts"].to_numpy()[keep], "amount": sub["amount"].to_numpy()[keep]}
    )
    buyers = summarise_transactions(coded, t)
    out = pd.DataFrame(np.nan, index=range(len(ids)), columns=cols[:5])
    out.iloc[buyers.index.to_numpy(dtype=np.int64)] = buyers[cols[:5]].to_numpy(dtype="float64")
    out.index = ids
    return out


def context_fields(ctx: Any, level_order: tuple[str, ...]) -> dict:
    """Rule fields of the context: member_level compares by the config's order; customer_id is not a field."""
    from features.rules import fields_of_frame

    return fields_of_frame(ctx, ordered={"member_level": level_order}, exclude={"customer_id"})
