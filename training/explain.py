"""Reasons: exact per-row contributions, folded back to input features, and the top ones per row.

The one explanation module. The HTTP service, batch scoring (CSV and Spark), the profile page and
``CRMScorer.explain`` all call these functions:

* :func:`contributions`: each model-matrix column's contribution to the uncalibrated log-odds, the bias
  last; a row sums to the model's margin. XGBoost: exact path-dependent TreeSHAP by :mod:`training.treeshap`
  (XGBoost's ``pred_contribs=True`` numbers within float32 rounding, many times cheaper; XGBoost's own
  ``pred_contribs`` for a booster that module does not support). Linear models: ``coef · x`` exactly.
* :class:`ReasonFolder`: folds one-hot columns back into their input feature (:func:`reason_groups`) and
  picks the top positive and negative features per row (:func:`select_reasons`).

Probabilities are never derived from the contributions: they are the model's own prediction
(``CRMScorer.predict_proba_matrix``), so every path gives the same probability bit for bit.

May import numpy, pandas and ``training.scores`` / ``training.treeshap``; nothing from ``serving``.
"""

from __future__ import annotations

import math
import threading
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from features.messages import M_
from training.scores import readable_label

__all__ = [
    "REASON_METHODS",
    "ReasonFolder",
    "contributions",
    "jsonable",
    "reason_groups",
    "select_reasons",
    "supports_reasons",
]

#: ``exact``: TreeSHAP / linear terms; ``approx``: XGBoost's per-path (Saabas) attribution, ~ one prediction.
REASON_METHODS = ("exact", "approx")

#: compiled TreeSHAP tables per fitted XGBoost classifier (``None``: not supported, use ``pred_contribs``)
_TREESHAP: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_TREESHAP_LOCK = threading.Lock()


def iteration_range(est: Any) -> tuple[int, int]:
    """The trees ``XGBClassifier.predict`` uses: up to ``best_iteration`` after early stopping, else all."""
    try:
        return (0, est.best_iteration + 1)
    except AttributeError:
        return (0, 0)


def _threads_of(est: Any) -> int | None:
    """The estimator's ``n_jobs`` as a thread count (``None``: the library's default, all cores)."""
    n = getattr(est, "n_jobs", None)
    return int(n) if isinstance(n, int) and n > 0 else None


def _compiled_treeshap(est: Any) -> Any:
    """:func:`training.treeshap.compile_booster` of ``est``'s booster over the trees its probability uses,
    compiled once per loaded model; ``None`` when that module does not support the model."""
    with _TREESHAP_LOCK:
        if est in _TREESHAP:
            return _TREESHAP[est]
        try:
            from training.treeshap import compile_booster

            compiled = compile_booster(est.get_booster(), iteration_range=iteration_range(est))
        except (ImportError, ValueError):
            compiled = None
        _TREESHAP[est] = compiled
        return compiled


def supports_reasons(est: Any) -> bool:
    """Whether :func:`contributions` has exact per-row contributions for this fitted classifier."""
    return hasattr(est, "get_booster") or (hasattr(est, "coef_") and np.ndim(est.coef_) == 2 and len(est.coef_) == 1)


def contributions(est: Any, Z: np.ndarray, method: str = "exact", n_threads: int | None = None) -> np.ndarray:
    """Per-row contributions of each model-matrix column to the uncalibrated log-odds, bias last.

    Parameters
    ----------
    est : fitted XGBClassifier or binary linear classifier (``coef_`` of one row)
        The scorer's ``estimator_``.
    Z : ndarray of shape (n_rows, n_columns)
        The encoded matrix (``FeaturePreprocessor.transform``).
    method : {"exact", "approx"}, default="exact"
        ``approx`` gives XGBoost's Saabas attribution (also sums to the margin, may order features
        differently); linear models are exact either way.
    n_threads : int, optional
        TreeSHAP threads; default the estimator's ``n_jobs`` (all cores when unset).

    Returns
    -------
    ndarray of shape (n_rows, n_columns + 1)
        float32 for XGBoost (as XGBoost's own), float64 for linear models.
    """
    if method not in REASON_METHODS:
        raise ValueError(M_(
            "reasons method {method!r}: use {methods}",
            method=method, methods=' or '.join(REASON_METHODS),
        ))
    if hasattr(est, "get_booster"):
        import xgboost as xgb

        if method == "exact":
            compiled = _compiled_treeshap(est)
            if compiled is not None:
                from training.treeshap import contributions as treeshap_contributions

                return treeshap_contributions(compiled, Z, n_threads=n_threads or _threads_of(est))
        return est.get_booster().predict(
            xgb.DMatrix(Z), pred_contribs=True, approx_contribs=method == "approx", iteration_range=iteration_range(est)
        )
    if supports_reasons(est):
        n, f = Z.shape
        # in the matrix's memory order: a column-major matrix (batch's, for linear models) is read and written
        # column by column, as :meth:`ReasonFolder.fold` then reads it
        fortran = Z.flags.f_contiguous and not Z.flags.c_contiguous
        out = np.empty((n, f + 1), dtype=np.result_type(Z, est.coef_), order="F" if fortran else "C")
        np.multiply(Z, est.coef_[0], out=out[:, :f])
        out[:, f] = est.intercept_[0]
        return out
    raise NotImplementedError(f"{type(est).__name__} has no exact per-row contributions")


