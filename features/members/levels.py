"""Member levels as of a cutoff ``T``: thresholds on paid spend / orders, upgrade only, manual changes kept.

One run (:func:`compute_levels`) reads the paid orders in the window ``(T - window_months, T]`` (all time when
the window is null) and gives each customer the highest level whose spend or order threshold they reach.
Across runs (``previous``: the last run's output) a level is never lowered automatically: a customer holding
gold keeps gold though their window spend falls (reason ``carried over``). A manual change (CSV
``customer_id, level, changed_by, changed_at, reason``) may move a level up or down; it applies on the first
run with ``changed_at`` in ``(previous as-of, T]`` and is kept on later runs: from then on only orders after
``changed_at`` count towards upgrades, so the purchases that led to a manual downgrade do not undo it.

Point in time: nothing dated after ``T`` is read (orders, manual changes). Everything is vectorised over integer
customer positions (``np.bincount``), so a million customers and millions of orders take seconds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.members.config import MembersConfig
from features.messages import M_

LEVEL_COLUMNS = [
    "customer_id",
    "member_level",
    "member_level_zh",
    "level_rank",
    "since",
    "reason",
    "manual_at",
    "window_spend",
    "window_orders",
    "next_level",
    "to_next_spend",
    "to_next_orders",
    "level_progress",
    "progress",
]
HISTORY_COLUMNS = ["customer_id", "level", "since", "reason", "as_of", "changed_by", "note"]
MANUAL_COLUMNS = ("customer_id", "level", "changed_by", "changed_at", "reason")
REASONS = ("base", "threshold", "manual", "carried over")


class LevelInputError(ValueError):
    """A manual-changes file or a previous run's output that cannot be used; names the file and row."""


@dataclass
class PreviousLevels:
    """The output of an earlier run (``--previous DIR``): its levels, its history and its as-of."""

    as_of: pd.Timestamp
    levels: pd.DataFrame
    history: pd.DataFrame


@dataclass
class LevelsResult:
    """One run's output: current levels (one row per customer), the whole level history, summary counts."""

    levels: pd.DataFrame
    history: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)


def read_manual_changes(path: str | Path, cfg: MembersConfig) -> pd.DataFrame:
    """Read and check a manual level-changes CSV; errors name the file, the row (line) and the column."""
    p = Path(path)
    if not p.is_file():
        raise LevelInputError(M_("manual changes file not found: {p}", p=p))
    df = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    missing = [c for c in MANUAL_COLUMNS if c not in df.columns]
    if missing:
        raise LevelInputError(M_(
            "{p}: missing column(s) {value} (need {value2})",
            p=p, value=", ".join(missing), value2=", ".join(MANUAL_COLUMNS),
        ))
    df = df[list(MANUAL_COLUMNS)].apply(lambda s: s.str.strip())
    line = pd.Series(np.arange(len(df)) + 2, index=df.index)  # header is line 1

    def fail(mask: pd.Series, what: str) -> None:
        if mask.any():
            i = mask.to_numpy().nonzero()[0][0]
            raise LevelInputError(M_(
                "{p}: line {value}: {what} ({value2} row(s) in all)",
                p=p, value=int(line.iloc[i]), what=what, value2=int(mask.sum()),
            ))

    fail(df["customer_id"] == "", "empty customer_id")
    known = set(cfg.order)
    bad = ~df["level"].isin(known)
    if bad.any():
        fail(bad, f"unknown level {df.loc[bad, 'level'].iloc[0]!r} (levels: {', '.join(cfg.order)})")
    at = pd.to_datetime(df["changed_at"], errors="coerce", format="mixed")
    if at.isna().any():
        fail(at.isna(), f"changed_at is not a date: {df.loc[at.isna(), 'changed_at'].iloc[0]!r}")
    if getattr(at.dt, "tz", None) is not None:
        at = at.dt.tz_convert(None)
    out = df.assign(changed_at=at.astype("datetime64[ns]"))
    out["customer_id"] = out["customer_id"].astype("string")
    return out


