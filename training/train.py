"""Training jobs: candidates compared as MLflow child runs, the best logged as one pipeline and gated.

``train_crm`` builds the lead or churn set over several cutoffs (out-of-time split: train on the
early cutoffs, select on the next, test on the latest); ``fit_log_register`` is the shared core that
flat-table mode (`training.tabular`) uses too.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.messages import M_
from features.progress import ProgressCallback, no_progress
from training.config import TrainConfig
from training.metrics import calibration_table, evaluate, gain_curve, rate_per_band
from training.model import TRUSTED_TYPES, CRMScorer, FeaturePreprocessor
from training.scores import readable_label, to_score


@dataclass
class Split:
    """Train (for selection), validation (selection), refit (train+val) and test (out-of-time) sets."""

    X_train: pd.DataFrame
    y_train: np.ndarray
    X_val: pd.DataFrame
    y_val: np.ndarray
    X_test: pd.DataFrame
    y_test: np.ndarray
    description: dict[str, Any] = field(default_factory=dict)

    @property
    def X_refit(self) -> pd.DataFrame:
        return pd.concat([self.X_train, self.X_val])

    @property
    def y_refit(self) -> np.ndarray:
        return np.concatenate([self.y_train, self.y_val])


@dataclass
class TrainResult:
    """What a training job produced."""

    run_id: str
    model_uri: str
    model_name: str
    version: str
    best_candidate: str
    test_metrics: dict[str, float]
    promoted: bool
    decision: str
    candidates: dict[str, dict[str, float]]


def make_candidates(config: TrainConfig, categorical: list[str]) -> list[tuple[str, CRMScorer]]:
    """The candidate pipelines: logistic regression, decision tree, random forest, XGBoost search."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.tree import DecisionTreeClassifier
    from xgboost import XGBClassifier

    def scorer(est: Any, encoding: str) -> CRMScorer:
        return CRMScorer(
            estimator=est,
            preprocessor=FeaturePreprocessor(categorical=categorical, encoding=encoding),
            calibration=config.calibration,
            calibration_fraction=config.calibration_fraction,
            grade_shares=tuple(config.grade_shares),
            random_state=config.seed,
        )

    out: list[tuple[str, CRMScorer]] = []
    s = config.seed
    if "logreg" in config.candidates:
        out.append(("logreg", scorer(LogisticRegression(C=0.5, max_iter=2000), "onehot")))
    if "tree" in config.candidates:
        out.append(
            ("tree", scorer(DecisionTreeClassifier(max_depth=6, min_samples_leaf=50, random_state=s), "ordinal"))
        )
    if "forest" in config.candidates:
        rf = RandomForestClassifier(
            n_estimators=200, min_samples_leaf=20, max_features="sqrt", n_jobs=config.xgb_threads, random_state=s
        )
        out.append(("forest", scorer(rf, "ordinal")))
    if "xgboost" in config.candidates:
        rng = np.random.default_rng(s)
        space = config.xgb_search.model_dump(exclude={"n_trials"})
        seen: set[tuple] = set()
        for _ in range(config.xgb_search.n_trials * 5):
            params = {k: v[int(rng.integers(len(v)))] for k, v in space.items()}
            key = tuple(sorted(params.items()))
            if key in seen:
                continue
            seen.add(key)
            est = XGBClassifier(
                **params, tree_method="hist", n_jobs=config.xgb_threads, random_state=s, eval_metric="logloss"
            )
            out.append((f"xgboost_{len(seen)}", scorer(est, "ordinal")))
            if len(seen) >= config.xgb_search.n_trials:
                break
    return out


def data_hash(df: pd.DataFrame) -> str:
    """A stable hash of the training frame's content (rows, columns, values)."""
    h = hashlib.sha256()
    h.update(",".join(map(str, df.columns)).encode())
    h.update(pd.util.hash_pandas_object(df, index=True).to_numpy().tobytes())
    return h.hexdigest()[:16]


