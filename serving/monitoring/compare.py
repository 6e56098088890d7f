"""The comparison itself: sampling, PSI, per-feature profiles and Evidently's per-column drift tests."""

from __future__ import annotations

import math
import warnings as warnings_module
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.messages import M_
from serving.monitoring.config import PREDICTION_COLUMN, MonitorConfig, MonitorError
from serving.monitoring.importance import drift_distance
from serving.monitoring.sources import as_utc

# ------------------------------------------------------------------------------------------------ statistics


def population_stability_index(
    reference: np.ndarray | pd.Series, current: np.ndarray | pd.Series, bins: int = 10, eps: float = 1e-4
) -> tuple[float, pd.DataFrame]:
    """PSI of ``current`` against ``reference`` over ``bins`` quantile bins of the reference.

    Σ (c − r) · ln(c / r) over bins, shares floored at ``eps``; missing values are ignored. Ties in the
    reference merge bins (fewer than ``bins``). Returns the PSI and the per-bin table.
    """
    ref = np.asarray(reference, dtype="float64")
    cur = np.asarray(current, dtype="float64")
    ref, cur = ref[np.isfinite(ref)], cur[np.isfinite(cur)]
    if len(ref) == 0 or len(cur) == 0:
        return float("nan"), pd.DataFrame(columns=["lower", "upper", "reference_share", "current_share"])
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)[1:-1]))
    k = len(edges) + 1
    r = np.bincount(np.searchsorted(edges, ref, side="right"), minlength=k) / len(ref)
    c = np.bincount(np.searchsorted(edges, cur, side="right"), minlength=k) / len(cur)
    rr, cc = np.maximum(r, eps), np.maximum(c, eps)
    psi = float(np.sum((cc - rr) * np.log(cc / rr)))
    lower = np.concatenate([[-np.inf], edges])
    upper = np.concatenate([edges, [np.inf]])
    table = pd.DataFrame({"lower": lower, "upper": upper, "reference_share": r, "current_share": c})
    return psi, table


def sample_positions(values: Any, n: int, seed: int = 0, strata: int = 10) -> np.ndarray | None:
    """Sorted positions of at most ``n`` rows, stratified by deciles (``strata``) of ``values``, seeded.

    Each stratum keeps its share of the rows (largest-remainder rounding), so the sample's score
    distribution matches the full data's; missing values form their own stratum. None when there
    are at most ``n`` rows (no sampling).
    """
    p = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    if len(p) <= n:
        return None
    finite = np.isfinite(p)
    edges = np.unique(np.quantile(p[finite], np.linspace(0, 1, strata + 1)[1:-1])) if finite.any() else np.array([])
    stratum = np.where(finite, np.searchsorted(edges, np.where(finite, p, 0.0), side="right"), len(edges) + 1)
    counts = np.bincount(stratum, minlength=len(edges) + 2)
    raw = counts * (n / len(p))
    quota = np.floor(raw).astype(int)
    short = n - quota.sum()
    if short > 0:
        quota[np.argsort(-(raw - quota), kind="stable")[:short]] += 1
    rng = np.random.default_rng(seed)
    order = np.lexsort((rng.random(len(p)), stratum))  # grouped by stratum, random within it
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    keep = np.concatenate([order[s : s + q] for s, q in zip(starts, quota, strict=True)])
    return np.sort(keep)


def stratified_sample(
    df: pd.DataFrame, n: int, seed: int = 0, column: str = PREDICTION_COLUMN, strata: int = 10
) -> pd.DataFrame:
    """At most ``n`` rows of ``df`` stratified by deciles of ``column`` (see :func:`sample_positions`).

    Row order is preserved; returns ``df`` itself when it has at most ``n`` rows.
    """
    pos = sample_positions(df[column], n, seed, strata)
    return df if pos is None else df.iloc[pos]


def _is_categorical(s: pd.Series) -> bool:
    return not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s))