def positions_in(ids: pd.Index, keys: pd.Series) -> np.ndarray:
    """Position of each key in ``ids`` (-1 if absent), fast for dictionary-encoded keys.

    Keys in the same order as the start of ``ids`` (a customers table and the levels made from it) are
    recognised by one elementwise comparison instead of hashing every id.
    """
    if (
        not isinstance(keys.dtype, pd.CategoricalDtype)
        and 0 < len(keys) <= len(ids)
        and bool(
            (ids[: len(keys)].to_numpy(dtype=object, na_value=None) == keys.to_numpy(dtype=object, na_value=None)).all()
        )
    ):
        return np.arange(len(keys))
    if isinstance(keys.dtype, pd.CategoricalDtype):
        cat_pos = ids.get_indexer(keys.cat.categories.astype("string"))
        codes = keys.cat.codes.to_numpy()
        return np.where(codes >= 0, cat_pos[np.maximum(codes, 0)], -1)
    return ids.get_indexer(keys.astype("string"))


def _population(
    customers: pd.DataFrame | None, paid_ids: pd.Series, t: pd.Timestamp, extra: list
) -> tuple[pd.Index, np.ndarray | None]:
    """Customers created on or before ``t`` (table order), then buyers up to ``t`` and ``extra`` ids not among them.

    One hash pass per source and no sort: a million Python strings are hashed a few times, never sorted. When
    ``paid_ids`` is dictionary-encoded, also the position in the result of each of its categories that is a
    buyer (-1 for the others), so the orders are placed by their codes without hashing the ids again.
    """
    if customers is not None and len(customers):
        created = customers["created_at"] if "created_at" in customers.columns else None
        keep = np.ones(len(customers), bool) if created is None else (created <= t).fillna(False).to_numpy(dtype=bool)
        ids = pd.Index(customers.loc[keep, "customer_id"].astype("string").dropna(), name="customer_id")
        if not ids.is_unique:
            ids = ids.drop_duplicates()
    else:
        ids = pd.Index([], dtype="string", name="customer_id")
    cat_pos = None
    if isinstance(paid_ids.dtype, pd.CategoricalDtype):
        codes = paid_ids.cat.codes.to_numpy()
        cats = paid_ids.cat.categories.astype("string")
        used = np.bincount(codes[codes >= 0], minlength=len(cats)) > 0
        cat_pos = np.where(used, ids.get_indexer(cats), -1)
        new = used & (cat_pos < 0)
        if new.any():
            cat_pos[new] = len(ids) + np.arange(int(new.sum()))
            ids = ids.append(pd.Index(cats[new]))
        more_ids: list[pd.Index] = []
    else:
        more_ids = [pd.Index(pd.unique(paid_ids.astype("string").dropna()), dtype="string")]
    more_ids += [pd.Index(pd.unique(pd.Series(x, dtype="string").dropna()), dtype="string") for x in extra]
    for more in more_ids:
        new_ids = more[ids.get_indexer(more) < 0]
        if len(new_ids):
            ids = ids.append(new_ids)
    ids.name = "customer_id"
    return ids, cat_pos


def window_start(cfg: MembersConfig, t: pd.Timestamp) -> pd.Timestamp | None:
    """Start (exclusive) of the spend / order window at ``t``; None = all time."""
    return None if cfg.window_months is None else t - pd.DateOffset(months=cfg.window_months)


