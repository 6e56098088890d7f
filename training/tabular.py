"""Flat-table training (`crmscore train table`): any table a team already has, one binary target.

The table can be a CSV / Excel / Parquet file or a SQL source. Column types are inferred by
:class:`TableFeaturizer` (numbers — also numbers stored as text with blanks —, yes/no flags, dates
→ parts, categories; id-like text, PII, the id and excluded columns dropped and reported). The
featurizer is the first step of each candidate's preprocessor, so the ONE logged MLflow model
(a :class:`~training.model.CRMScorer`) takes the raw table columns at scoring time.

Split: stratified random 60/20/20 (train / validation / test), or out-of-time with a time column
(latest 20% of rows by time = test, the 20% before = validation). A leak guard reports columns that
alone separate the classes on the training part (single-column ROC-AUC ≥ 0.95). The best candidate
is registered as a challenger and gated to champion like the CRM jobs.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin

from features.messages import M_
from training.config import TrainConfig
from training.train import Split, TrainResult

#: column kinds that become features; any other kind is a reason the column was dropped
FEATURE_KINDS = ("numeric", "bool", "date", "categorical")
DROP_REASONS = {
    "id": "the id column",
    "excluded": "excluded by the user",
    "pii": "personal data (PII) is never a feature",
    "id_like": "id-like text: almost every value is distinct",
    "empty": "no values",
    "constant": "a single value",
    "leak": "suspected target leak (--drop-leaks)",
}
DATE_PARTS = ("year", "month", "dayofweek", "age_days")
SEASONAL_PARTS = ("month", "dayofweek")
LEAK_AUC = 0.95

_EPOCH = np.datetime64("1970-01-01T00:00:00", "ns")
_DAY_NS = 86_400 * 10**9
_INFER_SAMPLE = 20_000

# PII by column name: tokens that always mean PII, "name" only with a person word, phone words only
# as the last token or before number/no (so "PhoneService" stays a feature), and Chinese words.
_PII_TOKENS = {
    "email", "address", "addr", "street", "surname", "firstname", "lastname", "fullname", "username", "cellphone",
    "telephone", "ssn", "passport", "idcard", "phonenumber", "mobilephone",
}  # fmt: skip
_PERSON_WORDS = {
    "first", "last", "full", "given", "family", "middle", "sur", "customer", "contact", "client", "user", "person",
    "nick", "real", "member", "lead", "buyer", "recipient", "holder",
}  # fmt: skip
_PHONE_LAST = {"phone", "mobile", "tel", "telephone", "cellphone", "fax"}
_PHONE_WORDS = _PHONE_LAST | {"cell", "wechat", "whatsapp"}
_NUMBER_WORDS = {"number", "no", "num", "nr", "nbr", "id"}
_FLAG_WORDS = {"is", "has", "uses", "via", "by", "n", "count"}
_PII_ZH = ("姓名", "名字", "电话", "手机", "邮箱", "地址", "身份证", "联系方式", "微信号")
_EMAIL_RE = r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$"
_ID_LAST_TOKENS = {"id", "no", "nr", "key", "uuid", "guid", "code", "number", "编号"}


class TableError(ValueError):
    """The table or an option cannot be used; the message names the column or option and why."""


# ------------------------------------------------------------------------------------------ columns


def _tokens(column: str) -> list[str]:
    s = re.sub(r"([a-z0-9])([A-Z])", r"\1_\2", str(column))
    return [t for t in re.split(r"[^0-9a-zA-Z]+", s.lower()) if t]


def is_pii_column(column: str) -> bool:
    """True when a column's name says it holds personal data (name, phone, e-mail, address and variants)."""
    from features.contract import PII_COLUMNS

    raw = str(column)
    if raw.strip().lower() in PII_COLUMNS or any(w in raw for w in _PII_ZH):
        return True
    tokens = _tokens(raw)
    if not tokens:
        return False
    joined = "".join(tokens)
    pairs = {a + b for a, b in zip(tokens, tokens[1:], strict=False)}
    if joined in {"name", "email", "mail", "phone", "tel", "mobile", "address", "cellphone", "emailaddress"}:
        return True
    if _PII_TOKENS & (set(tokens) | pairs):
        return True
    if "name" in tokens and (_PERSON_WORDS & set(tokens) or tokens == ["name"]):
        return True
    if tokens[-1] in _PHONE_LAST and tokens[0] not in _FLAG_WORDS:
        return True
    return any(a in _PHONE_WORDS and b in _NUMBER_WORDS for a, b in zip(tokens, tokens[1:], strict=False))