def as_numeric(s: pd.Series) -> pd.Series:
    out = pd.to_numeric(s, errors="coerce").astype("float64")
    return out.where(np.isfinite(out.to_numpy()), np.nan)


@dataclass
class _Codes:
    """A categorical column as integer codes (−1 = missing) into string categories."""

    codes: np.ndarray
    categories: np.ndarray

    @classmethod
    def of(cls, s: pd.Series) -> _Codes:
        if not isinstance(s.dtype, pd.CategoricalDtype):
            s = s.astype("category")
        cats = np.asarray(s.cat.categories.astype(str), dtype=object)
        return cls(s.cat.codes.to_numpy(dtype=np.int64), cats)

    def values(self, pos: np.ndarray | None = None) -> pd.Series:
        """The (sampled) values as Python strings, missing as None."""
        c = self.codes if pos is None else self.codes[pos]
        return pd.Series(np.where(c >= 0, self.categories[np.maximum(c, 0)], None), dtype=object)


def _take(s: pd.Series, pos: np.ndarray | None) -> pd.Series:
    return (s if pos is None else s.iloc[pos]).reset_index(drop=True)


def _score_kind(method: str) -> str:
    return "p_value" if "p_value" in method.lower() else "distance"


# ------------------------------------------------------------------------------------------------ comparison


@dataclass
class DriftComparison:
    """What :func:`compare` found: the JSON-ready summary parts and the Evidently snapshot."""

    rows: dict[str, Any]
    sampling: dict[str, Any]
    data_drift: dict[str, Any]
    prediction_drift: dict[str, Any]
    warnings: list[str]
    snapshot: Any = None


