"""`crmscore segment apply`: RFM segments, value tiers, clusters and expected value of every customer of a data dir.

The registered ``customer_segments`` model (``crmscore segment fit``) is applied to the per-customer summary of
the contract tables as of ``--as-of``:

* **local engine** — the tables are read without PII, summarised by ``training.segment.summarise_customers`` and
  scored by the registered pyfunc: the same two steps as the service's ``/segment`` for profiles and events, and
  as ``segment fit`` for its training population;
* **Spark engine** (:mod:`serving.batch.segment_spark`) — the summary is computed by Spark
  (``features.engines.spark_segments``, equal to the local one value for value) and the same fitted segmenter
  is applied per partition in a ``mapInPandas``.

The population is the segmenter's: customers created on or before T, plus anyone with a paid order on or before
it (``buyers_without_customer_row`` counts those absent from the customers table). Every row of the customers
table is accounted for: ``rows_in = customer_rows + buyers_without_customer_row = segmented + rejected +
duplicates``; a rejected row (created after T without a paid order by then, no ``created_at``, no
``customer_id``) is written to the rejects CSV with its row number, a repeated ``customer_id`` counts as a
duplicate. One output row per customer, ordered by ``customer_id``: the model's columns
(``training.segment.output_columns``). Output, rejects and summary are written as ``crmscore score`` writes them:
complete files moved into place (``features.io``), the summary last.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from features.io import DataDirError, atomic_path, write_text_atomic
from features.messages import M_, message_of
from features.progress import ProgressCallback, no_progress
from serving.batch.options import BatchError

DEFAULT_MODEL = "customer_segments@champion"
ENGINES = ("local", "spark")

#: the columns the summary reads from each contract table (no PII is ever loaded)
SUMMARY_INPUTS: dict[str, list[str]] = {
    "customers": ["customer_id", "created_at"],
    "orders": ["customer_id", "ts", "amount", "status"],
    "interactions": ["customer_id", "ts", "event_type"],
    "marketing_touches": ["customer_id", "sent_at", "opened_at", "clicked_at", "coupon_claimed"],
}

REJECT_COLUMNS = ["row", "customer_id", "column", "value", "reason"]


class SegmentApplySummary(BaseModel):
    """What one ``segment apply`` run read, segmented, rejected and wrote;
    ``rows_in == segmented + rejected + duplicates``."""

    model_uri: str
    model_name: str | None
    model_version: str | None
    engine: str = "local"
    input: str
    output: str
    rejects_file: str
    summary_file: str
    as_of: str
    window_days: int
    horizon_days: int
    rows_in: int = Field(description="customer_rows + buyers_without_customer_row")
    customer_rows: int = Field(description="rows of the customers table")
    buyers_without_customer_row: int = Field(description="ids with a paid order by T but no customers row (segmented)")
    segmented: int
    rejected: int
    duplicates: int = Field(description="customers rows repeating an id already segmented")
    reject_reasons: dict[str, int] = Field(default_factory=dict)
    buyers: int = Field(description="segmented customers with a paid order by T")
    rfm_segments: dict[str, int] = Field(default_factory=dict)
    value_tiers: dict[str, int] = Field(default_factory=dict)
    clusters: dict[str, int] = Field(default_factory=dict, description="cluster number -> customers")
    mean_p_alive: float | None = None
    total_expected_value: float | None = None
    seconds: float = 0.0


# ------------------------------------------------------------------------------------------------ the model
@dataclass
class LoadedSegments:
    """A loaded ``customer_segments`` pyfunc, its fitted segmenter and where it came from."""

    uri: str
    name: str | None
    version: str | None
    pyfunc: Any
    segmenter: Any

    @property
    def window_days(self) -> int:
        """The summary window W of the model's inputs."""
        return int(self.segmenter.cfg.window_days)

    @property
    def horizon_days(self) -> int:
        """The expected-value horizon N of the model's outputs."""
        return int(self.segmenter.cfg.horizon_days)


