"""Scoring a cleaned chunk: the model matrix, probabilities, scores, grades and reason texts."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from serving.batch.clean import CategoryCodes
from serving.batch.options import BatchError


@dataclass
class ScoredChunk:
    """Probabilities, scores, grades and (optionally) reason texts of a feature frame."""

    probability: np.ndarray
    score: np.ndarray
    grade: np.ndarray
    reasons: dict[str, Any] = field(default_factory=dict)  # Arrow string arrays (or object arrays)


def reason_columns(k: int) -> list[str]:
    """Names of the reason columns for ``k`` positive and ``k`` negative reasons."""
    return [f"reason_pos_{i}" for i in range(1, k + 1)] + [f"reason_neg_{i}" for i in range(1, k + 1)]


def _format_numbers(values: np.ndarray) -> np.ndarray:
    """Readable numbers: whole numbers without decimals, others rounded to 2 decimals; NaN → 'missing'."""
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    lookup = np.array([*(_number_text(float(v)) for v in uniques), "missing"], dtype=object)
    return lookup[codes]


REASON_METHODS = ("exact", "approx")


def contributions(scorer: Any, Z: np.ndarray, method: str = "exact") -> np.ndarray:
    """Per-row log-odds contributions (bias last) of a preprocessed matrix.

    ``exact``: the scorer's own ``contributions_matrix`` (TreeSHAP for XGBoost, exact for linear models), as
    the HTTP service gives. ``approx``: for XGBoost, the per-path attribution XGBoost computes with
    ``approx_contribs=True`` (Saabas): it also sums to the margin, costs about one prediction, but may order
    features differently; linear models are exact either way.
    """
    if method not in REASON_METHODS:
        raise BatchError(f"reasons method {method!r}: use {' or '.join(REASON_METHODS)}")
    est = getattr(scorer, "estimator_", None)
    if method == "approx" and hasattr(est, "get_booster"):
        import xgboost as xgb

        return est.get_booster().predict(xgb.DMatrix(Z), pred_contribs=True, approx_contribs=True)
    if hasattr(est, "coef_") and not hasattr(est, "get_booster") and np.ndim(est.coef_) == 2 and len(est.coef_) == 1:
        # ``contributions_matrix`` of a linear model (``Z * coef`` and the intercept), written into one array
        # instead of two temporaries: the same products, element for element (tested)
        n, f = Z.shape
        out = np.empty((n, f + 1), dtype=np.result_type(Z, est.coef_))
        np.multiply(Z, est.coef_[0], out=out[:, :f])
        out[:, f] = est.intercept_[0]
        return out
    return scorer.contributions_matrix(Z)


def format_reasons(
    scorer: Any, X: pd.DataFrame, Z: np.ndarray, top: int, folder: Any = None, method: str = "exact"
) -> dict[str, np.ndarray]:
    """Top ``top`` positive and negative reasons per row as text, e.g. ``added to cart = 1 (+0.84)``.

    Contributions (:func:`contributions`, exact by default) are folded to input features and selected
    exactly as ``training.scores.top_reasons`` does; an empty cell (None) means fewer reasons of that sign.
    The same texts as :func:`reason_arrays`, as object arrays.
    """
    return {k: v.to_numpy(zero_copy_only=False) for k, v in reason_arrays(scorer, X, Z, top, folder, method).items()}


def reason_arrays(
    scorer: Any, X: pd.DataFrame, Z: np.ndarray, top: int, folder: Any = None, method: str = "exact",
    contribs: np.ndarray | None = None,
) -> dict[str, Any]:
    """:func:`format_reasons` as Arrow string arrays (null: no reason), built without a Python object per cell.

    Every distinct value text, contribution text and label is formatted once; the cells are Arrow takes
    of those dictionaries joined with ``binary_join_element_wise``. ``contribs`` may be given when already
    computed (they must be ``contributions(scorer, Z, method)``).
    """
    from serving.http.postprocess import ReasonFolder

    if folder is None:
        folder = ReasonFolder(scorer.reason_groups(), Z.shape[1])
    if contribs is None:
        contribs = contributions(scorer, Z, method)
    folded = folder.fold(contribs)
    del contribs
    pos, neg = select_reasons(folded, top)
    return reason_texts(folded, pos, neg, top, folder.names, X)


def reason_texts(
    folded: np.ndarray, pos: np.ndarray, neg: np.ndarray, top: int, names: Sequence[str], X: pd.DataFrame
) -> dict[str, Any]:
    """Reason text columns (Arrow, null for no reason) of selected folded contributions: ``label = value (±c)``."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from serving.http.postprocess import label_of

    n = folded.shape[0]
    cols = [(f"reason_{kind}_{k + 1}", sel, sign, k) for kind, sel, sign in (("pos", pos, 1.0), ("neg", neg, -1.0))
            for k in range(top)]
    if n == 0 or not cols:
        return {c: pa.nulls(n, pa.string()) for c, *_ in cols}
    all_rows = np.arange(n)
    # every cell: feature index, contribution and whether it is a reason at all (sign)
    J = np.zeros((len(cols), n), dtype=np.int64)
    C = np.zeros((len(cols), n), dtype="float64")
    H = np.zeros((len(cols), n), dtype=bool)
    for i, (_, sel, sign, k) in enumerate(cols):
        if k < sel.shape[1]:
            J[i] = sel[:, k]
            C[i] = folded[all_rows, J[i]]
            H[i] = C[i] * sign > 0
    # value texts: per feature, the distinct values of the rows where it is a reason, formatted once
    value_code = np.zeros(J.shape, dtype=np.int64)
    texts: list[str] = []
    cells = np.flatnonzero(H.ravel())
    cj = J.ravel()[cells]
    crow = cells % n
    order = np.argsort(cj, kind="stable")
    bounds = np.flatnonzero(np.diff(cj[order])) + 1
    flat_code = value_code.ravel()
    for group in np.split(order, bounds):
        if len(group) == 0:
            continue
        name = names[int(cj[group[0]])]
        codes, uniques = _value_dictionary(X[name] if name in X.columns else None, crow[group])
        flat_code[cells[group]] = codes + len(texts)
        texts.extend(uniques)
    value_dict = pa.array(texts, type=pa.string())
    # contribution texts: distinct rounded values formatted once
    # by bit pattern, so -0.0 (a tiny negative contribution) keeps its sign: "-0.00"
    rc, runiques = pd.factorize(np.round(C.ravel(), 2).view(np.int64))
    contrib_dict = pa.array([f"{u:+.2f}" for u in runiques.view(np.float64)], type=pa.string())
    label_dict = pa.array([label_of(g) for g in names], type=pa.string())
    rc = rc.reshape(C.shape)
    out: dict[str, Any] = {}
    for i, (col, *_) in enumerate(cols):
        miss = ~H[i]
        if miss.all():
            out[col] = pa.nulls(n, pa.string())
            continue
        lab = pc.take(label_dict, pa.array(J[i], mask=miss))
        val = pc.take(value_dict, pa.array(value_code[i], mask=miss)) if len(texts) else lab
        con = pc.take(contrib_dict, pa.array(rc[i], mask=miss))
        out[col] = pc.binary_join_element_wise(lab, " = ", val, " (", con, ")", "")
    return out