def _parse_unique(col: pd.Series, parser: Any) -> pd.Series:
    """``parser(col)`` computed once per distinct value and spread back to the rows (fast for repeated values)."""
    codes, uniques = pd.factorize(col, use_na_sentinel=True)
    if 2 * len(uniques) > len(col):
        return parser(col)
    parsed = parser(pd.Series(uniques, dtype=uniques.dtype))
    return pd.Series(parsed.array.take(codes, allow_fill=True), index=col.index, name=col.name)


def infer_column_kind(
    series: pd.Series, parse_share: float = 0.95, id_share: float = 0.5, id_min_unique: int = 50
) -> str:
    """The kind of one raw column: numeric, bool, date, categorical, or (dropped) empty, constant, id_like, pii.

    Typed columns keep their type. Text is tried as yes/no flags, then numbers (currency signs,
    thousands separators and blanks allowed), then dates; a kind is taken when at least
    ``parse_share`` of the non-blank values parse. Other text is categorical unless almost every
    value is distinct (``id_share`` of the rows and at least ``id_min_unique`` values): id-like.
    A column with one value and blanks is categorical (present / missing).
    """
    from features.readers import normalize_text, parse_amounts, parse_bools, parse_dates

    s = series
    if pd.api.types.is_bool_dtype(s.dtype):
        kind = "bool"
    elif pd.api.types.is_datetime64_any_dtype(s.dtype):
        kind = "date"
    elif pd.api.types.is_numeric_dtype(s.dtype):
        kind = "numeric"
    else:
        kind = ""
    present = _parse_unique(s, normalize_text).dropna()
    if present.empty:
        return "empty"
    counts = present.value_counts().iloc[:_INFER_SAMPLE]
    n_unique = present.nunique()
    if n_unique <= 1:
        # one value and blanks: whether the value is there is the information
        return "constant" if len(present) == len(s) else "categorical"
    if kind:
        return kind
    values = pd.Series(counts.index.astype(object), dtype="string")
    weight = counts.to_numpy() / counts.sum()

    def share(parsed: pd.Series) -> float:
        return float(weight[parsed.notna().to_numpy()].sum())

    if share(values.where(values.str.match(_EMAIL_RE, na=False))) >= 0.5:
        return "pii"
    if n_unique <= 2 and share(parse_bools(values)) >= parse_share:
        return "bool"
    if share(parse_amounts(values)) >= parse_share:
        return "numeric"
    if share(parse_dates(values)) >= parse_share:
        return "date"
    if n_unique >= id_min_unique and n_unique >= id_share * len(present):
        return "id_like"
    return "categorical"


def _numeric_id_like(column: str, series: pd.Series, kind: str) -> bool:
    """An integer column named like an id (``order_id``, ``AccountNo``) whose values are nearly all distinct."""
    if kind != "numeric" or not _tokens(column) or _tokens(column)[-1] not in _ID_LAST_TOKENS:
        return False
    from features.readers import parse_amounts

    v = parse_amounts(series).dropna()
    return len(v) >= 20 and bool((v.round() == v).all()) and v.nunique() >= 0.95 * len(v)


