"""Uplift modelling on a randomised campaign table (`crmscore train uplift-table`).

Who should get the coupon is a question about the *change* an offer causes, not about who is likely to buy.
From a randomised test (treated and control rows, a binary outcome) this module fits four uplift learners, three
with gradient boosting (XGBoost, ``n_jobs=1`` on purpose: the machines are shared) and one linear:

- ``t_learner``: one classifier on the treated rows, one on the control rows; uplift = p₁(x) − p₀(x).
- ``class_transform``: the class-variable transformation (Jaśkowski & Jaroszewicz 2012) —
  z = 1 when (treated and y = 1) or (control and y = 0); with rows weighted so treated and control weigh the
  same, uplift = 2·P(z = 1 | x) − 1.
- ``x_learner`` (Künzel et al. 2019): per-arm regressors of the effects the T-learner's classifiers impute.
- ``s_learner``: one L2-regularised logistic regression on the features (one-hot categories, standardised numbers),
  the treatment and every feature × treatment (Lo 2002); uplift = P(y | x, treated) − P(y | x, control). Few
  parameters: on a weak, noisy effect (Hillstrom's e-mails) it ranks better than the boosted learners, which fit
  the noise of p₁ and p₀ separately.

Evaluation on held-out rows: the Qini curve Q(k) = Yₜ(k) − Y꜀(k)·Nₜ(k)/N꜀(k) over the top k rows by predicted
uplift, and its area above the random-targeting line (x = share targeted, y = Q/N; trapezoids); uplift at
10/20/30% targeted against random targeting (the test set's average effect) and against targeting by predicted
response (the intent model's way); bootstrap intervals. Candidates are MLflow child runs; the best on validation
Qini is registered as a challenger and promoted to champion when its held-out Qini beats the champion's on the
same rows by the margin.
"""

from __future__ import annotations

import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from features.messages import M_
from training.model import FeaturePreprocessor
from training.tabular import FEATURE_KINDS, TableError, TableFeaturizer, TablePreprocessor

LEARNERS = ("t_learner", "class_transform", "x_learner", "s_learner")
#: inverse L2 strength of the S-learner's logistic regression (on standardised features)
S_LEARNER_C = 1.0
TOP_SHARES = (0.1, 0.2, 0.3)
CONTROL_WORDS = ("control", "no e-mail", "no email", "none", "no", "0", "false", "holdout", "no_offer", "no offer")


class UpliftError(TableError):
    """A table or option the uplift job cannot use; the message names the column or option and why."""


# ------------------------------------------------------------------------------------------------ metrics


