"""`crmscore score --model coupon_uplift@champion`: rank a customer list by the uplift a coupon causes.

An uplift model (``training.uplift.UpliftModel``, registered by `crmscore train uplift` / `uplift-table`) is told
apart from a scoring model by its registered version's ``crmscore.task`` tag (``uplift``, ``uplift_table``). The
list (CSV / .xlsx / Parquet / SQL, read whole: such lists are campaign-sized) holds the model's raw feature
columns and an id. Rows with a blank id or an unreadable number are rejected with the reason; a repeated id keeps
its last row; rows in = scored + rejected + duplicates. Output: id, uplift, rank (1 = the coupon changes this
customer most), decile, and with ``--reasons K`` the top K reasons for and against as text.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.messages import M_
from serving.batch.model import DEFAULT_ID_COLUMN, _registry_version, resolve_model_uri
from serving.batch.options import BatchError

UPLIFT_TASKS = ("uplift", "uplift_table")


@dataclass
class UpliftBatchSummary:
    """What one uplift scoring run read, scored, rejected and wrote."""

    model_uri: str
    model_name: str | None
    model_version: str | None
    learner: str
    rows_in: int
    scored: int
    rejected: int
    duplicates: int
    output: str
    rejects_file: str | None
    seconds: float
    reject_reasons: dict[str, int] = field(default_factory=dict)
    uplift_quantiles: dict[str, float] = field(default_factory=dict)


def is_uplift_model(spec: str) -> bool:
    """Whether ``--model`` names a registered uplift model (its version's ``crmscore.task`` tag); False when it
    cannot tell (the scoring path then reports any problem with the model)."""
    try:
        uri = resolve_model_uri(spec)
        if not uri.startswith("models:/"):
            return False
        from mlflow import MlflowClient

        from training.registry import configure_tracking

        configure_tracking()
        name, version = _registry_version(uri)
        if not name or not version:
            return False
        tags = MlflowClient().get_model_version(name, version).tags or {}
    except Exception:  # noqa: BLE001 - not an uplift model as far as can be told
        return False
    return tags.get("crmscore.task", "") in UPLIFT_TASKS


def load_uplift(spec: str) -> tuple[Any, str, str | None, str | None]:
    """(model, uri, name, version): the uplift model loaded by the service's loader (skops, trusted types)."""
    from serving.http.loader import load_scorer_artifact
    from training.registry import configure_tracking

    uri = resolve_model_uri(spec)
    configure_tracking()
    name, version = _registry_version(uri)
    pinned = f"models:/{name}/{version}" if uri.startswith("models:/") and name and version else uri
    try:
        model = load_scorer_artifact(pinned)
    except Exception as e:  # noqa: BLE001 - MLflow raises many types for a missing model
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise BatchError(M_("cannot load model {uri}: {reason}", uri=uri, reason=first)) from None
    if not hasattr(model, "predict_matrix"):
        raise BatchError(M_(
            "model {uri} is a {type_name}, not an uplift model",
            uri=uri, type_name=type(model).__name__,
        ))
    return model, uri, name, version


def _reason_text(items: list[dict[str, Any]]) -> str:
    return "; ".join(f"{r['label']}={r['value']} ({r['contribution']:+.4f})" for r in items)


def score_uplift_batch(
    spec: str,
    source: str,
    output: str,
    id_col: str | None = None,
    reasons: int = 0,
    sort: bool = False,
    rejects: str | None = None,
    query: str | None = None,
    neutralise: bool = True,
) -> UpliftBatchSummary:
    """Score a customer list with an uplift model and write it (see the module docstring); CSV text cells that
    would start a spreadsheet formula get a ``'`` prefix unless ``neutralise`` is off."""
    from features.export import neutralise_frame
    from features.io import atomic_path
    from features.readers import parse_amounts
    from training.tabular import read_table

    t0 = time.perf_counter()
    model, uri, name, version = load_uplift(spec)
    pre = model.preprocessor_
    idc = id_col or getattr(pre.featurizer_, "id_column", None) or DEFAULT_ID_COLUMN
    try:
        frame, _ = read_table(source, query=query)
    except (ValueError, OSError) as e:
        raise BatchError(M_("--input {source}: {error}", source=source, error=e)) from None
    cols = [str(c) for c in frame.columns]
    frame.columns = cols
    if idc not in cols:
        shown = ", ".join(cols[:20])
        raise BatchError(M_(
            "--input {source}: id column {id_col!r} is missing (columns: {shown}); give --id-col",
            source=source, id_col=idc, shown=shown,
        ))
    needed = [str(c) for c in pre.feature_names_in_]
    missing = [c for c in needed if c not in cols]
    if missing:
        raise BatchError(M_(
            "--input {source}: feature column(s) {missing} missing ({n_missing} of {n_needed}); the list needs the "
            "columns the model was trained on",
            source=source, missing=', '.join(missing[:10]), n_missing=len(missing), n_needed=len(needed),
        ))
    n_in = len(frame)
    ids = frame[idc].astype("string").str.strip()
    why = pd.Series("", index=frame.index, dtype=object)
    why[ids.isna() | (ids == "")] = f"blank id ({idc})"
    for c in pre.numeric_features_:
        raw = frame[c]
        parsed = parse_amounts(raw)
        text = raw.astype("string").str.strip()
        bad = parsed.isna() & text.notna() & (text != "") & (why == "")
        why[bad] = f"{c}: not a number"
        frame[c] = parsed
    bad_rows = why != ""
    rej = pd.DataFrame({"row": np.flatnonzero(bad_rows.to_numpy()) + 1, idc: frame.loc[bad_rows, idc].to_numpy(),
                        "reason": why[bad_rows].to_numpy()})
    ok = frame.loc[~bad_rows]
    ok_ids = ids[~bad_rows]
    last = ~ok_ids.duplicated(keep="last").to_numpy()
    duplicates = int((~last).sum())
    ok, ok_ids = ok.loc[last], ok_ids[last]
    if n_in != len(ok) + len(rej) + duplicates:  # the run's invariant, checked before anything is written
        raise BatchError(f"internal error: {n_in} rows read but {len(ok)} + {len(rej)} + {duplicates} accounted for")
    Z = model.transform_matrix(ok[needed])
    u = np.asarray(model.predict_matrix(Z), dtype="float64") if len(ok) else np.zeros(0)
    order = np.argsort(-u, kind="stable")
    rank = np.empty(len(u), dtype=np.int64)
    rank[order] = np.arange(1, len(u) + 1)
    out = pd.DataFrame({idc: ok_ids.to_numpy(), "uplift": u, "rank": rank,
                        "decile": np.minimum(10, (rank - 1) * 10 // max(len(u), 1) + 1)})
    if reasons > 0 and len(ok):
        folder = model.reason_folder()
        rows = ok[needed].astype(object).where(ok[needed].notna(), None).to_dict("records")
        r = folder.reasons(np.asarray(model.contributions_matrix(Z), dtype="float64"), rows, reasons)
        out["reasons_for"] = [_reason_text(x["positive"]) for x in r]
        out["reasons_against"] = [_reason_text(x["negative"]) for x in r]
    if sort:
        out = out.sort_values("rank", kind="stable")
    out_path = Path(output)
    with atomic_path(out_path) as tmp:
        if out_path.suffix.lower() == ".parquet":
            out.to_parquet(tmp, index=False)
        else:
            (neutralise_frame(out) if neutralise else out).to_csv(tmp, index=False, encoding="utf-8")
    rejects_file = None
    if len(rej):
        rejects_file = rejects or str(out_path.with_name(out_path.stem + ".rejects.csv"))
        with atomic_path(rejects_file) as tmp:
            (neutralise_frame(rej) if neutralise else rej).to_csv(tmp, index=False, encoding="utf-8")
    q = {f"p{p}": float(np.quantile(u, p / 100)) for p in (10, 50, 90)} if len(u) else {}
    return UpliftBatchSummary(
        model_uri=uri, model_name=name, model_version=version, learner=str(model.learner), rows_in=n_in,
        scored=len(out), rejected=len(rej), duplicates=duplicates, output=str(out_path), rejects_file=rejects_file,
        seconds=time.perf_counter() - t0, reject_reasons=rej["reason"].value_counts().to_dict(), uplift_quantiles=q,
    )