class TableFeaturizer(TransformerMixin, BaseEstimator):
    """Raw table columns → a typed feature frame (numeric floats, categorical text).

    ``fit`` learns each column's kind (``column_kinds_``: numeric, bool, date, categorical, or the
    reason it is dropped: id, excluded, pii, id_like, empty, constant, leak) unless ``column_kinds``
    fixes them, the reference (latest) date of each date column, and how many values of each typed
    column could not be read. ``transform`` parses numbers (``"1,234.50"``, ``" "`` → missing), flags
    (yes/no, true/false, 1/0 → 1.0/0.0), dates (→ year, month, day of week, days before the
    reference date, and hour when times are present) and trims categories; unknown categories and
    unreadable values become missing. Columns not used are ignored at transform time.

    ``log_numeric`` (for linear models) adds ``log1p`` of each non-negative numeric column with more
    than 10 distinct values, named ``<col>=log1p`` so a model's reasons fold it into its column.
    Date columns in ``seasonal_only`` (the out-of-time split column) give only month and day of week
    (and hour): their year and age lie outside the training range for every row scored later.
    """

    def __init__(
        self,
        id_column: str | None = None,
        exclude: Sequence[str] = (),
        column_kinds: dict[str, str] | None = None,
        parse_share: float = 0.95,
        id_share: float = 0.5,
        id_min_unique: int = 50,
        log_numeric: bool = False,
        seasonal_only: Sequence[str] = (),
    ) -> None:
        self.id_column = id_column
        self.exclude = exclude
        self.column_kinds = column_kinds
        self.parse_share = parse_share
        self.id_share = id_share
        self.id_min_unique = id_min_unique
        self.log_numeric = log_numeric
        self.seasonal_only = seasonal_only

    def _infer(self, X: pd.DataFrame) -> dict[str, str]:
        kinds: dict[str, str] = {}
        excluded = set(self.exclude or ())
        for c in X.columns:
            if c == self.id_column:
                kinds[c] = "id"
            elif c in excluded:
                kinds[c] = "excluded"
            elif is_pii_column(c):
                kinds[c] = "pii"
            else:
                k = infer_column_kind(X[c], self.parse_share, self.id_share, self.id_min_unique)
                kinds[c] = "id_like" if _numeric_id_like(c, X[c], k) else k
        return kinds

    def fit(self, X: pd.DataFrame, y: Any = None) -> TableFeaturizer:
        """Learn column kinds, date references and unreadable-value counts from a raw table."""
        from features.readers import normalize_text, parse_amounts, parse_bools, parse_dates

        if not isinstance(X, pd.DataFrame):
            raise TypeError(M_("TableFeaturizer needs a pandas DataFrame with named columns"))
        self.feature_names_in_ = np.asarray([str(c) for c in X.columns], dtype=object)
        if self.column_kinds is not None:
            unknown = [c for c in self.column_kinds if c not in X.columns]
            if unknown:
                raise KeyError(M_("column(s) not in the table: {value}", value=", ".join(unknown[:10])))
            kinds = {c: str(self.column_kinds.get(c, "excluded")) for c in X.columns}
        else:
            kinds = self._infer(X)
        self.column_kinds_ = kinds
        self.input_columns_ = [c for c, k in kinds.items() if k in FEATURE_KINDS]
        self.reference_dates_: dict[str, float] = {}
        self.date_has_time_: dict[str, bool] = {}
        self.unparsed_: dict[str, int] = {}
        self.log_columns_: list[str] = []
        self.date_parts_: dict[str, list[str]] = {}
        parsers = {"numeric": parse_amounts, "bool": parse_bools}
        for c in self.input_columns_:
            k = kinds[c]
            if k == "categorical":
                continue
            blank = _parse_unique(X[c], normalize_text).isna()
            if k == "date":
                d = _parse_unique(X[c], parse_dates)
                days = _days(d)
                ok = np.isfinite(days)
                self.reference_dates_[c] = float(days[ok].max()) if ok.any() else 0.0
                self.date_has_time_[c] = bool(ok.any() and (days[ok] % 1 != 0).any())
                bad = int((~ok & ~blank.to_numpy()).sum())
                parts = SEASONAL_PARTS if c in set(self.seasonal_only or ()) else DATE_PARTS
                self.date_parts_[c] = list(parts) + (["hour"] if self.date_has_time_[c] else [])
            else:
                values = _parse_unique(X[c], parsers[k])
                bad = int((values.isna() & ~blank).sum())
                if k == "numeric" and self.log_numeric and values.min() >= 0 and values.nunique() > 10:
                    self.log_columns_.append(c)
            if bad:
                self.unparsed_[c] = bad
        names: list[str] = []
        self.categorical_features_: list[str] = []
        for c in self.input_columns_:
            if kinds[c] == "date":
                names += [f"{c}_{p}" for p in self.date_parts_[c]]
            else:
                names.append(c)
                if c in self.log_columns_:
                    names.append(f"{c}=log1p")
                if kinds[c] == "categorical":
                    self.categorical_features_.append(c)
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(M_(
                "feature name(s) {value} would repeat: rename the raw column(s)",
                value=", ".join(dupes),
            ))
        self.feature_names_out_ = np.asarray(names, dtype=object)
        return self

    @property
    def dropped_(self) -> dict[str, str]:
        """Dropped column → reason (read-only view of ``column_kinds_``)."""
        return {c: DROP_REASONS.get(k, k) for c, k in self.column_kinds_.items() if k not in FEATURE_KINDS}

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """Names of the feature frame's columns (date columns expand to ``<col>_<part>``)."""
        return self.feature_names_out_

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """Raw table → feature frame; the used columns must be present (extra columns are ignored)."""
        from features.readers import normalize_text, parse_amounts, parse_bools, parse_dates

        missing = [c for c in self.input_columns_ if c not in X.columns]
        if missing:
            raise KeyError(M_("missing table column(s): {value}", value=", ".join(missing[:10])))
        out: dict[str, Any] = {}
        for c in self.input_columns_:
            k = self.column_kinds_[c]
            col = X[c]
            if k == "numeric":
                out[c] = _parse_unique(col, parse_amounts).to_numpy(dtype="float64")
                if c in self.log_columns_:
                    out[f"{c}=log1p"] = np.log1p(np.clip(out[c], 0.0, None))
            elif k == "bool":
                out[c] = _parse_unique(col, parse_bools).astype("Float64").to_numpy(dtype="float64", na_value=np.nan)
            elif k == "categorical":
                t = _parse_unique(col, normalize_text)
                out[c] = t.astype(object).where(t.notna(), None).to_numpy()
            else:
                d = _parse_unique(col, parse_dates)
                for part in self.date_parts_[c]:
                    if part == "age_days":
                        out[f"{c}_{part}"] = self.reference_dates_[c] - _days(d)
                    else:
                        out[f"{c}_{part}"] = getattr(d.dt, part).to_numpy(dtype="float64", na_value=np.nan)
        return pd.DataFrame(out, index=X.index, columns=list(self.feature_names_out_))


