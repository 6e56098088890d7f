"""The top-feature rule: a strong drift in one of the model's most important features alerts on its own.

The share rule (``alert_drift_share`` of all features drifted) misses a shift of one feature the model
leans on: shifting ``interactions_30d`` for every lead moves 1 of 132 features. So each run also ranks the
model's input features by **mean absolute contribution** to the log-odds on the version's reference sample,
computed with the model's own explanation (``CRMScorer.contributions_matrix``: exact TreeSHAP for XGBoost,
linear terms for logistic regression; one-hot columns summed back into their feature with
``reason_groups``), and measures a **drift distance** per feature on the compared samples:

* numeric: Wasserstein distance normed by the reference's standard deviation (Evidently's default method
  for large references; 1.0 ≈ a shift of one standard deviation); a constant reference column is normed
  by 1;
* categorical: Jensen–Shannon distance of the category shares (base 2, 0 to 1; a missing value is a category).

A feature among the ``top_features`` most important with a distance ≥ ``top_feature_distance`` is an
alert naming it; a feature outside them with such a distance is a warning. A model without per-row
contributions (or one that cannot be loaded) leaves the share rule alone, with a warning saying so.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pandas as pd

log = logging.getLogger("crmscore.monitor")


def feature_importance(scorer: Any, reference: pd.DataFrame) -> dict[str, float]:
    """Mean |contribution| of each input feature on ``reference`` (its rows as the model's input), highest
    first. One-hot columns are summed per row into their feature before the absolute value is taken."""
    names = [str(c) for c in scorer.preprocessor_.feature_names_in_]
    frame = reference.reindex(columns=names)
    contributions = np.asarray(scorer.contributions_matrix(scorer.preprocessor_.transform(frame)))
    out: dict[str, float] = {}
    for feature, columns in scorer.reason_groups():
        folded = contributions[:, columns].sum(axis=1)
        out[str(feature)] = float(np.mean(np.abs(folded))) if len(folded) else 0.0
    return dict(sorted(out.items(), key=lambda kv: -kv[1]))


def model_importance(model_name: str, version: str, reference: pd.DataFrame) -> tuple[dict[str, float] | None, str]:
    """(importance per feature, how it was computed) or (None, why there is none) for a registered version."""
    from serving.http.loader import load_scorer_artifact

    uri = f"models:/{model_name}/{version}"
    try:
        scorer = load_scorer_artifact(uri)
    except Exception as e:  # noqa: BLE001 - any load failure means: no importance, share rule only
        first = (str(e).strip().splitlines() or [type(e).__name__])[0][:200]
        return None, f"the model {uri} could not be loaded for its feature importance ({first})"
    if not getattr(scorer, "supports_reasons", False) or not hasattr(scorer, "contributions_matrix"):
        return None, f"the model {uri} ({type(scorer).__name__}) gives no per-row contributions"
    try:
        return feature_importance(scorer, reference), "mean |contribution| on the reference sample"
    except Exception as e:  # noqa: BLE001 - same: fall back to the share rule, say why
        return None, f"the contributions of {uri} failed on the reference sample ({type(e).__name__}: {e})"[:300]


def drift_distance(current: pd.Series, reference: pd.Series, categorical: bool) -> float | None:
    """Normed Wasserstein (numeric) or Jensen–Shannon (categorical) distance; None without values on a side."""
    if categorical:
        cur = current.astype("object").where(current.notna(), "<missing>").astype(str).value_counts(normalize=True)
        ref = reference.astype("object").where(reference.notna(), "<missing>").astype(str).value_counts(normalize=True)
        if cur.empty or ref.empty:
            return None
        cats = cur.index.union(ref.index)
        p = cur.reindex(cats, fill_value=0.0).to_numpy()
        q = ref.reindex(cats, fill_value=0.0).to_numpy()
        m = (p + q) / 2

        def kl(a: np.ndarray) -> float:
            nz = a > 0
            return float(np.sum(a[nz] * np.log2(a[nz] / m[nz])))

        return float(np.sqrt(max(0.0, (kl(p) + kl(q)) / 2)))
    from scipy.stats import wasserstein_distance

    c = pd.to_numeric(current, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    r = pd.to_numeric(reference, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    c, r = c[np.isfinite(c)], r[np.isfinite(r)]
    if len(c) == 0 or len(r) == 0:
        return None
    scale = float(np.std(r))
    return float(wasserstein_distance(r, c) / (scale if scale > 0 else 1.0))


def top_feature_rule(
    importance: Mapping[str, float] | None,
    distances: Mapping[str, float | None],
    top_k: int,
    threshold: float,
    why_none: str = "",
) -> dict[str, Any]:
    """Apply the rule: ``{"alerts": [...], "warnings": [...], "top_features": [...], "applied": bool}``.

    ``top_features`` lists the ``top_k`` features with their rank, importance and distance. Without an
    importance (``None``) nothing alerts and one warning names the reason (``why_none``).
    """
    out: dict[str, Any] = {"applied": importance is not None, "top_k": top_k, "distance_threshold": threshold,
                           "top_features": [], "alerts": [], "warnings": []}
    if importance is None:
        out["warnings"].append(f"top-feature rule not applied, share rule only: {why_none}")
        return out
    ranked = [f for f in importance if f in distances]
    rank = {f: i + 1 for i, f in enumerate(ranked)}
    top = set(ranked[:top_k])
    out["method"] = "mean |contribution| on the reference sample"
    for f in ranked[:top_k]:
        out["top_features"].append({"feature": f, "rank": rank[f], "importance": importance[f],
                                    "distance": distances.get(f)})
    strong = sorted(((f, d) for f, d in distances.items() if d is not None and d >= threshold),
                    key=lambda fd: rank.get(fd[0], len(rank) + 1))
    for f, d in strong:
        if f in top:
            out["alerts"].append(
                f"strong drift in {f}, the model's #{rank[f]} feature by mean |contribution|: "
                f"distance {d:.2f} ≥ {threshold}"
            )
        else:
            where = f"#{rank[f]} of {len(ranked)}" if f in rank else "not ranked"
            out["warnings"].append(
                f"strong drift in {f} (distance {d:.2f} ≥ {threshold}), not among the model's top {top_k} "
                f"features by mean |contribution| ({where}): no alert"
            )
    return out
