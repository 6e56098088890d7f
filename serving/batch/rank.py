"""Pass 2: dedupe and rank all scored rows, then write the spilled chunks in input or rank order."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from serving.batch.options import _ROW
from serving.batch.score import reason_columns
from serving.batch.sinks import _Spill
from serving.batch.sources import ColumnPlan
from serving.batch.threads import _Job, prefetch


def rank_rows(ids: Any, probability: np.ndarray, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep mask (last occurrence of each id), rank (1 = highest probability, ties by input order; 0 for
    dropped rows) and decile (1 = top tenth) of every scored row; the arrays are in input order."""
    import pyarrow as pa

    n = len(probability)
    # the order of all rows is sorted (numpy, without the GIL) while pyarrow finds each id's last row; the
    # kept rows in that order are the order of the kept rows
    sorting = _Job(lambda: np.lexsort((rows, -probability)), name="crmscore-rank")
    tab = pa.table({"id": ids, "pos": pa.array(np.arange(n, dtype=np.int64))})
    last = tab.group_by("id", use_threads=False).aggregate([("pos", "max")]).column("pos_max").to_numpy()
    keep = np.zeros(n, dtype=bool)
    keep[last] = True
    everything = sorting.result()
    order = everything[keep[everything]]
    rank = np.zeros(n, dtype=np.int64)
    rank[order] = np.arange(1, len(order) + 1)
    m = max(len(order), 1)
    decile = np.where(rank > 0, (rank - 1) * 10 // m + 1, 0)
    return keep, rank, decile


def _quantiles(scores: np.ndarray) -> dict[str, float]:
    if len(scores) == 0:
        return {}
    qs = (0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.99)
    vals = np.quantile(scores, qs)
    return {f"p{int(q * 100):02d}": float(v) for q, v in zip(qs, vals, strict=True)} | {
        "min": float(scores.min()), "max": float(scores.max())
    }


def _output_schema(spill: _Spill, plan: ColumnPlan, reasons: int) -> Any:
    """The output's columns: id, pass-through, results, reasons (from the first chunk, else all text)."""
    import pyarrow as pa
    import pyarrow.feather as feather

    if spill.files:
        s = feather.read_table(spill.files[0], memory_map=True).schema
        fields = [f for f in s if f.name != _ROW]
        return pa.schema(fields[: len(fields) - len(reason_columns(reasons)) - 3] + [
            pa.field("probability", pa.float64()), pa.field("score", pa.int64()), pa.field("grade", pa.string()),
            pa.field("rank", pa.int64()), pa.field("decile", pa.int64()),
            *[pa.field(c, pa.string()) for c in reason_columns(reasons)],
        ])
    fields = [pa.field(plan.id_col, pa.string())] + [pa.field(k, pa.string()) for k in plan.keep if k != plan.id_col]
    fields += [pa.field("probability", pa.float64()), pa.field("score", pa.int64()), pa.field("grade", pa.string()),
               pa.field("rank", pa.int64()), pa.field("decile", pa.int64())]
    fields += [pa.field(c, pa.string()) for c in reason_columns(reasons)]
    return pa.schema(fields)


def _finish_table(t: Any, rank: np.ndarray, decile: np.ndarray, schema: Any) -> Any:
    import pyarrow as pa

    t = t.append_column("rank", pa.array(rank, type=pa.int64())).append_column("decile", pa.array(decile, pa.int64()))
    return t.select(schema.names).cast(schema)


def _write_results(
    spill: _Spill, sink: Any, keep: np.ndarray, rank: np.ndarray, decile: np.ndarray, sort: bool,
    chunk_size: int, schema: Any, work: Path,
) -> None:
    """Second pass: read the spilled chunks back and write the kept rows, in input or rank order."""
    import pyarrow as pa
    import pyarrow.feather as feather
    import pyarrow.parquet as pq

    offsets = np.cumsum([0] + [len(p) for p in spill.probs])
    if not sort:

        def finished() -> Iterator[Any]:
            for i, f in enumerate(spill.files):
                lo, hi = offsets[i], offsets[i + 1]
                m = keep[lo:hi].astype(bool)
                t = feather.read_table(f, memory_map=True).filter(pa.array(m))
                yield _finish_table(t, rank[lo:hi][m], decile[lo:hi][m], schema)

        # read and finish chunk i+1 while chunk i is written
        for t in prefetch(finished(), ahead=1, name="crmscore-pass2"):
            sink.write(t)
        return
    # distribution by rank into buckets of about chunk_size rows, then each bucket sorted and written
    n_kept = int(keep.sum())
    size = max(chunk_size, -(-n_kept // 512))
    writers: dict[int, Any] = {}
    bucket_dir = work / "buckets"
    bucket_dir.mkdir(exist_ok=True)
    try:
        for i, f in enumerate(spill.files):
            lo, hi = offsets[i], offsets[i + 1]
            m = keep[lo:hi].astype(bool)
            part = feather.read_table(f, memory_map=True).filter(pa.array(m))
            t = _finish_table(part, rank[lo:hi][m], decile[lo:hi][m], schema)
            b = (rank[lo:hi][m] - 1) // size
            for bb in np.unique(b):
                part = t.filter(pa.array(b == bb))
                if int(bb) not in writers:
                    writers[int(bb)] = pq.ParquetWriter(bucket_dir / f"b{int(bb):06d}.parquet", schema)
                writers[int(bb)].write_table(part)
    finally:
        for w in writers.values():
            w.close()
    for bb in sorted(writers):
        t = pq.read_table(bucket_dir / f"b{bb:06d}.parquet")
        sink.write(t.sort_by([("rank", "ascending")]))
        os.unlink(bucket_dir / f"b{bb:06d}.parquet")