class TablePreprocessor(TransformerMixin, BaseEstimator):
    """Raw table → model matrix: a :class:`TableFeaturizer`, then a ``FeaturePreprocessor`` (the encoder).

    It stands where a ``CRMScorer`` keeps its preprocessor, so the scorer takes raw table columns.
    Learned: ``featurizer_``, ``encoder_``, ``feature_names_in_`` (the raw columns used), and how
    batch scoring should read each raw column: ``numeric_features_`` as numbers,
    ``categorical_features_`` as text (categories, yes/no flags and dates, parsed by the featurizer).
    """

    def __init__(self, featurizer: TableFeaturizer | None = None, encoder: Any = None) -> None:
        self.featurizer = featurizer
        self.encoder = encoder

    def fit(self, X: pd.DataFrame, y: Any = None) -> TablePreprocessor:
        """Fit the featurizer on the raw table, then the encoder on its feature frame."""
        from sklearn.base import clone

        from training.model import FeaturePreprocessor

        self.featurizer_ = clone(self.featurizer if self.featurizer is not None else TableFeaturizer()).fit(X)
        F = self.featurizer_.transform(X)
        enc = self.encoder if self.encoder is not None else FeaturePreprocessor()
        self.encoder_ = clone(enc).fit(F)
        used = list(self.featurizer_.input_columns_)
        self.feature_names_in_ = np.asarray(used, dtype=object)
        self.numeric_features_ = [c for c in used if self.featurizer_.column_kinds_[c] == "numeric"]
        self.categorical_features_ = [c for c in used if c not in self.numeric_features_]
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        """Raw rows → float matrix (missing raw columns are an error naming them)."""
        return self.encoder_.transform(self.featurizer_.transform(X))

    def get_feature_names_out(self, input_features: Any = None) -> np.ndarray:
        """The matrix's column names (``col=category`` for one-hot, ``col_part`` for dates)."""
        return self.encoder_.get_feature_names_out()