def _plots(y: np.ndarray, p: np.ndarray, scorer: CRMScorer, X: pd.DataFrame, outdir: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    g = gain_curve(y, p)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(g["share_contacted"], g["share_captured"], label="model")
    ax.plot([0, 1], [0, 1], "--", color="grey", label="random")
    ax.set(xlabel="share of leads contacted (best first)", ylabel="share of positives captured", title="Gain")
    ax.legend()
    fig.tight_layout()
    fig.savefig(outdir / "gain_chart.png", dpi=100)
    plt.close(fig)
    c = calibration_table(y, p)
    fig, ax = plt.subplots(figsize=(5, 4))
    ax.plot(c["mean_predicted"], c["observed_rate"], "o-", label="model")
    lim = max(c["mean_predicted"].max(), c["observed_rate"].max()) * 1.05
    ax.plot([0, lim], [0, lim], "--", color="grey", label="perfect")
    ax.set(xlabel="mean predicted probability", ylabel="observed rate", title="Calibration (out-of-time)")
    ax.legend()
    fig.tight_layout()
    fig.savefig(outdir / "calibration.png", dpi=100)
    plt.close(fig)
    if scorer.supports_reasons:
        sample = X.sample(min(len(X), 2000), random_state=0)
        Z = scorer.preprocessor_.transform(sample)
        contrib = scorer.contributions_matrix(Z)[:, :-1]
        groups = scorer.reason_groups()
        folded = np.column_stack([contrib[:, idx].sum(axis=1) for _, idx in groups])
        imp = pd.Series(np.abs(folded).mean(axis=0), index=[g for g, _ in groups]).sort_values(ascending=False)
        imp.rename("mean_abs_contribution").to_frame().to_csv(outdir / "feature_importance.csv")
        top = imp.head(15).index[::-1]
        fig, ax = plt.subplots(figsize=(7, 6))
        ax.barh([readable_label(t) for t in top], imp[top])
        ax.set(xlabel="mean |contribution| to log-odds", title="Feature importance")
        fig.tight_layout()
        fig.savefig(outdir / "feature_importance.png", dpi=100)
        plt.close(fig)
        # SHAP-style summary: each dot one lead, x = its contribution, colour = feature value rank
        fig, ax = plt.subplots(figsize=(7, 6))
        names = [g for g, _ in groups]
        for i, t in enumerate(top):
            j = names.index(t)
            vals = (
                pd.to_numeric(sample[t], errors="coerce")
                if t in sample.columns
                else pd.Series(np.nan, index=sample.index)
            )
            colour = vals.rank(pct=True).fillna(0.5).to_numpy()
            jitter = np.random.default_rng(i).uniform(-0.3, 0.3, len(sample))
            ax.scatter(folded[:, j], i + jitter, c=colour, cmap="coolwarm", s=4, alpha=0.6)
        ax.set_yticks(range(len(top)), [readable_label(t) for t in top])
        ax.axvline(0, color="grey", lw=0.5)
        ax.set(xlabel="contribution to log-odds (exact TreeSHAP / linear)", title="SHAP summary (red = high value)")
        fig.tight_layout()
        fig.savefig(outdir / "shap_summary.png", dpi=100)
        plt.close(fig)


def model_requirements() -> list[str]:
    """Pinned requirements of a logged model, from the running environment.

    Stated explicitly because MLflow's inference re-imports the model in a subprocess (~15 s per log).
    """
    from importlib.metadata import PackageNotFoundError, version

    out = []
    for dist in ("mlflow", "scikit-learn", "xgboost", "pandas", "numpy", "scipy", "skops", "pyarrow", "crm-scoring"):
        try:
            out.append(f"{dist}=={version(dist)}")
        except PackageNotFoundError:
            continue
    return out


def _load_champion(name: str):
    from training.registry import CHAMPION, get_alias_version

    version = get_alias_version(name, CHAMPION)
    if version is None:
        return None, None
    import mlflow

    return version, mlflow.sklearn.load_model(f"models:/{name}/{version}")


def fit_log_register(
    split: Split,
    config: TrainConfig,
    categorical: list[str],
    builder: Any = None,
    extra_params: dict[str, Any] | None = None,
    extra_tags: dict[str, str] | None = None,
    candidates: list[tuple[str, CRMScorer]] | None = None,
    signature_fn: Callable[[pd.DataFrame, np.ndarray], Any] | None = None,
    extra_dicts: dict[str, dict[str, Any]] | None = None,
    version_tags: dict[str, str] | None = None,
    progress: ProgressCallback = no_progress,
) -> TrainResult:
    """Train every candidate as a child run, refit the best, log it as one MLflow model, register and gate.

    The parent run is a new run in ``config.experiment`` (default ``crmscore-<task>``), or inside ``mlflow run``
    the run MLflow opened (:func:`training.registry.start_job_run`).

    ``candidates`` defaults to `make_candidates`; ``signature_fn`` replaces MLflow's signature inference
    (flat-table models accept raw columns of any type); ``extra_dicts`` are logged as JSON in the parent
    run and ``version_tags`` added to the registered version. ``progress`` counts the candidates, then the refit
    and the logging.
    """
    import mlflow
    from mlflow.models import infer_signature

    from training.registry import decide_promotion, register_challenger, set_champion, start_job_run, tag_version

    name = config.registered_name()
    t0 = time.perf_counter()
    with start_job_run(config.experiment or f"crmscore-{config.task}", f"train-{name}") as parent:
        mlflow.log_params({"task": config.task, "model_name": name, **(extra_params or {})})
        mlflow.log_params({f"split.{k}": v for k, v in split.description.items()})
        mlflow.log_params(
            {
                "rows_train": len(split.y_train),
                "rows_val": len(split.y_val),
                "rows_test": len(split.y_test),
                "n_features": split.X_train.shape[1],
                "data_hash": data_hash(pd.concat([split.X_refit, split.X_test])),
                "calibration": config.calibration,
                "promotion_margin": config.promotion_margin,
                "seed": config.seed,
            }
        )
        if extra_tags:
            mlflow.set_tags(extra_tags)
        for fname, payload in (extra_dicts or {}).items():
            mlflow.log_dict(payload, fname)
        results: dict[str, dict[str, float]] = {}
        fitted: dict[str, CRMScorer] = {}
        X_sel, y_sel = _cap_rows(split.X_train, split.y_train, config.selection_max_rows, config.seed)
        mlflow.log_param("rows_selection", len(y_sel))
        todo = candidates or make_candidates(config, categorical)
        for i, (cname, cand) in enumerate(todo):
            progress("training candidates", i, len(todo))
            with mlflow.start_run(run_name=cname, nested=True, experiment_id=parent.info.experiment_id):
                ts = time.perf_counter()
                cand.fit(X_sel, y_sel)
                p = cand.predict_proba(split.X_val)[:, 1]
                m = evaluate(split.y_val, p)
                m["fit_seconds"] = time.perf_counter() - ts
                mlflow.log_params({"candidate": cname, **_est_params(cand.estimator)})
                mlflow.log_metrics({f"val_{k}": v for k, v in m.items() if np.isfinite(v)})
                results[cname] = m
                fitted[cname] = cand
        eligible = {k: v for k, v in results.items() if not config.require_reasons or fitted[k].supports_reasons}
        if not eligible:
            raise ValueError(M_(
                "no candidate gives per-row reasons: add xgboost or logreg, or set require_reasons: false",
            ))
        best = select_best(eligible, config.selection_auc_tolerance)
        progress("refitting the best candidate")
        final = fitted[best].__class__(**fitted[best].get_params(deep=False))
        final.set_params(builder=builder)
        X_fit, y_fit = split.X_refit, split.y_refit
        if config.refit_max_rows is not None:
            X_fit, y_fit = _cap_rows(X_fit, y_fit, config.refit_max_rows, config.seed)
        mlflow.log_param("rows_refit", len(y_fit))
        final.fit(X_fit, y_fit)
        p_test = final.predict_proba(split.X_test)[:, 1]
        test = evaluate(split.y_test, p_test)
        mlflow.log_param("best_candidate", best)
        mlflow.log_metrics({f"test_{k}": v for k, v in test.items() if np.isfinite(v)})
        mlflow.log_metric("train_seconds", time.perf_counter() - t0)

        progress("logging and registering")
        with tempfile.TemporaryDirectory() as tmp:
            out = Path(tmp)
            scores = to_score(p_test)
            rate_per_band(split.y_test, scores).to_csv(out / "rate_per_score_band.csv", index=False)
            gain_curve(split.y_test, p_test).to_csv(out / "gain_curve.csv", index=False)
            calibration_table(split.y_test, p_test).to_csv(out / "calibration.csv", index=False)
            pd.DataFrame(results).T.to_csv(out / "candidates.csv")
            (out / "grade_thresholds.json").write_text(
                json.dumps(
                    {
                        "A": final.grade_thresholds_[0],
                        "B": final.grade_thresholds_[1],
                        "C": final.grade_thresholds_[2],
                        "score": "round(100 * probability), clipped to 1..99",
                    }
                )
            )
            _plots(split.y_test, p_test, final, split.X_test, out)
            ref = split.X_test.sample(min(len(split.X_test), config.reference_rows), random_state=config.seed)
            # raw object columns (mixed text and numbers) are stored as text so they write to Parquet
            ref = ref.apply(lambda c: c.astype("string") if c.dtype == object else c)
            ref = ref.assign(probability=final.predict_proba(ref)[:, 1])
            ref.reset_index(drop=True).to_parquet(out / "reference.parquet", index=False)
            mlflow.log_artifacts(str(out), artifact_path="evaluation")

        example = split.X_test.head(5).reset_index(drop=True)
        if signature_fn is None:
            signature = infer_signature(example, final.predict_proba(example))
        else:
            example = example.astype(object).where(example.notna(), None)
            signature = signature_fn(example, final.predict_proba(example))
        info = mlflow.sklearn.log_model(
            final,
            name="model",
            signature=signature,
            input_example=example,
            pyfunc_predict_fn="predict_proba",
            skops_trusted_types=TRUSTED_TYPES,
            serialization_format="skops",
            pip_requirements=model_requirements(),
        )
        model_uri = info.model_uri
        version = register_challenger(
            name,
            model_uri,
            tags={
                "crmscore.task": config.task,
                "crmscore.candidate": best,
                "crmscore.run_id": parent.info.run_id,
                "crmscore.trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
                **{f"crmscore.test_{k}": f"{v:.6f}" for k, v in test.items() if np.isfinite(v)},
                **(version_tags or {}),
            },
        )
        champ_version, champ = _load_champion(name)
        champ_metrics = None
        if champ is not None:
            try:
                champ_metrics = evaluate(split.y_test, champ.predict_proba(split.X_test)[:, 1])
            except Exception as e:  # noqa: BLE001 - a champion on other features cannot score this data
                mlflow.set_tag("crmscore.champion_eval_error", str(e)[:500])
        decision = decide_promotion(
            test["roc_auc"],
            test["ece"],
            None if champ_metrics is None else champ_metrics["roc_auc"],
            None if champ_metrics is None else champ_metrics["ece"],
            config.promotion_margin,
            config.ece_tolerance,
        )
        if champ_metrics is None and champ is not None:
            decision = decision.__class__(
                True, f"champion v{champ_version} cannot score the new data", test["roc_auc"], None, test["ece"], None
            )
        tag_version(name, version, {**decision.as_tags(), "crmscore.gate.champion_version": str(champ_version or "")})
        if decision.promote:
            set_champion(name, version, decision.reason)
        mlflow.set_tags({"crmscore.version": version, "crmscore.promoted": str(decision.promote).lower()})
        mlflow.log_dict(
            {
                "promote": decision.promote,
                "reason": decision.reason,
                "champion_version": champ_version,
                "challenger_version": version,
                "challenger": test,
                "champion": champ_metrics,
            },
            "promotion_decision.json",
        )
    return TrainResult(
        run_id=parent.info.run_id,
        model_uri=model_uri,
        model_name=name,
        version=version,
        best_candidate=best,
        test_metrics=test,
        promoted=decision.promote,
        decision=decision.reason,
        candidates=results,
    )


def _cap_rows(X: pd.DataFrame, y: np.ndarray, cap: int, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """A stratified sample of at most ``cap`` rows (candidate selection; the winner's refit when capped)."""
    if len(y) <= cap:
        return X, y
    from sklearn.model_selection import train_test_split

    idx, _ = train_test_split(np.arange(len(y)), train_size=cap, stratify=y, random_state=seed)
    idx = np.sort(idx)
    return X.iloc[idx], y[idx]


def select_best(results: dict[str, dict[str, float]], auc_tolerance: float) -> str:
    """The candidate with the lowest validation log loss among those within ``auc_tolerance`` of the best AUC:
    ranking first, then calibration and sharpness (log loss is a proper scoring rule)."""
    top = max(np.nan_to_num(m["roc_auc"]) for m in results.values())
    close = [k for k, m in results.items() if np.nan_to_num(m["roc_auc"]) >= top - auc_tolerance]
    return min(close, key=lambda k: results[k]["log_loss"])


def _est_params(est: Any) -> dict[str, Any]:
    keep = (
        "C",
        "max_depth",
        "min_samples_leaf",
        "n_estimators",
        "learning_rate",
        "subsample",
        "colsample_bytree",
        "min_child_weight",
        "max_features",
    )
    params = est.get_params(deep=False)
    return {k: params[k] for k in keep if k in params and params[k] is not None}


def split_by_cutoff(ds: pd.DataFrame) -> Split:
    """Out-of-time split of a multi-cutoff set: latest cutoff = test, the one before = validation."""
    cuts = sorted(ds["cutoff"].unique())
    if len(cuts) < 3:
        raise ValueError(M_("need at least 3 cutoffs for train/validation/test, got {value}", value=len(cuts)))
    feats = ds.drop(columns=["cutoff", "label"])
    y = ds["label"].to_numpy().astype(int)
    c = ds["cutoff"].to_numpy()
    tr, va, te = c < cuts[-2], c == cuts[-2], c == cuts[-1]
    for nm, m in (("train", tr), ("validation", va), ("test", te)):
        if y[m].min(initial=1) == y[m].max(initial=0):
            raise ValueError(M_("the {nm} cutoff(s) have only one class: not enough data to train", nm=nm))
    return Split(
        feats[tr],
        y[tr],
        feats[va],
        y[va],
        feats[te],
        y[te],
        description={
            "train_cutoffs": ",".join(str(pd.Timestamp(x).date()) for x in cuts[:-2]),
            "validation_cutoff": str(pd.Timestamp(cuts[-2]).date()),
            "test_cutoff": str(pd.Timestamp(cuts[-1]).date()),
        },
    )


def train_crm(data_dir: str | Path, config: TrainConfig, progress: ProgressCallback = no_progress) -> TrainResult:
    """`crmscore train lead|churn`: build the multi-cutoff set from a data dir, train, log, register, gate."""
    from features.build import CRMFeatureBuilder
    from features.feedback import with_feedback
    from features.io import load_tables
    from features.labels import build_training_set, latest_labelable_cutoff
    from training.registry import configure_tracking

    configure_tracking()
    progress("reading tables")
    tables = load_tables(data_dir, required=("customers", "orders"))
    if config.features.feedback_features:
        tables = with_feedback(tables, data_dir)
    as_of = pd.Timestamp(config.as_of) if config.as_of else latest_labelable_cutoff(tables, config.labels.horizon_days)
    progress("building the training set")
    ds = build_training_set(tables, config.task, as_of, config.features, config.labels)
    split = split_by_cutoff(ds)
    builder = CRMFeatureBuilder.from_config(config.features).fit()
    result = fit_log_register(
        split,
        config,
        categorical=list(builder.categorical_features_),  # without the BANT answers when features.bant_features is off
        builder=builder,
        extra_params={
            "data_dir": str(Path(data_dir).name),
            "as_of": str(as_of.date()),
            "horizon_days": config.labels.horizon_days,
            "n_cutoffs": config.labels.n_cutoffs,
            "cutoff_step_days": config.labels.cutoff_step_days,
        },
        progress=progress,
    )
    oracle = compare_with_oracle(Path(data_dir), config, split, result)
    if oracle:
        import mlflow

        with mlflow.start_run(run_id=result.run_id):
            mlflow.log_metrics(oracle)
        result.test_metrics.update(oracle)
    return result


def compare_with_oracle(data_dir: Path, config: TrainConfig, split: Split, result: TrainResult) -> dict[str, float]:
    """On demo data (a ``truth/`` folder from `crmscore synth`), the oracle AUC of the true probabilities on
    the same out-of-time rows, and the model's AUC as a share of it. Empty when there is no matching truth."""
    from sklearn.metrics import roc_auc_score

    truth_file, meta_file = data_dir / "truth" / "truth.parquet", data_dir / "truth" / "truth.json"
    if not truth_file.is_file() or not meta_file.is_file():
        return {}
    meta = json.loads(meta_file.read_text())
    if (
        str(meta.get("as_of", ""))[:10] != split.description.get("test_cutoff")
        or int(meta.get("horizon_days", -1)) != config.labels.horizon_days
    ):
        return {}
    col = "p_convert" if config.task == "lead" else "p_churn"
    truth = pd.read_parquet(truth_file).set_index("customer_id")[col]
    p_true = truth.reindex(split.X_test.index.astype(str)).to_numpy()
    ok = np.isfinite(p_true)
    if ok.sum() < len(p_true) * 0.99 or len(set(split.y_test[ok])) < 2:
        return {}
    oracle = float(roc_auc_score(split.y_test[ok], p_true[ok]))
    return {"test_oracle_roc_auc": oracle, "test_auc_share_of_oracle": result.test_metrics["roc_auc"] / oracle}
