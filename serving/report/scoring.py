"""The report's Scoring section (模型评分): the lead model's top-20% capture and the churn watch list, as of T.

Both read the output of ``crmscore score`` (``--scores lead=FILE`` / ``--scores churn=FILE``: a ``customer_id``
column, the model's ``probability`` and, for reasons, ``reason_pos_1``); nothing is re-scored here.

* Lead capture: the scored leads ranked by probability (highest first, ties by customer id); a lead converted
  when it has a paid order on or before T. Top-20% capture = converted leads among the first ceil(20% × leads)
  over all converted leads; by decile the same with cumulative capture.
* Churn watch list: customers of the ``important`` value tier at T (``training.segment`` tiers: RFM at T and
  BG/NBD P(alive)) with the highest churn probability, with the model's first reason towards churn. It lists
  customer ids (pseudonymous keys, no name or contact), the one table of the report that does.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.messages import M_
from serving.i18n import _

DEFINITION = (
    "From crmscore score output (--scores lead=FILE, --scores churn=FILE). Lead capture: the scored leads ranked by "
    "lead probability, highest first; a lead converted if it has a paid order on or before T. Top-20% capture = "
    "converted leads in the first 20% (rounded up) over all converted leads; lift = capture / 20%. By decile: "
    "leads, converted, conversion rate and cumulative capture. Churn watch list: customers of the important value "
    "tier at T (RFM scores and P(alive) at T) with the highest churn probability, and the model's first reason "
    "towards churn (reason_pos_1)."
)
#: the share the seeds' claim is about ("the top 20% of leads hold 95% of conversions")
TOP_SHARE = 0.2


def _ranked(scores: pd.DataFrame) -> pd.DataFrame:
    """``customer_id`` (string) and ``probability``, highest first, ties by customer id; duplicate ids rejected."""
    for c in ("customer_id", "probability"):
        if c not in scores.columns:
            raise ValueError(M_(
                "scores: no {column} column (columns: {columns})",
                column=c, columns=', '.join(map(str, scores.columns[:20])),
            ))
    s = pd.DataFrame(
        {"customer_id": scores["customer_id"].astype(str), "probability": pd.to_numeric(scores["probability"])}
    )
    dup = s["customer_id"].duplicated()
    if dup.any():
        raise ValueError(M_(
            "scores: customer_id {value!r} appears more than once",
            value=s.loc[dup, 'customer_id'].iloc[0],
        ))
    s = s.loc[s["probability"].notna().to_numpy()]
    return s.sort_values(["probability", "customer_id"], ascending=[False, True], kind="stable").reset_index(drop=True)


def lead_capture(
    lead_scores: pd.DataFrame, orders: pd.DataFrame, as_of: pd.Timestamp, top_share: float = TOP_SHARE
) -> dict[str, pd.DataFrame]:
    """``scoring_lead_capture`` (one row) and ``scoring_lead_deciles`` (deciles 1–10 by rank)."""
    t = pd.Timestamp(as_of)
    s = _ranked(lead_scores)
    paid = ((orders["status"] == "paid") & (orders["ts"] <= t)).fillna(False).to_numpy(dtype=bool)
    buyers = set(orders.loc[paid, "customer_id"].astype(str))
    conv = s["customer_id"].isin(buyers).to_numpy()
    n, pos = len(s), int(conv.sum())
    k = int(np.ceil(top_share * n - 1e-9)) if n else 0
    in_top = int(conv[:k].sum())
    capture = in_top / pos if pos else np.nan  # share of the converted leads found in the top
    summary = pd.DataFrame(
        {
            "leads": [n],
            "converted": [pos],
            "conversion_rate": [pos / n if n else np.nan],
            "top_share": [top_share],
            "top_leads": [k],
            "converted_in_top": [in_top],
            "capture_share_top": [capture],
            "lift_top": [capture / top_share if pos else np.nan],
        }
    )
    decile = (np.arange(n) * 10 // max(n, 1)) + 1
    d = (
        pd.DataFrame({"decile": decile, "converted": conv.astype("int64")})
        .groupby("decile")
        .agg(leads=("converted", "size"), converted=("converted", "sum"))
        .reindex(range(1, 11), fill_value=0)
        .reset_index()
    )
    d["conversion_rate"] = np.where(d["leads"] > 0, d["converted"] / d["leads"].where(d["leads"] > 0, 1), np.nan)
    d["cumulative_capture_share"] = d["converted"].cumsum() / pos if pos else np.nan
    return {"scoring_lead_capture": summary, "scoring_lead_deciles": d}


def churn_watch_list(churn_scores: pd.DataFrame, value_tier: pd.Series, top_n: int = 20) -> pd.DataFrame:
    """The ``top_n`` important-tier customers with the highest churn probability, with grade and top reason.

    ``value_tier`` is indexed by customer id (string); customers without a tier are not listed.
    """
    s = _ranked(churn_scores)
    extra = [c for c in ("grade", "reason_pos_1") if c in churn_scores.columns]
    if extra:
        more = churn_scores[extra].set_axis(churn_scores["customer_id"].astype(str))
        s = s.join(more, on="customer_id")
    tier = value_tier.set_axis(value_tier.index.astype(str))
    s = s.loc[(s["customer_id"].map(tier) == "important").to_numpy()].head(top_n).reset_index(drop=True)
    out = pd.DataFrame(
        {
            "rank": np.arange(1, len(s) + 1),
            "customer_id": s["customer_id"],
            "churn_probability": s["probability"].round(4),
            "churn_grade": s["grade"] if "grade" in s.columns else pd.Series(np.nan, index=s.index, dtype=object),
            "top_reason": (
                s["reason_pos_1"].astype(object).where(s["reason_pos_1"].notna(), "–")
                if "reason_pos_1" in s.columns
                else "–"
            ),
        }
    )
    return out


def read_score_file(spec: str) -> tuple[str, pd.DataFrame]:
    """One ``--scores`` value ``lead=FILE`` or ``churn=FILE`` (``crmscore score`` output, Parquet or CSV)."""
    from pathlib import Path

    kind, sep, path = spec.partition("=")
    if not sep or kind not in ("lead", "churn"):
        raise ValueError(M_("--scores {spec!r}: expected lead=FILE or churn=FILE", spec=spec))
    p = Path(path)
    if not p.is_file():
        raise ValueError(M_("--scores {kind}: file not found: {path}", kind=kind, path=p))
    df = pd.read_parquet(p) if p.suffix.lower() in (".parquet", ".pq") else pd.read_csv(p, encoding="utf-8-sig")
    if "customer_id" not in df.columns or "probability" not in df.columns:
        raise ValueError(M_(
            "--scores {kind} {path}: needs customer_id and probability columns (crmscore score output)",
            kind=kind, path=p,
        ))
    return kind, df


def important_tiers(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.Series:
    """``value_tier`` at T by customer id, computed as ``crmscore tags`` does (RFM at T, BG/NBD P(alive))."""
    from features.members.config import MembersConfig
    from features.members.levels import compute_levels
    from serving.members.context import build_context

    levels = compute_levels(tables, as_of, MembersConfig()).levels
    ctx, _ = build_context(tables, as_of, levels, ["value_tier"])
    return pd.Series(ctx["value_tier"].to_numpy(), index=ctx["customer_id"].astype(str).to_numpy())


def scoring_section(
    tables: dict[str, pd.DataFrame],
    t: pd.Timestamp,
    scores: dict[str, pd.DataFrame],
    out: Any,
    csvs: dict[str, Any],
    p: Any,
    watch_n: int = 20,
) -> Any:
    """Scoring (模型评分): lead capture and the churn watch list (CSVs written); notes say what was not given."""
    from pathlib import Path

    from features.export import neutralise_frame
    from features.io import atomic_path
    from serving.report.render import Section

    charts: list[Any] = []
    shown: list[tuple[str, pd.DataFrame]] = []
    notes: list[str] = []
    res: dict[str, pd.DataFrame] = {}
    if "lead" in scores:
        res.update(lead_capture(scores["lead"], tables["orders"], t))
        cap = res["scoring_lead_capture"].iloc[0]
        notes.append(
            _("The top 20% of scored leads hold {capture} of their conversions here (the seeds claim 95%).").format(
                capture=f"{cap['capture_share_top']:.1%}"
            )
            if pd.notna(cap["capture_share_top"])
            else _("No scored lead has converted by T: the capture is undefined.")
        )
        d = res["scoring_lead_deciles"]
        charts.append(
            p.bars(
                d["decile"].astype(str),
                d["conversion_rate"].fillna(0.0),
                p.label("Lead conversion rate by score decile"),
                "conversion rate",
                pct=True,
            )
        )
        shown += [(_("lead model: top-20% capture"), res["scoring_lead_capture"]), (_("lead model by decile"), d)]
    else:
        notes.append(_("no lead scores given: pass --scores lead=FILE (crmscore score output)"))
    if "churn" in scores:
        try:
            res["scoring_churn_watch"] = churn_watch_list(scores["churn"], important_tiers(tables, t), watch_n)
            caption = _("churn watch list: important customers, top {n} by churn risk").format(n=watch_n)
            shown.append((caption, res["scoring_churn_watch"]))
        except (ValueError, KeyError) as e:
            notes.append(_("no churn watch list: {reason}").format(reason=e))
    else:
        notes.append(_("no churn scores given: pass --scores churn=FILE (crmscore score output)"))
    for name, df in res.items():
        with atomic_path(Path(out) / f"{name}.csv") as tmp:
            neutralise_frame(df).to_csv(tmp, index=False, encoding="utf-8-sig")
        csvs[name] = Path(out) / f"{name}.csv"
    return Section("scoring", _("Scoring"), charts, shown, _(DEFINITION), notes)