def _days(d: pd.Series) -> np.ndarray:
    """Datetimes → float days since 1970-01-01 (NaT → NaN)."""
    v = d.to_numpy(dtype="datetime64[ns]")
    out = (v - _EPOCH).astype("int64") / _DAY_NS
    return np.where(np.isnat(v), np.nan, out)


# ------------------------------------------------------------------------------------------- target


_TRUE = {"yes", "y", "true", "t", "1", "1.0", "是"}
_FALSE = {"no", "n", "false", "f", "0", "0.0", "否"}


def encode_target(series: pd.Series, positive: str | None = None, column: str = "target") -> np.ndarray:
    """A binary target as 1.0 / 0.0 / NaN (blank).

    With ``positive`` the rows equal to it (compared as trimmed text, case-insensitively) are 1 and
    every other non-blank value 0. Without it the column must hold exactly two values read as
    yes/no, true/false or 1/0 (any case).
    """
    from features.readers import normalize_text

    text = normalize_text(series).str.lower()
    present = text.dropna()
    values = sorted(present.unique().tolist())
    if positive is not None:
        pos = str(positive).strip().lower()
        if pos not in values:
            raise TableError(
                M_(
                    "target column {column!r}: --positive {positive!r} does not occur (values: {value})",
                    column=column, positive=positive, value=", ".join(values[:10]),
                )
            )
        y = (text == pos).astype("float64")
    else:
        if len(values) > 2 or not (set(values) <= _TRUE | _FALSE):
            raise TableError(
                M_(
                    "target column {column!r} is not a yes/no column (values: {value}{value2}); give --positive VALUE",
                    column=column, value=", ".join(values[:10]), value2=", …" if len(values) > 10 else "",
                )
            )
        y = text.isin(_TRUE).astype("float64")
    y = y.to_numpy(dtype="float64")
    y[text.isna().to_numpy()] = np.nan
    ok = y[np.isfinite(y)]
    if len(ok) == 0 or ok.min() == ok.max():
        raise TableError(M_("target column {column!r} has a single class: nothing to learn", column=column))
    return y


# -------------------------------------------------------------------------------------------- split


def split_table(
    X: pd.DataFrame,
    y: np.ndarray,
    times: pd.Series | None = None,
    seed: int = 42,
    test_share: float = 0.2,
    val_share: float = 0.2,
) -> Split:
    """Train / validation / test (60/20/20 by default).

    Without ``times``: stratified random. With ``times``: out-of-time — rows from the latest
    ``test_share`` of times are the test set, the ``val_share`` before them validation; rows with
    an equal time always fall on the same side and rows without a time go to training.
    """
    from sklearn.model_selection import train_test_split

    n = len(y)
    y = np.asarray(y).astype(int)
    pos = np.arange(n)
    if times is None:
        if np.bincount(y, minlength=2).min() < 5:
            raise TableError(
                M_(
                    "the target has {value} row(s) of one class: too few to split",
                    value=np.bincount(y, minlength=2).min(),
                )
            )
        rest, te = train_test_split(pos, test_size=test_share, stratify=y, random_state=seed)
        tr, va = train_test_split(rest, test_size=val_share / (1 - test_share), stratify=y[rest], random_state=seed)
        desc: dict[str, Any] = {"method": "stratified_random", "seed": seed}
    else:
        t = pd.to_datetime(times).to_numpy(dtype="datetime64[ns]")
        known = ~np.isnat(t)
        ordered = np.sort(t[known])
        if len(ordered) < 10:
            raise TableError(M_("the time column has fewer than 10 readable dates: cannot split out-of-time"))
        t_test = ordered[int(np.floor(len(ordered) * (1 - test_share)))]
        t_val = ordered[int(np.floor(len(ordered) * (1 - test_share - val_share)))]
        te = pos[known & (t >= t_test)]
        va = pos[known & (t >= t_val) & (t < t_test)]
        tr = pos[~np.isin(pos, np.concatenate([te, va]))]
        desc = {
            "method": "out_of_time",
            "validation_from": str(pd.Timestamp(t_val)),
            "test_from": str(pd.Timestamp(t_test)),
            "rows_without_time": int((~known).sum()),
        }
    tr, va, te = np.sort(tr), np.sort(va), np.sort(te)
    for name, idx in (("train", tr), ("validation", va), ("test", te)):
        if len(idx) == 0 or y[idx].min() == y[idx].max():
            raise TableError(M_("the {name} part has only one class (or no rows): not enough data to train", name=name))
    return Split(X.iloc[tr], y[tr], X.iloc[va], y[va], X.iloc[te], y[te], description=desc)