def reason_groups(feature_names_out: Sequence[str]) -> list[tuple[str, list[int]]]:
    """Input feature → indexes of its model-matrix columns (``feature=category`` columns fold into ``feature``)."""
    groups: dict[str, list[int]] = {}
    for i, n in enumerate(feature_names_out):
        groups.setdefault(str(n).split("=", 1)[0], []).append(i)
    return list(groups.items())


def select_reasons(folded: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indexes of the ``top`` largest and ``top`` smallest values per row.

    The order is the one of a stable sort of ``-folded`` (ties of the largest go to the lower index, ties of
    the smallest to the higher one). ``argpartition`` then a sort of the ``top`` candidates (or, for a few
    reasons of finite values, ``top`` rounds of ``argmax``/``argmin``); rows where equal values straddle the cut
    fall back to the full stable sort, so the result is always the full sort's.
    """
    n, f = folded.shape
    if n == 0 or top <= 0:
        return np.zeros((n, 0), dtype=np.int64), np.zeros((n, 0), dtype=np.int64)
    if top >= f:
        order = np.argsort(-folded, axis=1, kind="stable")
        return order[:, :top], order[:, ::-1][:, :top]
    if top <= 4 and folded.dtype.kind == "f" and np.isfinite(folded).all():
        return _select_by_extremes(folded, top)

    def smallest(values: np.ndarray, low_index_first: bool) -> np.ndarray:
        part = np.argpartition(values, top - 1, axis=1)[:, :top]
        pv = np.take_along_axis(values, part, axis=1)
        o = np.lexsort((part if low_index_first else -part, pv), axis=1)
        sel = np.take_along_axis(part, o, axis=1)
        cut = pv.max(axis=1)
        tied = np.flatnonzero((values <= cut[:, None]).sum(axis=1) > top)
        if len(tied):
            full = np.argsort(-values[tied] if not low_index_first else values[tied], axis=1, kind="stable")
            sel[tied] = full[:, ::-1][:, :top] if not low_index_first else full[:, :top]
        return sel

    pos = smallest(-folded, low_index_first=True)
    # the smallest: reversed stable order of -folded = ascending values, ties by the higher index first
    neg = smallest(folded, low_index_first=False)
    return pos, neg


def _select_by_extremes(folded: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """:func:`select_reasons` for a few reasons of finite values: ``top`` rounds of ``argmax`` (first, i.e. lowest,
    index among equals) and of ``argmin`` over the reversed columns (highest index among equals), each round
    masking the picked cells; the order is the full stable sort's. ``folded`` is restored before returning.

    The smallest are picked from one contiguous reversed copy (``argmin`` of a reversed view copies the array
    in every round)."""
    n, f = folded.shape
    rows = np.arange(n)
    pos = np.empty((n, top), dtype=np.int64)
    saved = np.empty((n, top), dtype=folded.dtype)
    done = 0
    try:
        for k in range(top):
            j = folded.argmax(axis=1)
            pos[:, k] = j
            saved[:, k] = folded[rows, j]
            folded[rows, j] = -np.inf
            done += 1
    finally:
        for k in range(done - 1, -1, -1):
            folded[rows, pos[:, k]] = saved[:, k]
    reversed_ = np.ascontiguousarray(folded[:, ::-1])
    neg = np.empty((n, top), dtype=np.int64)
    for k in range(top):
        j = reversed_.argmin(axis=1)
        neg[:, k] = f - 1 - j
        reversed_[rows, j] = np.inf
    return pos, neg


def jsonable(v: Any) -> Any:
    """A feature value as JSON: NaN/NA/NaT → None, numpy scalars → Python, other objects → their text."""
    if v is None:
        return None
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    if not isinstance(v, (int, float, str, bool)):
        try:
            return None if bool(v != v) else str(v)  # NaT compares unequal to itself
        except TypeError:  # pd.NA has no truth value
            return None
    return v


class ReasonFolder:
    """Folds per-column contributions (bias last) into per-input-feature ones and selects the reasons.

    Parameters
    ----------
    groups : list of (feature, column indexes)
        :func:`reason_groups` of the encoder's output names.
    n_columns : int
        Model-matrix width (the contributions have one more column, the bias).

    Attributes
    ----------
    names : list of str
        Input features, in the order of the folded columns.
    labels : list of str
        Their readable labels (``training.scores.readable_label``).

    Examples
    --------
    >>> import numpy as np
    >>> folder = ReasonFolder(reason_groups(["age", "province=A", "province=B"]), 3)
    >>> folder.fold(np.array([[0.5, -0.25, -0.5, 1.0]]))
    array([[ 0.5 , -0.75]])
    >>> r = folder.reasons(np.array([[0.5, -0.25, -0.5, 1.0]]), [{"age": 30, "province": "B"}], top=1)
    >>> [(x["feature"], x["value"]) for x in r[0]["positive"] + r[0]["negative"]]
    [('age', 30), ('province', 'B')]
    """

    def __init__(self, groups: Sequence[tuple[str, Sequence[int]]], n_columns: int) -> None:
        self.names = [g for g, _ in groups]
        self.labels = [readable_label(g) for g in self.names]
        self._groups = [np.asarray(idx, dtype=int) for _, idx in groups]
        self._single = all(len(idx) == 1 for idx in self._groups)
        self._index = np.array([idx[0] for idx in self._groups], dtype=int) if self._single else None
        self.n_columns = n_columns

    def fold(self, contribs: np.ndarray) -> np.ndarray:
        """Contributions per input feature, shape (rows, features): one-hot columns summed into their feature.

        The columns of a feature are added one after the other (not a matrix product, whose rounding depends on
        how many rows are folded together), so a row's reasons are the same scored alone or in a batch.
        """
        if self._single:
            return contribs[:, self._index]
        out = np.empty((contribs.shape[0], len(self._groups)), dtype=np.result_type(contribs.dtype, np.float64))
        for j, idx in enumerate(self._groups):
            col = out[:, j]
            if len(idx) == 0:
                col[:] = 0.0
                continue
            col[:] = contribs[:, idx[0]]
            for k in idx[1:]:
                col += contribs[:, k]
        return out

    def reasons(
        self, contribs: np.ndarray, rows: Sequence[Mapping[str, Any]], top: int = 3
    ) -> list[dict[str, list[dict[str, Any]]]]:
        """Per row ``{"positive": [...], "negative": [...]}``, at most ``top`` each, strongest first.

        A reason is ``{"feature", "label", "value", "contribution"}``; ``value`` is the row's input value
        (``rows[i].get(feature)``, as JSON). Positive reasons have a contribution > 0, negative ones < 0.
        """
        folded = self.fold(contribs)
        pos, neg = select_reasons(folded, top)
        pos_v = np.take_along_axis(folded, pos, axis=1).tolist()
        neg_v = np.take_along_axis(folded, neg, axis=1).tolist()
        pos_i, neg_i = pos.tolist(), neg.tolist()
        names, labels = self.names, self.labels
        out = []
        for r, row in enumerate(rows):
            get = row.get
            out.append(
                {
                    "positive": [
                        {"feature": names[j], "label": labels[j], "value": jsonable(get(names[j])), "contribution": v}
                        for j, v in zip(pos_i[r], pos_v[r], strict=True)
                        if v > 0
                    ],
                    "negative": [
                        {"feature": names[j], "label": labels[j], "value": jsonable(get(names[j])), "contribution": v}
                        for j, v in zip(neg_i[r], neg_v[r], strict=True)
                        if v < 0
                    ],
                }
            )
        return out
