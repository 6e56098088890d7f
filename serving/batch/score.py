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

from features.messages import M_
from serving.batch.clean import CategoryCodes
from serving.batch.options import BatchError
from training.explain import REASON_METHODS, select_reasons
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
        raise BatchError(M_(
            "reasons method {method!r}: use {methods}",
            method=method, methods=' or '.join(REASON_METHODS),
        ))
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
    J, C = reason_cells(folded, pos, neg, top)
    return _cell_texts(J, C, top, names, X)


def reason_cells(folded: np.ndarray, pos: np.ndarray, neg: np.ndarray, top: int) -> tuple[np.ndarray, np.ndarray]:
    """The reason cells of selected folded contributions: feature indexes ``J`` and contributions ``C``, both
    (2 × ``top``, rows), the ``top`` positive reason columns first (a cell is a reason when its contribution has
    the column's sign). Row by row, so the cells of a chunk can be filled block by block."""
    n = folded.shape[0]
    J = np.zeros((2 * top, n), dtype=np.int64)
    C = np.zeros((2 * top, n), dtype="float64")
    all_rows = np.arange(n)
    for i, (sel, k) in enumerate([(pos, k) for k in range(top)] + [(neg, k) for k in range(top)]):
        if k < sel.shape[1]:
            J[i] = sel[:, k]
            C[i] = folded[all_rows, J[i]]
    return J, C


def _cell_texts(J: np.ndarray, C: np.ndarray, top: int, names: Sequence[str], X: pd.DataFrame) -> dict[str, Any]:
    """:func:`reason_texts` of :func:`reason_cells`."""
    import pyarrow as pa
    import pyarrow.compute as pc

    n = J.shape[1]
    cols = [(f"reason_{kind}_{k + 1}", sign) for kind, sign in (("pos", 1.0), ("neg", -1.0)) for k in range(top)]
    if n == 0 or not cols:
        return {c: pa.nulls(n, pa.string()) for c, _ in cols}
    # whether each cell is a reason at all (its contribution has the column's sign)
    H = np.zeros((len(cols), n), dtype=bool)
    for i, (_, sign) in enumerate(cols):
        H[i] = C[i] * sign > 0
    # value texts: per feature, the distinct values of the rows where it is a reason, formatted once
    value_code = np.zeros(J.shape, dtype=np.int64)
    texts: list[Any] = []  # Arrow string arrays
    n_texts = 0
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
        flat_code[cells[group]] = codes + n_texts
        texts.append(uniques)
        n_texts += len(uniques)
    value_dict = pa.concat_arrays(texts) if texts else pa.array([], type=pa.string())
    # contribution texts: distinct rounded values formatted once
    # by bit pattern, so -0.0 (a tiny negative contribution) keeps its sign: "-0.00"
    rc, runiques = pd.factorize(np.round(C.ravel(), 2).view(np.int64))
    contrib_dict = pa.array([f"{u:+.2f}" for u in runiques.view(np.float64)], type=pa.string())
    label_dict = pa.array([readable_label(g) for g in names], type=pa.string())
    rc = rc.reshape(C.shape)
    out: dict[str, Any] = {}
    for i, (col, _) in enumerate(cols):
        miss = ~H[i]
        if miss.all():
            out[col] = pa.nulls(n, pa.string())
            continue
        lab = pc.take(label_dict, pa.array(J[i], mask=miss))
        val = pc.take(value_dict, pa.array(value_code[i], mask=miss)) if n_texts else lab
        con = pc.take(contrib_dict, pa.array(rc[i], mask=miss))
        out[col] = pc.binary_join_element_wise(lab, " = ", val, " (", con, ")", "")
    return out


def _value_dictionary(col: pd.Series | None, rows: np.ndarray) -> tuple[np.ndarray, Any]:
    """Display texts of ``col``'s values in ``rows`` as (codes, distinct texts as an Arrow string array): numbers
    as :func:`_format_numbers` shows them (:func:`_number_texts`), text as it is, missing as ``missing``."""
    import pyarrow as pa

    missing = pa.array(["missing"], type=pa.string())
    if col is None:
        return np.zeros(len(rows), dtype=np.int64), missing
    if pd.api.types.is_numeric_dtype(col.dtype):
        values = col.to_numpy(dtype="float64", na_value=np.nan)[rows]
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        texts = _number_texts(np.asarray(uniques, dtype="float64"))
    else:
        values = col.to_numpy(dtype=object)[rows]
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        texts = pa.array([str(v) for v in uniques], type=pa.string())
    codes = np.where(codes < 0, len(texts), codes)
    return codes.astype(np.int64), pa.concat_arrays([texts, missing])