# --------------------------------------------------------------------------------------- leak guard


def _auc(y: np.ndarray, v: np.ndarray) -> float:
    from sklearn.metrics import roc_auc_score

    a = float(roc_auc_score(y, v))
    return max(a, 1.0 - a)


def _oof_target_rate(y: np.ndarray, codes: np.ndarray, folds: int = 5, smoothing: float = 20.0) -> np.ndarray:
    """Out-of-fold smoothed target rate of each row's category (no row sees its own label)."""
    rng = np.random.default_rng(0)
    fold = rng.integers(0, folds, len(y))
    prior = y.mean()
    out = np.empty(len(y))
    for f in range(folds):
        train, test = fold != f, fold == f
        n = np.bincount(codes[train], minlength=codes.max() + 1)
        s = np.bincount(codes[train], weights=y[train], minlength=codes.max() + 1)
        rate = (s + smoothing * prior) / (n + smoothing)
        out[test] = rate[codes[test]]
    return out


def single_column_auc(featurizer: TableFeaturizer, X: pd.DataFrame, y: np.ndarray) -> dict[str, float]:
    """ROC-AUC of each used raw column alone (max(AUC, 1 − AUC)), on a fitted featurizer's output.

    Numeric parts are ranked as they are (missing as the lowest value); categories by their
    out-of-fold target rate (missing as its own category); a date column takes its best part.
    """
    y = np.asarray(y).astype(float)
    F = featurizer.transform(X)
    names = list(featurizer.get_feature_names_out())
    out: dict[str, float] = {}
    for c in featurizer.input_columns_:
        kind = featurizer.column_kinds_[c]
        cols = [n for n in names if n == c or (kind == "date" and n.startswith(f"{c}_"))]
        best = 0.5
        for n in cols:
            if kind == "categorical":
                codes = pd.factorize(pd.Series(F[n]).fillna("\x00missing"))[0]
                v = _oof_target_rate(y, codes)
            else:
                v = F[n].to_numpy(dtype="float64")
                if np.isnan(v).all():
                    continue
                v = np.where(np.isnan(v), np.nanmin(v) - 1.0, v)
            best = max(best, _auc(y, v))
        out[c] = round(best, 4)
    return out


# ------------------------------------------------------------------------------------------ reading


def read_table(
    source: str | Path, sql_table: str | None = None, query: str | None = None, sheet: str | None = None
) -> tuple[pd.DataFrame, list[str]]:
    """Read a CSV / .xlsx / Parquet file or a SQLAlchemy URL (with ``sql_table`` or ``query``).

    Returns the frame and warnings about rows the reader had to repair.
    """
    from features.readers import read_table_source

    raw = read_table_source(str(source), table=sql_table, query=query, sheet=sheet)
    warnings = [
        f"{raw.source}: row {raw.first_row_number + i}: {why} (extra fields dropped)"
        for i, why in list(raw.bad_rows.items())[:20]
    ]
    if len(raw.bad_rows) > 20:
        warnings.append(f"{raw.source}: {len(raw.bad_rows) - 20} more rows repaired")
    frame = raw.frame
    if frame.columns.duplicated().any():
        dup = sorted(set(frame.columns[frame.columns.duplicated()]))
        raise TableError(M_(
            "{source}: repeated column name(s) {value}",
            source=raw.source, value=", ".join(map(str, dup)),
        ))
    # blank lines kept by the CSV reader are not rows
    blank = frame.astype("string").apply(lambda s: s.str.strip().fillna("") == "").all(axis=1)
    return frame[~blank].reset_index(drop=True), warnings


