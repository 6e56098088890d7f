"""Scoring a cleaned chunk: the model matrix, probabilities, scores, grades and reason texts.

Nothing here re-implements the model: the matrix is the model's one encoder fed column arrays and category
codes (``FeaturePreprocessor.transform_arrays``), probabilities are ``CRMScorer.predict_proba_matrix``,
contributions, folding and the top-k selection are ``training.explain`` (as the HTTP service and
``CRMScorer.explain``). What is batch's own is the output: reason texts built as Arrow arrays.
"""

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
from training.explain import REASON_METHODS, select_reasons
from training.model import FeaturePreprocessor
from training.scores import readable_label

__all__ = [
    "REASON_METHODS",
    "ScoredChunk",
    "contributions",
    "feature_matrix",
    "format_reasons",
    "reason_arrays",
    "reason_columns",
    "reason_texts",
    "score_frame",
    "select_reasons",
    "set_model_threads",
]


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


def contributions(scorer: Any, Z: np.ndarray, method: str = "exact") -> np.ndarray:
    """Per-row log-odds contributions (bias last) of an encoded matrix: ``training.explain.contributions``.

    ``exact``: TreeSHAP for XGBoost, exact for linear models, as the HTTP service gives. ``approx``: for
    XGBoost, the per-path attribution XGBoost computes with ``approx_contribs=True`` (Saabas): it also sums to
    the margin, costs about one prediction, but may order features differently; linear models are exact either way.
    """
    if method not in REASON_METHODS:
        raise BatchError(f"reasons method {method!r}: use {' or '.join(REASON_METHODS)}")
    return scorer.contributions_matrix(Z, method=method)


def format_reasons(
    scorer: Any, X: pd.DataFrame, Z: np.ndarray, top: int, folder: Any = None, method: str = "exact"
) -> dict[str, np.ndarray]:
    """Top ``top`` positive and negative reasons per row as text, e.g. ``added to cart = 1 (+0.84)``.

    Contributions (:func:`contributions`, exact by default) are folded to input features and selected by
    ``training.explain`` (as the HTTP service); an empty cell (None) means fewer reasons of that sign.
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
    if folder is None:
        folder = scorer.reason_folder()
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
    label_dict = pa.array([readable_label(g) for g in names], type=pa.string())
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


def feature_matrix(
    preprocessor: Any, X: pd.DataFrame, codes: dict[str, CategoryCodes] | None = None
) -> np.ndarray:
    """The model matrix of a cleaned chunk: the scorer's encoder fed column arrays (no per-row Python).

    ``X`` holds the model's features (numeric ones as float columns, categorical ones as text or None);
    ``codes`` (:attr:`CleanChunk.codes` of the same rows) give a categorical column as codes into its distinct
    values, so the encoder looks up the few distinct values only
    (``FeaturePreprocessor.transform_arrays``). A frame the adapter does not expect (a numeric feature that
    is not a float column, a missing column) and other preprocessors (a table model's ``TablePreprocessor``)
    go through their ``transform``, which names missing columns.
    """
    if type(preprocessor) is not FeaturePreprocessor:
        return preprocessor.transform(X)
    num_names = list(preprocessor.numeric_features_)
    if any(c not in X.columns for c in preprocessor.feature_names_in_) or not all(
        pd.api.types.is_float_dtype(X[c].dtype) for c in num_names
    ):
        return preprocessor.transform(X)
    k = len(num_names)
    block = X.iloc[:, :k] if list(X.columns[:k]) == num_names else X[num_names]  # a view when in order
    numeric = block.to_numpy(dtype="float64")
    del block
    categorical: dict[str, Any] = {}
    for c in preprocessor.categorical_features_:
        hint = (codes or {}).get(c)
        if hint is not None and len(hint.codes) == len(X):
            categorical[c] = (hint.codes, hint.values)
        else:
            categorical[c] = X[c].to_numpy(dtype=object)
    return preprocessor.transform_arrays(numeric, categorical)


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
