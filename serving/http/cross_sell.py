"""What ``POST /recommend`` and ``POST /next_action`` do, as plain functions over a worker's :class:`CrossSellState`.

* The cross-sell model is the registered ``cross_sell`` version at the served alias (``champion``): its version
  and tags come from the registry (:func:`serving.http.loader.registry_version`, MlflowClient), its data from the
  run's ``cross_sell_model`` artifact, read by :func:`training.cross_sell.read_model` (NumPy arrays, JSON and
  Parquet: nothing is unpickled, so a registry artifact cannot run code in the service). It is loaded once per
  worker at start-up; a retrained champion is served after a restart.
* Purchase histories come from the service's data dir (``crmscore serve --data DIR`` with ``orders`` and
  ``order_items``), indexed once per worker by customer, or from the request itself (``purchases``).
* Recommendations are computed by :class:`training.cross_sell_online.OnlineRecommender`, which gives what the
  batch command `crmscore recommend` (:func:`training.cross_sell_job.recommend`) gives: the same list with the
  same evidence. Each customer's products as of its last purchase are aggregated once per worker, so a request
  by id without ``as_of`` only scores and ranks.
* Next best actions are the ordered rules of ``configs/actions.yaml`` (``$CRMSCORE_ACTIONS_CONFIG``, default the
  embedded copy) compiled once per worker against the fields of :class:`schemas_actions.ActionCustomer`, and
  applied by :func:`training.cross_sell_actions.assign_actions` (the `crmscore actions` function).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.messages import M_, message_of
from features.rules import FieldSpec, RuleError
from serving.http.postprocess import RequestError
from serving.http.schemas_actions import ActionCustomer, NextActionRequest, RecommendRequest
from serving.settings import ServingSettings
from training.cross_sell import (
    MODEL_ARTIFACT,
    CrossSellConfig,
    CrossSellDataError,
    ItemItemModel,
    load_lines,
    read_model,
)
from training.cross_sell_actions import ActionsConfig, assign_actions, compile_actions
from training.cross_sell_online import OnlineRecommender, Purchased, PurchasedTable

log = logging.getLogger("crmscore.serving")

_ACTION_TEXT = ("lead_grade", "churn_grade", "value_tier")
_ACTION_NUMBERS = ("recency_days", "frequency", "monetary")


@dataclass
class History:
    """One customer's paid product lines as arrays: sku, time, basket (order id)."""

    skus: np.ndarray
    ts: np.ndarray
    baskets: np.ndarray
    codes: np.ndarray | None = None  # model columns of the skus (-1 unknown), when prepared for the model
    basket_ids: np.ndarray | None = None  # integer basket ids


class CustomerLines:
    """Paid product lines sorted by customer once; one customer's lines are array slices.

    :meth:`prepare` (once the model is loaded) also keeps every customer's products as of its last purchase
    (:class:`training.cross_sell_online.PurchasedTable`), so a request with the default ``as_of`` is scored
    from those few rows without reading its lines again."""

    def __init__(self, lines: pd.DataFrame, customers: pd.Index) -> None:
        lines = lines.sort_values(["customer_id", "ts"], kind="stable")
        self.ids = lines["customer_id"].to_numpy(dtype=str)
        self.skus = lines["sku"].to_numpy(dtype=object)
        self.ts = lines["ts"].to_numpy(dtype="datetime64[ns]")
        self.baskets = lines["basket"].astype(str).to_numpy(dtype=object)
        self.basket_ids = pd.factorize(self.baskets)[0].astype(np.int64)
        self.codes: np.ndarray | None = None
        self.customers = customers  # every customer id of the data (a customer may have no line)
        # customers with lines, numbered in sorted order; number c's lines are start[c]:start[c + 1]
        firsts = np.flatnonzero(self.ids[1:] != self.ids[:-1]) + 1
        self.start = np.concatenate([[0], firsts, [len(self.ids)]]).astype(np.int64) if len(self.ids) else np.zeros(
            1, dtype=np.int64)
        self.number = {str(x): c for c, x in enumerate(self.ids[self.start[:-1]].tolist())}
        self.purchased: PurchasedTable | None = None

    def span(self, customer_id: str) -> tuple[int, int]:
        """(first, end) line positions of the customer (equal when it has no line)."""
        c = self.number.get(customer_id)
        return (0, 0) if c is None else (int(self.start[c]), int(self.start[c + 1]))

    def of(self, customer_id: str) -> History:
        """The customer's lines (empty when it bought nothing)."""
        lo, hi = self.span(customer_id)
        codes = None if self.codes is None else self.codes[lo:hi]
        return History(self.skus[lo:hi], self.ts[lo:hi], self.baskets[lo:hi], codes, self.basket_ids[lo:hi])

    def prepare(self, online: OnlineRecommender) -> None:
        """Look every line's sku up in the model once (requests then slice the columns), and aggregate every
        customer's products as of its last line (what a request without ``as_of`` reads)."""
        self.codes = online.codes(self.skus)
        n = len(self.start) - 1
        customer = np.repeat(np.arange(n, dtype=np.int64), np.diff(self.start))
        self.purchased = online.aggregate_all(customer, self.codes, self.ts, self.basket_ids, n)

    def known(self, customer_id: str) -> bool:
        """Whether the data holds this customer (in customers, or with a line)."""
        return customer_id in self.number or customer_id in self.customers