# ----------------------------------------------------------------------------------------- training


@dataclass
class TableReport:
    """What the table job found before training: column kinds, drops, leak suspects, rows used."""

    column_kinds: dict[str, str]
    dropped: dict[str, str]
    unparsed: dict[str, int]
    leak_auc: dict[str, float]
    leak_suspects: list[str]
    rows_used: int
    rows_without_target: int
    positive_rate: float
    split: dict[str, Any] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


@dataclass
class TableTrainResult:
    """The training result and the table report."""

    train: TrainResult
    report: TableReport


def make_table_candidates(
    config: TrainConfig, column_kinds: dict[str, str], seasonal_only: Sequence[str] = ()
) -> list[tuple[str, Any]]:
    """`training.train.make_candidates` with each preprocessor wrapped in a :class:`TablePreprocessor`
    whose featurizer has the fixed ``column_kinds`` (plus ``log1p`` columns for the one-hot, linear ones)."""
    from training.train import make_candidates

    categorical = [c for c, k in column_kinds.items() if k == "categorical"]
    out = []
    for name, cand in make_candidates(config, categorical):
        assert cand.preprocessor is not None  # make_candidates gives every candidate a preprocessor
        linear = cand.preprocessor.encoding == "onehot"
        featurizer = TableFeaturizer(
            column_kinds=dict(column_kinds), log_numeric=linear, seasonal_only=tuple(seasonal_only)
        )
        out.append((name, cand.set_params(preprocessor=TablePreprocessor(featurizer, cand.preprocessor))))
    return out


def train_table(
    frame: pd.DataFrame,
    target: str,
    config: TrainConfig,
    id_column: str | None = None,
    exclude: Sequence[str] = (),
    time_column: str | None = None,
    positive: str | None = None,
    drop_leaks: bool = False,
    source: str = "",
    warnings: Sequence[str] = (),
) -> TableTrainResult:
    """Infer column kinds, split, guard against leaks, train candidates, log one raw-column model, register, gate."""
    from features.readers import parse_dates

    warn = list(warnings)
    cols = [str(c) for c in frame.columns]
    frame = frame.set_axis(cols, axis=1)
    for opt, names in (
        ("--target", [target]),
        ("--id", [id_column]),
        ("--time-col", [time_column]),
        ("--exclude", list(exclude)),
    ):
        absent = [n for n in names if n is not None and n not in cols]
        if absent:
            raise TableError(M_(
                "{opt}: column(s) {value} not in the table (columns: {value2})",
                opt=opt, value=", ".join(absent), value2=", ".join(cols[:30]),
            ))
    y_all = encode_target(frame[target], positive, target)
    has_y = np.isfinite(y_all)
    if not has_y.all():
        warn.append(f"{int((~has_y).sum())} row(s) with a blank target {target!r} left out")
    frame = frame.loc[has_y].reset_index(drop=True)
    y = y_all[has_y].astype(int)
    X = frame.drop(columns=[target])
    times = None
    if time_column is not None:
        times = parse_dates(frame[time_column])
        if times.notna().mean() < 0.95:
            raise TableError(M_(
                "--time-col {time_column!r}: fewer than 95% of its values are readable dates",
                time_column=time_column,
            ))
    split = split_table(X, y, times, seed=config.seed)

    probe = TableFeaturizer(id_column=id_column, exclude=tuple(exclude)).fit(split.X_train)
    kinds = dict(probe.column_kinds_)
    pii = [c for c, k in kinds.items() if k == "pii"]
    if pii:
        warn.append(f"PII column(s) dropped, never features: {', '.join(pii)}")
    leak_auc = single_column_auc(probe, split.X_train, split.y_train) if probe.input_columns_ else {}
    suspects = sorted((c for c, a in leak_auc.items() if a >= LEAK_AUC), key=lambda c: -leak_auc[c])
    for c in suspects:
        warn.append(
            f"possible target leak: {c!r} alone reaches ROC-AUC {leak_auc[c]:.3f} on the training part"
            + (" — dropped" if drop_leaks else " (use --drop-leaks to drop it)")
        )
        if drop_leaks:
            kinds[c] = "leak"
    for c, n in probe.unparsed_.items():
        warn.append(f"column {c!r} ({kinds[c]}): {n} training value(s) not readable, treated as missing")
    used = {c: k for c, k in kinds.items() if k in FEATURE_KINDS}
    if not used:
        raise TableError(M_("no usable feature column left after dropping id, excluded, PII and id-like columns"))
    keep = list(used)
    split = Split(
        split.X_train[keep],
        split.y_train,
        split.X_val[keep],
        split.y_val,
        split.X_test[keep],
        split.y_test,
        description=split.description,
    )
    report = TableReport(
        column_kinds=kinds,
        dropped={c: DROP_REASONS[k] if k in DROP_REASONS else k for c, k in kinds.items() if k not in FEATURE_KINDS},
        unparsed=dict(probe.unparsed_),
        leak_auc=leak_auc,
        leak_suspects=suspects,
        rows_used=len(y),
        rows_without_target=int((~has_y).sum()),
        positive_rate=float(y.mean()),
        split=dict(split.description),
        warnings=warn,
    )
    result = fit_log_register_table(
        split,
        config,
        make_table_candidates(config, used, seasonal_only=(time_column,) if time_column else ()),
        report,
        extra_params={
            "source": _safe_source(source),
            "target_column": target,
            "id_column": id_column or "",
            "time_column": time_column or "",
            "positive_label": positive or "",
            "drop_leaks": drop_leaks,
        },
    )
    return TableTrainResult(train=result, report=report)


