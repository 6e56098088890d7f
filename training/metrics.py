"""Evaluation figures a CRM team reads: AUC, PR-AUC, log loss, Brier, KS, lift, capture, calibration."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

SCORE_BANDS = ((1, 20), (21, 40), (41, 60), (61, 80), (81, 99))


def capture_at(y: np.ndarray, p: np.ndarray, share: float) -> float:
    """Share of all positives found in the top ``share`` of rows by score (ties broken by order)."""
    y = np.asarray(y)
    if y.sum() == 0:
        return float("nan")
    k = max(1, int(round(len(y) * share)))
    top = np.argsort(-np.asarray(p), kind="stable")[:k]
    return float(y[top].sum() / y.sum())


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """ECE over equal-frequency bins: Σ (n_b / n) · |mean(p) − mean(y)|."""
    y, p = np.asarray(y, dtype=float), np.asarray(p, dtype=float)
    if len(y) == 0:
        return float("nan")
    order = np.argsort(p, kind="stable")
    ece = 0.0
    for chunk in np.array_split(order, min(bins, len(y))):
        ece += len(chunk) / len(y) * abs(p[chunk].mean() - y[chunk].mean())
    return float(ece)


def ks_statistic(y: np.ndarray, p: np.ndarray) -> float:
    """Kolmogorov–Smirnov distance between the score distributions of positives and negatives."""
    from scipy.stats import ks_2samp

    y, p = np.asarray(y), np.asarray(p)
    if y.min() == y.max():
        return float("nan")
    return float(ks_2samp(p[y == 1], p[y == 0]).statistic)


def evaluate(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    """Every headline metric of a scored, labelled set."""
    y, p = np.asarray(y).astype(int), np.asarray(p, dtype=float)
    both = y.min() != y.max()
    base = y.mean() if len(y) else float("nan")
    top10 = capture_at(y, p, 0.10)
    return {
        "roc_auc": float(roc_auc_score(y, p)) if both else float("nan"),
        "pr_auc": float(average_precision_score(y, p)) if both else float("nan"),
        "log_loss": float(log_loss(y, np.clip(p, 1e-7, 1 - 1e-7), labels=[0, 1])),
        "brier": float(brier_score_loss(y, p)),
        "ks": ks_statistic(y, p),
        "lift_top_decile": float(top10 / 0.10) if base > 0 else float("nan"),
        "capture_top10": top10,
        "capture_top20": capture_at(y, p, 0.20),
        "ece": expected_calibration_error(y, p),
        "base_rate": float(base),
        "n_rows": float(len(y)),
    }


def rate_per_band(y: np.ndarray, scores: np.ndarray) -> pd.DataFrame:
    """Rows and positive rate per score band 1–20, 21–40, … 81–99."""
    rows = []
    for lo, hi in SCORE_BANDS:
        m = (scores >= lo) & (scores <= hi)
        rows.append(
            {"band": f"{lo}-{hi}", "rows": int(m.sum()), "positive_rate": float(y[m].mean()) if m.any() else None}
        )
    return pd.DataFrame(rows)


def gain_curve(y: np.ndarray, p: np.ndarray, points: int = 50) -> pd.DataFrame:
    """Cumulative share of positives captured vs share of rows contacted, best-first."""
    order = np.argsort(-p, kind="stable")
    cum = np.cumsum(y[order]) / max(1, y.sum())
    idx = np.unique(np.linspace(0, len(y) - 1, points).astype(int))
    return pd.DataFrame({"share_contacted": (idx + 1) / len(y), "share_captured": cum[idx]})


def calibration_table(y: np.ndarray, p: np.ndarray, bins: int = 10) -> pd.DataFrame:
    """Mean predicted vs observed rate per equal-frequency bin."""
    order = np.argsort(p, kind="stable")
    rows = [
        {"mean_predicted": float(p[c].mean()), "observed_rate": float(y[c].mean()), "rows": len(c)}
        for c in np.array_split(order, min(bins, len(y)))
        if len(c)
    ]
    return pd.DataFrame(rows)