def load_segments(spec: str) -> LoadedSegments:
    """Load the ``customer_segments`` model a ``--model`` value names (``NAME@alias``, ``NAME/3``, a URI).

    The alias is resolved once and that version loaded by the service's loader
    (``serving.http.loader.load_segments_artifact``: only this release's models-from-code file runs).
    Raises :class:`BatchError` (one line) when it does not exist or is not a segments model.
    """
    from serving.batch.model import _first_line, pin_model
    from serving.http.loader import UntrustedModel, load_segments_artifact

    uri, name, version, pinned = pin_model(spec)
    which = f" ({name} version {version})" if name and version else ""
    try:
        pyfunc = load_segments_artifact(pinned)
    except UntrustedModel as e:
        raise BatchError(M_(
            "model {uri}{which} is not a customer_segments model from `crmscore segment fit`: {reason}",
            uri=uri, which=which, reason=_first_line(e),
        )) from None
    except Exception as e:  # noqa: BLE001 - MLflow raises many types for a missing model
        raise BatchError(M_(
            "cannot load model {uri}{which}: {reason}",
            uri=uri, which=which, reason=_first_line(e),
        )) from None
    segmenter = getattr(pyfunc.unwrap_python_model(), "segmenter", None)
    if segmenter is None:
        raise BatchError(M_(
            "model {uri}{which} is not a customer_segments model (no fitted segmenter)",
            uri=uri, which=which,
        ))
    return LoadedSegments(uri, name, version, pyfunc, segmenter)


# ------------------------------------------------------------------------------------------- options and files
@dataclass
class SegmentTarget:
    """Where the run writes: the output (CSV or Parquet), the rejects CSV and the summary JSON."""

    path: Path
    kind: str
    rejects: Path
    summary: Path


def resolve_target(out: str | Path, rejects: str | Path | None = None) -> SegmentTarget:
    """Check the output, rejects and summary locations before any work is done."""
    from serving.batch.sinks import _check_writable

    p = Path(out)
    suffix = p.suffix.lower()
    kind = "parquet" if suffix in (".parquet", ".pq") else "csv" if suffix in (".csv", ".txt") else None
    if kind is None:
        raise BatchError(M_("--out {path}: use a .csv or .parquet file", path=p))
    target = SegmentTarget(p, kind, Path(rejects) if rejects else p.with_name(p.name + ".rejects.csv"),
                           p.with_name(p.name + ".summary.json"))
    _check_writable(target.path, M_("output"))
    _check_writable(target.rejects, M_("rejects file"))
    _check_writable(target.summary, M_("summary file"))
    return target


def parse_as_of(value: str | None) -> pd.Timestamp:
    """``--as-of`` as a Timestamp (the formats of ``features.readers.parse_dates``)."""
    from features.readers import parse_dates

    if not value:
        raise BatchError(M_("--as-of is required: the cutoff T, e.g. 2025-06-30"))
    t = parse_dates(pd.Series([value])).iloc[0]
    if pd.isna(t):
        raise BatchError(M_("--as-of {value!r} is not a date (use YYYY-MM-DD)", value=value))
    return pd.Timestamp(t)


def cutoff_text(t: pd.Timestamp) -> str:
    """The cutoff as the summary and the reject reasons write it (the date alone at midnight)."""
    return str(t.date()) if t == t.normalize() else str(t)


def check_orders(present: Mapping[str, Any] | set[str], where: str | Path) -> None:
    """Both engines need the orders table (the segments are built from paid orders)."""
    if "orders" not in present:
        raise DataDirError(M_("{where}: missing table(s) orders (expected <table>.parquet)", where=where))


def check_inputs(data: str | Path) -> None:
    """The one input check of both engines for a data dir: ``features.engines.inputs.check_data_dir`` (tables,
    columns and types from the Parquet schemas), then the orders table."""
    from features.engines.inputs import check_data_dir

    check_orders(set(check_data_dir(data)), data)