def compute_levels(
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp | str,
    cfg: MembersConfig,
    previous: PreviousLevels | None = None,
    manual: pd.DataFrame | None = None,
) -> LevelsResult:
    """Levels of every customer as of ``as_of`` (see the module docstring for the rules).

    ``tables`` needs ``orders`` (customer_id, ts, amount, status); ``customers`` (customer_id, created_at) adds
    customers without orders. ``manual`` is :func:`read_manual_changes` output.
    """
    t = pd.Timestamp(as_of)
    orders = tables.get("orders")
    if orders is None:
        raise ValueError(M_("members: the data has no orders table"))
    miss = [c for c in ("customer_id", "ts", "amount", "status") if c not in orders.columns]
    if miss:
        raise ValueError(M_("members: table orders: missing column(s) {value}", value=", ".join(miss)))
    if previous is not None and previous.as_of >= t:
        raise ValueError(M_("members: --previous is as of {as_of}, not before --as-of {t}", as_of=previous.as_of, t=t))
    levels = cfg.levels
    order = cfg.order
    n_levels = len(levels)

    paid_mask = (orders["status"] == "paid").fillna(False).to_numpy(dtype=bool) & (orders["ts"] <= t).fillna(
        False
    ).to_numpy(dtype=bool)
    buyers = orders.loc[paid_mask, "customer_id"]  # every buyer up to T is a member, in the window or not
    start = window_start(cfg, t)
    if start is not None:
        paid_mask &= (orders["ts"] > start).fillna(False).to_numpy(dtype=bool)
    paid = orders.loc[paid_mask, ["customer_id", "ts", "amount"]]

    summary: dict[str, Any] = {"as_of": str(t), "window_start": None if start is None else str(start)}
    manual_now = None
    if manual is not None and len(manual):
        after = manual["changed_at"] > t
        already = (
            manual["changed_at"] <= previous.as_of if previous is not None else pd.Series(False, index=manual.index)
        )
        summary["manual_after_as_of_ignored"] = int(after.sum())
        summary["manual_before_previous_ignored"] = int((already & ~after).sum())
        manual_now = manual.loc[~after & ~already].sort_values("changed_at", kind="stable")
        manual_now = manual_now.drop_duplicates("customer_id", keep="last")

    extra = []
    if previous is not None:
        extra.append(previous.levels["customer_id"])
    ids, buyer_pos = _population(tables.get("customers"), buyers, t, extra)
    if manual_now is not None and len(manual_now):
        # a manually changed customer is a member even with no customer row or order up to T (counted)
        new = ~manual_now["customer_id"].isin(ids)
        summary["manual_customers_without_data"] = int(new.sum())
        if new.any():
            ids = ids.append(pd.Index(manual_now.loc[new, "customer_id"].unique(), dtype="string"))
    n = len(ids)
    rank = np.zeros(n, dtype=np.int16)  # base rank before this run's thresholds
    since = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    reason = np.full(n, "base", dtype=object)
    anchor = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
    prev_known = np.zeros(n, dtype=bool)
    prev_reason = np.full(n, "", dtype=object)

    if previous is not None:
        pl = previous.levels
        bad = ~pl["member_level"].isin(order)
        if bad.any():
            raise LevelInputError(
                M_(
                    "--previous levels: level {level!r} (customer row {row}) is not in the config ({levels})",
                    level=pl.loc[bad, "member_level"].iloc[0], row=int(bad.to_numpy().nonzero()[0][0]) + 1,
                    levels=", ".join(order),
                )
            )
        pos = ids.get_indexer(pl["customer_id"].astype("string"))
        rank[pos] = pd.Categorical(pl["member_level"], categories=list(order)).codes
        since[pos] = pd.to_datetime(pl["since"]).to_numpy(dtype="datetime64[ns]")
        reason[pos] = pl["reason"].astype(object).to_numpy()
        anchor[pos] = pd.to_datetime(pl["manual_at"]).to_numpy(dtype="datetime64[ns]")
        prev_known[pos] = True
        prev_reason[pos] = reason[pos]
    prev_rank = rank.copy()

    manual_hit = np.zeros(n, dtype=bool)
    by = np.full(n, None, dtype=object)
    note = np.full(n, None, dtype=object)
    if manual_now is not None and len(manual_now):
        pos = ids.get_indexer(manual_now["customer_id"])
        m = manual_now
        rank[pos] = pd.Categorical(m["level"], categories=list(order)).codes
        since[pos] = m["changed_at"].to_numpy(dtype="datetime64[ns]")
        anchor[pos] = since[pos]
        reason[pos] = "manual"
        manual_hit[pos] = True
        by[pos] = m["changed_by"].to_numpy(dtype=object)
        note[pos] = m["reason"].to_numpy(dtype=object)
    summary["manual_applied"] = int(manual_hit.sum())

    # paid orders that count: in the window and after the customer's last manual change
    if buyer_pos is not None:  # every paid order in the window is a buyer's, placed by _population
        codes = paid["customer_id"].cat.codes.to_numpy()
        opos = np.where(codes >= 0, buyer_pos[np.maximum(codes, 0)], -1)
    else:
        opos = positions_in(ids, paid["customer_id"])
    ots = paid["ts"].to_numpy(dtype="datetime64[ns]")
    keep = opos >= 0
    a = anchor[np.maximum(opos, 0)]
    keep &= np.isnat(a) | (ots > a)
    opos, ots = opos[keep], ots[keep]
    amt = paid["amount"].to_numpy(dtype="float64", na_value=0.0)[keep]
    spend = np.bincount(opos, weights=amt, minlength=n)
    count = np.bincount(opos, minlength=n).astype("int64")

    def reached(level_idx: int, s: np.ndarray, c: np.ndarray) -> np.ndarray:
        r = levels[level_idx].reach
        hit = np.zeros(len(s), dtype=bool)
        if "spend" in r:
            hit |= s >= r["spend"] - 1e-9
        if "orders" in r:
            hit |= c >= r["orders"]
        return hit

    thr = np.zeros(n, dtype=np.int16)
    for k in range(1, n_levels):
        thr[reached(k, spend, count)] = k

    up = thr > rank
    if up.any():
        # since = the paid order that reached the new level (first one, cumulated over the counted orders)
        srt = np.lexsort((ots, opos))
        p, ts_sorted, am = opos[srt], ots[srt], amt[srt]
        first = np.r_[True, p[1:] != p[:-1]]
        grp_start = np.maximum.accumulate(np.where(first, np.arange(len(p)), 0))
        cs = np.cumsum(am)
        cum_spend = cs - np.r_[0.0, cs][grp_start]
        cum_count = np.arange(len(p)) - grp_start + 1
        row_rank = np.zeros(len(p), dtype=np.int16)
        for k in range(1, n_levels):
            row_rank[reached(k, cum_spend, cum_count)] = k
        target = thr[p]
        hit_rows = (row_rank >= target) & up[p]
        hp = p[hit_rows]
        hts = ts_sorted[hit_rows]
        firsts = np.r_[True, hp[1:] != hp[:-1]] if len(hp) else np.zeros(0, dtype=bool)
        crossing = np.full(n, np.datetime64("NaT"), dtype="datetime64[ns]")
        crossing[hp[firsts]] = hts[firsts]
        rank[up] = thr[up]
        since[up] = crossing[up]
        reason[up] = "threshold"
        by[up] = None
        note[up] = None

    # upgrade only: a threshold level no longer reached by the window is carried over
    carried = (~up) & (~manual_hit) & (rank > 0) & (thr < rank) & np.isin(reason, ["threshold", "carried over"])
    reason[carried] = "carried over"
    # a customer whose threshold level is reached again is no longer "carried over"
    again = (~up) & (~manual_hit) & (reason == "carried over") & (thr >= rank)
    reason[again] = "threshold"

    level_ids = np.array(order, dtype=object)
    zh = np.array([x.zh for x in levels], dtype=object)
    out = pd.DataFrame(
        {
            "customer_id": pd.array(ids, dtype="string"),
            "member_level": pd.Categorical.from_codes(rank, categories=list(order)),
            "member_level_zh": zh[rank],
            "level_rank": rank.astype("int64"),
            "since": since,
            "reason": reason,
            "manual_at": anchor,
            "window_spend": np.round(spend, 2),
            "window_orders": count,
        }
    )
    out = out.join(_progress(cfg, rank, spend, count))
    out["member_level"] = out["member_level"].astype("string")
    out["member_level_zh"] = out["member_level_zh"].astype("string")
    out["reason"] = out["reason"].astype("string")

    # history: level changes and moves to "carried over", appended to the previous history
    changed = (rank != prev_rank) | manual_hit | (~prev_known & (rank > 0))
    newly_carried = carried & (prev_reason != "carried over")
    rows = changed | newly_carried
    hist_new = pd.DataFrame(
        {
            "customer_id": pd.array(ids[rows], dtype="string"),
            "level": pd.array(level_ids[rank[rows]], dtype="string"),
            "since": np.where(newly_carried[rows] & ~changed[rows], np.datetime64(t, "ns"), since[rows]),
            "reason": pd.array(reason[rows], dtype="string"),
            "as_of": np.full(int(rows.sum()), np.datetime64(t, "ns")),
            "changed_by": pd.array(by[rows], dtype="string"),
            "note": pd.array(note[rows], dtype="string"),
        }
    )
    history = (
        hist_new if previous is None else pd.concat([previous.history[HISTORY_COLUMNS], hist_new], ignore_index=True)
    )

    summary |= {
        "previous_as_of": None if previous is None else str(previous.as_of),
        "customers": int(n),
        "levels": {lv: int(c) for lv, c in zip(order, np.bincount(rank, minlength=n_levels), strict=True)},
        "upgraded_by_threshold": int(up.sum()),
        "carried_over": int((reason == "carried over").sum()),
        "history_rows_added": int(rows.sum()),
        "paid_orders_counted": int(len(opos)),
    }
    return LevelsResult(levels=out[LEVEL_COLUMNS], history=history[HISTORY_COLUMNS], summary=summary)


