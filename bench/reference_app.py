"""Bare reference for the serving benchmark: Starlette + NumPy + ``Booster.inplace_predict``, nothing else.

No validation beyond JSON parsing, no auth, no reasons, no metrics, no records: an upper bound of what
the Python stack can do per request with the same model, so ``bench_serving.py`` can show how much of
the crmscore service's time goes to its own features. Same request body as POST /score_leads with
precomputed features; the answer has the booster's (uncalibrated) probability per lead.

    MLFLOW_TRACKING_URI=sqlite:///mlflow.db uvicorn bench.reference_app:app --workers 2 --port 3200
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

_state: dict[str, Any] = {}


def _load() -> None:
    """Load the champion once per worker: the booster, the feature order and the category codes."""
    import mlflow
    import xgboost as xgb

    from training.registry import configure_tracking

    configure_tracking()
    name = os.environ.get("CRMSCORE_REFERENCE_MODEL", "lead_scoring")
    scorer = mlflow.sklearn.load_model(f"models:/{name}@champion")
    pp = scorer.preprocessor_
    booster = scorer.estimator_.get_booster()
    booster.set_param({"nthread": 1})
    xgb.set_config(nthread=1)
    _state.update(
        booster=booster,
        numeric=list(pp.numeric_features_),
        categorical=list(pp.categorical_features_),
        codes={c: {v: float(i) for i, v in enumerate(pp.categories_[c])} for c in pp.categorical_features_},
    )


async def score(request: Request) -> Response:
    """Probabilities of the leads in the body."""
    from pydantic_core import from_json, to_json

    body = from_json(await request.body())
    numeric, categorical, codes = _state["numeric"], _state["categorical"], _state["codes"]
    if "table" in body:  # columnar: {"customer_ids": [...], "columns": [...], "rows": [[...], ...]}
        t = body["table"]
        ids = t["customer_ids"]
        arr = np.array(t["rows"], dtype=object)
        pos = {c: j for j, c in enumerate(t["columns"])}
        num = arr[:, [pos[c] for c in numeric]]
        Z = np.where(num == None, np.nan, num).astype("float64")  # noqa: E711
        cats = [[codes[c].get(v) for v in arr[:, pos[c]].tolist()] for c in categorical]
        Z = np.column_stack([Z, np.array(cats, dtype="float64").T]) if cats else Z
    else:
        leads = body["leads"]
        ids = [lead["customer_id"] for lead in leads]
        rows = []
        for lead in leads:
            f = lead["features"]
            row = [f.get(c) for c in numeric]
            row += [codes[c].get(f.get(c), None) for c in categorical]
            rows.append(row)
        Z = np.array(rows, dtype="float64")
    p = _state["booster"].inplace_predict(Z).tolist()
    out = [{"customer_id": cid, "probability": x} for cid, x in zip(ids, p, strict=True)]
    return Response(to_json({"results": out}), media_type="application/json")


async def ping(request: Request) -> Response:
    """Readiness."""
    return Response(b"ok")


@contextlib.asynccontextmanager
async def _lifespan(app: Starlette) -> AsyncIterator[None]:
    _load()
    yield


app = Starlette(routes=[Route("/score_leads", score, methods=["POST"]), Route("/ping", ping)], lifespan=_lifespan)