@dataclass
class CrossSellState:
    """What one worker holds for the two endpoints; each part records why it is missing instead of failing."""

    name: str
    alias: str
    model: ItemItemModel | None = None
    online: OnlineRecommender | None = None
    version: str | None = None
    exclude_recent_days: int = 30
    error: str | None = None
    lines: CustomerLines | None = None
    lines_error: str | None = None
    actions: ActionsConfig | None = None
    action_fields: dict[str, FieldSpec] = field(default_factory=dict)
    actions_error: str | None = None

    @classmethod
    def load(cls, settings: ServingSettings, in_bento: bool = False) -> CrossSellState:
        """Model, purchase histories and action rules for a worker (never raises: errors are kept per part).

        Inside a Bento the registry is not consulted (the Bento holds what it serves, and the cross-sell model is
        not packed): /recommend answers 503 saying so."""
        cfg = CrossSellConfig()
        st = cls(name=cfg.model_name, alias=settings.alias, exclude_recent_days=cfg.exclude_recent_days)
        try:
            if in_bento:
                raise LookupError(M_("{name} is not packed in this Bento (serve it from the registry)", name=st.name))
            st.model, st.version, st.exclude_recent_days = load_registered(st.name, settings)
            st.online = OnlineRecommender(st.model)
        except Exception as e:  # noqa: BLE001 - the endpoint answers 503 with the reason; other endpoints serve
            st.error = _why(e)
            log.warning("cross-sell model not loaded: %s", st.error)
        # the lines read as the model's items (products, or their categories)
        st.lines, st.lines_error = _load_lines(settings.data_dir, cfg, st.model.item if st.model else cfg.item)
        if st.lines is not None and st.online is not None:
            st.lines.prepare(st.online)
        try:
            st.actions, st.action_fields = load_actions(os.environ.get("CRMSCORE_ACTIONS_CONFIG") or None)
        except Exception as e:  # noqa: BLE001 - a broken config answers 503 naming the rule
            st.actions_error = _kept(e, 500)
            log.error("action rules not loaded: %s", st.actions_error)
        return st

    def refresh(self, settings: ServingSettings) -> CrossSellState | None:
        """A new state when the served alias now points at another version of the model (hot swap): loaded
        completely (model, purchase histories read as its items, action rules) while this one serves; None when
        the alias has not moved or points nowhere. Raises when the new version cannot be loaded, so the watcher
        logs it and this state keeps serving."""
        from serving.http.loader import registry_version

        found = registry_version(self.name, settings.alias)
        if found is None or found[0] == self.version:
            return None
        new = CrossSellState.load(settings)
        if new.model is None:
            raise LookupError(new.error or f"{self.name} v{found[0]} did not load")
        return new


def _kept(e: BaseException, limit: int) -> str:
    """Why a part is not loaded, kept for its 503: the ``M_`` message an error was raised with (shown in the
    request's language), else its text cut at ``limit`` characters."""
    message = message_of(e)
    return message if message is not None and len(message) <= limit else str(e)[:limit]


def _why(e: BaseException) -> str:
    """``Type: first line of the message`` of a model that did not load (the message through the catalogue)."""
    message = message_of(e)
    if message is not None and "\n" not in message and len(message) <= 300:
        return M_("{error_type}: {error}", error_type=type(e).__name__, error=message)
    return f"{type(e).__name__}: {str(e).splitlines()[0][:300]}" if str(e) else type(e).__name__


