"""The fitted scoring pipeline logged to MLflow: preprocessing + model + probability calibration.

``CRMScorer`` is one scikit-learn estimator holding everything serving and batch scoring need:
the feature builder's parameters (for raw-profile leads), the preprocessor (learned categories,
imputation), the classifier, the calibrator, the score→grade cut points, and per-row reasons
(exact contributions in log-odds space). Serving and batch load this one object; nothing is
re-implemented elsewhere.
"""

from __future__ import annotations

import threading
import warnings
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

#: Classes a logged model may contain beyond scikit-learn's own; the only types skops will load.
TRUSTED_TYPES = [
    "training.model.CRMScorer",
    "training.model.FeaturePreprocessor",
    "features.build.CRMFeatureBuilder",
    "training.tabular.TablePreprocessor",
    "training.tabular.TableFeaturizer",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.core.Booster",
]


class FeaturePreprocessor(TransformerMixin, BaseEstimator):
    """Feature frame → float matrix.

    ``encoding='ordinal'`` (trees): numerics as they are (NaN kept), categoricals as codes of the
    categories seen in fit (unknown or missing → NaN). ``encoding='onehot'`` (linear models):
    numerics median-imputed and standardised, categoricals one-hot over the frequent categories
    (unknown → all zeros).
    """

    def __init__(
        self,
        categorical: Sequence[str] | None = None,
        encoding: str = "ordinal",
        min_frequency: int = 20,
        max_categories: int = 60,
    ) -> None:
        self.categorical = categorical
        self.encoding = encoding
        self.min_frequency = min_frequency
        self.max_categories = max_categories

    def fit(self, X: pd.DataFrame, y: Any = None) -> FeaturePreprocessor:
        """Learn column roles, categories, and (one-hot) imputation and scaling."""
        if self.encoding not in ("ordinal", "onehot"):
            raise ValueError(f"encoding must be 'ordinal' or 'onehot', got {self.encoding!r}")
        cat = (
            list(self.categorical)
            if self.categorical is not None
            else [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        )
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.categorical_features_ = [c for c in X.columns if c in cat]
        self.numeric_features_ = [c for c in X.columns if c not in cat]
        self.categories_: dict[str, list[str]] = {}
        for c in self.categorical_features_:
            counts = X[c].dropna().astype(str).value_counts()
            counts = counts[counts >= self.min_frequency].head(self.max_categories)
            self.categories_[c] = sorted(counts.index.tolist())
        num = self._numeric(X)
        if self.encoding == "onehot":
            with np.errstate(all="ignore"), warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # all-missing columns: median 0 below
                med = np.nanmedian(num, axis=0) if len(num) else np.zeros(num.shape[1])
            self.medians_ = np.where(np.isfinite(med), med, 0.0)
            filled = np.where(np.isnan(num), self.medians_, num)
            self.means_ = filled.mean(axis=0) if len(filled) else np.zeros(num.shape[1])
            sd = filled.std(axis=0) if len(filled) else np.ones(num.shape[1])
            self.scales_ = np.where(sd > 0, sd, 1.0)
        self.feature_names_out_ = np.asarray(self._out_names(), dtype=object)
        return self

    def _out_names(self) -> list[str]:
        names = list(self.numeric_features_)
        for c in self.categorical_features_:
            if self.encoding == "onehot":
                names += [f"{c}={v}" for v in self.categories_[c]]
            else:
                names.append(c)
        return names

    def _numeric(self, X: pd.DataFrame) -> np.ndarray:
        if not self.numeric_features_:
            return np.zeros((len(X), 0))
        num = X[self.numeric_features_].apply(pd.to_numeric, errors="coerce")
        arr = num.to_numpy(dtype="float64", na_value=np.nan)
        arr[~np.isfinite(arr)] = np.nan
        return arr

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Output column names (one per category for one-hot)."""
        return self.feature_names_out_

    def transform_records(self, rows: Sequence[Mapping[str, Any]]) -> np.ndarray:
        """Encode feature dicts without building a DataFrame (serving's one-lead fast path).

        Same result as ``transform(pd.DataFrame(rows))``: absent or non-numeric values become missing,
        unseen categories become unknown.
        """
        lookup = self.__dict__.get("_lookup")
        if lookup is None:
            lookup = {c: {v: i for i, v in enumerate(self.categories_[c])} for c in self.categorical_features_}
            self.__dict__["_lookup"] = lookup
        num = np.array([[_as_float(r.get(c)) for c in self.numeric_features_] for r in rows], dtype="float64")
        num = num.reshape(len(rows), len(self.numeric_features_))
        if self.encoding == "onehot":
            num = (np.where(np.isnan(num), self.medians_, num) - self.means_) / self.scales_
        parts = [num]
        for c in self.categorical_features_:
            codes = np.array([lookup[c].get(_as_cat(r.get(c)), -1) for r in rows], dtype=np.int64)
            if self.encoding == "onehot":
                hot = np.zeros((len(rows), len(self.categories_[c])))
                ok = codes >= 0
                hot[np.flatnonzero(ok), codes[ok]] = 1.0
                parts.append(hot)
            else:
                parts.append(np.where(codes >= 0, codes, np.nan).astype("float64")[:, None])
        return np.hstack(parts)

    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_lookup", None)
        return state

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Encode a feature frame; missing columns are an error naming them."""
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise KeyError(f"missing feature column(s): {', '.join(missing[:10])}")
        num = self._numeric(X)
        parts = []
        if self.encoding == "onehot":
            num = (np.where(np.isnan(num), self.medians_, num) - self.means_) / self.scales_
        parts.append(num)
        for c in self.categorical_features_:
            values = X[c].astype("object").where(X[c].notna(), None).map(lambda v: None if v is None else str(v))
            codes = pd.Index(self.categories_[c]).get_indexer(values.to_numpy())
            if self.encoding == "onehot":
                hot = np.zeros((len(X), len(self.categories_[c])))
                ok = codes >= 0
                hot[np.flatnonzero(ok), codes[ok]] = 1.0
                parts.append(hot)
            else:
                parts.append(np.where(codes >= 0, codes, np.nan).astype("float64")[:, None])
        return np.hstack(parts) if parts else np.zeros((len(X), 0))


def _as_float(v: Any) -> float:
    try:
        f = float(v)
    except (TypeError, ValueError):
        return np.nan
    return f if np.isfinite(f) else np.nan


def _as_cat(v: Any) -> str | None:
    if v is None or v is pd.NA or (isinstance(v, float) and np.isnan(v)):
        return None
    return str(v)


class _ArrayInterface:
    """Holds a NumPy array interface; what ``xgboost._data_utils.from_array_interface`` wraps its output in."""

    __slots__ = ("__array_interface__",)

    def __init__(self, interface: dict[str, Any]) -> None:
        out = dict(interface)
        out["shape"] = tuple(out["shape"])
        out["data"] = (out["data"][0], out["data"][1])
        if out.get("strides") is not None:
            out["strides"] = tuple(out["strides"])
        self.__array_interface__ = out


def _from_array_interface(interface: dict[str, Any], zero_copy: bool = False) -> Any:
    """``xgboost._data_utils.from_array_interface`` for host arrays without defining a class per call.

    XGBoost (3.x) defines a wrapper class inside that function, i.e. one new class per prediction. Classes live in
    reference cycles, so only the cyclic garbage collector frees them: with serving's GC tuning (gen-0 threshold
    50,000) some 1,300 of them piled up between collections, and each collection then took 35–90 ms of CPU
    (70–560 ms of wall time on a busy machine) on the event loop: the one-lead p99. Same output (a copy, or a
    view with ``zero_copy``); CUDA arrays go to XGBoost's own function.
    """
    if "stream" in interface:
        return _XGB_FROM_ARRAY_INTERFACE[0](interface, zero_copy)
    holder = _ArrayInterface(interface)
    shape = holder.__array_interface__["shape"]
    if int(np.prod(shape)) == 0:
        return np.empty(shape=shape, dtype=np.dtype(interface["typestr"]))
    return np.array(holder, copy=not zero_copy)


_XGB_FROM_ARRAY_INTERFACE: list[Any] = []


def _reuse_xgboost_array_class() -> None:
    """Route XGBoost's prediction outputs through :func:`_from_array_interface` (once per process)."""
    if _XGB_FROM_ARRAY_INTERFACE:
        return
    import xgboost.core as core

    original = getattr(core, "from_array_interface", None)
    if original is None:  # another XGBoost layout: leave it alone
        _XGB_FROM_ARRAY_INTERFACE.append(None)
        return
    _XGB_FROM_ARRAY_INTERFACE.append(original)
    core.from_array_interface = _from_array_interface


def _plain_binary_xgb(est: Any) -> bool:
    """An XGBClassifier whose ``predict_proba(Z)[:, 1]`` is its booster's ``inplace_predict(Z)`` (binary:logistic
    tree booster, NaN as the missing value)."""
    return (
        hasattr(est, "get_booster")
        and getattr(est, "objective", None) == "binary:logistic"
        and getattr(est, "booster", None) in (None, "gbtree")
        and getattr(est, "n_classes_", 2) == 2
        and isinstance(getattr(est, "missing", None), float)
        and np.isnan(est.missing)
    )


def _iteration_range(est: Any) -> tuple[int, int]:
    """The trees XGBClassifier.predict uses: up to ``best_iteration`` after early stopping, else all."""
    try:
        return (0, est.best_iteration + 1)
    except AttributeError:
        return (0, 0)


#: compiled TreeSHAP tables per fitted XGBoost classifier (``None``: not supported, use ``pred_contribs``)
_TREESHAP: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()
_TREESHAP_LOCK = threading.Lock()


def _compiled_treeshap(est: Any) -> Any:
    """:func:`training.treeshap.compile_booster` of ``est``'s booster over the trees its probability uses,
    compiled once per loaded model; ``None`` when the module does not support the model."""
    with _TREESHAP_LOCK:
        if est in _TREESHAP:
            return _TREESHAP[est]
        try:
            from training.treeshap import compile_booster

            compiled = compile_booster(est.get_booster(), iteration_range=_iteration_range(est))
        except (ImportError, ValueError):
            compiled = None
        _TREESHAP[est] = compiled
        return compiled


def _threads_of(est: Any) -> int | None:
    """The estimator's ``n_jobs`` as a thread count (``None``: the library's default, all cores)."""
    n = getattr(est, "n_jobs", None)
    return int(n) if isinstance(n, int) and n > 0 else None


def _logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(p, 1e-7, 1 - 1e-7)
    return np.log(p / (1 - p))


class CRMScorer(ClassifierMixin, BaseEstimator):
    """Preprocessor + classifier + sigmoid/isotonic calibration + score/grade cut points + reasons."""

    def __init__(
        self,
        estimator: BaseEstimator | None = None,
        preprocessor: FeaturePreprocessor | None = None,
        builder: Any = None,
        calibration: str = "sigmoid",
        calibration_fraction: float = 0.2,
        grade_shares: Sequence[float] = (0.1, 0.2, 0.3),
        random_state: int = 0,
    ) -> None:
        self.estimator = estimator
        self.preprocessor = preprocessor
        self.builder = builder
        self.calibration = calibration
        self.calibration_fraction = calibration_fraction
        self.grade_shares = grade_shares
        self.random_state = random_state

    def fit(self, X: pd.DataFrame, y: Sequence[int]) -> CRMScorer:
        """Fit preprocessing on all rows, the classifier on most, the calibrator on a held-out share."""
        y = np.asarray(y).astype(int)
        self.classes_ = np.array([0, 1])
        self.preprocessor_ = clone(self.preprocessor or FeaturePreprocessor()).fit(X)
        self.feature_names_in_ = self.preprocessor_.feature_names_in_
        Z = self.preprocessor_.transform(X)
        if self.calibration and self.calibration_fraction > 0 and min(np.bincount(y, minlength=2)) >= 10:
            idx_fit, idx_cal = train_test_split(
                np.arange(len(y)), test_size=self.calibration_fraction, stratify=y, random_state=self.random_state
            )
        else:
            idx_fit, idx_cal = np.arange(len(y)), np.zeros(0, dtype=int)
        self.estimator_ = clone(self.estimator).fit(Z[idx_fit], y[idx_fit])
        self.calibrator_ = None
        if len(idx_cal):
            raw = self._raw_proba(Z[idx_cal])
            if self.calibration == "sigmoid":
                self.calibrator_ = LogisticRegression(C=1e6).fit(_logit(raw)[:, None], y[idx_cal])
            elif self.calibration == "isotonic":
                from sklearn.isotonic import IsotonicRegression

                self.calibrator_ = IsotonicRegression(out_of_bounds="clip", y_min=0, y_max=1).fit(raw, y[idx_cal])
            else:
                raise ValueError(f"calibration must be 'sigmoid', 'isotonic' or None, got {self.calibration!r}")
        from training.scores import fit_grade_thresholds, to_score

        self.grade_thresholds_ = fit_grade_thresholds(to_score(self.predict_proba(X)[:, 1]), self.grade_shares)
        return self

    # ----------------------------------------------------------- prediction
    def _raw_proba(self, Z: np.ndarray) -> np.ndarray:
        est = self.estimator_
        if _plain_binary_xgb(est):
            _reuse_xgboost_array_class()
            # what XGBClassifier.predict_proba(Z)[:, 1] computes (same call, same float32 values), without its
            # per-call Python overhead (~0.1 ms, a third of a one-row prediction)
            return est.get_booster().inplace_predict(Z, iteration_range=_iteration_range(est))
        return est.predict_proba(Z)[:, 1]

    def _calibrate(self, raw: np.ndarray) -> np.ndarray:
        if self.calibrator_ is None:
            return raw
        if self.calibration == "sigmoid":
            a, b = float(self.calibrator_.coef_[0, 0]), float(self.calibrator_.intercept_[0])
            return 1.0 / (1.0 + np.exp(-(a * _logit(raw) + b)))
        return np.clip(self.calibrator_.predict(raw), 0.0, 1.0)

    def predict_proba_matrix(self, Z: np.ndarray) -> np.ndarray:
        """Calibrated P(positive) from an already preprocessed matrix (serving's fast path)."""
        return self._calibrate(self._raw_proba(Z))

    def predict_proba_and_contributions(self, Z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(predict_proba_matrix(Z), contributions)`` with one XGBoost input (``DMatrix``) for both: the HTTP
        service's path. Its contributions are XGBoost's own ``pred_contribs``; :meth:`contributions_matrix`
        (batch scoring, ``explain``) computes the same TreeSHAP values with :mod:`training.treeshap`, equal within
        float32 rounding. The service keeps XGBoost's call for now: with the compiled kernel the one-minute soak at
        80% of peak failed in 3 of 6 runs here (0 of 5 without), but a clean-clone CI run later failed it once
        without the kernel too, so the cause is not established (docs/serving.md).

        The probability is XGBoost's own prediction, not one derived from the contributions: their float32 sum
        differs from the margin by up to ~1e-5 (~4e-7 in probability after calibration), and serving's
        probabilities must equal batch scoring's (``predict_proba_matrix``) exactly.
        """
        est = self.estimator_
        if not _plain_binary_xgb(est):
            return self.predict_proba_matrix(Z), self.contributions_matrix(Z)
        import xgboost as xgb

        _reuse_xgboost_array_class()
        booster = est.get_booster()
        dm = xgb.DMatrix(Z)  # one input for the probability and the contributions
        raw = booster.predict(dm, iteration_range=_iteration_range(est))
        return self._calibrate(raw), booster.predict(dm, pred_contribs=True, iteration_range=_iteration_range(est))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated class probabilities, shape (n, 2)."""
        p = self.predict_proba_matrix(self.preprocessor_.transform(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Class at probability 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    # --------------------------------------------------------------- reasons
    def contributions_matrix(self, Z: np.ndarray) -> np.ndarray:
        """Per-row contributions of each preprocessed feature to the uncalibrated log-odds, plus the bias
        as the last column; each row sums to the model's margin.

        XGBoost: exact path-dependent TreeSHAP, computed by :mod:`training.treeshap` (the numbers of
        ``pred_contribs=True`` within float32 rounding, ~150× cheaper) over the trees the probability uses;
        XGBoost's own ``pred_contribs`` for a booster that module does not support.
        """
        est = self.estimator_
        if hasattr(est, "get_booster"):
            compiled = _compiled_treeshap(est)
            if compiled is not None:
                from training.treeshap import contributions

                return contributions(compiled, Z, n_threads=_threads_of(est))
            import xgboost as xgb

            _reuse_xgboost_array_class()
            return est.get_booster().predict(
                xgb.DMatrix(Z), pred_contribs=True, iteration_range=_iteration_range(est)
            )
        if hasattr(est, "coef_"):
            coef = est.coef_[0]
            return np.column_stack([Z * coef, np.full(len(Z), est.intercept_[0])])
        raise NotImplementedError(f"{type(est).__name__} has no exact per-row contributions")

    def margin_matrix(self, Z: np.ndarray) -> np.ndarray:
        """The uncalibrated log-odds the contributions add up to."""
        est = self.estimator_
        if hasattr(est, "get_booster"):
            import xgboost as xgb

            return est.get_booster().predict(xgb.DMatrix(Z), output_margin=True)
        return _logit(self._raw_proba(Z))

    @property
    def supports_reasons(self) -> bool:
        """Whether exact per-row contributions are available for this classifier."""
        est = getattr(self, "estimator_", None)
        return hasattr(est, "get_booster") or hasattr(est, "coef_")

    def explain(self, X: pd.DataFrame, top: int = 3) -> list[dict[str, list[dict[str, Any]]]]:
        """Top positive and negative reasons per row, aggregated back to input features."""
        from training.scores import top_reasons

        Z = self.preprocessor_.transform(X)
        return top_reasons(self.contributions_matrix(Z), self.reason_groups(), X, top)

    def reason_groups(self) -> list[tuple[str, list[int]]]:
        """Input feature → indexes of its preprocessed columns (one-hot columns fold into their feature)."""
        names = list(self.preprocessor_.get_feature_names_out())
        groups: dict[str, list[int]] = {}
        for i, n in enumerate(names):
            groups.setdefault(n.split("=", 1)[0], []).append(i)
        return list(groups.items())

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Input feature names the scorer expects."""
        return self.feature_names_in_


def records_to_frame(records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """Precomputed feature records as a frame in ``columns`` order; absent features become missing."""
    return pd.DataFrame.from_records(list(records)).reindex(columns=list(columns))
