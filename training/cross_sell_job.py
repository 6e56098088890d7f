"""`crmscore train cross_sell` and `crmscore recommend`: log, register and gate the cross-sell model; recommend
with evidence in words.

The job evaluates out of time (:func:`training.cross_sell.evaluate_split`), logs parameters, every method's
metrics and the rules table to MLflow, logs the model refitted on every line up to T as an MLflow pyfunc,
registers it as ``cross_sell`` (alias ``challenger``) and promotes it to ``champion`` when there is none, or
when its recall@k on the same out-of-time window beats the champion's by ``promotion_margin``.
"""

from __future__ import annotations

import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel as _PythonModel

from training.cross_sell import (
    MODEL_ARTIFACT,
    CrossSellConfig,
    History,
    ItemItemModel,
    evaluate_split,
    load_lines,
    ranking_metrics,
    save_model,
    split_at,
    top_k,
)


class CrossSellPyfunc(_PythonModel):
    """MLflow pyfunc: input rows ``customer_id, sku, ts`` (purchase history) → top-k rows with evidence."""

    def __init__(self, model: ItemItemModel, k: int = 10, exclude_recent_days: int = 30):
        self.model = model
        self.k = k
        self.exclude_recent_days = exclude_recent_days

    def predict(self, context: Any, model_input: pd.DataFrame, params: dict | None = None) -> pd.DataFrame:
        """Recommendations for every customer in ``model_input`` (their history lines)."""
        lines = model_input.assign(basket=model_input.get("basket", model_input["ts"].astype(str)))
        return recommend(
            self.model,
            lines,
            pd.Index(lines["customer_id"].astype(str).unique()),
            k=self.k,
            exclude_recent_days=self.exclude_recent_days,
        )


@dataclass
class PromotionDecision:
    """What the cross-sell gate decided and the figures it compared."""

    promote: bool
    reason: str
    challenger: float
    champion: float | None

    def as_tags(self, metric: str) -> dict[str, str]:
        """The decision as model-version tags."""
        return {
            "crmscore.gate.promote": str(self.promote).lower(),
            "crmscore.gate.reason": self.reason,
            "crmscore.gate.metric": metric,
            "crmscore.gate.challenger": f"{self.challenger:.6f}",
            "crmscore.gate.champion": "" if self.champion is None else f"{self.champion:.6f}",
        }


def decide_promotion(challenger: float, champion: float | None, margin: float, metric: str) -> PromotionDecision:
    """Promote when there is no champion or the challenger's out-of-time ``metric`` beats it by ``margin``."""
    if champion is None:
        return PromotionDecision(True, "no champion yet", challenger, None)
    gain = challenger - champion
    if gain < margin:
        return PromotionDecision(False, f"{metric} gain {gain:+.4f} below margin {margin:.4f}", challenger, champion)
    return PromotionDecision(True, f"{metric} gain {gain:+.4f} ≥ margin {margin:.4f}", challenger, champion)


@dataclass
class CrossSellResult:
    """What `train cross_sell` produced."""

    run_id: str
    version: str
    promoted: bool
    decision: str
    metrics: dict[str, dict[str, float]]
    params: dict[str, Any]
    split: dict[str, Any]
    n_rules: int
    seconds: float


def load_model(model_uri: str) -> ItemItemModel:
    """The fitted :class:`ItemItemModel` behind a registered cross-sell pyfunc (``models:/cross_sell@champion``)."""
    import mlflow

    return mlflow.pyfunc.load_model(model_uri).unwrap_python_model().model


def _champion_metrics(
    name: str, lines: pd.DataFrame, cfg: CrossSellConfig, t: pd.Timestamp
) -> tuple[str | None, dict[str, float] | None, str | None]:
    """(version, out-of-time metrics on this window, error) of the current champion."""
    from training.registry import CHAMPION, get_alias_version

    version = get_alias_version(name, CHAMPION)
    if version is None:
        return None, None, None
    try:
        champ = load_model(f"models:/{name}/{version}")
        if champ.item != cfg.item:
            raise ValueError(f"the champion recommends {champ.item}s, this job {cfg.item}s")
        train, test = split_at(lines, t, cfg.horizon_days)
        who = pd.Index(pd.unique(test["customer_id"]))
        who = who[who.isin(pd.unique(train["customer_id"]))]
        hist = History.of(train, champ.vocab, t, champ.half_life_days, who)
        return version, ranking_metrics(top_k(champ.scores, hist, cfg.k), hist, test, champ.vocab, cfg.k), None
    except Exception as e:  # noqa: BLE001 - a champion that cannot score this data is replaced
        return version, None, str(e)[:500]


