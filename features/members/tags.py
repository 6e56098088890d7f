"""Customer tags as of a cutoff ``T``: rule tags, product tags and manual tags, as one long table.

* **rule** tags evaluate a :mod:`features.rules` condition over the *context*: one row per customer with
  whatever columns the caller assembled (RFM scores and segment, value tier, member level, features, lead
  and churn grades). A rule may name product and manual tags and rule tags defined above it (``tag:NAME``).
  A field missing from the context is an error naming the tag, the field and the position in the rule.
* **product** tags: a paid order on or before ``T`` and after ``T - window_days`` in one of the listed
  categories (``(T - N days, T]``: an order exactly N days before ``T`` is outside).
* **manual** tags: added from a CSV (``customer_id, tag, added_by, added_at``), removed with another CSV
  (``customer_id, tag, removed_by, removed_at``), kept across runs through the previous run's long table.
  Only rows dated on or before ``T`` are used.

Output (:class:`TagsResult`): the long table ``customer_id, tag, kind, since, source`` (``since``: when the
customer first carried the tag in an unbroken run of as-of dates, or the manual ``added_at``), the count per
tag, and a summary.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.members.config import TagsConfig, TagSpec
from features.members.levels import positions_in
from features.messages import M_
from features.rules import FieldSpec, Rule, RuleError, compile_rule, parse_rule

LONG_COLUMNS = ["customer_id", "tag", "kind", "since", "source"]
MANUAL_ADD_COLUMNS = ("customer_id", "tag", "added_by", "added_at")
MANUAL_REMOVE_COLUMNS = ("customer_id", "tag", "removed_by", "removed_at")


class TagInputError(ValueError):
    """A manual-tag file or previous output that cannot be used; names the file, line and column."""


@dataclass
class TagsResult:
    """The long tag table, per-tag counts (every configured tag, zeros included) and a summary."""

    long: pd.DataFrame
    counts: pd.DataFrame
    summary: dict[str, Any] = field(default_factory=dict)
    removals: pd.DataFrame | None = None


def rule_fields(cfg: TagsConfig) -> list[str]:
    """Every field the rule tags read (syntax only), so the caller builds only the context it needs."""
    names: list[str] = []
    for t in cfg.by_kind("rule"):
        tree = parse_rule(t.rule or "", M_("tag {name!r}", name=t.name))
        names += Rule(t.name, t.rule or "", tree).field_names
    return list(dict.fromkeys(names))


def compile_tag_rules(cfg: TagsConfig, fields: Mapping[str, FieldSpec], hint: str = "") -> dict[str, Rule]:
    """Check every rule tag against the context fields; ``tag:`` may name product/manual tags and earlier rules."""
    allowed = {t.name for t in cfg.tags if t.kind != "rule"}
    out: dict[str, Rule] = {}
    for t in cfg.by_kind("rule"):
        later = {x.name for x in cfg.by_kind("rule")} - allowed - {t.name}
        try:
            out[t.name] = compile_rule(t.rule or "", fields, allowed, name=M_("tag {name!r}", name=t.name), hint=hint)
        except RuleError as e:
            if "unknown tag" in e.message:
                bad = e.message.split("'")[1] if "'" in e.message else ""
                if bad == t.name:
                    raise RuleError(e.rule_name, e.text, e.pos, M_("a tag cannot use itself")) from None
                if bad in later:
                    raise RuleError(
                        e.rule_name, e.text, e.pos,
                        M_("tag {tag!r} is a rule tag defined below this one; move it up", tag=bad),
                    ) from None
            raise
        allowed.add(t.name)
    return out


def _read_csv(path: str | Path, columns: tuple[str, ...], date_col: str) -> pd.DataFrame:
    p = Path(path)
    if not p.is_file():
        raise TagInputError(M_("file not found: {p}", p=p))
    df = pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    missing = [c for c in columns if c not in df.columns]
    if missing:
        raise TagInputError(M_(
            "{p}: missing column(s) {value} (need {value2})",
            p=p, value=", ".join(missing), value2=", ".join(columns),
        ))
    df = df[list(columns)].apply(lambda s: s.str.strip())
    empty = (df["customer_id"] == "") | (df["tag"] == "")
    if empty.any():
        raise TagInputError(M_(
            "{p}: line {value}: empty customer_id or tag",
            p=p, value=int(empty.to_numpy().nonzero()[0][0]) + 2,
        ))
    at = pd.to_datetime(df[date_col], errors="coerce", format="mixed")
    if at.isna().any():
        i = int(at.isna().to_numpy().nonzero()[0][0])
        raise TagInputError(M_(
            "{p}: line {value}: {date_col} is not a date: {value2!r}",
            p=p, value=i + 2, date_col=date_col, value2=df[date_col].iloc[i],
        ))
    if getattr(at.dt, "tz", None) is not None:
        at = at.dt.tz_convert(None)
    df[date_col] = at.astype("datetime64[ns]")
    df["customer_id"] = df["customer_id"].astype("string")
    return df


def read_manual_tags(path: str | Path, cfg: TagsConfig) -> pd.DataFrame:
    """Manual tag additions (``customer_id, tag, added_by, added_at``); every tag must be a manual tag of the config."""
    df = _read_csv(path, MANUAL_ADD_COLUMNS, "added_at")
    _check_manual_names(df, cfg, path)
    return df


def read_tag_removals(path: str | Path, cfg: TagsConfig) -> pd.DataFrame:
    """Manual tag removals (``customer_id, tag, removed_by, removed_at``)."""
    df = _read_csv(path, MANUAL_REMOVE_COLUMNS, "removed_at")
    _check_manual_names(df, cfg, path)
    return df


def _check_manual_names(df: pd.DataFrame, cfg: TagsConfig, path: str | Path) -> None:
    manual = {t.name for t in cfg.by_kind("manual")}
    bad = ~df["tag"].isin(manual)
    if bad.any():
        i = int(bad.to_numpy().nonzero()[0][0])
        raise TagInputError(
            M_(
                "{path}: line {value}: tag {value2!r} is not a manual tag of the config (manual tags: {value3})",
                path=path, value=i + 2, value2=df['tag'].iloc[i], value3=", ".join(sorted(manual)) or "none",
            )
        )


def product_tag_masks(
    orders: pd.DataFrame | None, ids: pd.Index, as_of: pd.Timestamp, specs: list[TagSpec]
) -> dict[str, np.ndarray]:
    """One boolean array over ``ids`` per product tag: a paid order in a listed category within ``(T - N d, T]``."""
    n = len(ids)
    out = {t.name: np.zeros(n, dtype=bool) for t in specs}
    if not specs or orders is None or len(orders) == 0:
        return out
    if "category" not in orders.columns:
        raise ValueError(M_(
            "product tag {name!r}: field 'category' is missing from the orders table",
            name=specs[0].name,
        ))
    longest = max(t.window_days or 0 for t in specs)
    ts = orders["ts"]
    base = (orders["status"] == "paid").fillna(False).to_numpy(dtype=bool)
    base &= ((ts <= as_of) & (ts > as_of - pd.Timedelta(days=longest))).fillna(False).to_numpy(dtype=bool)
    sub = orders.loc[base, ["customer_id", "ts", "category"]]
    pos = positions_in(ids, sub["customer_id"])
    sub_ts = sub["ts"].to_numpy(dtype="datetime64[ns]")
    # categories factorised once; each tag then looks its few categories up in a table indexed by code
    codes, uniques = pd.factorize(sub["category"])
    known = pos >= 0
    for t in specs:
        in_window = sub_ts > np.datetime64(as_of - pd.Timedelta(days=int(t.window_days or 0)), "ns")
        lookup = np.zeros(len(uniques) + 1, dtype=bool)  # the last slot is for code -1 (no category)
        lookup[:-1] = pd.Index(uniques).isin(t.categories or [])
        hit = in_window & lookup[codes] & known
        out[t.name][pos[hit]] = True
    return out


def _manual_state(
    ids: pd.Index,
    as_of: pd.Timestamp,
    specs: list[TagSpec],
    previous: pd.DataFrame | None,
    added: pd.DataFrame | None,
    removed: pd.DataFrame | None,
    summary: dict[str, Any],
) -> pd.DataFrame:
    """The manual (customer, tag, since, source) rows in force at ``as_of``."""
    names = {t.name for t in specs}
    parts = []
    if previous is not None and len(previous):
        prev = previous.loc[(previous["kind"] == "manual") & previous["tag"].isin(names), ["customer_id", "tag"]]
        parts.append(
            prev.assign(at=pd.to_datetime(previous.loc[prev.index, "since"]), by=previous.loc[prev.index, "source"])
        )
    if added is not None and len(added):
        late = added["added_at"] > as_of
        summary["manual_added_after_as_of_ignored"] = int(late.sum())
        a = added.loc[~late]
        parts.append(
            pd.DataFrame(
                {"customer_id": a["customer_id"], "tag": a["tag"], "at": a["added_at"], "by": "manual:" + a["added_by"]}
            )
        )
    if not parts:
        return pd.DataFrame({c: pd.Series(dtype="string") for c in ("customer_id", "tag", "at", "by")})
    cur = pd.concat(parts, ignore_index=True)
    cur["customer_id"] = cur["customer_id"].astype("string")
    # the earliest addition wins for since; a removal dated after it (and on or before T) takes the tag off
    cur = cur.sort_values("at", kind="stable").drop_duplicates(["customer_id", "tag"], keep="first")
    if removed is not None and len(removed):
        r = removed.loc[removed["removed_at"] <= as_of]
        summary["manual_removed_after_as_of_ignored"] = int(len(removed) - len(r))
        last = r.groupby(["customer_id", "tag"], observed=True)["removed_at"].max().rename("removed_at").reset_index()
        cur = cur.merge(last, on=["customer_id", "tag"], how="left")
        gone = cur["removed_at"].notna() & (cur["removed_at"] >= cur["at"])
        summary["manual_removed"] = int(gone.sum())
        cur = cur.loc[~gone].drop(columns="removed_at")
    unknown = ids.get_indexer(cur["customer_id"]) < 0
    summary["manual_unknown_customers"] = int(unknown.sum())
    return cur.loc[~unknown]


def apply_tags(
    context: pd.DataFrame,
    orders: pd.DataFrame | None,
    as_of: pd.Timestamp | str,
    cfg: TagsConfig,
    fields: Mapping[str, FieldSpec],
    previous: pd.DataFrame | None = None,
    manual_added: pd.DataFrame | None = None,
    manual_removed: pd.DataFrame | None = None,
    hint: str = "",
) -> TagsResult:
    """All tags of the customers in ``context`` (a ``customer_id`` column, one row each) as of ``as_of``.

    ``fields`` says which context columns rules may read and how (:func:`features.rules.fields_of_frame`);
    ``previous`` is the last run's long table (keeps manual tags and each tag's ``since``); ``manual_removed``
    should hold every removal so far (the previous run's ``removals`` plus new ones), so a manual tag removed
    once stays removed when an addition file is given again (an addition dated after the removal re-adds it).
    """
    t = pd.Timestamp(as_of)
    rules = compile_tag_rules(cfg, fields, hint)
    ids = pd.Index(context["customer_id"].astype("string"), name="customer_id")
    if ids.has_duplicates:
        raise ValueError(M_("tags: customer_id {value!r} appears twice in the context", value=ids[ids.duplicated()][0]))
    n = len(ids)
    summary: dict[str, Any] = {"as_of": str(t), "customers": int(n)}
    masks: dict[str, np.ndarray] = product_tag_masks(orders, ids, t, cfg.by_kind("product"))
    manual = _manual_state(ids, t, cfg.by_kind("manual"), previous, manual_added, manual_removed, summary)
    for spec in cfg.by_kind("manual"):
        m = np.zeros(n, dtype=bool)
        pos = ids.get_indexer(manual.loc[manual["tag"] == spec.name, "customer_id"])
        m[pos] = True
        masks[spec.name] = m
    ctx = context.reset_index(drop=True)
    cache: dict = {}  # each column converted once (numbers, level ranks) for all the rules
    for name, rule in rules.items():
        masks[name] = rule.evaluate(ctx, masks, cache)

    kinds = {s.name: s.kind for s in cfg.tags}
    long = _long_table(ids, t, cfg, masks, manual, previous)
    counts = pd.DataFrame(
        {
            "tag": [s.name for s in cfg.tags],
            "en": [s.en or "" for s in cfg.tags],
            "kind": [kinds[s.name] for s in cfg.tags],
            "customers": [int(masks[s.name].sum()) for s in cfg.tags],
        }
    )
    counts["share"] = (counts["customers"] / max(n, 1)).round(4)
    summary["rows"] = int(len(long))
    anyone = np.zeros(n, dtype=bool)
    for m in masks.values():
        anyone |= m
    summary["customers_with_a_tag"] = int(anyone.sum())
    summary["tags"] = {r.tag: int(r.customers) for r in counts.itertuples()}
    return TagsResult(long=long, counts=counts, summary=summary, removals=manual_removed)


def _long_table(
    ids: pd.Index,
    t: pd.Timestamp,
    cfg: TagsConfig,
    masks: dict[str, np.ndarray],
    manual: pd.DataFrame,
    previous: pd.DataFrame | None,
) -> pd.DataFrame:
    """The long table built from integer positions: customer_id, tag, kind and source are categoricals.

    A million customers × 100 tags gives tens of millions of rows, so nothing here copies a string per row.
    """
    names = [s.name for s in cfg.tags]
    code = {name: i for i, name in enumerate(names)}
    pos_parts, tag_parts, since_parts = [], [], []
    for s in cfg.tags:
        if s.kind == "manual":
            continue
        hit = np.flatnonzero(masks[s.name])
        pos_parts.append(hit)
        tag_parts.append(np.full(len(hit), code[s.name], dtype=np.int16))
        since_parts.append(np.full(len(hit), t.value, dtype=np.int64))
    if len(manual):
        mp = ids.get_indexer(manual["customer_id"])
        pos_parts.append(mp)
        tag_parts.append(manual["tag"].map(code).to_numpy(dtype=np.int16))
        since_parts.append(manual["at"].to_numpy(dtype="datetime64[ns]").view(np.int64))
    pos = np.concatenate(pos_parts).astype(np.int32) if pos_parts else np.zeros(0, dtype=np.int32)
    tag = np.concatenate(tag_parts) if tag_parts else np.zeros(0, dtype=np.int16)
    since = (np.concatenate(since_parts) if since_parts else np.zeros(0, dtype=np.int64)).view("datetime64[ns]")
    n_tags = len(names)
    if previous is not None and len(previous):
        # an automatic tag carried by the same customer at the previous run keeps its since
        prev = previous.loc[previous["kind"] != "manual"]
        ppos = ids.get_indexer(prev["customer_id"].astype("string"))
        ptag = prev["tag"].astype(object).map(code).to_numpy(dtype="float64", na_value=np.nan)
        ok = (ppos >= 0) & ~np.isnan(ptag)
        pkey = ppos[ok].astype(np.int64) * n_tags + ptag[ok].astype(np.int64)
        psince = pd.to_datetime(prev["since"]).to_numpy(dtype="datetime64[ns]")[ok]
        order = np.argsort(pkey, kind="stable")
        pkey, psince = pkey[order], psince[order]
        key = pos.astype(np.int64) * n_tags + tag
        auto = np.array([x.kind != "manual" for x in cfg.tags], dtype=bool)[tag]
        at = np.minimum(np.searchsorted(pkey, key), len(pkey) - 1)
        found = auto & (pkey[at] == key) if len(pkey) else np.zeros(len(key), dtype=bool)
        since[found] = psince[at[found]]
    kind_names = ["rule", "product", "manual"]
    kind_code = np.array([kind_names.index(x.kind) for x in cfg.tags], dtype=np.int8)
    auto_sources = {
        x.name: "rule" if x.kind == "rule" else f"product:{'/'.join(x.categories or [])}@{x.window_days}d"
        for x in cfg.tags
        if x.kind != "manual"
    }
    manual_sources = manual["by"].astype(str).tolist() if len(manual) else []
    src_cats = list(dict.fromkeys([*auto_sources.values(), *manual_sources]))
    src_code = {c: i for i, c in enumerate(src_cats)}
    per_tag = np.array([src_code.get(auto_sources.get(x.name, ""), -1) for x in cfg.tags], dtype=np.int32)
    src = per_tag[tag]
    if len(manual):
        src[len(pos) - len(manual) :] = [src_code[b] for b in manual_sources]
    return pd.DataFrame(
        {
            # ids itself (string, checked unique by apply_tags): its cached uniqueness is not hashed again
            "customer_id": pd.Categorical.from_codes(
                pos, categories=ids if ids.dtype == "string" else pd.Index(ids, dtype="string")
            ),
            "tag": pd.Categorical.from_codes(tag, categories=names),
            "kind": pd.Categorical.from_codes(kind_code[tag], categories=kind_names),
            "since": since,
            "source": pd.Categorical.from_codes(src, categories=src_cats),
        }
    )