def _progress_text(currency: str, amount: float, orders: int, name: str) -> str:
    """``¥1,240 or 2 orders to 金卡`` (a part is left out when the level has no such threshold: -1)."""
    parts = []
    if amount >= 0:
        parts.append(f"{currency}{amount:,.0f}")
    if orders >= 0:
        parts.append("1 order" if orders == 1 else f"{orders} orders")
    return " or ".join(parts) + f" to {name}"


def _progress(cfg: MembersConfig, rank: np.ndarray, spend: np.ndarray, count: np.ndarray) -> pd.DataFrame:
    """Next level, what is missing to reach it and the text, e.g. ``¥1,240 or 2 orders to 金卡``."""
    levels = cfg.levels
    n = len(rank)
    top = len(levels) - 1
    nxt = np.minimum(rank + 1, top)
    has_next = rank < top
    need_spend = np.full(n, np.nan)
    need_orders = np.full(n, np.nan)
    prog = np.where(has_next, 0.0, 1.0)
    text = np.full(n, "", dtype=object)
    for k in range(1, len(levels)):
        sel = has_next & (nxt == k)
        if not sel.any():
            continue
        r = levels[k].reach
        ns = np.full(int(sel.sum()), -1.0)
        no = np.full(int(sel.sum()), -1, dtype=np.int64)
        if "spend" in r:
            ns = np.maximum(np.ceil(r["spend"] - spend[sel] - 1e-9), 0.0)
            need_spend[sel] = ns
            prog[sel] = np.maximum(prog[sel], np.minimum(spend[sel] / r["spend"], 1.0))
        if "orders" in r:
            no = np.maximum(int(r["orders"]) - count[sel], 0).astype(np.int64)
            need_orders[sel] = no
            prog[sel] = np.maximum(prog[sel], np.minimum(count[sel] / r["orders"], 1.0))
        # one text per distinct (amount, orders) pair, however many customers share it: both parts are
        # factorised (hashing, no sort) and the pair is one integer code
        a_code, a_vals = pd.factorize(ns)
        o_code, o_vals = pd.factorize(no)
        pair, pairs = pd.factorize(a_code.astype(np.int64) * len(o_vals) + o_code)
        texts = np.array(
            [_progress_text(cfg.currency, a_vals[p // len(o_vals)], int(o_vals[p % len(o_vals)]), levels[k].zh)
             for p in pairs],
            dtype=object,
        )
        text[sel] = texts[pair]
    return pd.DataFrame(
        {
            "next_level": pd.array(np.where(has_next, np.array(cfg.order, dtype=object)[nxt], None), dtype="string"),
            "to_next_spend": need_spend,
            # numpy's stubs reject None in np.where (it gives None cells)
            "to_next_orders": pd.array(
                np.where(np.isnan(need_orders), None, need_orders), dtype="Int64"  # type: ignore[call-overload]
            ),
            "level_progress": np.round(prog, 4),
            "progress": pd.array(text, dtype="string"),
        }
    )