def _value_dictionary(col: pd.Series | None, rows: np.ndarray) -> tuple[np.ndarray, list[str]]:
    """Display texts of ``col``'s values in ``rows`` as (codes, distinct texts): numbers as
    :func:`_format_numbers` shows them, text as it is, missing as ``missing``."""
    if col is None:
        return np.zeros(len(rows), dtype=np.int64), ["missing"]
    if pd.api.types.is_numeric_dtype(col.dtype):
        values = col.to_numpy(dtype="float64", na_value=np.nan)[rows]
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        texts = [_number_text(float(v)) for v in uniques]
    else:
        values = col.to_numpy(dtype=object)[rows]
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        texts = [str(v) for v in uniques]
    codes = np.where(codes < 0, len(texts), codes)
    return codes.astype(np.int64), [*texts, "missing"]


def _number_text(v: float) -> str:
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return s if s not in ("", "0", "-0") else f"{v:.2g}"


def select_reasons(folded: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """Column indexes of the ``top`` largest and ``top`` smallest values per row, in the order
    ``training.scores.top_reasons`` uses (a stable sort of ``-folded``: ties of the largest go to the lower
    index, ties of the smallest to the higher one).

    ``argpartition`` then a sort of the ``top`` candidates; rows where equal values straddle the cut fall back
    to the full stable sort, so the result is always the full sort's.
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
    masking the picked cells; the order is the full stable sort's. ``folded`` is restored before returning."""
    n, f = folded.shape
    rows = np.arange(n)
    out = []
    for pick_max in (True, False):
        picked = np.empty((n, top), dtype=np.int64)
        saved = np.empty((n, top), dtype=folded.dtype)
        fill = -np.inf if pick_max else np.inf
        done = 0
        try:
            for k in range(top):
                j = folded.argmax(axis=1) if pick_max else f - 1 - folded[:, ::-1].argmin(axis=1)
                picked[:, k] = j
                saved[:, k] = folded[rows, j]
                folded[rows, j] = fill
                done += 1
        finally:
            for k in range(done - 1, -1, -1):
                folded[rows, picked[:, k]] = saved[:, k]
        out.append(picked)
    return out[0], out[1]


def feature_matrix(
    preprocessor: Any, X: pd.DataFrame, codes: dict[str, CategoryCodes] | None = None
) -> np.ndarray:
    """``preprocessor.transform(X)`` (a fitted ``FeaturePreprocessor``), element for element, built without
    pandas' per-column conversion and per-value category mapping: numeric features as one float block, each
    categorical feature's codes with one ``get_indexer`` of its text values.

    Falls back to ``preprocessor.transform`` for frames it does not expect (a numeric feature that is not a
    number column, a categorical one that is not text or missing), so the result is always the transform's.
    ``codes`` (from :func:`clean_chunk`, rows aligned with ``X``) give a categorical column as codes into its
    distinct values: the lookup then runs on those values only, with the same result.
    """
    from training.model import FeaturePreprocessor

    if type(preprocessor) is not FeaturePreprocessor:  # e.g. train table's TablePreprocessor: its own transform
        return preprocessor.transform(X)
    num_names = list(preprocessor.numeric_features_)
    cat_names = list(preprocessor.categorical_features_)
    if any(c not in X.columns for c in preprocessor.feature_names_in_):
        return preprocessor.transform(X)  # raises naming the missing columns
    if not all(pd.api.types.is_float_dtype(X[c].dtype) for c in num_names):
        return preprocessor.transform(X)
    cat_values: dict[str, np.ndarray] = {}
    hints: dict[str, CategoryCodes] = {}
    for c in cat_names:
        hint = (codes or {}).get(c)
        if hint is not None and len(hint.codes) == len(X):
            v = hint.values  # the same distinct values: the same inferred type
            hints[c] = hint
        else:
            v = cat_values[c] = X[c].to_numpy(dtype=object)
        if pd.api.types.infer_dtype(v, skipna=True) not in ("string", "empty"):
            return preprocessor.transform(X)
    n = len(X)
    onehot = preprocessor.encoding == "onehot"
    widths = [len(preprocessor.categories_[c]) if onehot else 1 for c in cat_names]
    Z = np.empty((n, len(num_names) + sum(widths)), dtype="float64")
    k = len(num_names)
    if k:
        # the same operations, element for element, on a column-major copy (contiguous columns: half the time
        # of working on Z's strided block), then one copy into Z
        block = X.iloc[:, :k] if list(X.columns[:k]) == num_names else X[num_names]  # a view when in order
        A = np.array(block.to_numpy(dtype="float64"), dtype="float64", order="F")
        del block
        bad = ~np.isfinite(A)
        if onehot:  # non-finite → NaN → the median: one step
            np.copyto(A, np.broadcast_to(np.asarray(preprocessor.medians_, dtype="float64"), A.shape), where=bad)
            A -= preprocessor.means_
            A /= preprocessor.scales_
        else:
            A[bad] = np.nan
        del bad
        Z[:, :k] = A
        del A
    if onehot and k < Z.shape[1]:
        Z[:, k:] = 0.0
    for c, w in zip(cat_names, widths, strict=True):
        hint = hints.get(c)
        v = hint.values if hint is not None else cat_values[c]
        idx = pd.Index(preprocessor.categories_[c], dtype=object).get_indexer(v)
        idx[pd.isna(v)] = -1
        if hint is not None:  # row i's value is v[hint.codes[i]] (or null at -1)
            idx = np.where(hint.codes >= 0, idx[np.maximum(hint.codes, 0)], -1) if len(v) else np.full(len(X), -1)
        if onehot:
            block = Z[:, k : k + w]
            ok = idx >= 0
            block[np.flatnonzero(ok), idx[ok]] = 1.0
        else:
            Z[:, k] = np.where(idx >= 0, idx, np.nan)
        k += w
    return Z


def score_frame(
    scorer: Any, X: pd.DataFrame, reasons: int = 0, threads: int | None = None, folder: Any = None,
    reason_method: str = "exact", codes: dict[str, CategoryCodes] | None = None,
) -> ScoredChunk:
    """Score a frame of the model's features with the scorer's own transform, model and calibration
    (``codes``: :attr:`CleanChunk.codes` of the same rows, see :func:`feature_matrix`)."""
    from training.scores import to_grade, to_score

    with _xgb_threads(threads):
        Z = feature_matrix(scorer.preprocessor_, X, codes)
        p = np.asarray(scorer.predict_proba_matrix(Z), dtype="float64")
        why = reason_arrays(scorer, X, Z, reasons, folder, reason_method) if reasons > 0 and len(X) else {}
    if reasons > 0 and not why:
        import pyarrow as pa

        why = {c: pa.nulls(len(X), pa.string()) for c in reason_columns(reasons)}
    s = to_score(p)
    return ScoredChunk(p, s, to_grade(s, scorer.grade_thresholds_), why)


@contextlib.contextmanager
def _xgb_threads(threads: int | None) -> Iterator[None]:
    # a model that is not XGBoost never imported it (its import is ~0.5 s of the main thread); one that is did
    xgb = sys.modules.get("xgboost")
    if not threads or xgb is None:
        yield
        return
    with xgb.config_context(nthread=int(threads)):
        yield


def set_model_threads(scorer: Any, threads: int) -> None:
    """Make the scorer's classifier predict with ``threads`` threads (XGBoost keeps its training n_jobs)."""
    est = getattr(scorer, "estimator_", None)
    if est is not None and "n_jobs" in est.get_params():
        with contextlib.suppress(Exception):
            est.set_params(n_jobs=int(threads))
