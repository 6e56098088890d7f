"""The fitted scoring pipeline logged to MLflow: preprocessing + model + probability calibration.

``CRMScorer`` is one scikit-learn estimator holding everything serving and batch scoring need:
the feature builder's parameters (for raw-profile leads), the preprocessor (learned categories,
imputation), the classifier, the calibrator, the score→grade cut points, and per-row reasons
(exact contributions in log-odds space). Serving and batch load this one object; nothing is
re-implemented elsewhere.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike
from sklearn.base import BaseEstimator, ClassifierMixin, TransformerMixin, clone
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split
from sklearn.utils.validation import _check_feature_names_in, check_array, check_is_fitted

from training.explain import ReasonFolder, contributions, iteration_range, reason_groups, supports_reasons

#: Classes a logged model may contain beyond scikit-learn's own; the only types skops will load.
TRUSTED_TYPES = [
    "training.model.CRMScorer",
    "training.model.FeaturePreprocessor",
    "features.build.CRMFeatureBuilder",
    "training.tabular.TablePreprocessor",
    "training.tabular.TableFeaturizer",
    "training.uplift.UpliftModel",
    "xgboost.sklearn.XGBClassifier",
    "xgboost.sklearn.XGBRegressor",
    "xgboost.core.Booster",
]


class FeaturePreprocessor(TransformerMixin, BaseEstimator):
    """The one encoder: a feature frame (or records, or column arrays) → the model's float matrix.

    Every path that scores (training, the HTTP service, batch, Spark, the profile page) encodes with this
    fitted object. One private core turns a categorical feature's values into codes of the categories seen in
    fit (:data:`UNKNOWN` for an unseen value, :data:`MISSING` for a missing one) and one handles the numeric
    block; :meth:`transform` (frame), :meth:`transform_records` (dicts) and :meth:`transform_arrays`
    (a numeric array and per-feature values or codes into distinct values) only adapt their input to it.

    Parameters
    ----------
    categorical : list of str, optional
        Categorical features; default: the columns of ``X`` in ``fit`` that are not numeric.
    encoding : {"ordinal", "onehot"}, default="ordinal"
        ``ordinal`` (trees): numerics as they are (non-finite → NaN), categoricals as the code of the category
        (unknown or missing → NaN). ``onehot`` (linear models): numerics median-imputed and standardised,
        categoricals one-hot over the kept categories (unknown or missing → all zeros).
    min_frequency : int, default=20
        A category is kept when it occurs at least this often in ``fit``.
    max_categories : int, default=60
        At most this many categories per feature (the most frequent).

    Attributes
    ----------
    feature_names_in_ : ndarray of str
        Input features, in order (the columns of ``X`` in ``fit``).
    n_features_in_ : int
        Number of input features.
    numeric_features_ : list of str
        Numeric features, in input order; they fill the first columns of the matrix.
    categorical_features_ : list of str
        Categorical features, in input order; their columns follow the numeric ones.
    categories_ : dict of str to list of str
        Kept categories per categorical feature, sorted; a category's code is its position.
    category_codes_ : dict of str to dict of str to int
        The same as lookup tables: category → code.
    medians_, means_, scales_ : ndarray of shape (n_numeric,)
        ``onehot`` only: imputation value, mean and standard deviation (1 where 0) of each numeric feature.
    feature_names_out_ : ndarray of str
        Matrix columns: numeric features, then one per categorical feature (``ordinal``) or one per kept
        category, named ``feature=category`` (``onehot``).

    See Also
    --------
    training.explain.ReasonFolder : folds ``feature=category`` columns back into their feature.
    sklearn.preprocessing.OrdinalEncoder, sklearn.preprocessing.OneHotEncoder : the shape followed here.

    Examples
    --------
    >>> import pandas as pd
    >>> X = pd.DataFrame({"age": [30.0, None, 50.0], "city": ["a", "b", "a"]})
    >>> enc = FeaturePreprocessor(min_frequency=1).fit(X)
    >>> enc.categories_
    {'city': ['a', 'b']}
    >>> enc.transform(pd.DataFrame({"age": [40.0], "city": ["b"]}))
    array([[40.,  1.]])
    >>> enc.transform_records([{"age": 40, "city": "zz"}])  # unseen category → NaN
    array([[40., nan]])
    >>> enc.transform_arrays([[40.0]], {"city": (np.array([0]), np.array(["b"], dtype=object))})
    array([[40.,  1.]])
    >>> enc.get_feature_names_out().tolist()
    ['age', 'city']
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

    # ---------------------------------------------------------------------------------------------- fit
    def fit(self, X: Any, y: Any = None) -> FeaturePreprocessor:
        """Learn column roles, kept categories and their codes, and (``onehot``) imputation and scaling.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_rows, n_features)
            Training features (an array's columns are named ``x0``, ``x1``, ...).
        y : ignored

        Returns
        -------
        self
        """
        if self.encoding not in ("ordinal", "onehot"):
            raise ValueError(f"encoding must be 'ordinal' or 'onehot', got {self.encoding!r}")
        X = _as_frame(X)
        cat = (
            list(self.categorical)
            if self.categorical is not None
            else [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
        )
        self.feature_names_in_ = np.asarray(list(X.columns), dtype=object)
        self.n_features_in_ = len(X.columns)
        self.categorical_features_ = [c for c in X.columns if c in cat]
        self.numeric_features_ = [c for c in X.columns if c not in cat]
        self.categories_: dict[str, list[str]] = {}
        for c in self.categorical_features_:
            counts = X[c].dropna().astype(str).value_counts()
            counts = counts[counts >= self.min_frequency].head(self.max_categories)
            self.categories_[c] = sorted(counts.index.tolist())
        self.category_codes_ = _lookup_tables(self.categories_)
        num = self._encode_numeric(_frame_numeric(X, self.numeric_features_), fitted=False)
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

    def __sklearn_tags__(self) -> Any:
        """Takes text (categorical features) and missing or non-finite numbers (encoded as missing)."""
        tags = super().__sklearn_tags__()
        tags.input_tags.string = True
        tags.input_tags.allow_nan = True
        return tags

    def __setstate__(self, state: dict[str, Any]) -> None:
        """Load a pickled or skops state; an encoder saved before ``category_codes_`` existed gets its tables here."""
        super().__setstate__(state)
        if "categories_" in self.__dict__ and "category_codes_" not in self.__dict__:
            self.category_codes_ = _lookup_tables(self.categories_)
        self.__dict__.pop("_lookup", None)

    def _out_names(self) -> list[str]:
        names = [str(c) for c in self.numeric_features_]
        for c in self.categorical_features_:
            if self.encoding == "onehot":
                names += [f"{c}={v}" for v in self.categories_[c]]
            else:
                names.append(str(c))
        return names

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Matrix column names (one per kept category for ``onehot``).

        Parameters
        ----------
        input_features : array-like of str, optional
            Must equal ``feature_names_in_`` when given.

        Returns
        -------
        ndarray of str
        """
        check_is_fitted(self, "feature_names_out_")
        _check_feature_names_in(self, input_features)
        return np.asarray(self.feature_names_out_, dtype=object)

    # ---------------------------------------------------------------------------------------- the core
    def _category_codes(self, feature: str, values: Any) -> np.ndarray:
        """Values of one categorical feature → int64 codes into ``categories_[feature]``; :data:`UNKNOWN` for a
        value not kept in fit, :data:`MISSING` for None/NaN/NA. A value that is not a string is matched by its
        text (``str(v)``). Vectorised for a long array (one hash pass over the values, then the few distinct
        ones through the lookup table); a list or tuple (a request's column) is looked up value by value, which
        is cheaper than making it an array first."""
        lookup = self.category_codes_[feature]
        n = len(values)
        if (
            n >= _VECTOR_MIN
            and isinstance(values, np.ndarray)
            and pd.api.types.infer_dtype(values, skipna=True) in ("string", "empty")
        ):
            codes, uniques = pd.factorize(values.astype(object, copy=False), use_na_sentinel=True)
            table = np.fromiter((lookup.get(u, UNKNOWN) for u in uniques), dtype=np.int64, count=len(uniques))
            return np.append(table, MISSING)[codes]  # the NA sentinel -1 picks the last entry
        get = lookup.get
        # a string is looked up as it is, None is missing; anything else (NaN, a number) through _code_of
        return np.array(
            [get(v, UNKNOWN) if type(v) is str else MISSING if v is None else _code_of(lookup, v) for v in values],
            dtype=np.int64,
        )

    def _encode_numeric(self, A: np.ndarray, fitted: bool = True) -> np.ndarray:
        """The numeric block (float64, the encoder's own copy or a view of the matrix being built, changed in
        place): non-finite → NaN, then for ``onehot`` (when ``fitted``) missing → median, centred and scaled."""
        bad = ~np.isfinite(A)
        if fitted and self.encoding == "onehot":  # non-finite → NaN → the median: one step
            np.copyto(A, np.broadcast_to(np.asarray(self.medians_, dtype="float64"), A.shape), where=bad)
            A -= self.means_
            A /= self.scales_
        else:
            A[bad] = np.nan
        return A

    def _assemble(self, num: Any, codes: Sequence[np.ndarray], order: str = "C") -> np.ndarray:
        """Numeric block (not modified) + categorical codes → the model matrix, in ``order`` (``"F"``: column by
        column, what a linear model's margin reads; the values do not depend on it).

        The numeric block is copied into the matrix once and encoded there (:meth:`_encode_numeric`, element by
        element: the same numbers as encoding a copy first); one-hot columns are set by one scatter."""
        n, k = num.shape
        onehot = self.encoding == "onehot"
        widths = [len(self.categories_[c]) if onehot else 1 for c in self.categorical_features_]
        width = k + sum(widths)
        Z = np.empty((n, width), dtype="float64", order="F" if order == "F" else "C")
        Z[:, :k] = num
        self._encode_numeric(Z[:, :k])
        if onehot:
            if k < width:
                Z[:, k:] = 0.0
            # (row, column) of every 1 as flat positions of Z's memory: one scatter for all features
            fortran = order == "F"
            flat = Z.ravel(order="F" if fortran else "C")  # a view: Z is contiguous in that order
            row_step, col_step = (1, n) if fortran else (width, 1)
            for idx, w in zip(codes, widths, strict=True):
                ok = np.flatnonzero(idx >= 0)
                flat[ok * row_step + (k + idx[ok]) * col_step] = 1.0
                k += w
        else:
            for idx in codes:
                Z[:, k] = np.where(idx >= 0, idx, np.nan)
                k += 1
        return Z

    def _encode(self, num: Any, codes: list[np.ndarray], return_unknown: bool, order: str = "C") -> Any:
        Z = self._assemble(num, codes, order)
        if not return_unknown:
            return Z
        unknown = np.column_stack(codes) == UNKNOWN if codes else np.zeros((len(Z), 0), dtype=bool)
        return Z, unknown

    # ------------------------------------------------------------------------------------------ adapters
    def transform(self, X: Any) -> np.ndarray:
        """Encode a feature frame; missing columns are an error naming them.

        Parameters
        ----------
        X : DataFrame or array-like of shape (n_rows, n_features)
            Numeric features are read as numbers (a value that is not one is missing), categorical ones as text.

        Returns
        -------
        ndarray of shape (n_rows, len(feature_names_out_))
        """
        check_is_fitted(self, "feature_names_out_")
        X = _as_frame(X, self)
        missing = [c for c in self.feature_names_in_ if c not in X.columns]
        if missing:
            raise KeyError(f"missing feature column(s): {', '.join(map(str, missing[:10]))}")
        num = _frame_numeric(X, self.numeric_features_)
        codes = [self._category_codes(c, X[c].to_numpy(dtype=object)) for c in self.categorical_features_]
        return self._encode(num, codes, return_unknown=False)

    def transform_records(self, rows: Sequence[Mapping[str, Any]], return_unknown: bool = False) -> Any:
        """Encode feature dicts (no DataFrame); an absent feature is missing.

        The same matrix as ``transform(pd.DataFrame(rows))``. With ``return_unknown``, also a boolean array
        (rows × ``categorical_features_``) marking values that are not a kept category (missing ones are not
        marked).
        """
        check_is_fitted(self, "feature_names_out_")
        lists = [[r.get(c) for c in self.numeric_features_] for r in rows]
        try:
            num = np.array(lists, dtype="float64", order="F").reshape(len(rows), len(self.numeric_features_))
        except (TypeError, ValueError):  # a value that is not a number: missing, as pd.to_numeric(errors="coerce")
            num = np.array([[_as_float(v) for v in r] for r in lists], dtype="float64", order="F")
            num = num.reshape(len(rows), len(self.numeric_features_))
        codes = [self._category_codes(c, [r.get(c) for r in rows]) for c in self.categorical_features_]
        return self._encode(num, codes, return_unknown)

    def transform_arrays(
        self, numeric: Any, categorical: Mapping[str, Any], return_unknown: bool = False, order: str = "C"
    ) -> Any:
        """Encode column arrays: the batch, Spark and HTTP-service adapter (no per-row Python for codes).

        Parameters
        ----------
        numeric : array-like of shape (n_rows, len(numeric_features_))
            The numeric features as numbers, in ``numeric_features_`` order (not modified).
        categorical : mapping of feature to values or (codes, values)
            For each of ``categorical_features_``: the row values (str, or None for missing), or a pair
            ``(codes, values)``: row ``i``'s value is ``values[codes[i]]`` and code -1 is missing (a text column
            dictionary-encoded once, so the lookup runs on its distinct values only).
        return_unknown : bool, default=False
            Also return the unknown-category mask (rows × ``categorical_features_``).
        order : {"C", "F"}, default="C"
            Memory order of the matrix (``"F"``: columns contiguous, for a linear model's column-by-column
            margin); the values are the same.

        Returns
        -------
        ndarray of shape (n_rows, len(feature_names_out_)), and the mask when ``return_unknown``
        """
        check_is_fitted(self, "feature_names_out_")
        num = np.asarray(numeric, dtype="float64")
        if num.ndim < 2:
            num = num.reshape(1, -1) if num.ndim == 1 else num.reshape(1, 1)
        if num.shape[1] != len(self.numeric_features_):
            if num.size == 0 and not self.numeric_features_:
                num = num.reshape(len(num), 0)
            else:
                raise ValueError(f"numeric: {num.shape[1]} columns, the encoder has {len(self.numeric_features_)}")
        codes = []
        for c in self.categorical_features_:
            given = categorical[c]
            if isinstance(given, tuple):
                rows, values = given
                rows = np.asarray(rows, dtype=np.int64)
                table = np.append(self._category_codes(c, values), MISSING)  # code -1 picks MISSING
                codes.append(table[rows])
            else:
                codes.append(self._category_codes(c, given))
        return self._encode(num, codes, return_unknown, order)


#: Category code of a value not kept in fit.
UNKNOWN = -1
#: Category code of a missing value.
MISSING = -2
#: From this many values of an array on, category codes are computed by hashing the values (below, and for lists:
#: one dict lookup each; the two cost the same at ~1,000 values of an object array, measured).
_VECTOR_MIN = 1024


def _lookup_tables(categories: Mapping[str, Sequence[str]]) -> dict[str, dict[str, int]]:
    return {c: {v: i for i, v in enumerate(cats)} for c, cats in categories.items()}


def _code_of(lookup: Mapping[str, int], v: Any) -> int:
    if type(v) is str:
        return lookup.get(v, UNKNOWN)
    if v is None or v is pd.NA or v is pd.NaT or (isinstance(v, (float, np.floating)) and v != v):
        return MISSING
    try:
        if pd.isna(v):
            return MISSING
    except (TypeError, ValueError):
        pass
    return lookup.get(str(v), UNKNOWN)


def _as_float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError):
        return np.nan


def _as_frame(X: Any, fitted: Any = None) -> pd.DataFrame:
    """A DataFrame as it is; an array (checked like scikit-learn's ``check_array``) with columns ``x0``, ``x1``..."""
    if isinstance(X, pd.DataFrame):
        return X
    A = check_array(X, dtype=None, ensure_all_finite=False)
    if fitted is not None and A.shape[1] != fitted.n_features_in_:
        raise ValueError(
            f"X has {A.shape[1]} features, but {type(fitted).__name__} is expecting {fitted.n_features_in_} features"
            " as input"
        )
    names = [f"x{i}" for i in range(A.shape[1])] if fitted is None else list(fitted.feature_names_in_)
    return pd.DataFrame(A, columns=names).infer_objects()


def _frame_numeric(X: pd.DataFrame, names: Sequence[str]) -> np.ndarray:
    """The numeric features of a frame as a column-major float64 block (a value that is not a number → NaN)."""
    A = np.empty((len(X), len(names)), dtype="float64", order="F")
    for j, c in enumerate(names):
        col = X[c]
        if pd.api.types.is_float_dtype(col.dtype) and not isinstance(col.dtype, pd.api.extensions.ExtensionDtype):
            A[:, j] = col.to_numpy()
        else:
            A[:, j] = pd.to_numeric(col, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    return A


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


def _binary_logistic(est: Any) -> bool:
    """A fitted binary ``LogisticRegression`` (its ``predict_proba(Z)[:, 1]`` is ``expit(Z · coef + intercept)``)."""
    return isinstance(est, LogisticRegression) and np.ndim(est.coef_) == 2 and len(est.coef_) == 1


def _linear_margin(est: Any, Z: np.ndarray) -> np.ndarray:
    """``Z · coef + intercept`` summed column by column: ``LogisticRegression.decision_function``'s numbers up to
    the last bit, but a row's value never depends on how many rows are scored with it (a BLAS matrix-vector
    product's does: one row alone and the same row among forty can differ in the last bit)."""
    coef = est.coef_[0]
    out = np.zeros(len(Z), dtype=np.result_type(Z, coef))
    for j in range(Z.shape[1]):
        out += Z[:, j] * coef[j]
    out += est.intercept_[0]
    return out


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

    def fit(self, X: pd.DataFrame, y: ArrayLike) -> CRMScorer:
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
            # what XGBClassifier.predict_proba(Z)[:, 1] computes (same call, same float32 values), without its
            # per-call Python overhead (~0.1 ms, a third of a one-row prediction)
            return est.get_booster().inplace_predict(Z, iteration_range=iteration_range(est))
        if _binary_logistic(est):
            from scipy.special import expit

            return expit(_linear_margin(est, Z))
        return est.predict_proba(Z)[:, 1]

    def _calibrate(self, raw: np.ndarray) -> np.ndarray:
        if self.calibrator_ is None:
            return raw
        if self.calibration == "sigmoid":
            a, b = float(self.calibrator_.coef_[0, 0]), float(self.calibrator_.intercept_[0])
            return 1.0 / (1.0 + np.exp(-(a * _logit(raw) + b)))
        return np.clip(self.calibrator_.predict(raw), 0.0, 1.0)

    def predict_proba_matrix(self, Z: np.ndarray) -> np.ndarray:
        """Calibrated P(positive) of an encoded matrix (``preprocessor_``'s output): the one probability every
        scoring path returns (the model's own prediction, never the sum of the contributions)."""
        return self._calibrate(self._raw_proba(Z))

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        """Calibrated class probabilities, shape (n, 2)."""
        p = self.predict_proba_matrix(self.preprocessor_.transform(X))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Class at probability 0.5."""
        return (self.predict_proba(X)[:, 1] >= 0.5).astype(int)

    # --------------------------------------------------------------- reasons
    def contributions_matrix(self, Z: np.ndarray, method: str = "exact") -> np.ndarray:
        """Per-row contributions of each encoded column to the uncalibrated log-odds, bias last
        (:func:`training.explain.contributions`: exact TreeSHAP for XGBoost, ``coef · x`` for linear models)."""
        return contributions(self.estimator_, Z, method=method)

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
        return supports_reasons(getattr(self, "estimator_", None))

    def reason_groups(self) -> list[tuple[str, list[int]]]:
        """Input feature → indexes of its encoded columns (one-hot columns fold into their feature)."""
        return reason_groups(self.preprocessor_.get_feature_names_out())

    def reason_folder(self) -> ReasonFolder:
        """The :class:`training.explain.ReasonFolder` of this model's encoded columns."""
        return ReasonFolder(self.reason_groups(), len(self.preprocessor_.get_feature_names_out()))

    def explain(self, X: pd.DataFrame, top: int = 3) -> list[dict[str, list[dict[str, Any]]]]:
        """Top positive and negative reasons per row, folded back to input features
        (:meth:`training.explain.ReasonFolder.reasons`)."""
        Z = self.preprocessor_.transform(X)
        rows = X.to_dict("records") if len(X.columns) else [{} for _ in range(len(X))]
        return self.reason_folder().reasons(self.contributions_matrix(Z), rows, top)

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Input feature names the scorer expects."""
        return self.feature_names_in_


def records_to_frame(records: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> pd.DataFrame:
    """Precomputed feature records as a frame in ``columns`` order; absent features become missing."""
    return pd.DataFrame.from_records(list(records)).reindex(columns=list(columns))