def _cumulative_arms(
    uplift_score: np.ndarray, treatment: np.ndarray, outcome: np.ndarray
) -> tuple[int, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(n, k, Nₜ(k), N꜀(k), Yₜ(k), Y꜀(k)) over the top k rows by score, one point per group of tied scores."""
    s = np.asarray(uplift_score, dtype=float)
    t = np.asarray(treatment).astype(int)
    y = np.asarray(outcome).astype(float)
    n = len(s)
    if n == 0:
        raise UpliftError(M_("no rows to evaluate"))
    order = np.argsort(-s, kind="stable")
    s, t, y = s[order], t[order], y[order]
    last = np.r_[s[1:] != s[:-1], True]  # the last row of each group of tied scores
    nt, nc = np.cumsum(t)[last], np.cumsum(1 - t)[last]
    yt, yc = np.cumsum(y * t)[last], np.cumsum(y * (1 - t))[last]
    return n, np.flatnonzero(last) + 1, nt, nc, yt, yc


def qini_curve(uplift_score: np.ndarray, treatment: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The Qini curve: (x, q) with x = share of rows targeted (0 … 1) and q = Q(k)/N, where Q(k) =
    Yₜ(k) − Y꜀(k)·Nₜ(k)/N꜀(k) over the top k rows by ``uplift_score`` (0 while no control row is in).

    Tied scores are taken together: the curve has one point per distinct score (and the origin)."""
    n, k, nt, nc, yt, yc = _cumulative_arms(uplift_score, treatment, outcome)
    with np.errstate(divide="ignore", invalid="ignore"):
        q = np.where(nc > 0, yt - yc * nt / np.maximum(nc, 1), yt)
    return np.r_[0.0, k / n], np.r_[0.0, q / n]


def qini_area(uplift_score: np.ndarray, treatment: np.ndarray, outcome: np.ndarray) -> float:
    """Area between the Qini curve and the random-targeting line from (0, 0) to (1, Q(N)/N), by trapezoids.

    Positive: the ranking finds the responders to the offer better than random; 0: no better than random."""
    x, q = qini_curve(uplift_score, treatment, outcome)
    gain = q - x * q[-1]
    return float(np.sum((gain[1:] + gain[:-1]) / 2.0 * np.diff(x)))


def uplift_curve(uplift_score: np.ndarray, treatment: np.ndarray, outcome: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The uplift curve: (x, u) with x = share of rows targeted and u = (Yₜ(k)/Nₜ(k) − Y꜀(k)/N꜀(k))·k/N, the
    incremental outcomes per row when the top k rows by ``uplift_score`` get the offer (0 while either arm is
    empty). Tied scores are taken together, as in :func:`qini_curve`."""
    n, k, nt, nc, yt, yc = _cumulative_arms(uplift_score, treatment, outcome)
    both = (nt > 0) & (nc > 0)
    rate = np.where(both, yt / np.maximum(nt, 1) - yc / np.maximum(nc, 1), 0.0)
    return np.r_[0.0, k / n], np.r_[0.0, rate * k / n]


def uplift_area(uplift_score: np.ndarray, treatment: np.ndarray, outcome: np.ndarray) -> float:
    """Area between the uplift curve and the random-targeting line from (0, 0) to (1, u(N)), by trapezoids
    (0 = no better than random), like :func:`qini_area`."""
    x, u = uplift_curve(uplift_score, treatment, outcome)
    gain = u - x * u[-1]
    return float(np.sum((gain[1:] + gain[:-1]) / 2.0 * np.diff(x)))


def uplift_at(uplift_score: np.ndarray, treatment: np.ndarray, outcome: np.ndarray, share: float) -> float:
    """Treated minus control outcome rate among the top ``share`` of rows by score (NaN if a group is empty)."""
    s = np.asarray(uplift_score, dtype=float)
    t = np.asarray(treatment).astype(int)
    y = np.asarray(outcome).astype(float)
    k = max(1, int(math.ceil(share * len(s))))
    top = np.argsort(-s, kind="stable")[:k]
    tt, yy = t[top], y[top]
    if tt.sum() == 0 or tt.sum() == len(tt):
        return float("nan")
    return float(yy[tt == 1].mean() - yy[tt == 0].mean())


def average_effect(treatment: np.ndarray, outcome: np.ndarray) -> float:
    """Treated minus control outcome rate over all rows: the expected uplift of random targeting."""
    t = np.asarray(treatment).astype(int)
    y = np.asarray(outcome).astype(float)
    return float(y[t == 1].mean() - y[t == 0].mean())


def evaluate_uplift(
    uplift_score: np.ndarray,
    treatment: np.ndarray,
    outcome: np.ndarray,
    response_score: np.ndarray | None = None,
    shares: Sequence[float] = TOP_SHARES,
) -> dict[str, float]:
    """Qini and uplift-curve areas and uplift at each targeted share, with random targeting and (given
    ``response_score``) targeting by predicted response as baselines."""
    out = {
        "qini_area": qini_area(uplift_score, treatment, outcome),
        "uplift_area": uplift_area(uplift_score, treatment, outcome),
        "ate": average_effect(treatment, outcome),
    }
    if response_score is not None:
        out["qini_area_by_response"] = qini_area(response_score, treatment, outcome)
        out["uplift_area_by_response"] = uplift_area(response_score, treatment, outcome)
    for sh in shares:
        p = int(round(sh * 100))
        out[f"uplift_top{p}"] = uplift_at(uplift_score, treatment, outcome, sh)
        out[f"random_top{p}"] = out["ate"]
        if response_score is not None:
            out[f"by_response_top{p}"] = uplift_at(response_score, treatment, outcome, sh)
    out["n_rows"] = float(len(treatment))
    return out


def bootstrap_intervals(
    uplift_score: np.ndarray,
    treatment: np.ndarray,
    outcome: np.ndarray,
    response_score: np.ndarray | None = None,
    n_boot: int = 200,
    seed: int = 0,
    level: float = 0.9,
) -> dict[str, tuple[float, float]]:
    """Percentile intervals (``level``) of :func:`evaluate_uplift`'s figures over ``n_boot`` resamples of the rows,
    plus the differences uplift − random and uplift − by-response (whether the model beats each baseline)."""
    rng = np.random.default_rng(seed)
    n = len(treatment)
    u, t, y = np.asarray(uplift_score), np.asarray(treatment), np.asarray(outcome)
    r = None if response_score is None else np.asarray(response_score)
    rows: list[dict[str, float]] = []
    for _ in range(n_boot):
        i = rng.integers(0, n, n)
        m = evaluate_uplift(u[i], t[i], y[i], None if r is None else r[i])
        m["qini_minus_by_response"] = m["qini_area"] - m.get("qini_area_by_response", np.nan)
        for sh in TOP_SHARES:
            p = int(round(sh * 100))
            m[f"top{p}_minus_random"] = m[f"uplift_top{p}"] - m[f"random_top{p}"]
            m[f"top{p}_minus_by_response"] = m[f"uplift_top{p}"] - m.get(f"by_response_top{p}", np.nan)
        rows.append(m)
    frame = pd.DataFrame(rows).drop(columns=["n_rows"])
    lo, hi = (1 - level) / 2, 1 - (1 - level) / 2
    return {c: (float(frame[c].quantile(lo)), float(frame[c].quantile(hi))) for c in frame.columns}


# ------------------------------------------------------------------------------------------------- input


def _norm(v: Any) -> str:
    return str(v).strip().lower()


def encode_treatment(
    series: pd.Series, column: str, control: str | None = None, treated: Sequence[str] = ()
) -> tuple[np.ndarray, dict[str, Any]]:
    """Treatment column → 1 (treated), 0 (control), -1 (rows of other arms, left out), with what was chosen.

    ``control`` is the control value (default: a value like ``control``, ``none``, ``No E-Mail``, ``0``);
    ``treated`` the treated values (default: every other value). Values compare as trimmed text, any case."""
    text = series.astype("string").str.strip().str.lower()
    values = sorted(text.dropna().unique().tolist())
    if len(values) < 2:
        raise UpliftError(
            M_(
                "treatment column {column!r} has {value} value(s) ({value2}): an uplift model needs treated and "
                "control rows",
                column=column, value=len(values), value2=", ".join(values),
            )
        )
    if control is None:
        found = [v for v in values if v in CONTROL_WORDS]
        if len(found) != 1:
            raise UpliftError(
                M_(
                    "treatment column {column!r}: cannot tell the control value among {value}; give --control VALUE",
                    column=column, value=", ".join(values[:10]),
                )
            )
        ctrl = found[0]
    else:
        ctrl = _norm(control)
        if ctrl not in values:
            raise UpliftError(
                M_(
                    "treatment column {column!r}: no control rows — --control {control!r} does not occur (values: "
                    "{value})",
                    column=column, control=control, value=", ".join(values[:10]),
                )
            )
    if treated:
        tr = [_norm(v) for v in treated]
        absent = [v for v, n in zip(treated, tr, strict=True) if n not in values]
        if absent:
            raise UpliftError(
                M_(
                    "treatment column {column!r}: --treated {value} does not occur (values: {value2})",
                    column=column, value=", ".join(map(repr, absent)), value2=", ".join(values[:10]),
                )
            )
        if ctrl in tr:
            raise UpliftError(M_(
                "treatment column {column!r}: {ctrl!r} is both the control and a treated value",
                column=column, ctrl=ctrl,
            ))
    else:
        tr = [v for v in values if v != ctrl]
    t = np.full(len(series), -1, dtype=int)
    t[(text == ctrl).fillna(False).to_numpy()] = 0
    t[text.isin(tr).fillna(False).to_numpy()] = 1
    if (t == 1).sum() == 0:
        raise UpliftError(M_("treatment column {column!r}: no treated rows", column=column))
    return t, {"control": ctrl, "treated": tr}


def _stratified_split(
    strata: np.ndarray, seed: int, shares: tuple[float, float] = (0.6, 0.2)
) -> tuple[np.ndarray, ...]:
    """Train / validation / test positions, stratified on ``strata`` (treatment × outcome)."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    for g in np.unique(strata):
        idx = rng.permutation(np.flatnonzero(strata == g))
        a = int(round(shares[0] * len(idx)))
        b = a + int(round(shares[1] * len(idx)))
        for j, p in enumerate((idx[:a], idx[a:b], idx[b:])):
            parts[j].append(p)
    return tuple(np.sort(np.concatenate(p)) for p in parts)


# ------------------------------------------------------------------------------------------------ models


def _booster(seed: int, params: dict[str, Any] | None = None, regressor: bool = False) -> Any:
    from xgboost import XGBClassifier, XGBRegressor

    kw = {
        "n_estimators": 200,
        "max_depth": 3,
        "learning_rate": 0.05,
        "min_child_weight": 20,
        "subsample": 0.8,
        "colsample_bytree": 0.8,
        "reg_lambda": 5.0,
        "tree_method": "hist",
        "n_jobs": 1,
        "random_state": seed,
        "verbosity": 0,
    }
    kw.update(params or {})
    return XGBRegressor(**kw) if regressor else XGBClassifier(**kw)


def _interactions(Z: np.ndarray, t: np.ndarray) -> np.ndarray:
    """The S-learner's design matrix: the features, the treatment and each feature × treatment."""
    tt = np.asarray(t, dtype="float64")[:, None]
    return np.hstack([Z, tt, Z * tt])


class UpliftModel(BaseEstimator):
    """A fitted uplift learner over raw table columns: ``predict(X)`` gives the expected uplift per row
    (the change in the outcome probability the treatment causes).

    The raw columns go through a :class:`~training.tabular.TablePreprocessor` (the table featurizer, then the
    one encoder, ``training.model.FeaturePreprocessor``), so the learners see one float matrix.

    Parameters
    ----------
    learner : {"t_learner", "class_transform", "x_learner", "s_learner"}, default="t_learner"
        ``t_learner``: p₁(x) − p₀(x) from one classifier per arm. ``class_transform``: 2·P(z = 1 | x) − 1 with
        z = 1 for treated responders and control non-responders, arms weighted equally. ``x_learner``
        (Künzel et al. 2019): the T-learner's classifiers impute each row's effect (treated: y − p₀(x),
        control: p₁(x) − y), one regressor per arm learns it, and uplift = e·τ₀(x) + (1 − e)·τ₁(x) with e the
        treated share (the propensity, constant in a randomised test). ``s_learner`` (Lo 2002): one logistic
        regression on the one-hot/standardised features, the treatment and each feature × treatment;
        uplift = P(y = 1 | x, t = 1) − P(y = 1 | x, t = 0).
    seed : int, default=42
    params : dict, optional
        XGBoost parameters replacing the defaults (not used by ``s_learner``).
    featurizer : TableFeaturizer, optional
        The table featurizer to clone (default: ``TableFeaturizer()``).

    Attributes
    ----------
    preprocessor_ : TablePreprocessor
    feature_names_in_ : ndarray of str
        The raw columns used.
    propensity_ : float
        Treated share of the training rows.
    """

    def __init__(
        self,
        learner: str = "t_learner",
        seed: int = 42,
        params: dict[str, Any] | None = None,
        featurizer: TableFeaturizer | None = None,
    ) -> None:
        self.learner = learner
        self.seed = seed
        self.params = params
        self.featurizer = featurizer

    def fit(
        self, X: pd.DataFrame, treatment: np.ndarray, outcome: np.ndarray, featurizer: TableFeaturizer | None = None
    ) -> UpliftModel:
        """Fit on raw columns ``X`` with 0/1 ``treatment`` and 0/1 ``outcome`` (``featurizer`` overrides the
        parameter of the same name)."""
        if self.learner not in LEARNERS:
            raise ValueError(M_(
                "unknown uplift learner {learner!r} (known: {value})",
                learner=self.learner, value=", ".join(LEARNERS),
            ))
        t = np.asarray(treatment).astype(int)
        y = np.asarray(outcome).astype(int)
        feat = featurizer if featurizer is not None else self.featurizer
        # the linear learner reads one-hot categories and standardised numbers; the trees ordinal codes
        encoder = FeaturePreprocessor(encoding="onehot") if self.learner == "s_learner" else None
        self.preprocessor_ = TablePreprocessor(featurizer=feat, encoder=encoder).fit(X)
        self.feature_names_in_ = np.asarray(self.preprocessor_.feature_names_in_, dtype=object)
        Z = self.preprocessor_.transform(X)
        self.propensity_ = float(t.mean())
        p = self.params or {}
        if self.learner in ("t_learner", "x_learner"):
            self.model_t_ = _booster(self.seed, p).fit(Z[t == 1], y[t == 1])
            self.model_c_ = _booster(self.seed, p).fit(Z[t == 0], y[t == 0])
        if self.learner == "x_learner":
            d_t = y[t == 1] - self.model_c_.predict_proba(Z[t == 1])[:, 1]
            d_c = self.model_t_.predict_proba(Z[t == 0])[:, 1] - y[t == 0]
            self.tau_t_ = _booster(self.seed, p, regressor=True).fit(Z[t == 1], d_t)
            self.tau_c_ = _booster(self.seed, p, regressor=True).fit(Z[t == 0], d_c)
        elif self.learner == "s_learner":
            from sklearn.linear_model import LogisticRegression

            self.model_s_ = LogisticRegression(C=S_LEARNER_C, max_iter=2000).fit(_interactions(Z, t), y)
        elif self.learner == "class_transform":
            z = (y == t).astype(int)
            w = np.where(t == 1, 0.5 / self.propensity_, 0.5 / (1 - self.propensity_))
            self.model_z_ = _booster(self.seed, p).fit(Z, z, sample_weight=w)
        return self

    def transform_matrix(self, X: pd.DataFrame) -> np.ndarray:
        """Raw rows → the learners' float matrix (a missing raw column is an error naming it)."""
        check_is_fitted(self, "preprocessor_")
        return self.preprocessor_.transform(X)

    def predict_matrix(self, Z: np.ndarray) -> np.ndarray:
        """Expected uplift per row of an encoded matrix (−1 … 1)."""
        if self.learner == "t_learner":
            return self.model_t_.predict_proba(Z)[:, 1] - self.model_c_.predict_proba(Z)[:, 1]
        if self.learner == "x_learner":
            e = self.propensity_
            return np.clip(e * self.tau_c_.predict(Z) + (1 - e) * self.tau_t_.predict(Z), -1.0, 1.0)
        if self.learner == "s_learner":
            p1 = self.model_s_.predict_proba(_interactions(Z, np.ones(len(Z))))[:, 1]
            return p1 - self.model_s_.predict_proba(_interactions(Z, np.zeros(len(Z))))[:, 1]
        return 2.0 * self.model_z_.predict_proba(Z)[:, 1] - 1.0

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        """Expected uplift per row (−1 … 1)."""
        return self.predict_matrix(self.transform_matrix(X))

    def contributions_matrix(self, Z: np.ndarray) -> np.ndarray:
        """Per-row contributions of each matrix column (bias last), from the one explainer
        (:func:`training.explain.contributions`), on the learner's own scale: the uplift itself for
        ``x_learner`` (exact: the contributions add up to it), log-odds p₁ minus log-odds p₀ for ``t_learner`` and
        ``s_learner`` (exact for ``s_learner``: each feature × treatment term, the treatment term as the bias), the
        log-odds of z for ``class_transform``. Signs agree with the uplift's direction in each case."""
        from training.explain import contributions

        if self.learner == "t_learner":
            return contributions(self.model_t_, Z) - contributions(self.model_c_, Z)
        if self.learner == "x_learner":
            e = self.propensity_
            return e * contributions(self.tau_c_, Z) + (1 - e) * contributions(self.tau_t_, Z)
        if self.learner == "s_learner":
            # treated minus untreated rows of the design: the features' own terms cancel, leaving each
            # feature × treatment term (its column's contribution) and the treatment term (the bias)
            d = Z.shape[1]
            diff = contributions(self.model_s_, _interactions(Z, np.ones(len(Z)))) - contributions(
                self.model_s_, _interactions(Z, np.zeros(len(Z)))
            )
            return np.c_[diff[:, d + 1 : 2 * d + 1], diff[:, d]]
        return contributions(self.model_z_, Z)

    def reason_folder(self) -> Any:
        """A :class:`training.explain.ReasonFolder` over the raw input columns."""
        from training.explain import ReasonFolder, reason_groups

        names = list(self.preprocessor_.get_feature_names_out())
        return ReasonFolder(reason_groups(names), len(names))


def fit_response_model(X: pd.DataFrame, outcome: np.ndarray, featurizer: TableFeaturizer, seed: int) -> Any:
    """The intent model's way, as a baseline: P(outcome | x) on all rows, treatment ignored; returns a scorer."""
    pre = TablePreprocessor(featurizer=featurizer).fit(X)
    model = _booster(seed).fit(pre.transform(X), np.asarray(outcome).astype(int))
    return lambda Z: model.predict_proba(pre.transform(Z))[:, 1]


# --------------------------------------------------------------------------------------------- the gate


@dataclass(frozen=True)
class UpliftDecision:
    """What the uplift gate decided and the held-out Qini areas it compared (same rows)."""

    promote: bool
    reason: str
    challenger_qini: float
    champion_qini: float | None

    def as_tags(self) -> dict[str, str]:
        """The decision as model-version tags."""
        return {
            "crmscore.gate.promote": str(self.promote).lower(),
            "crmscore.gate.reason": self.reason,
            "crmscore.gate.challenger_qini": f"{self.challenger_qini:.6f}",
            "crmscore.gate.champion_qini": "" if self.champion_qini is None else f"{self.champion_qini:.6f}",
        }


def decide_uplift_promotion(challenger_qini: float, champion_qini: float | None, margin: float) -> UpliftDecision:
    """Promote when there is no (comparable) champion or the challenger's held-out Qini area beats it by ``margin``."""
    if champion_qini is None or not np.isfinite(champion_qini):
        return UpliftDecision(True, "no champion yet", challenger_qini, None)
    gain = challenger_qini - champion_qini
    if gain < margin:
        return UpliftDecision(False, f"Qini gain {gain:+.5f} below margin {margin:.5f}", challenger_qini, champion_qini)
    return UpliftDecision(True, f"Qini gain {gain:+.5f} ≥ margin {margin:.5f}", challenger_qini, champion_qini)


# ------------------------------------------------------------------------------------------------ the job


@dataclass
class UpliftResult:
    """What one uplift job did: the winner, its held-out figures and intervals, and the gate's decision."""

    model_name: str
    version: str
    run_id: str
    best_learner: str
    promoted: bool
    decision: str
    test_metrics: dict[str, float]
    intervals: dict[str, tuple[float, float]]
    candidates: dict[str, dict[str, float]]
    rows: dict[str, int]
    treatment: dict[str, Any]
    dropped: dict[str, str] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def prepare_uplift_table(
    frame: pd.DataFrame,
    treatment: str,
    outcome: str,
    control: str | None = None,
    treated: Sequence[str] = (),
    exclude: Sequence[str] = (),
    id_column: str | None = None,
    positive: str | None = None,
) -> tuple[pd.DataFrame, np.ndarray, np.ndarray, dict[str, Any], list[str]]:
    """Check the columns and encode: (raw feature columns, treatment 0/1, outcome 0/1, arms, warnings).

    Rows of other arms and rows with a blank treatment or outcome are left out (with a warning)."""
    from training.tabular import encode_target

    cols = [str(c) for c in frame.columns]
    frame = frame.set_axis(cols, axis=1)
    for opt, names in (
        ("--treatment", [treatment]),
        ("--outcome", [outcome]),
        ("--exclude", list(exclude)),
        ("--id", [id_column]),
    ):
        absent = [n for n in names if n is not None and n not in cols]
        if absent:
            raise UpliftError(
                M_(
                    "{opt}: column(s) {value} not in the table (columns: {value2})",
                    opt=opt, value=", ".join(absent), value2=", ".join(cols[:30]),
                )
            )
    if treatment == outcome:
        raise UpliftError(M_("--treatment and --outcome are the same column {treatment!r}", treatment=treatment))
    warn: list[str] = []
    t, arms = encode_treatment(frame[treatment], treatment, control, treated)
    try:
        y = encode_target(frame[outcome], positive, outcome)
    except TableError as e:
        raise UpliftError(str(e).replace("target column", "outcome column")) from None
    keep = (t >= 0) & np.isfinite(y)
    if (t < 0).any():
        warn.append(f"{int((t < 0).sum())} row(s) of other arms of {treatment!r} left out")
    if (~np.isfinite(y)).any():
        warn.append(f"{int((~np.isfinite(y)).sum())} row(s) with a blank outcome {outcome!r} left out")
    t, y = t[keep], y[keep].astype(int)
    if (t == 0).sum() < 20 or (t == 1).sum() < 20:
        raise UpliftError(
            M_(
                "treatment column {treatment!r}: {value} treated and {value2} control rows; need at least 20 of each",
                treatment=treatment, value=int((t == 1).sum()), value2=int((t == 0).sum()),
            )
        )
    X = frame.loc[keep].drop(columns=[treatment, outcome]).reset_index(drop=True)
    return X, t, y, arms, warn


def train_uplift_table(
    frame: pd.DataFrame,
    treatment: str,
    outcome: str,
    control: str | None = None,
    treated: Sequence[str] = (),
    exclude: Sequence[str] = (),
    id_column: str | None = None,
    positive: str | None = None,
    name: str = "coupon_uplift",
    seed: int = 42,
    margin: float = 0.0005,
    n_boot: int = 200,
    experiment: str = "crmscore-uplift",
    source: str = "",
    task: str = "uplift_table",
    extra_params: dict[str, Any] | None = None,
    column_kinds: dict[str, str] | None = None,
) -> UpliftResult:
    """Split 60/20/20 (stratified on treatment × outcome), fit each learner as an MLflow child run, pick the best
    on validation Qini, report held-out figures with bootstrap intervals, register the winner as a challenger of
    ``name`` and gate it to champion on held-out Qini against the champion scored on the same rows.

    ``column_kinds`` fixes the kind of each column (columns it leaves out are excluded) instead of inferring them,
    for tables whose columns are known (the feature builder's output)."""
    import mlflow

    from training.model import TRUSTED_TYPES
    from training.registry import register_challenger, set_champion, start_job_run, tag_version
    from training.train import model_requirements

    X, t, y, arms, warn = prepare_uplift_table(
        frame, treatment, outcome, control, treated, exclude, id_column, positive
    )
    tr, va, te = _stratified_split(t * 2 + y, seed)
    featurizer = TableFeaturizer(id_column=id_column, exclude=tuple(exclude), column_kinds=column_kinds).fit(X.iloc[tr])
    kinds = featurizer.column_kinds_
    pii = [c for c, k in kinds.items() if k == "pii"]
    if pii:
        warn.append(f"PII column(s) dropped, never features: {', '.join(pii)}")
    if not featurizer.input_columns_:
        raise UpliftError(M_("no usable feature column left after dropping id, excluded, PII and id-like columns"))
    dropped = {c: k for c, k in kinds.items() if k not in FEATURE_KINDS}
    Xtr, Xva, Xte = X.iloc[tr], X.iloc[va], X.iloc[te]
    response = fit_response_model(Xtr, y[tr], featurizer, seed)
    r_va, r_te = response(Xva), response(Xte)
    rows = {"train": len(tr), "validation": len(va), "test": len(te)}
    with start_job_run(experiment, f"train-{name}") as parent:
        mlflow.log_params(
            {
                "task": task,
                "model_name": name,
                "source": source,
                "treatment_column": treatment,
                "outcome_column": outcome,
                "control_value": arms["control"],
                "treated_values": ",".join(arms["treated"])[:500],
                "id_column": id_column or "",
                "seed": seed,
                "promotion_margin": margin,
                "n_features": len(featurizer.input_columns_),
                **{f"rows_{k}": v for k, v in rows.items()},
                "treated_share": round(float(t.mean()), 4),
                **(extra_params or {}),
            }
        )
        mlflow.log_dict({"column_kinds": kinds, "dropped": dropped}, "column_kinds.json")
        cands: dict[str, dict[str, float]] = {}
        fitted: dict[str, UpliftModel] = {}
        for learner in LEARNERS:
            with mlflow.start_run(run_name=learner, nested=True, experiment_id=parent.info.experiment_id):
                t0 = time.perf_counter()
                m = UpliftModel(learner, seed).fit(Xtr, t[tr], y[tr], featurizer)
                fit_s = time.perf_counter() - t0
                val = evaluate_uplift(m.predict(Xva), t[va], y[va], r_va)
                mlflow.log_param("learner", learner)
                mlflow.log_metrics({f"val_{k}": v for k, v in val.items() if np.isfinite(v)} | {"fit_seconds": fit_s})
                cands[learner] = {**val, "fit_seconds": fit_s}
                fitted[learner] = m
        best = max(LEARNERS, key=lambda c: cands[c]["qini_area"])
        final = fitted[best]
        u_te = final.predict(Xte)
        test = evaluate_uplift(u_te, t[te], y[te], r_te)
        ci = bootstrap_intervals(u_te, t[te], y[te], r_te, n_boot=n_boot, seed=seed) if n_boot else {}
        mlflow.log_param("best_learner", best)
        mlflow.log_metrics({f"test_{k}": v for k, v in test.items() if np.isfinite(v)})
        mlflow.log_dict({k: list(v) for k, v in ci.items()}, "evaluation/bootstrap_intervals.json")
        x, q = qini_curve(u_te, t[te], y[te])
        xr, qr = qini_curve(r_te, t[te], y[te])
        mlflow.log_dict(
            {"x": x[:: max(1, len(x) // 500)].tolist(), "q": q[:: max(1, len(q) // 500)].tolist()},
            "evaluation/qini_curve.json",
        )
        xu, uu = uplift_curve(u_te, t[te], y[te])
        xur, uur = uplift_curve(r_te, t[te], y[te])
        mlflow.log_dict(
            {"x": xu[:: max(1, len(xu) // 500)].tolist(), "u": uu[:: max(1, len(uu) // 500)].tolist()},
            "evaluation/uplift_curve.json",
        )
        _log_plot(x, q, xr, qr, name="qini_curve", ylabel="Qini: incremental outcomes / rows")
        _log_plot(xu, uu, xur, uur, name="uplift_curve", ylabel="uplift × share targeted")
        info = mlflow.sklearn.log_model(
            final,
            name="model",
            serialization_format="skops",
            skops_trusted_types=TRUSTED_TYPES,
            pip_requirements=model_requirements(),
        )
        version = register_challenger(
            name,
            info.model_uri,
            tags={
                "crmscore.task": task,
                "crmscore.trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
                **{f"crmscore.test_{k}": f"{v:.6f}" for k, v in test.items() if np.isfinite(v)},
                "crmscore.candidate": best,
                "crmscore.run_id": parent.info.run_id,
            },
        )
        champ_qini = _champion_qini(name, Xte, t[te], y[te])
        decision = decide_uplift_promotion(test["qini_area"], champ_qini, margin)
        tag_version(name, version, decision.as_tags())
        mlflow.set_tags(
            {"crmscore.gate.promote": str(decision.promote).lower(), "crmscore.gate.reason": decision.reason}
        )
        if decision.promote:
            set_champion(name, version, decision.reason)
        run_id = parent.info.run_id
    return UpliftResult(
        model_name=name,
        version=str(version),
        run_id=run_id,
        best_learner=best,
        promoted=decision.promote,
        decision=decision.reason,
        test_metrics=test,
        intervals=ci,
        candidates=cands,
        rows=rows,
        treatment=arms,
        dropped=dropped,
        warnings=warn,
    )


def _champion_qini(name: str, X: pd.DataFrame, t: np.ndarray, y: np.ndarray) -> float | None:
    """The current champion's held-out Qini on the same rows; None when there is none or it cannot score them."""
    import mlflow

    from training.registry import CHAMPION, get_alias_version

    if get_alias_version(name, CHAMPION) is None:
        return None
    try:
        champ = mlflow.sklearn.load_model(f"models:/{name}@{CHAMPION}")
        return qini_area(champ.predict(X), t, y)
    except Exception as e:  # noqa: BLE001 - a champion on other columns cannot score this table
        mlflow.set_tag("crmscore.champion_eval_error", str(e)[:500])
        return None


def _log_plot(
    x: np.ndarray, q: np.ndarray, xr: np.ndarray, qr: np.ndarray, name: str = "qini_curve", ylabel: str = ""
) -> None:
    """One kind of curve (Qini or uplift) for the uplift model, the response model and random targeting, as the
    PNG artifact ``evaluation/<name>.png``."""
    import tempfile
    from pathlib import Path

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import mlflow

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(x, q, label="uplift model")
    ax.plot(xr, qr, label="by predicted response")
    ax.plot([0, 1], [0, q[-1]], "--", label="random")
    ax.set_xlabel("share targeted")
    ax.set_ylabel(ylabel or "incremental outcomes / rows")
    ax.legend()
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / f"{name}.png"
        fig.savefig(p, dpi=100, bbox_inches="tight")
        plt.close(fig)
        mlflow.log_artifact(str(p), artifact_path="evaluation")
