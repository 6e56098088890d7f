"""Buy-till-you-die models: BG/NBD for purchase counts and P(alive), Gamma-Gamma for spend per purchase.

Formulas:

* BG/NBD — Fader, Hardie & Lee (2005), "'Counting your customers' the easy way: an alternative to the
  Pareto/NBD model", Marketing Science 24(2). Likelihood (their eq. 6), conditional expectation (eq. 10)
  and P(alive) (from the technical note "Computing P(alive) using the BG/NBD model").
* Gamma-Gamma — Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves for customer base
  analysis", Journal of Marketing Research 42(4), and Fader & Hardie's note "The Gamma-Gamma model of
  monetary value" (2013): density of the mean spend ``m_x`` of ``x`` repeat purchases and its conditional
  expectation.

Why written here with numpy/scipy instead of a library: ``pymc-marketing`` pulls PyMC and PyTensor (heavy,
compiles C at import) for what is a four-parameter maximum-likelihood fit, and ``lifetimes`` is unmaintained
and breaks on current pandas/scipy. The likelihoods are a few lines with ``scipy.special`` (``gammaln``,
``betaln``, ``hyp2f1``) and are fitted with ``scipy.optimize.minimize`` on log parameters (so all
parameters stay positive without bounds). The CDNOW check in ``tests/integration`` anchors the numbers to
the published estimates.

Conventions (same as ``lifetimes``): ``frequency`` ``x`` is the number of *repeat* purchase days (several
orders on one calendar day count once), ``t_x`` is the customer's age at the last purchase and ``T`` the age
at the cutoff, both measured from the first purchase. The estimators take the per-customer summary in days
(``frequency``, ``recency_days`` = days since the last purchase, ``tenure_days`` = days since the first
purchase, ``avg_repeat_value``) and convert to ``time_unit_days`` (7 = weeks, the unit of the published
CDNOW estimates) internally; only ``alpha`` depends on the unit.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, gammaln, hyp2f1
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.utils.validation import check_is_fitted

from features.messages import M_

#: Columns of the per-customer transaction summary produced by :func:`summarise_transactions`.
SUMMARY_COLUMNS = ("frequency", "recency_days", "tenure_days", "monetary", "avg_repeat_value")


def summarise_transactions(
    transactions: pd.DataFrame,
    as_of: pd.Timestamp | str,
    customer_col: str = "customer_id",
    time_col: str = "ts",
    amount_col: str = "amount",
) -> pd.DataFrame:
    """Per-customer BTYD summary of the transactions with ``ts <= as_of``, one row per buyer.

    Days are calendar days (timestamps are floored to the day); orders on the same day are one purchase.
    Returns a frame indexed by customer with ``frequency`` (repeat purchase days), ``recency_days`` (days
    from the last purchase day to the cutoff day), ``tenure_days`` (days from the first purchase day to the
    cutoff day), ``monetary`` (total spend) and ``avg_repeat_value`` (mean spend per repeat purchase day,
    0 when there is none). Customers without a transaction up to ``as_of`` are absent.
    """
    as_of = pd.Timestamp(as_of)
    missing = [c for c in (customer_col, time_col, amount_col) if c not in transactions.columns]
    if missing:
        raise ValueError(M_("transactions: missing column(s) {missing}", missing=', '.join(missing)))
    tx = transactions.loc[transactions[time_col] <= as_of, [customer_col, time_col, amount_col]]
    if tx[amount_col].isna().any():
        raise ValueError(M_(
            "transactions: {n_rows} row(s) have no {amount_col}",
            n_rows=int(tx[amount_col].isna().sum()), amount_col=amount_col,
        ))
    day = tx[time_col].dt.floor("D")
    daily = (
        pd.DataFrame(
            {
                "c": tx[customer_col].to_numpy(),
                "day": day.to_numpy(),
                "amt": tx[amount_col].astype("float64").to_numpy(),
            }
        )
        .groupby(["c", "day"], sort=True)["amt"]
        .sum()
        .reset_index()
    )
    g = daily.groupby("c", sort=True)
    first = g["day"].min()
    last = g["day"].max()
    n_days = g["day"].size()
    total = g["amt"].sum()
    first_amt = daily.loc[g["day"].idxmin().to_numpy(), ["c", "amt"]].set_index("c")["amt"]
    cutoff_day = as_of.floor("D")
    freq = (n_days - 1).astype("float64")
    out = pd.DataFrame(
        {
            "frequency": freq,
            "recency_days": (cutoff_day - last).dt.days.astype("float64"),
            "tenure_days": (cutoff_day - first).dt.days.astype("float64"),
            "monetary": total,
            "avg_repeat_value": np.where(freq > 0, (total - first_amt) / freq.where(freq > 0, 1.0), 0.0),
        }
    )
    out.index.name = customer_col
    return out


def count_purchase_days(
    transactions: pd.DataFrame,
    start: pd.Timestamp | str,
    end: pd.Timestamp | str,
    customer_col: str = "customer_id",
    time_col: str = "ts",
) -> pd.Series:
    """Number of distinct purchase days per customer with ``start < ts <= end`` (the holdout actuals)."""
    start, end = pd.Timestamp(start), pd.Timestamp(end)
    tx = transactions.loc[(transactions[time_col] > start) & (transactions[time_col] <= end)]
    days = pd.DataFrame({"c": tx[customer_col].to_numpy(), "day": tx[time_col].dt.floor("D").to_numpy()})
    return days.drop_duplicates().groupby("c").size().rename("purchase_days")


def _as_model_inputs(X: pd.DataFrame, unit: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(x, t_x, T) in model time units from the day-based summary, with checks that name the problem."""
    missing = [c for c in ("frequency", "recency_days", "tenure_days") if c not in X.columns]
    if missing:
        raise ValueError(M_("BG/NBD input: missing column(s) {missing}", missing=', '.join(missing)))
    x = X["frequency"].to_numpy(dtype="float64")
    rec = X["recency_days"].to_numpy(dtype="float64")
    ten = X["tenure_days"].to_numpy(dtype="float64")
    bad = np.isnan(x) | np.isnan(rec) | np.isnan(ten) | (x < 0) | (rec < 0) | (rec > ten)
    bad |= (x > 0) & (rec >= ten)  # a repeat purchase must come after the first one
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(
            M_(
                "BG/NBD input: {n_rows} row(s) invalid (need frequency >= 0, 0 <= recency_days <= tenure_days, and "
                "recency_days < tenure_days when frequency > 0); first at position {index}: frequency={frequency}, "
                "recency_days={recency_days}, tenure_days={tenure_days}",
                n_rows=int(bad.sum()), index=i, frequency=x[i], recency_days=rec[i], tenure_days=ten[i],
            )
        )
    return x, (ten - rec) / unit, ten / unit