def compare(
    current: pd.DataFrame,
    reference: pd.DataFrame,
    config: MonitorConfig | None = None,
    *,
    timestamp: Any = None,
    tags: list[str] | None = None,
    metadata: dict[str, Any] | None = None,
) -> DriftComparison:
    """Compare recorded rows (features + ``probability``) with the training reference sample.

    The model's features are the reference's columns other than ``probability``. Missing shares,
    new categories and the PSI use every current row; Evidently's per-column tests use seeded
    samples stratified by probability decile (``max_current_rows`` / ``max_reference_rows``).
    """
    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    from features.contract import PII_COLUMNS

    cfg = config or MonitorConfig()
    if PREDICTION_COLUMN not in current.columns:
        raise MonitorError(M_("the recorded rows have no {column!r} column", column=PREDICTION_COLUMN))
    features = [str(c) for c in reference.columns if c != PREDICTION_COLUMN and c not in PII_COLUMNS]
    categorical = [c for c in features if _is_categorical(reference[c])]
    absent = [c for c in features if c not in current.columns]
    warnings: list[str] = []
    if absent:
        warnings.append(
            f"{len(absent)} model feature(s) absent from the records (counted as drifted): {', '.join(absent[:10])}"
        )

    cur_prob = as_numeric(current[PREDICTION_COLUMN])
    ref_prob = as_numeric(reference[PREDICTION_COLUMN])
    cur_pos = sample_positions(cur_prob, cfg.max_current_rows, cfg.sample_seed)
    ref_pos = sample_positions(ref_prob, cfg.max_reference_rows, cfg.sample_seed)
    # every current row: missing shares, new categories, coercion losses; only the samples are kept
    profiles: dict[str, dict[str, Any]] = {}
    cur_s: dict[str, pd.Series] = {}
    ref_s: dict[str, pd.Series] = {}
    evid_num: list[str] = []
    evid_cat: list[str] = []
    for c in features:
        is_cat = c in categorical
        prof: dict[str, Any] = {"type": "categorical" if is_cat else "numeric"}
        profiles[c] = prof
        if is_cat:
            ref_codes = _Codes.of(reference[c])
            prof["missing_share_reference"] = float((ref_codes.codes < 0).mean())
            sr = ref_codes.values(ref_pos)
        else:
            ref_col = as_numeric(reference[c])
            prof["missing_share_reference"] = float(ref_col.isna().mean())
            sr = _take(ref_col, ref_pos)
        if c in absent:
            prof.update(missing_share_current=1.0, drifted=True, method="absent from the records")
            continue
        raw = current[c]
        if is_cat:
            cur_codes = _Codes.of(raw)
            missing = cur_codes.codes < 0
            sc = cur_codes.values(cur_pos)
        else:
            arr = pd.to_numeric(raw, errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
            missing = ~np.isfinite(arr)
            clean = np.where(missing, np.nan, arr)
            sc = pd.Series(clean if cur_pos is None else clean[cur_pos])
        lost = int(missing.sum() - raw.isna().sum())
        if lost > 0:
            warnings.append(f"{c}: {lost:,} recorded value(s) are not numbers or not finite (counted as missing)")
        prof["missing_share_current"] = float(missing.mean()) if len(missing) else 0.0
        if prof["missing_share_current"] - prof["missing_share_reference"] > cfg.warn_missing_increase:
            warnings.append(
                f"{c}: missing share {prof['missing_share_reference']:.1%} → {prof['missing_share_current']:.1%}"
            )
        if is_cat:
            counts = np.bincount(cur_codes.codes[~missing], minlength=len(cur_codes.categories))
            is_new = ~np.isin(
                cur_codes.categories, ref_codes.categories[np.unique(ref_codes.codes[ref_codes.codes >= 0])]
            )
            n_values = int(counts.sum())
            share = float(counts[is_new].sum() / n_values) if n_values else 0.0
            top = [j for j in np.argsort(-counts, kind="stable") if is_new[j] and counts[j] > 0][:5]
            prof["new_category_share"] = share
            prof["new_categories"] = {str(cur_codes.categories[j]): int(counts[j]) for j in top}
            if share > cfg.warn_new_category_share:
                shown = ", ".join(repr(k) for k in prof["new_categories"])
                warnings.append(f"{c}: {share:.1%} of values are categories the reference never had ({shown})")
        # Evidently needs values on both sides; otherwise the verdict is decided here
        ref_empty, cur_empty = bool(sr.isna().all()), bool(sc.isna().all())
        if ref_empty or cur_empty:
            side = "in both" if ref_empty and cur_empty else "in the reference" if ref_empty else "in the records"
            prof.update(method=f"no values {side}", drifted=bool(ref_empty != cur_empty))
            continue
        cur_s[c], ref_s[c] = sc, sr
        (evid_cat if is_cat else evid_num).append(c)
    for c in evid_num + evid_cat:  # the top-feature rule's distance (importance.py), on the same samples
        profiles[c]["distance"] = drift_distance(cur_s[c], ref_s[c], c in categorical)
    cur_s[PREDICTION_COLUMN] = _take(cur_prob, cur_pos)
    ref_s[PREDICTION_COLUMN] = _take(ref_prob, ref_pos)
    cur_frame, ref_frame = pd.DataFrame(cur_s), pd.DataFrame(ref_s)

    definition = DataDefinition(numerical_columns=evid_num + [PREDICTION_COLUMN], categorical_columns=evid_cat)
    # the preset covers the features (its drifted share is the features' share); the prediction is tested apart
    metrics: list[Any] = [ValueDrift(column=PREDICTION_COLUMN, method=cfg.stattest, threshold=cfg.stattest_threshold)]
    if evid_num or evid_cat:
        preset = DataDriftPreset(
            columns=evid_num + evid_cat,
            drift_share=cfg.alert_drift_share,
            method=cfg.stattest,
            threshold=cfg.stattest_threshold,
        )
        metrics.insert(0, preset)
    report = Report(metrics, include_tests=True)
    run_kw: dict[str, Any] = {"tags": tags or [], "metadata": metadata or {}}
    if timestamp is not None:
        run_kw["timestamp"] = as_utc(timestamp).tz_convert(None).to_pydatetime()
    with warnings_module.catch_warnings(), np.errstate(invalid="ignore", divide="ignore"):
        # Evidently correlates every numeric column; constant ones give harmless divide-by-zero warnings
        warnings_module.simplefilter("ignore", RuntimeWarning)
        snapshot = report.run(
            Dataset.from_pandas(cur_frame, data_definition=definition),
            Dataset.from_pandas(ref_frame, data_definition=definition),
            **run_kw,
        )
    evidently = _read_value_drift(snapshot.dict())
    for c in evid_num + evid_cat:
        r = evidently.get(c)
        if r is None:
            raise RuntimeError(f"Evidently returned no drift result for column {c!r}")
        profiles[c].update(r)

    drifted = [c for c in features if profiles[c].get("drifted")]
    n = len(features)
    data_drift = {
        "n_features": n,
        "n_drifted": len(drifted),
        "share_drifted": (len(drifted) / n) if n else 0.0,
        "drifted_features": _by_severity(drifted, profiles),
        "features": profiles,
    }
    psi, bins = population_stability_index(ref_prob, cur_prob, cfg.psi_bins)
    ev_pred = evidently[PREDICTION_COLUMN]
    prediction_drift = {
        "psi": psi,
        "psi_bins": bins.replace([np.inf, -np.inf], None).to_dict(orient="records"),
        "evidently": ev_pred,
        "mean_probability_reference": float(ref_prob.mean()),
        "mean_probability_current": float(cur_prob.mean()),
        "score_quantiles_reference": _score_quantiles(ref_prob),
        "score_quantiles_current": _score_quantiles(cur_prob),
        "missing_probability_rows": int(cur_prob.isna().sum()),
    }
    rows = {"current": int(len(current)), "reference": int(len(reference))}
    sampling = {
        "method": "stratified by probability decile, seeded, order kept",
        "seed": cfg.sample_seed,
        "current_rows_tested": int(len(cur_frame)),
        "reference_rows_tested": int(len(ref_frame)),
        "full_data": ["psi", "missing shares", "new categories", "performance"],
    }
    return DriftComparison(rows, sampling, data_drift, prediction_drift, warnings, snapshot)


def _read_value_drift(snap: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per column: Evidently's method, score, threshold and verdict (its own drift test) from ``snapshot.dict()``."""
    out: dict[str, dict[str, Any]] = {}
    for m in snap.get("metrics", []):
        conf = m.get("config", {})
        if not str(conf.get("type", "")).endswith(":ValueDrift"):
            continue
        method = str(conf.get("method"))
        score = m.get("value")
        out[str(conf["column"])] = {
            "method": method,
            "score_kind": _score_kind(method),
            "score": None if score is None else float(score),
            "threshold": conf.get("threshold"),
        }
    for t in snap.get("tests", []):
        params = (t.get("metric_config") or {}).get("params") or {}
        col = params.get("column")
        if str(params.get("type", "")).endswith(":ValueDrift") and col in out:
            out[col]["drifted"] = t.get("status") == "FAIL"
    for r in out.values():
        if "drifted" not in r:  # no test result: decide as Evidently does
            s, thr = r["score"], r["threshold"]
            r["drifted"] = bool(
                s is not None and thr is not None and (s < thr if r["score_kind"] == "p_value" else s >= thr)
            )
    return out


def _by_severity(names: list[str], profiles: dict[str, dict[str, Any]]) -> list[str]:
    def severity(c: str) -> float:
        p = profiles[c]
        s, thr = p.get("score"), p.get("threshold")
        if s is None or not thr:
            return math.inf  # absent or all missing
        return thr / max(s, 1e-300) if p.get("score_kind") == "p_value" else s / thr

    return sorted(names, key=lambda c: (-severity(c), c))


def _score_quantiles(p: pd.Series) -> dict[str, float | None]:
    from training.scores import to_score

    v = p.dropna().to_numpy()
    if len(v) == 0:
        return {"p10": None, "p50": None, "p90": None}
    s = to_score(v)
    return {f"p{q}": float(np.percentile(s, q)) for q in (10, 50, 90)}
