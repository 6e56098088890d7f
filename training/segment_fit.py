"""``crmscore segment fit``: fit the segmenter on a data dir at a cutoff, log it to MLflow, register it.

:func:`fit_segments` is a short sequence of pure steps (load the tables without PII, summarise at the cutoff,
fit and score with :class:`training.segment.CustomerSegmenter`, backtest BG/NBD, build the profiles and metrics
of :class:`SegmentReport`) and one tracking step, :func:`log_and_register` (the run, its params, metrics and
artifacts, the pyfunc of :mod:`training.segment_model`, the registry). :func:`profile_segments` and
:func:`plot_segments` make the tables and the chart a marketer reads; none of them holds a customer id.
Imports :mod:`training.segment`, :mod:`training.segment_model` and :mod:`training.registry`.
"""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from features.contract import drop_pii
from features.messages import M_
from features.progress import ProgressCallback, no_progress
from training.btyd import BGNBDModel, count_purchase_days, evaluate_holdout, summarise_transactions
from training.segment import CustomerSegmenter, input_columns, resolve_as_of, summarise_customers
from training.segment_config import SEGMENT_ORDER, SegmentConfig

log = logging.getLogger(__name__)


@dataclass
class SegmentFitResult:
    """What ``crmscore segment fit`` did."""

    run_id: str
    model_uri: str
    version: str
    champion_set: bool
    as_of: str
    n_customers: int
    n_buyers: int
    k: int
    silhouette: float
    bgnbd_params: dict[str, float]
    gamma_gamma_params: dict[str, float]
    holdout: dict[str, float] | None
    segment_sizes: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)


def _slug(s: str) -> str:
    return re.sub(r"[^0-9a-z]+", "_", s.lower()).strip("_")


def _ordered_segments(names: list[str]) -> list[str]:
    known = [s for s in SEGMENT_ORDER if s in names]
    return known + sorted(set(names) - set(known))


def profile_segments(summary: pd.DataFrame, scored: pd.DataFrame, by: str, horizon_days: int) -> pd.DataFrame:
    """Per-group size, share and mean behaviour (no customer ids): the table a marketer reads."""
    n = int(horizon_days)
    df = pd.concat(
        [
            summary.drop(columns="customer_id").reset_index(drop=True),
            scored.drop(columns="customer_id").reset_index(drop=True),
        ],
        axis=1,
    )
    df = df.loc[:, ~df.columns.duplicated()]
    agg = df.groupby(by, dropna=False).agg(
        customers=("monetary", "size"),
        mean_recency_days=("recency_days", "mean"),
        mean_frequency=("frequency", "mean"),
        mean_spend=("monetary", "mean"),
        mean_p_alive=("p_alive", "mean"),
        **{
            f"mean_expected_purchases_{n}d": (f"expected_purchases_{n}d", "mean"),
            f"mean_expected_value_{n}d": (f"expected_value_{n}d", "mean"),
            f"total_expected_value_{n}d": (f"expected_value_{n}d", "sum"),
        },
    )
    agg.insert(1, "share", agg["customers"] / agg["customers"].sum())
    if by == "rfm_segment":
        agg = agg.reindex(_ordered_segments(list(agg.index)))
    return agg.reset_index()