def load_registered(name: str, settings: ServingSettings) -> tuple[ItemItemModel, str, int]:
    """(model, version, exclude_recent_days) of ``name`` at the served alias, from its run's plain-data artifact."""
    import mlflow

    from serving.http.loader import _configure_registry, registry_version

    _configure_registry(settings)
    found = registry_version(name, settings.alias)
    if found is None:
        raise LookupError(M_(
            "no version of {name} has the alias '{alias}' (train it: crmscore train cross_sell)",
            name=name, alias=settings.alias,
        ))
    version, tags = found
    run_id = tags.get("crmscore.run_id")
    if not run_id:
        raise LookupError(M_(
            "{name} v{version} has no crmscore.run_id tag (not registered by crmscore train cross_sell)",
            name=name, version=version,
        ))
    local = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=MODEL_ARTIFACT)
    exclude = int(tags.get("crmscore.exclude_recent_days", CrossSellConfig().exclude_recent_days))
    return read_model(local), version, exclude


def _load_lines(
    data_dir: str | None, cfg: CrossSellConfig, item: str = "sku"
) -> tuple[CustomerLines | None, str | None]:
    if not data_dir:
        return None, M_("the service has no data dir (crmscore serve --data DIR)")
    try:
        lines = load_lines(data_dir, cfg.exclude_skus, item)
        ids = lines["customer_id"].to_numpy(dtype=str)
        table = Path(data_dir) / "customers.parquet"
        if table.is_file():  # customers without a paid line are known too (they get popular products)
            known = pd.read_parquet(table, columns=["customer_id"])["customer_id"].astype(str)
            ids = np.concatenate([known.to_numpy(dtype=str), ids])
        customers = pd.Index(pd.unique(ids))
    except (CrossSellDataError, OSError, KeyError, ValueError) as e:
        return None, _kept(e, 300)
    return CustomerLines(lines, customers), None


def load_actions(path: str | None) -> tuple[ActionsConfig, dict[str, FieldSpec]]:
    """The action rules compiled against the request fields (a :class:`RuleError` names a rule that reads a
    field /next_action does not have)."""
    from features.config import load_config
    from features.members.config import load_members_config

    cfg = load_config(path, ActionsConfig)
    fields = {
        **{f: FieldSpec("text") for f in _ACTION_TEXT},
        **{f: FieldSpec("number") for f in _ACTION_NUMBERS},
        "marketing_consent": FieldSpec("bool"),
        "member_level": FieldSpec("ordered", tuple(load_members_config(None).order)),
    }
    compile_actions(cfg, fields, None, hint=M_("fields of /next_action: {fields}", fields=", ".join(sorted(fields))))
    return cfg, fields


# ------------------------------------------------------------------------------------------------ recommend
def _request_history(req: RecommendRequest, item: str = "sku") -> History:
    assert req.purchases is not None
    p = req.purchases
    if item == "category":  # a category model: each line's item is its category
        missing = next((i for i, x in enumerate(p) if not x.category), None)
        if missing is not None:
            raise RequestError(422, M_(
                "purchases[{i}].category: required, the model recommends categories", i=missing
            ))
    return History(
        np.array([x.category if item == "category" else x.sku for x in p], dtype=object),
        np.array([np.datetime64(x.ts, "ns") for x in p], dtype="datetime64[ns]"),
        np.array([x.order_id or x.ts.isoformat() for x in p], dtype=object),
    )