def _safe_source(source: str) -> str:
    """A source label without passwords (SQL URLs) and without directories (files)."""
    from features.readers import is_sql_url, mask_url

    if not source:
        return ""
    return mask_url(source) if is_sql_url(source) else Path(source).name


def _raw_signature(X: pd.DataFrame, proba: np.ndarray) -> Any:
    """Every raw column typed ``Any`` (the featurizer parses text, numbers, dates) and required."""
    from mlflow.models import ModelSignature
    from mlflow.types.schema import AnyType, ColSpec, Schema, TensorSpec

    inputs = Schema([ColSpec(AnyType(), name=str(c), required=True) for c in X.columns])
    outputs = Schema([TensorSpec(np.dtype("float64"), (-1, 2))])
    return ModelSignature(inputs=inputs, outputs=outputs)


def fit_log_register_table(
    split: Split,
    config: TrainConfig,
    candidates: list[tuple[str, Any]],
    report: TableReport,
    extra_params: dict[str, Any] | None = None,
) -> TrainResult:
    """`training.train.fit_log_register` for raw-column table models: the table's candidates, a raw-column
    signature, and the column report and leak guard logged to the parent run and the version's tags."""
    from training.train import fit_log_register

    leak_tag = ",".join(report.leak_suspects) or "none"
    return fit_log_register(
        split,
        config,
        categorical=[],
        extra_params=extra_params,
        extra_tags={
            "crmscore.leak_suspects": leak_tag,
            "crmscore.dropped_columns": ",".join(report.dropped)[:5000] or "none",
        },
        candidates=candidates,
        signature_fn=_raw_signature,
        extra_dicts={
            "column_kinds.json": {
                "column_kinds": report.column_kinds,
                "dropped": report.dropped,
                "unparsed_values": report.unparsed,
                "rows_without_target": report.rows_without_target,
            },
            "leak_guard.json": {
                "threshold": LEAK_AUC,
                "single_column_auc": report.leak_auc,
                "suspects": report.leak_suspects,
            },
        },
        version_tags={"crmscore.leak_suspects": leak_tag},
    )