def plot_segments(profile: pd.DataFrame, path: str | Path, title: str) -> Path:
    """Bar chart of segment sizes with mean spend per customer beside it (PNG, Agg backend)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    prof = profile.iloc[::-1]  # first segment on top
    fig, (ax1, ax2) = plt.subplots(
        1, 2, figsize=(11, 0.45 * len(prof) + 1.8), sharey=True, gridspec_kw={"width_ratios": [3, 2]}
    )
    y = np.arange(len(prof))
    ax1.barh(y, prof["customers"], color="#4C72B0")
    for yi, (c, s) in enumerate(zip(prof["customers"], prof["share"], strict=True)):
        ax1.text(c, yi, f" {int(c):,} ({s:.0%})", va="center", fontsize=8)
    ax1.set_yticks(y, prof["rfm_segment"])
    ax1.set_xlabel("customers")
    ax1.set_xlim(0, prof["customers"].max() * 1.3)
    ax1.set_title("Customers per segment")
    spend = prof["mean_spend"].fillna(0)
    ax2.barh(y, spend, color="#DD8452")
    for yi, v in enumerate(spend):
        ax2.text(v, yi, f" {v:,.0f}", va="center", fontsize=8)
    ax2.set_xlabel("mean spend per customer (to date)")
    ax2.set_xlim(0, max(float(spend.max()), 1.0) * 1.3)
    ax2.set_title("Mean spend")
    fig.suptitle(title)
    fig.tight_layout()
    p = Path(path)
    fig.savefig(p, dpi=110)
    plt.close(fig)
    return p


@dataclass
class SegmentReport:
    """What the fitted segmenter says about the population: profiles per RFM segment, cluster and value tier
    (no customer ids), segment sizes, and the metrics logged to the run."""

    segments: pd.DataFrame
    clusters: pd.DataFrame
    tiers: pd.DataFrame
    sizes: dict[str, int]
    metrics: dict[str, float]


def load_segment_tables(data_dir: str | Path) -> tuple[dict[str, pd.DataFrame], list[str]]:
    """The contract tables of ``data_dir`` with the PII columns dropped, and a note per optional table absent
    (treated as empty); ``orders`` is required."""
    from features.io import load_tables

    tables = load_tables(data_dir, required=("orders",))
    notes = [
        f"table {t} absent from {data_dir}: treated as empty"
        for t in ("customers", "interactions", "marketing_touches")
        if t not in tables
    ]
    return {k: drop_pii(v) for k, v in tables.items()}, notes


def paid_orders(orders: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    """Paid orders on or before ``as_of``; a clear error when there is none."""
    paid = orders.loc[(orders["status"] == "paid").fillna(False).to_numpy(dtype=bool) & (orders["ts"] <= as_of)]
    if paid.empty:
        raise ValueError(M_("orders: no paid order on or before {as_of}", as_of=as_of))
    return paid


def _holdout_metric(
    paid: pd.DataFrame, as_of: pd.Timestamp, cfg: SegmentConfig
) -> tuple[dict[str, float] | None, str | None]:
    """Backtest of the BG/NBD fit: calibrate at ``as_of - N`` days, compare with (as_of - N, as_of]."""
    n = cfg.horizon_days
    cal_end = as_of - pd.Timedelta(days=n)
    calib = summarise_transactions(paid, cal_end)
    if len(calib) < cfg.btyd.min_holdout_buyers or not (calib["frequency"] > 0).any():
        return None, (
            f"BG/NBD holdout skipped: {len(calib)} buyer(s) before {cal_end.date()} "
            f"(need {cfg.btyd.min_holdout_buyers} with some repeat purchases)"
        )
    model = BGNBDModel(time_unit_days=cfg.btyd.time_unit_days, horizon_days=n, penalizer=cfg.btyd.penalizer)
    model.fit(calib)
    actual = count_purchase_days(paid, cal_end, as_of)
    return evaluate_holdout(model, calib, actual, n), None


def bound_notes(seg: CustomerSegmenter) -> list[str]:
    """A warning per BTYD model whose parameters ended at the optimiser bound."""
    return [
        f"{name} parameter(s) {', '.join(model.params_at_bound_)} ended at the optimiser bound: the data "
        "shows almost no sign of what they measure (for BG/NBD a or b, of customers dropping out, "
        "so P(alive) is near 1 for everyone)"
        for name, model in (("BG/NBD", seg.bgnbd_), ("Gamma-Gamma", seg.gg_))
        if model.params_at_bound_
    ]


def build_report(
    summary: pd.DataFrame,
    scored: pd.DataFrame,
    seg: CustomerSegmenter,
    cfg: SegmentConfig,
    holdout: dict[str, float] | None,
) -> SegmentReport:
    """Profiles and metrics of a fitted segmenter on its training summary (``scored`` = its predictions)."""
    n = cfg.horizon_days
    seg_prof = profile_segments(summary, scored, "rfm_segment", n)
    clu_prof = profile_segments(summary, scored, "cluster", n)
    clu_prof.insert(1, "description", [seg.clusterer_.descriptions_[int(c)] for c in clu_prof["cluster"]])
    engagement = input_columns(cfg.window_days)[6:]  # the window counts and rates
    feat_means = summary[engagement].groupby(scored["cluster"].to_numpy()).mean()
    clu_prof = clu_prof.merge(feat_means.add_prefix("mean_").reset_index(names="cluster"), on="cluster")
    tier_prof = profile_segments(summary, scored, "value_tier", n)
    tier_prof.insert(1, "label_zh", [cfg.value_tiers.labels[x] for x in tier_prof["value_tier"]])
    sizes = {str(k): int(v) for k, v in zip(seg_prof["rfm_segment"], seg_prof["customers"], strict=True)}

    metrics: dict[str, float] = {"silhouette": seg.clusterer_.silhouette_}
    metrics |= {f"silhouette_k{k}": v for k, v in seg.clusterer_.silhouette_by_k_.items()}
    metrics |= {f"segment_size_{_slug(k)}": v for k, v in sizes.items()}
    metrics |= {f"cluster_size_{c}": int(v) for c, v in zip(clu_prof["cluster"], clu_prof["customers"], strict=True)}
    metrics |= {
        f"value_tier_size_{k}": int(v) for k, v in zip(tier_prof["value_tier"], tier_prof["customers"], strict=True)
    }
    metrics |= {f"bgnbd_{k}": v for k, v in seg.bgnbd_.params_.items()}
    metrics["bgnbd_log_likelihood"] = seg.bgnbd_.log_likelihood_
    metrics |= {f"gg_{k}": v for k, v in seg.gg_.params_.items()}
    if not np.isnan(seg.gg_.freq_value_corr_):
        metrics["gg_freq_value_corr"] = seg.gg_.freq_value_corr_
    if holdout is not None:
        metrics |= {f"bgnbd_holdout_{k}": v for k, v in holdout.items() if np.isfinite(v)}
    metrics[f"total_expected_value_{n}d"] = float(np.nansum(scored[f"expected_value_{n}d"]))
    return SegmentReport(seg_prof, clu_prof, tier_prof, sizes, {k: float(v) for k, v in metrics.items()})


def _register(name: str, model_uri: str, tags: dict[str, str], reason: str) -> tuple[str, bool]:
    """Register a challenger version; make it champion when the model has none yet."""
    from training.registry import CHAMPION, get_alias_version, register_challenger, set_champion

    version = register_challenger(name, model_uri, tags)
    if get_alias_version(name, CHAMPION) is None:
        set_champion(name, version, reason)
        return version, True
    return version, False


def log_and_register(
    cfg: SegmentConfig, seg: CustomerSegmenter, as_of: pd.Timestamp, report: SegmentReport
) -> tuple[str, str, str, bool]:
    """The tracking step: one run (a new one in ``cfg.experiment``, or inside ``mlflow run`` the run MLflow
    opened) with the params, metrics, profile CSVs, chart, config and the pyfunc model, then the registry
    (challenger; champion when there is none). Returns ``(run_id, model_uri, version, champion_set)``."""
    import mlflow

    from training.registry import configure_tracking, start_job_run
    from training.segment_model import log_segments_model

    configure_tracking()
    with start_job_run(cfg.experiment, f"segments-{as_of.date()}") as run, tempfile.TemporaryDirectory() as tmp:
        tmpd = Path(tmp)
        mlflow.log_params(
            {
                "as_of": str(as_of),
                "horizon_days": cfg.horizon_days,
                "window_days": cfg.window_days,
                "k": str(seg.clusterer_.k_),
                "k_range": f"{cfg.clustering.k_min}-{cfg.clustering.k_max}",
                "time_unit_days": cfg.btyd.time_unit_days,
                "n_customers": seg.n_customers_,
                "n_buyers": seg.n_buyers_,
            }
        )
        mlflow.log_metrics(report.metrics)
        report.segments.to_csv(tmpd / "segment_profiles.csv", index=False)
        report.clusters.to_csv(tmpd / "cluster_profiles.csv", index=False)
        report.tiers.to_csv(tmpd / "value_tier_profiles.csv", index=False)
        plot_segments(
            report.segments,
            tmpd / "segment_sizes.png",
            f"RFM segments as of {as_of.date()} ({seg.n_customers_:,} customers)",
        )
        (tmpd / "segment_config.json").write_text(
            json.dumps(cfg.model_dump(mode="json"), ensure_ascii=False, indent=1), encoding="utf-8"
        )
        for f in (
            "segment_profiles.csv",
            "cluster_profiles.csv",
            "value_tier_profiles.csv",
            "segment_sizes.png",
            "segment_config.json",
        ):
            mlflow.log_artifact(str(tmpd / f), artifact_path="segments")
        info = log_segments_model(seg, cfg, tmpd)
        version, champion = _register(
            cfg.model_name,
            info.model_uri,
            {
                "as_of": str(as_of),
                "silhouette": f"{seg.clusterer_.silhouette_:.4f}",
                "k": str(seg.clusterer_.k_),
                "run_id": run.info.run_id,
            },
            reason="first customer_segments model",
        )
    return run.info.run_id, info.model_uri, version, champion


def fit_segments(
    data_dir: str | Path,
    as_of: str | pd.Timestamp | None = None,
    config_path: str | Path | None = None,
    progress: ProgressCallback = no_progress,
) -> SegmentFitResult:
    """Fit the segmenter on a data dir at a cutoff, log it to MLflow and register ``customer_segments``.

    Tracking URI: ``$MLFLOW_TRACKING_URI``, else ``sqlite:///mlflow.db`` in the working directory; the run is a
    new one in ``cfg.experiment``, or inside ``mlflow run`` the run MLflow opened. Logged: parameters, metrics
    (silhouette, segment / tier / cluster sizes, BG/NBD and Gamma-Gamma parameters, ``bgnbd_holdout_mae``),
    segment / cluster / tier profile CSVs, a PNG chart and the pyfunc model. No customer id or PII column is
    logged. ``progress`` is told the stages.
    """
    from features.config import load_config

    cfg = load_config(config_path, SegmentConfig)
    progress("reading tables")
    tables, notes = load_segment_tables(data_dir)
    t = resolve_as_of(tables, as_of)
    paid = paid_orders(tables["orders"], t)
    progress("summarising customers")
    summary = summarise_customers(tables, t, cfg.window_days)
    progress("fitting segments")
    seg = CustomerSegmenter(cfg).fit(summary, as_of=t)
    scored = seg.predict(summary)
    progress("holdout check")
    holdout, why = _holdout_metric(paid, t, cfg)
    notes += ([why] if why else []) + bound_notes(seg)
    for w in notes:
        log.warning(w)
    progress("logging and registering")
    report = build_report(summary, scored, seg, cfg, holdout)
    run_id, model_uri, version, champion = log_and_register(cfg, seg, t, report)
    return SegmentFitResult(
        run_id=run_id,
        model_uri=model_uri,
        version=version,
        champion_set=champion,
        as_of=str(t),
        n_customers=seg.n_customers_,
        n_buyers=seg.n_buyers_,
        k=seg.clusterer_.k_,
        silhouette=seg.clusterer_.silhouette_,
        bgnbd_params=dict(seg.bgnbd_.params_),
        gamma_gamma_params=dict(seg.gg_.params_),
        holdout=holdout,
        segment_sizes=report.sizes,
        warnings=notes,
    )