def train_cross_sell(data_dir: str | Path, cfg: CrossSellConfig) -> CrossSellResult:
    """Evaluate out of time, log to MLflow, register ``cfg.model_name`` as challenger and gate it to champion."""
    import mlflow

    from training.registry import configure_tracking, register_challenger, set_champion, start_job_run, tag_version
    from training.train import model_requirements

    t0 = time.perf_counter()
    configure_tracking()
    lines = load_lines(data_dir, cfg.exclude_skus, cfg.item)
    ev, model = evaluate_split(lines, cfg)
    t = pd.Timestamp(ev.split["as_of"])
    k = cfg.k
    gate_metric = f"recall_at_{k}_all"
    with start_job_run(cfg.experiment, f"train-{cfg.model_name}") as run:
        mlflow.log_params(
            {
                "task": "cross_sell",
                "model_name": cfg.model_name,
                "item": cfg.item,
                "data_dir": Path(data_dir).name,
                "k": k,
                "promotion_margin": cfg.promotion_margin,
                "rules.level": cfg.rules.level,
                "rules.min_support": cfg.rules.min_support,
                "rules.min_confidence": cfg.rules.min_confidence,
                "rules.min_lift": cfg.rules.min_lift,
                "model.own": ev.params["own"],
                "model.alpha": ev.params["alpha"],
                "model.beta": ev.params["beta"],
                "model.half_life_days": ev.params["half_life_days"],
                "model.cooccurrence": ev.params["cooccurrence"],
                "model.neighbours": cfg.model.neighbours,
                **{f"split.{a}": b for a, b in ev.split.items()},
            }
        )
        for method, m in ev.metrics.items():
            mlflow.log_metrics({f"test_{method}.{a}": b for a, b in m.items() if np.isfinite(b)})
        mlflow.log_metric("n_rules", len(model.rules))
        mlflow.log_dict({"validation_grid": ev.params["validation_grid"], "metrics": ev.metrics}, "evaluation.json")
        with tempfile.TemporaryDirectory() as tmp:
            model.rules.to_csv(Path(tmp) / "rules.csv", index=False)
            mlflow.log_artifact(str(Path(tmp) / "rules.csv"), artifact_path="rules")
            # the model as plain data (arrays, JSON, Parquet): what the HTTP service loads, without unpickling
            mlflow.log_artifacts(str(save_model(model, Path(tmp) / MODEL_ARTIFACT)), artifact_path=MODEL_ARTIFACT)
        info = mlflow.pyfunc.log_model(
            name="model",
            python_model=CrossSellPyfunc(model, k, cfg.exclude_recent_days),
            pip_requirements=model_requirements(),
        )
        champ_version, champ_metrics, champ_error = _champion_metrics(cfg.model_name, lines, cfg, t)
        challenger = ev.metrics["item_item"][gate_metric]
        version = register_challenger(
            cfg.model_name,
            info.model_uri,
            tags={
                "crmscore.task": "cross_sell",
                "crmscore.run_id": run.info.run_id,
                "crmscore.as_of": ev.split["as_of"],
                "crmscore.exclude_recent_days": str(cfg.exclude_recent_days),
                "crmscore.item": cfg.item,
                **{f"crmscore.test_{a}": f"{b:.6f}" for a, b in ev.metrics["item_item"].items()},
            },
        )
        if champ_error is not None:
            decision = PromotionDecision(True, f"champion v{champ_version} cannot score the new data", challenger, None)
            mlflow.set_tag("crmscore.champion_eval_error", champ_error)
        else:
            decision = decide_promotion(
                challenger,
                None if champ_metrics is None else champ_metrics[gate_metric],
                cfg.promotion_margin,
                gate_metric,
            )
        tag_version(
            cfg.model_name,
            version,
            {**decision.as_tags(gate_metric), "crmscore.gate.champion_version": str(champ_version or "")},
        )
        if decision.promote:
            set_champion(cfg.model_name, version, decision.reason)
        mlflow.set_tags({"crmscore.version": version, "crmscore.promoted": str(decision.promote).lower()})
        mlflow.log_dict(
            {
                "promote": decision.promote,
                "reason": decision.reason,
                "metric": gate_metric,
                "champion_version": champ_version,
                "challenger_version": version,
                "challenger": ev.metrics["item_item"],
                "champion": champ_metrics,
            },
            "promotion_decision.json",
        )
        seconds = time.perf_counter() - t0
        mlflow.log_metric("train_seconds", seconds)
    return CrossSellResult(
        run.info.run_id,
        version,
        decision.promote,
        decision.reason,
        ev.metrics,
        ev.params,
        ev.split,
        len(model.rules),
        seconds,
    )