# ------------------------------------------------------------------------------------------------ accounting
def reject_reason(created: pd.Series, cutoff: str) -> np.ndarray:
    """Why a customers row is outside the population (no paid order by T): no created_at, or created after T."""
    return np.where(created.isna().to_numpy(), "created_at is missing", f"created after --as-of {cutoff}")


def account_customers(
    customers: pd.DataFrame, population: pd.Index, cutoff: str
) -> tuple[pd.DataFrame, int, int]:
    """Rejected rows of the customers table (``REJECT_COLUMNS``), the duplicate count and the segmented ids that
    have no customers row: every row is segmented (first of its id), a duplicate, or rejected."""
    ids = customers["customer_id"].astype("string")
    inside = ids.isin(population).to_numpy(dtype=bool)
    dup = inside & ids.duplicated(keep="first").to_numpy(dtype=bool)
    out = ~inside
    pos = np.flatnonzero(out)
    created = pd.to_datetime(customers["created_at"].iloc[pos])
    no_id = ids.iloc[pos].isna().to_numpy()
    rejects = pd.DataFrame({
        "row": pos + 1,
        "customer_id": ids.iloc[pos].fillna("").to_numpy(dtype=object),
        "column": np.where(no_id, "customer_id", "created_at"),
        "value": np.where(no_id, "", created.dt.strftime("%Y-%m-%d %H:%M:%S").fillna("").to_numpy(dtype=object)),
        "reason": np.where(no_id, "customer_id is missing", reject_reason(created, cutoff)),
    })
    order_only = int((~population.isin(ids.dropna())).sum())
    return rejects, int(dup.sum()), order_only


def ordered_sizes(counts: Mapping[str, int], order: list[str] | None = None) -> dict[str, int]:
    """``counts`` with the names of ``order`` first (in that order), then the rest by size, largest first."""
    known = [k for k in (order or []) if k in counts]
    rest = sorted((k for k in counts if k not in known), key=lambda k: (-counts[k], k))
    return {k: int(counts[k]) for k in [*known, *rest]}


def _counts(values: pd.Series, order: list[str] | None = None) -> dict[str, int]:
    return ordered_sizes({str(k): int(v) for k, v in values.astype(str).value_counts().items()}, order)


def result_stats(out: pd.DataFrame, horizon_days: int) -> dict[str, Any]:
    """Segment, tier and cluster sizes, buyers, mean P(alive) and total expected value of an output frame."""
    from training.segment_config import SEGMENT_ORDER

    p = out["p_alive"].to_numpy(dtype="float64")
    ev = out[f"expected_value_{int(horizon_days)}d"].to_numpy(dtype="float64")
    buyers = int(np.isfinite(p).sum())
    return {
        "buyers": buyers,
        "rfm_segments": _counts(out["rfm_segment"], list(SEGMENT_ORDER)),
        "value_tiers": _counts(out["value_tier"]),
        "clusters": {str(k): int(v) for k, v in out["cluster"].value_counts().sort_index().items()},
        "mean_p_alive": float(np.nanmean(p)) if buyers else None,
        "total_expected_value": float(np.nansum(ev)) if buyers else None,
    }


