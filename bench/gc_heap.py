"""What a serving worker's heap holds for the cyclic garbage collector (issue 20: /recommend's p99).

    .venv/bin/python bench/gc_heap.py --registry sqlite:///WORK/mlflow.db --data DATA_DIR

Loads what one ``crmscore serve`` worker loads, in this process and in the same order (the service module, then
``CRMScoring.__init__``'s parts), with the heavy libraries the model loading imports first taken one by one, and
prints after each step the objects the collector tracks (``len(gc.get_objects())``, after a collection) and how
many that step added; then the CPU time of one full ``gc.collect()`` over the loaded worker (the pause a worker
takes when CPython runs a full collection), and the tracked objects reachable from each part of the service
(cross-sell state, model slots, ...). ``--registry`` and ``--data`` are what ``bench/bench_cross_sell.py`` serves
(a registry with ``lead_scoring`` and ``cross_sell`` at ``champion``, and the ingested Online Retail dir).

Nothing here changes the collector's settings: it only counts and collects. CPU time, not wall time, is printed
(the machine is shared).
"""

from __future__ import annotations

import argparse
import gc
import importlib
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def _tracked_reachable(root: object) -> int:
    """Tracked objects reachable from ``root`` without following classes, modules or functions (their globals
    are the libraries, counted by the steps)."""
    seen, todo, count = {id(root)}, [root], 0
    while todo:
        obj = todo.pop()
        if gc.is_tracked(obj):
            count += 1
        if isinstance(obj, type | type(gc)) or callable(obj) and not hasattr(obj, "__dataclass_fields__"):
            continue
        for ref in gc.get_referents(obj):
            if id(ref) not in seen:
                seen.add(id(ref))
                todo.append(ref)
    return count


def main(argv: list[str] | None = None) -> int:
    """Print the worker's tracked objects step by step, one full collection's CPU time and the parts' shares."""
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--registry", required=True, help="MLflow tracking URI (what the bench's server uses)")
    ap.add_argument("--data", required=True, help="the service's data dir (crmscore serve --data)")
    args = ap.parse_args(argv)
    home = tempfile.mkdtemp(prefix="gc_heap_")
    os.environ.update({"MLFLOW_TRACKING_URI": args.registry, "CRMSCORE_DATA_DIR": args.data,
                       "CRMSCORE_API_KEYS": "gc-heap", "CRMSCORE_HOME": home, "BENTOML_HOME": f"{home}/bentoml",
                       "CRMSCORE_PIN_MODELS": "1", "OMP_NUM_THREADS": "1"})
    last = [0]

    def step(name: str) -> None:
        gc.collect()
        n = len(gc.get_objects())
        print(f"{name:<48} +{n - last[0]:>9,}  = {n:>9,}", flush=True)
        last[0] = n

    step("interpreter")
    import serving.http.service as svc

    step("import serving.http.service")
    from mlflow import MlflowClient

    MlflowClient().search_registered_models(max_results=1)  # the store (sqlalchemy, alembic) is imported on use
    step("mlflow and its registry store")
    for module in ("sklearn.base", "skops.io", "numba", "xgboost"):
        importlib.import_module(module)
        step(f"import {module}")
    inst = svc.CRMScoring.inner()  # type: ignore[attr-defined]
    step("CRMScoring.__init__ (models, data, rules)")
    c0 = time.process_time()
    gc.collect()
    print(f"one full gc.collect(): {1e3 * (time.process_time() - c0):.0f} ms CPU", flush=True)
    for part in ("cross_sell", "slots", "profiles", "sink", "programme", "bant", "routing", "forecast"):
        print(f"tracked objects reachable from .{part}: {_tracked_reachable(getattr(inst, part)):,}")
    if inst.sink is not None:
        inst.sink.close()
    if inst.watcher is not None:
        inst.watcher.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