def bgnbd_log_likelihood(params: np.ndarray, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood (FHL 2005, eq. 6) for ``params = (r, alpha, a, b)``."""
    r, alpha, a, b = params
    a1 = gammaln(r + x) - gammaln(r) + r * np.log(alpha)
    a2 = betaln(a, b + x) - betaln(a, b)
    a3 = -(r + x) * np.log(alpha + T)
    with np.errstate(divide="ignore", invalid="ignore"):
        a4 = np.where(
            x > 0,
            np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) - (r + x) * np.log(alpha + t_x),
            -np.inf,
        )
    return a1 + a2 + np.logaddexp(a3, a4)


def gamma_gamma_log_likelihood(params: np.ndarray, x: np.ndarray, m: np.ndarray) -> np.ndarray:
    """Per-customer Gamma-Gamma log-density of the mean repeat spend ``m`` over ``x`` purchases."""
    p, q, v = params
    px = p * x
    return (
        gammaln(px + q)
        - gammaln(px)
        - gammaln(q)
        + q * np.log(v)
        + (px - 1) * np.log(m)
        + px * np.log(x)
        - (px + q) * np.log(v + m * x)
    )


#: log-parameter box of the optimiser: e^±15 ≈ 3e-7 … 3e6. A parameter that ends on it means the data has
#: no sign of what it measures (e.g. BG/NBD a → 0 or b → ∞: nobody seems to drop out).
LOG_BOUND = 15.0


@dataclass(frozen=True)
class _Fit:
    params: np.ndarray
    log_likelihood: float
    converged: bool
    at_bound: list[int]


def _fit_log_params(nll, x0: np.ndarray) -> _Fit:
    """Minimise a negative log-likelihood over log parameters; Nelder-Mead polish after L-BFGS-B."""
    bounds = [(-LOG_BOUND, LOG_BOUND)] * len(x0)
    res = minimize(nll, x0, method="L-BFGS-B", bounds=bounds)
    opts = {"xatol": 1e-8, "fatol": 1e-10, "maxiter": 2000, "maxfev": 2000}
    res2 = minimize(nll, res.x, method="Nelder-Mead", bounds=bounds, options=opts)
    best = res2 if res2.fun <= res.fun else res
    at_bound = [i for i, v in enumerate(best.x) if abs(v) > LOG_BOUND - 1e-3]
    return _Fit(np.exp(best.x), -float(best.fun), bool(res.success or res2.success), at_bound)


def _unique_weights(*cols: np.ndarray) -> tuple[list[np.ndarray], np.ndarray]:
    """Collapse identical rows (many customers share a summary) into weighted unique rows."""
    stacked = np.column_stack(cols)
    uniq, counts = np.unique(stacked, axis=0, return_counts=True)
    return [uniq[:, i] for i in range(uniq.shape[1])], counts.astype("float64")


class BGNBDModel(BaseEstimator, TransformerMixin):
    """BG/NBD (beta-geometric / negative binomial) purchase model fitted by maximum likelihood.

    Input: the day-based summary (``frequency``, ``recency_days``, ``tenure_days``); buyers only.
    Output of ``transform``: ``expected_purchases_{horizon_days}d`` (expected repeat purchase days in
    the next ``horizon_days``) and ``p_alive``.

    Parameters
    ----------
    time_unit_days: length of one model time unit in days (7 = weeks); ``alpha_`` is in this unit.
    horizon_days: prediction horizon of ``transform``.
    penalizer: L2 penalty on the four parameters (0 = plain maximum likelihood), as in ``lifetimes``.
    """

    def __init__(self, time_unit_days: float = 7.0, horizon_days: int = 90, penalizer: float = 0.0):
        self.time_unit_days = time_unit_days
        self.horizon_days = horizon_days
        self.penalizer = penalizer

    def fit(self, X: pd.DataFrame, y=None) -> BGNBDModel:
        """Estimate ``r, alpha, a, b`` from the buyers' summary."""
        x, t_x, T = _as_model_inputs(X, float(self.time_unit_days))
        if len(x) < 2 or not (x > 0).any():
            raise ValueError(M_("BG/NBD: need at least two buyers and at least one repeat purchase to fit"))
        (ux, ut, uT), w = _unique_weights(x, t_x, T)
        n = w.sum()
        pen = float(self.penalizer)

        def nll(logp: np.ndarray) -> float:
            p = np.exp(logp)
            ll = bgnbd_log_likelihood(p, ux, ut, uT)
            val = -(w @ ll) / n + pen * float(p @ p)
            return float(val) if np.isfinite(val) else 1e100

        # start: r=1, alpha=mean age in units (the rate scale), a=b=1
        x0 = np.log(np.array([1.0, max(float(T.mean()), 1e-3), 1.0, 1.0]))
        fit = _fit_log_params(nll, x0)
        self.params_ = dict(zip(("r", "alpha", "a", "b"), (float(v) for v in fit.params), strict=True))
        self.params_at_bound_ = [("r", "alpha", "a", "b")[i] for i in fit.at_bound]
        self.log_likelihood_ = fit.log_likelihood * n
        self.converged_ = fit.converged
        self.n_customers_ = int(n)
        self.n_features_in_ = 3
        self.feature_names_in_ = np.array(["frequency", "recency_days", "tenure_days"], dtype=object)
        return self

    def _p(self) -> tuple[float, float, float, float]:
        check_is_fitted(self, "params_")
        p = self.params_
        return p["r"], p["alpha"], p["a"], p["b"]

    def _log_ratio(self, x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> np.ndarray:
        """log of a/(b+x-1) * ((alpha+T)/(alpha+t_x))^(r+x); -inf when x == 0."""
        r, alpha, a, b = self._p()
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(
                x > 0,
                np.log(a) - np.log(np.maximum(b + x - 1, 1e-300)) + (r + x) * (np.log(alpha + T) - np.log(alpha + t_x)),
                -np.inf,
            )

    def predict_p_alive(self, X: pd.DataFrame) -> np.ndarray:
        """P(the customer is still active at the cutoff | x, t_x, T); 1 for customers with no repeat."""
        x, t_x, T = _as_model_inputs(X, float(self.time_unit_days))
        return 1.0 / (1.0 + np.exp(self._log_ratio(x, t_x, T)))

    def predict_expected_purchases(self, X: pd.DataFrame, horizon_days: float | None = None) -> np.ndarray:
        """Expected repeat purchase days in (cutoff, cutoff + horizon] (FHL 2005, eq. 10)."""
        r, alpha, a, b = self._p()
        x, t_x, T = _as_model_inputs(X, float(self.time_unit_days))
        t = float(self.horizon_days if horizon_days is None else horizon_days) / float(self.time_unit_days)
        z = t / (alpha + T + t)
        log_pow = (r + x) * (np.log(alpha + T) - np.log(alpha + T + t))
        bracket = 1.0 - np.exp(log_pow) * hyp2f1(r + x, b + x, a + b + x - 1.0, z)
        head = (a + b + x - 1.0) / (a - 1.0)
        out = head * bracket / (1.0 + np.exp(self._log_ratio(x, t_x, T)))
        bad = ~np.isfinite(out)
        if bad.any():
            # hyp2f1 can lose precision for extreme arguments; the expectation is then bounded by
            # P(alive) x the purchase rate mean over the horizon — use that instead of NaN
            rate = (r + x[bad]) / (alpha + T[bad])
            out[bad] = self.predict_p_alive(X.iloc[np.flatnonzero(bad)]) * rate * t
        return np.maximum(out, 0.0)

    def predict_unconditional(self, horizon_days: float) -> float:
        """E[X(t)]: expected purchases of a new customer in its first ``horizon_days``."""
        r, alpha, a, b = self._p()
        t = float(horizon_days) / float(self.time_unit_days)
        return float(
            (a + b - 1) / (a - 1) * (1 - (alpha / (alpha + t)) ** r * hyp2f1(r, b, a + b - 1, t / (alpha + t)))
        )

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """``expected_purchases_{N}d`` and ``p_alive`` per row of ``X``."""
        names = self.get_feature_names_out()
        return pd.DataFrame(
            {names[0]: self.predict_expected_purchases(X), names[1]: self.predict_p_alive(X)}, index=X.index
        )

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output column names."""
        return np.array([f"expected_purchases_{int(self.horizon_days)}d", "p_alive"], dtype=object)

    def to_dict(self) -> dict:
        """Learned state as plain numbers (for JSON)."""
        check_is_fitted(self, "params_")
        return {
            "params": dict(self.params_),
            "log_likelihood": self.log_likelihood_,
            "n_customers": self.n_customers_,
            "converged": self.converged_,
            "params_at_bound": list(self.params_at_bound_),
            "init": {
                "time_unit_days": self.time_unit_days,
                "horizon_days": self.horizon_days,
                "penalizer": self.penalizer,
            },
        }

    @classmethod
    def from_dict(cls, d: dict) -> BGNBDModel:
        """Rebuild a fitted model from :meth:`to_dict` output."""
        m = cls(**d["init"])
        m.params_ = {k: float(v) for k, v in d["params"].items()}
        m.log_likelihood_ = float(d["log_likelihood"])
        m.n_customers_ = int(d["n_customers"])
        m.converged_ = bool(d["converged"])
        m.params_at_bound_ = list(d.get("params_at_bound", []))
        m.n_features_in_ = 3
        m.feature_names_in_ = np.array(["frequency", "recency_days", "tenure_days"], dtype=object)
        return m


class GammaGammaModel(BaseEstimator, TransformerMixin):
    """Gamma-Gamma model of the mean spend per purchase, fitted on customers with repeat purchases.

    Input: ``frequency`` (repeat purchase days) and ``avg_repeat_value`` (mean spend per repeat day).
    ``transform`` gives ``expected_avg_value``: E[spend per purchase | x, m_x] (FHL 2005), which for a
    customer with no repeat purchase is the population mean ``p * v / (q - 1)``.
    The model assumes spend per purchase is independent of frequency; ``freq_value_corr_`` records the
    Pearson correlation between the two on the fitting data so the assumption can be checked.
    """

    def __init__(self, penalizer: float = 0.0):
        self.penalizer = penalizer

    @staticmethod
    def _inputs(X: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
        missing = [c for c in ("frequency", "avg_repeat_value") if c not in X.columns]
        if missing:
            raise ValueError(M_("Gamma-Gamma input: missing column(s) {missing}", missing=', '.join(missing)))
        x = X["frequency"].to_numpy(dtype="float64")
        m = X["avg_repeat_value"].to_numpy(dtype="float64")
        bad = np.isnan(x) | np.isnan(m) | (x < 0) | (m < 0)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise ValueError(
                M_(
                    "Gamma-Gamma input: {n_rows} row(s) with missing or negative frequency or avg_repeat_value; first "
                    "at position {index}: frequency={frequency}, avg_repeat_value={avg_value}",
                    n_rows=int(bad.sum()), index=i, frequency=x[i], avg_value=m[i],
                )
            )
        return x, m

    def fit(self, X: pd.DataFrame, y=None) -> GammaGammaModel:
        """Estimate ``p, q, v`` from the customers with ``frequency > 0`` and positive mean spend."""
        x, m = self._inputs(X)
        keep = (x > 0) & (m > 0)
        if keep.sum() < 2:
            raise ValueError(M_("Gamma-Gamma: need at least two customers with repeat purchases of value > 0"))
        (ux, um), w = _unique_weights(x[keep], m[keep])
        n = w.sum()
        pen = float(self.penalizer)

        def nll(logp: np.ndarray) -> float:
            p = np.exp(logp)
            val = -(w @ gamma_gamma_log_likelihood(p, ux, um)) / n + pen * float(p @ p)
            return float(val) if np.isfinite(val) else 1e100

        x0 = np.log(np.array([1.0, 1.0, max(float(np.median(m[keep])), 1e-3)]))
        fit = _fit_log_params(nll, x0)
        self.params_ = dict(zip(("p", "q", "v"), (float(v) for v in fit.params), strict=True))
        self.params_at_bound_ = [("p", "q", "v")[i] for i in fit.at_bound]
        self.log_likelihood_ = fit.log_likelihood * n
        self.converged_ = fit.converged
        self.n_customers_ = int(n)
        self.freq_value_corr_ = float(np.corrcoef(x[keep], m[keep])[0, 1]) if keep.sum() > 2 else float("nan")
        self.n_features_in_ = 2
        self.feature_names_in_ = np.array(["frequency", "avg_repeat_value"], dtype=object)
        return self

    def predict_expected_value(self, X: pd.DataFrame) -> np.ndarray:
        """E[mean spend per purchase | x, m_x]; the population mean when ``x == 0``."""
        check_is_fitted(self, "params_")
        x, m = self._inputs(X)
        p, q, v = self.params_["p"], self.params_["q"], self.params_["v"]
        if q <= 1:
            raise ValueError(M_("Gamma-Gamma: q={q:.3f} <= 1, the mean spend is infinite; check the spend data", q=q))
        return p * (v + x * m) / (p * x + q - 1)

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        """``expected_avg_value`` per row of ``X``."""
        return pd.DataFrame({"expected_avg_value": self.predict_expected_value(X)}, index=X.index)

    def get_feature_names_out(self, input_features=None) -> np.ndarray:
        """Output column names."""
        return np.array(["expected_avg_value"], dtype=object)

    def to_dict(self) -> dict:
        """Learned state as plain numbers (for JSON)."""
        check_is_fitted(self, "params_")
        return {
            "params": dict(self.params_),
            "log_likelihood": self.log_likelihood_,
            "n_customers": self.n_customers_,
            "converged": self.converged_,
            "params_at_bound": list(self.params_at_bound_),
            "freq_value_corr": self.freq_value_corr_,
            "init": {"penalizer": self.penalizer},
        }

    @classmethod
    def from_dict(cls, d: dict) -> GammaGammaModel:
        """Rebuild a fitted model from :meth:`to_dict` output."""
        m = cls(**d["init"])
        m.params_ = {k: float(v) for k, v in d["params"].items()}
        m.log_likelihood_ = float(d["log_likelihood"])
        m.n_customers_ = int(d["n_customers"])
        m.converged_ = bool(d["converged"])
        m.params_at_bound_ = list(d.get("params_at_bound", []))
        m.freq_value_corr_ = float(d["freq_value_corr"]) if d["freq_value_corr"] is not None else float("nan")
        m.n_features_in_ = 2
        m.feature_names_in_ = np.array(["frequency", "avg_repeat_value"], dtype=object)
        return m


def evaluate_holdout(
    model: BGNBDModel,
    calibration: pd.DataFrame,
    actual_purchase_days: pd.Series,
    holdout_days: float,
) -> dict[str, float]:
    """Compare predicted and actual repeat purchase days in a holdout period after the calibration cutoff.

    ``calibration`` is the buyers' summary at the calibration cutoff (indexed by customer);
    ``actual_purchase_days`` the holdout counts per customer (missing = 0). Returns ``mae`` (per customer),
    ``rmse``, ``predicted_total``, ``actual_total`` and ``total_pct_error`` (100 * (pred - actual) / actual).
    """
    pred = model.predict_expected_purchases(calibration, horizon_days=holdout_days)
    actual = actual_purchase_days.reindex(calibration.index).fillna(0).to_numpy(dtype="float64")
    err = pred - actual
    tot_a, tot_p = float(actual.sum()), float(pred.sum())
    return {
        "mae": float(np.mean(np.abs(err))),
        "rmse": float(np.sqrt(np.mean(err**2))),
        "predicted_total": tot_p,
        "actual_total": tot_a,
        "total_pct_error": 100.0 * (tot_p - tot_a) / tot_a if tot_a > 0 else float("nan"),
        "n_customers": float(len(actual)),
    }