# ------------------------------------------------------------------------------------------------ the run
def apply_segments(
    data: str | Path,
    as_of: str | None,
    out: str | Path,
    model: str = DEFAULT_MODEL,
    engine: str = "local",
    master: str = "local[*]",
    rejects: str | Path | None = None,
    neutralise: bool = True,
    progress: ProgressCallback = no_progress,
) -> SegmentApplySummary:
    """Segment every customer of ``data`` as of ``as_of`` with the registered model; returns the summary also
    written beside the output. Raises :class:`BatchError` (one line) for bad input, model or output."""
    t0 = time.perf_counter()
    if engine not in ENGINES:
        raise BatchError(M_("--engine {engine!r}: use local or spark", engine=engine))
    t = parse_as_of(as_of)
    target = resolve_target(out, rejects)
    is_yaml = Path(str(data)).suffix.lower() in (".yaml", ".yml")
    try:
        if engine == "local" and is_yaml:
            raise BatchError(M_("--data {data}: a tables YAML is read by the Spark engine; give a data dir", data=data))
        if not is_yaml:
            check_inputs(data)
        progress("loading the model")
        seg = load_segments(model)
        if engine == "spark":
            from serving.batch.segment_spark import apply_segments_spark

            return apply_segments_spark(data, t, target, seg, master, neutralise, t0)
        return _apply_local(Path(data), t, target, seg, neutralise, t0, progress)
    except DataDirError as e:
        raise BatchError(message_of(e) or str(e)) from None


def _apply_local(
    data: Path, t: pd.Timestamp, target: SegmentTarget, seg: LoadedSegments, neutralise: bool, t0: float,
    progress: ProgressCallback,
) -> SegmentApplySummary:
    from features.io import load_tables
    from training.segment import summarise_customers

    progress("reading tables")
    tables = load_tables(data, required=("customers", "orders"), columns=SUMMARY_INPUTS)
    progress("summarising customers")
    try:
        summary = summarise_customers(tables, t, seg.window_days)
        progress("segmenting")
        scored = seg.pyfunc.predict(summary)
    except ValueError as e:
        raise BatchError(M_("{data}: {error}", data=data, error=e)) from None
    cutoff = cutoff_text(t)
    rejects, dups, order_only = account_customers(tables["customers"], pd.Index(summary["customer_id"]), cutoff)
    result = SegmentApplySummary(
        model_uri=seg.uri,
        model_name=seg.name,
        model_version=seg.version,
        input=f"{data} (CRM tables as of {cutoff})",
        output=str(target.path),
        rejects_file=str(target.rejects),
        summary_file=str(target.summary),
        as_of=cutoff,
        window_days=seg.window_days,
        horizon_days=seg.horizon_days,
        rows_in=len(tables["customers"]) + order_only,
        customer_rows=len(tables["customers"]),
        buyers_without_customer_row=order_only,
        segmented=len(scored),
        rejected=len(rejects),
        duplicates=dups,
        reject_reasons=_counts(rejects["reason"]),
        **result_stats(scored, seg.horizon_days),
    )
    check_accounting(result)
    progress("writing")
    result.seconds = round(time.perf_counter() - t0, 3)
    write_local(scored, rejects, result, target, neutralise)
    return result


def check_accounting(s: SegmentApplySummary) -> None:
    """Refuse to write anything when a row is unaccounted for."""
    if s.rows_in != s.segmented + s.rejected + s.duplicates:
        raise BatchError(
            f"internal accounting error: rows in {s.rows_in} != segmented {s.segmented} + rejected {s.rejected} + "
            f"duplicates {s.duplicates}; no output written"
        )


def write_local(
    scored: pd.DataFrame, rejects: pd.DataFrame, summary: SegmentApplySummary, target: SegmentTarget,
    neutralise: bool,
) -> None:
    """Output, rejects, then the summary: each complete before it is moved into place (``features.io``)."""
    from features.export import neutralise_frame

    with atomic_path(target.rejects) as tmp_rej, atomic_path(target.path) as tmp_out:
        rej = neutralise_frame(rejects) if neutralise else rejects
        rej.to_csv(tmp_rej, index=False, encoding="utf-8-sig")
        if target.kind == "parquet":
            scored.to_parquet(tmp_out, index=False)
        else:
            (neutralise_frame(scored) if neutralise else scored).to_csv(tmp_out, index=False, encoding="utf-8")
    write_text_atomic(target.summary, json.dumps(summary.model_dump(), ensure_ascii=False, indent=2))