def recommend_for(st: CrossSellState, req: RecommendRequest) -> dict[str, Any]:
    """The /recommend body of one customer, or a :class:`RequestError` (404 unknown id, 422, 503).

    Computed by :class:`training.cross_sell_online.OnlineRecommender`, which gives what the batch
    ``crmscore recommend`` gives for the customer (same list and evidence). A customer of the service's data
    asked without ``as_of`` is scored from its products prepared at start-up (:meth:`CustomerLines.prepare`).
    """
    from serving.http.loader import ModelUnavailable

    if st.model is None or st.online is None:
        raise ModelUnavailable(M_("model {name}@{alias} is not loaded: {error}", name=st.name, alias=st.alias,
                                  error=st.error or M_("not registered")))
    exclude = st.exclude_recent_days if req.exclude_days is None else req.exclude_days
    if req.purchases is not None:
        hist = _request_history(req, st.model.item)
    else:
        if st.lines is None:
            raise RequestError(
                422,
                M_("purchases: required, the service has no purchase data to look customer_id up in ({error})",
                   error=st.lines_error),
            )
        lines = st.lines
        if not lines.known(req.customer_id):
            raise RequestError(404, M_("customer_id: no customer with this id in the service's data"))
        if req.as_of is None and lines.purchased is not None:
            return _prepared(st, req, lines, lines.purchased, exclude)
        hist = lines.of(req.customer_id)
    if req.as_of is not None:
        as_of = pd.Timestamp(req.as_of)
    else:
        as_of = pd.Timestamp(hist.ts.max()) if len(hist.ts) else st.model.as_of
    if hist.codes is not None and hist.basket_ids is not None:
        recs = st.online.recommend_codes(hist.codes, hist.ts, hist.basket_ids, as_of, req.k, exclude)
    else:
        recs = st.online.recommend(hist.skus, hist.ts, hist.baskets, as_of, req.k, exclude)
    return _body(st, req, as_of, int((hist.ts <= as_of.to_datetime64()).sum()), exclude, recs)


_NOTHING = Purchased(np.zeros(0, dtype=np.int64), np.zeros(0), np.zeros(0), np.zeros(0))


def _prepared(
    st: CrossSellState, req: RecommendRequest, lines: CustomerLines, table: PurchasedTable, exclude: int
) -> dict[str, Any]:
    """The body of a customer of the service's data as of its last line (every line read), from ``table``."""
    assert st.online is not None and st.model is not None
    c = lines.number.get(req.customer_id)
    if c is None:  # known without a line: popular products as of the model's time
        return _body(st, req, st.model.as_of, 0, exclude, st.online.rank(_NOTHING, req.k, exclude))
    lo, hi = int(lines.start[c]), int(lines.start[c + 1])
    recs = st.online.rank(table.of(c), req.k, exclude)
    return _body(st, req, pd.Timestamp(lines.ts[hi - 1]), hi - lo, exclude, recs)


def _body(
    st: CrossSellState, req: RecommendRequest, as_of: pd.Timestamp, history_lines: int, exclude: int,
    recs: list[dict[str, object]],
) -> dict[str, Any]:
    return {
        "customer_id": req.customer_id,
        "model": st.name,
        "model_version": st.version,
        "as_of": as_of.isoformat(),
        "history_lines": history_lines,
        "excluded_days": exclude,
        "recommendations": recs,
    }


# ---------------------------------------------------------------------------------------------- next action
def action_frame(customers: list[ActionCustomer]) -> pd.DataFrame:
    """The rules' context: one row per customer, missing values as NA (so their comparisons are false)."""
    return pd.DataFrame(
        {
            "customer_id": pd.array([c.customer_id for c in customers], dtype="string"),
            **{f: pd.array([getattr(c, f) for c in customers], dtype="string") for f in _ACTION_TEXT},
            "member_level": pd.array([c.member_level for c in customers], dtype="string"),
            "marketing_consent": pd.array([c.marketing_consent for c in customers], dtype="boolean"),
            **{
                f: np.array([np.nan if getattr(c, f) is None else getattr(c, f) for c in customers], dtype=float)
                for f in _ACTION_NUMBERS
            },
        }
    )


def next_actions(st: CrossSellState, req: NextActionRequest) -> dict[str, Any]:
    """The /next_action body: the first matching rule per customer, in request order."""
    from serving.http.loader import ModelUnavailable

    if st.actions is None:
        raise ModelUnavailable(M_("action rules are not loaded: {error}", error=st.actions_error))
    ctx = action_frame(req.customers)
    tag_names = {t for c in req.customers for t in c.tags}
    _, rule_tags = _rule_tags(st.actions)
    tags = {name: np.array([name in c.tags for c in req.customers]) for name in tag_names | set(rule_tags)}
    try:
        out = assign_actions(ctx, st.actions, st.action_fields, tags)
    except RuleError as e:
        raise RequestError(422, M_("customers: {error}", error=e)) from None
    return {"results": out.to_dict(orient="records")}


def _rule_tags(cfg: ActionsConfig) -> tuple[list[str], list[str]]:
    from training.cross_sell_actions import rule_fields

    return rule_fields(cfg)
