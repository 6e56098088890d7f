"""POST /coupon_uplift as plain functions: request checks, the uplift model's matrix, uplift, ranks, reasons."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from features.messages import M_
from serving.http.loader import F32_MAX, LoadedModel
from serving.http.postprocess import RequestError, safe_names
from training.explain import ReasonFolder


def uplift_frame(model: Any, rows: Sequence[Mapping[str, Any]], field: str = "customers") -> pd.DataFrame:
    """Feature rows → the raw frame the uplift model takes; refuses (422) unknown features and a string for a
    numeric feature, naming the customer and the feature. A feature left out is missing."""
    pre = model.preprocessor_
    names = [str(c) for c in pre.feature_names_in_]
    known = frozenset(names)
    numeric = [str(c) for c in pre.numeric_features_]
    for i, row in enumerate(rows):
        extra = row.keys() - known
        if extra:
            raise RequestError(
                422, M_("{path}: unknown feature(s) {names}; the model's features are listed by GET /model_info",
                        path=f"{field}[{i}].features", names=safe_names(sorted(map(str, extra)))),
            )
        for c in numeric:
            v = row.get(c)
            if isinstance(v, str):
                raise RequestError(422, M_("{path}: must be a number, true/false or null",
                                           path=f"{field}[{i}].features.{c}"))
    frame = pd.DataFrame.from_records([{c: row.get(c) for c in names} for row in rows], columns=names)
    for c in numeric:
        frame[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    return frame


def score_uplift(
    loaded: LoadedModel, ids: Sequence[str], rows: Sequence[Mapping[str, Any]], top: int = 3, reasons: bool = True
) -> dict[str, Any]:
    """The /coupon_uplift body: expected uplift, rank within the request and (when asked) reasons per customer."""
    model = loaded.model
    Z = model.transform_matrix(uplift_frame(model, rows))
    with np.errstate(invalid="ignore"):
        big = np.abs(Z) > F32_MAX
    if big.any():
        i = int(np.argwhere(big)[0][0])
        raise RequestError(422, M_("{path}: a number beyond ±3.4e38 (the model computes in 32-bit floats)",
                                   path=f"customers[{i}].features"))
    u = np.asarray(model.predict_matrix(Z), dtype="float64")
    order = np.argsort(-u, kind="stable")
    rank = np.empty(len(u), dtype=int)
    rank[order] = np.arange(1, len(u) + 1)
    why: list[Any] = [None] * len(u)
    if reasons and top > 0:
        folder = loaded.folder if isinstance(loaded.folder, ReasonFolder) else model.reason_folder()
        why = folder.reasons(np.asarray(model.contributions_matrix(Z), dtype="float64"), rows, top)
    results = [
        {"id": i, "uplift": float(v), "rank": int(r), "reasons": w}
        for i, v, r, w in zip(ids, u.tolist(), rank.tolist(), why, strict=True)
    ]
    return {"model": loaded.name, "model_version": loaded.version, "learner": model.learner, "results": results}