def _number_text(v: float) -> str:
    if v.is_integer() and abs(v) < 1e15:
        return str(int(v))
    s = f"{v:.2f}".rstrip("0").rstrip(".")
    return s if s not in ("", "0", "-0") else f"{v:.2g}"


def _number_texts(values: np.ndarray) -> Any:
    """:func:`_number_text` of each of ``values`` (finite), as an Arrow string array, mostly without a Python
    call per value: whole numbers are Arrow's integer texts, others ``m / 100`` with ``m`` the value rounded to
    hundredths (``np.rint(100 v)``, which is what ``f"{v:.2f}"`` rounds to unless ``100 v`` lies within
    rounding error of a half; those, large values and the ones that round to zero go through
    :func:`_number_text`)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    v = np.asarray(values, dtype="float64")
    n = len(v)
    out = np.empty(n, dtype=np.int64)  # position of each value's text in the concatenation below
    parts: list[Any] = []
    at = 0
    with np.errstate(invalid="ignore"):
        whole = np.isfinite(v) & (v == np.trunc(v)) & (np.abs(v) < 1e15)
        x100 = v * 100.0
        m = np.rint(x100)
        frac = np.abs(x100 - np.trunc(x100))
        exact = (
            ~whole & np.isfinite(v) & (np.abs(v) < 1e9) & (m != 0)
            & (np.abs(frac - 0.5) > 1e-9 * np.maximum(1.0, np.abs(x100)))
        )
    slow = ~whole & ~exact
    if whole.any():
        idx = np.flatnonzero(whole)
        parts.append(pc.cast(pa.array(v[idx].astype(np.int64)), pa.string()))
        out[idx] = at + np.arange(len(idx))
        at += len(idx)
    if exact.any():
        idx = np.flatnonzero(exact)
        mm = m[idx].astype(np.int64)
        am = np.abs(mm)
        sign = pc.if_else(pa.array(mm < 0), "-", "")
        units = pc.cast(pa.array(am // 100), pa.string())
        cents = pc.utf8_lpad(pc.cast(pa.array(am % 100), pa.string()), 2, "0")
        text = pc.binary_join_element_wise(sign, units, ".", cents, "")
        parts.append(pc.utf8_rtrim(pc.utf8_rtrim(text, "0"), "."))
        out[idx] = at + np.arange(len(idx))
        at += len(idx)
    if slow.any():
        idx = np.flatnonzero(slow)
        parts.append(pa.array([_number_text(float(x)) for x in v[idx]], type=pa.string()))
        out[idx] = at + np.arange(len(idx))
        at += len(idx)
    if not parts:
        return pa.array([], type=pa.string())
    texts = pa.concat_arrays(parts) if len(parts) > 1 else parts[0]
    return pc.take(texts, pa.array(out)) if n else texts


#: rows encoded, scored and explained at a time within a chunk: a block's model matrix (~8k rows × ~200 columns,
#: ~13 MB) and contributions stay in cache, and the allocator reuses their memory from block to block instead
#: of mapping (and page-faulting) a chunk-sized matrix afresh for every chunk. Every number of a row depends on
#: that row alone (the linear margin is summed column by column, XGBoost and TreeSHAP work row by row), so the
#: block size changes no output bit.
SCORE_BLOCK_ROWS = 8192


def feature_matrix(
    preprocessor: Any, X: pd.DataFrame, codes: dict[str, CategoryCodes] | None = None,
    numeric: np.ndarray | None = None, rows: slice | None = None, order: str = "C",
) -> np.ndarray:
    """The model matrix of a cleaned chunk (or of its ``rows``): the scorer's encoder fed column arrays (no
    per-row Python).

    ``X`` holds the model's features (numeric ones as float columns, categorical ones as text or None);
    ``codes`` (:attr:`CleanChunk.codes` of the same rows) give a categorical column as codes into its distinct
    values, so the encoder looks up the few distinct values only; ``numeric`` (:attr:`CleanChunk.numeric`) is
    the numeric block the frame's numeric columns came from, read without going through the frame
    (``FeaturePreprocessor.transform_arrays``; ``order`` is the matrix's memory order). A frame the adapter does
    not expect (a numeric feature that is not a float column, a missing column) and other preprocessors (a
    table model's ``TablePreprocessor``) go through their ``transform``, which names missing columns.
    """
    arrays = _encoder_arrays(preprocessor, X, codes, numeric)
    sl = rows if rows is not None else slice(None)
    if arrays is None:
        return preprocessor.transform(X if rows is None else X.iloc[sl])
    num, categorical = arrays
    return preprocessor.transform_arrays(
        num[sl], {c: ((v[0][sl], v[1]) if isinstance(v, tuple) else v[sl]) for c, v in categorical.items()},
        order=order,
    )


def _encoder_arrays(
    preprocessor: Any, X: pd.DataFrame, codes: dict[str, CategoryCodes] | None, numeric: np.ndarray | None
) -> tuple[np.ndarray, dict[str, Any]] | None:
    """What ``FeaturePreprocessor.transform_arrays`` takes for the rows of ``X`` (see :func:`feature_matrix`), or
    None when ``X`` must go through the preprocessor's ``transform``."""
    from training.model import FeaturePreprocessor

    if type(preprocessor) is not FeaturePreprocessor:
        return None
    num_names = list(preprocessor.numeric_features_)
    if any(c not in X.columns for c in preprocessor.feature_names_in_) or not all(
        pd.api.types.is_float_dtype(X[c].dtype) for c in num_names
    ):
        return None
    k = len(num_names)
    if numeric is None or numeric.shape != (len(X), k) or numeric.dtype != np.float64:
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
    return numeric, categorical


def score_frame(
    scorer: Any, X: pd.DataFrame, reasons: int = 0, threads: int | None = None, folder: Any = None,
    reason_method: str = "exact", codes: dict[str, CategoryCodes] | None = None, numeric: np.ndarray | None = None,
) -> ScoredChunk:
    """Score a frame of the model's features with the scorer's own transform, model and calibration
    (``codes``, ``numeric``: :attr:`CleanChunk.codes` and :attr:`CleanChunk.numeric` of the same rows, see
    :func:`feature_matrix`), :data:`SCORE_BLOCK_ROWS` rows at a time."""
    from training.scores import to_grade, to_score

    n = len(X)
    prep = scorer.preprocessor_
    # a linear model's margin reads the matrix column by column, trees read it row by row
    order = "F" if getattr(prep, "encoding", None) == "onehot" else "C"
    arrays = _encoder_arrays(prep, X, codes, numeric)
    step = SCORE_BLOCK_ROWS if arrays is not None else max(n, 1)
    p = np.empty(n, dtype="float64")
    # the reason cells (feature, contribution) of every row; a block's folded contributions live for that block
    J = np.zeros((2 * reasons, n), dtype=np.int64) if reasons > 0 else None
    C = np.zeros((2 * reasons, n), dtype="float64") if reasons > 0 else None
    if reasons > 0 and folder is None:
        folder = scorer.reason_folder()
    with _xgb_threads(threads):
        for r0 in range(0, n, step):
            rows = slice(r0, min(n, r0 + step))
            if arrays is None:
                Z = prep.transform(X)
            else:
                num, categorical = arrays
                Z = prep.transform_arrays(
                    num[rows], {c: ((v[0][rows], v[1]) if isinstance(v, tuple) else v[rows])
                                for c, v in categorical.items()}, order=order,
                )
            p[rows] = scorer.predict_proba_matrix(Z)
            if J is not None and C is not None:
                folded = folder.fold(contributions(scorer, Z, reason_method))
                pos, neg = select_reasons(folded, reasons)
                J[:, rows], C[:, rows] = reason_cells(folded, pos, neg, reasons)
                del folded
            del Z
    why: dict[str, Any] = {}
    if J is not None and C is not None:
        why = _cell_texts(J, C, reasons, folder.names, X)
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