# --------------------------------------------------------------------------------------------------- recommend


def recommend(
    model: ItemItemModel,
    lines: pd.DataFrame,
    customers: pd.Index,
    as_of: pd.Timestamp | None = None,
    k: int = 10,
    exclude_recent_days: int = 30,
) -> pd.DataFrame:
    """Top ``k`` products per customer with evidence in words, leaving out what they bought in the last N days.

    ``lines`` are purchase lines (``customer_id, basket, ts, sku``); only lines up to ``as_of`` (default the
    last line) are read. Customers with no history get the most popular products. Columns: ``customer_id,
    rank, sku, product_name, score, evidence``.
    """
    t = pd.Timestamp(as_of) if as_of is not None else pd.Timestamp(lines["ts"].max())
    ids = pd.Index(customers.astype(str))
    lines = lines.assign(customer_id=lines["customer_id"].astype(str))
    hist = History.of(lines, model.vocab, t, model.half_life_days, ids)

    def scored(h: History, rows: slice) -> np.ndarray:
        sc = model.scores(h, rows)
        last = h.last_days[rows].toarray()
        sc[(last > 0) & (last <= exclude_recent_days)] = -np.inf  # last_days = 1 + age in days
        return sc

    recs = top_k(scored, hist, k)
    n = len(ids)
    sc = np.full(recs.shape, -np.inf)
    for s in range(0, n, 4000):
        chunk = recs[s : s + 4000]
        got = np.take_along_axis(scored(hist, slice(s, min(n, s + 4000))), np.maximum(chunk, 0), axis=1)
        sc[s : s + 4000] = np.where(chunk >= 0, got, -np.inf)
    out = pd.DataFrame(
        {
            "customer_id": np.repeat(ids.to_numpy(), recs.shape[1]),
            "rank": np.tile(np.arange(1, recs.shape[1] + 1), n),
            "code": recs.ravel(),
            "score": sc.ravel(),
        }
    )
    out = out[np.isfinite(out["score"])]  # left out (bought lately) or fewer than k products
    out["sku"] = model.vocab.skus[out["code"]]
    out["product_name"] = model.vocab.names[out["code"]]
    out["evidence"] = _evidence(model, hist, out)
    cols = ["customer_id", "rank", "sku", "product_name", "score", "evidence"]
    return out[cols].reset_index(drop=True)


def _evidence(model: ItemItemModel, hist: History, recs: pd.DataFrame) -> np.ndarray:
    """One sentence per recommendation: for a product new to the customer the strongest rule from something they
    bought ("bought A; 34% of its buyers also buy B, 3.1× the base rate"), else how often they bought it before,
    else its popularity."""
    ev = np.full(len(recs), "", dtype=object)
    row = hist.customers.get_indexer(recs["customer_id"])
    code = recs["code"].to_numpy()
    counts = hist.counts[row, code].A1 if len(recs) else np.zeros(0)
    last = hist.last_days[row, code].A1 if len(recs) else np.zeros(0)
    pop = model.popularity[code]
    for i in np.flatnonzero(counts > 0):
        ev[i] = f"bought it {int(counts[i])}× before, last {int(last[i]) - 1} days ago"
    has_history = np.asarray(hist.counts.sum(axis=1)).ravel()[row] > 0
    for i in np.flatnonzero((counts == 0) & has_history):
        ev[i] = f"bought by customers with similar purchases; {pop[i]:.1%} of all customers bought it"
    for i in np.flatnonzero(~has_history):
        ev[i] = f"popular: {pop[i]:.1%} of customers bought it (no purchase history)"
    rules = model.rules
    if rules is not None and len(rules) and len(recs):
        past = hist.counts.tocoo()
        had = pd.DataFrame(
            {"customer_id": hist.customers.to_numpy()[past.row], "antecedent": model.vocab.skus[past.col]}
        )
        cand = recs.reset_index(drop=True).reset_index()[["index", "customer_id", "sku"]]
        cand = cand[counts == 0]  # a product bought before is explained by that, not by a rule
        m = cand.merge(rules, left_on="sku", right_on="consequent").merge(had, on=["customer_id", "antecedent"])
        if len(m):
            best = m.sort_values(["lift", "confidence"], ascending=False).drop_duplicates("index")
            word = "of its buyers also buy" if model.rules_level == "customer" else "of orders with it also hold"
            text = [
                f"bought {a}; {c:.0%} {word} {b}, {lift:.1f}× the base rate"
                for a, b, c, lift in zip(
                    best["antecedent_name"], best["consequent_name"], best["confidence"], best["lift"], strict=True
                )
            ]
            ev[best["index"].to_numpy()] = text
    return ev
