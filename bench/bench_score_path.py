"""CPU per request of the scoring handler in-process: a load-independent A/B of two code trees.

The HTTP benchmark (bench/bench_serving.py) measures the server's CPU per request, which on a shared machine
moves with the neighbours' load. This script calls what a worker runs for one ``POST /score_leads`` (body →
``ScoreRequest.model_validate_json`` → the service's ``_score_sync``: checks, encoder, model, reasons, results,
drift-record append, JSON response; the record sink is flushed in the same thread every ``--flush-every``
requests, so its cost is counted) ``--calls`` times per payload and reports ``time.process_time()`` per call.
No server, no sockets, no event loop: what remains is the code under comparison.

    # once: a registry and payloads (the bench_serving model: XGBoost 400 trees × depth 6, 3,000 customers)
    .venv/bin/python bench/bench_serving.py --targets reference --skip-batch --duration 1 --workdir /tmp/sp
    # A/B, rounds interleaved (--code: the tree whose serving code is imported; default: this one)
    .venv/bin/python bench/bench_score_path.py --workdir /tmp/sp --code /tmp/old5d7 --calls 200
    .venv/bin/python bench/bench_score_path.py --workdir /tmp/sp --calls 200

Works with the serving layout of 27 Nov (``serving.service``, ``serving.loader``) and today's
(``serving.http.service``, ``serving.http.loader``). Prints one JSON line per payload.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

PAYLOADS = ["one", "one_noreasons", "many_noreasons", "table_noreasons", "many", "table"]


class _Slot:
    """The one slot the handler reads (``slots[kind].require()``)."""

    def __init__(self, model: Any) -> None:
        self.model = model

    def require(self) -> Any:
        return self.model


def _modules(code: Path) -> tuple[Any, ...]:
    """(service module, schemas module, loader module, records module) of the code tree ``code``."""
    import importlib

    package = "serving.http" if (code / "serving" / "http").is_dir() else "serving"  # 27 Nov: no serving.http
    return tuple(importlib.import_module(f"{package}.{m}") for m in ("service", "schemas", "loader", "records"))


def handler(code: Path, uri: str, home: Path) -> tuple[Any, Any, Any]:
    """(service object without a server, ScoreRequest, record sink) with ``lead_scoring@champion`` loaded."""
    import mlflow

    os.environ["MLFLOW_TRACKING_URI"] = uri
    os.environ["CRMSCORE_HOME"] = str(home)
    service, schemas, loader, records = _modules(code)
    from serving.settings import load_settings

    mlflow.set_tracking_uri(uri)
    scorer = mlflow.sklearn.load_model("models:/lead_scoring@champion")
    model = loader.prepare_scorer("lead", "lead_scoring", "1", "bench", scorer, {})
    cls = service.CRMScoring.inner
    svc = cls.__new__(cls)
    svc.settings = load_settings()
    svc.slots = {"lead": _Slot(model)}
    svc.sink = records.RecordSink(home, "http")  # not started: flushed in this thread below
    try:
        from serving.members.bant import load_service_bant

        svc.bant = load_service_bant()
    except ImportError:  # 27 Nov: no BANT grade
        svc.bant = None
    return svc, schemas.ScoreRequest, svc.sink


def measure(svc: Any, request_cls: Any, sink: Any, body: bytes, calls: int, flush_every: int) -> dict[str, Any]:
    """CPU and wall seconds per call of one payload (after 5 warm-up calls)."""
    now = datetime.now(UTC).replace(tzinfo=None)

    def once() -> bytes:
        req = request_cls.model_validate_json(body)
        resp = svc._score_sync("lead", req.leads, req.table, req.reasons, now)
        if resp.status_code != 200:
            raise RuntimeError(resp.body[:300])
        return resp.body

    for _ in range(5):
        once()
    sink.flush()
    cpu: list[float] = []
    t_cpu0, t_wall0 = time.process_time(), time.perf_counter()
    for i in range(calls):
        c0 = time.process_time()
        once()
        if (i + 1) % flush_every == 0:
            sink.flush()
        cpu.append(time.process_time() - c0)
    sink.flush()
    total_cpu, total_wall = time.process_time() - t_cpu0, time.perf_counter() - t_wall0
    return {"calls": calls, "cpu_ms_mean": total_cpu * 1e3 / calls, "cpu_ms_median": statistics.median(cpu) * 1e3,
            "wall_ms_mean": total_wall * 1e3 / calls}


def digest(svc: Any, request_cls: Any, body: bytes) -> str:
    """sha256 of the response's probabilities, scores, grades, reasons and unknown categories (not the body:
    fields added since 27 Nov would make it differ)."""
    import hashlib

    req = request_cls.model_validate_json(body)
    results = json.loads(svc._score_sync("lead", req.leads, req.table, req.reasons, datetime(2026, 1, 1)).body)
    keys = ("customer_id", "probability", "score", "grade", "reasons", "unknown_categories")
    picked = [[r.get(k) for k in keys] for r in results["results"]]
    return hashlib.sha256(json.dumps(picked).encode()).hexdigest()[:16]


def main(argv: list[str] | None = None) -> int:
    """Measure every payload and print one JSON line each."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", type=Path, required=True, help="bench_serving workdir (mlflow.db + payload JSON)")
    ap.add_argument("--code", type=Path, default=Path(__file__).resolve().parents[1], help="code tree to import")
    ap.add_argument("--calls", type=int, default=200, help="calls per 1,000-lead payload (one-lead: 10×)")
    ap.add_argument("--check", action="store_true", help="also print a digest of each payload's response body")
    ap.add_argument("--payloads", default=",".join(PAYLOADS[:4]), help=f"of {','.join(PAYLOADS)}")
    ap.add_argument("--flush-every", type=int, default=50, help="flush the drift records every N requests")
    ap.add_argument("--label", default="", help="label of the printed lines")
    args = ap.parse_args(argv)
    sys.path.insert(0, str(args.code.resolve()))
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    with tempfile.TemporaryDirectory(prefix="crmscore-score-path-") as home:
        svc, request_cls, sink = handler(args.code.resolve(), f"sqlite:///{args.workdir / 'mlflow.db'}", Path(home))
        for name in args.payloads.split(","):
            body = (args.workdir / f"{name}.json").read_bytes()
            calls = args.calls * (10 if name.startswith("one") else 1)
            r = measure(svc, request_cls, sink, body, calls, args.flush_every)
            if args.check:
                r["digest"] = digest(svc, request_cls, body)
            r.update(label=args.label or str(args.code), payload=name, load=os.getloadavg()[0])
            print(json.dumps(r), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
