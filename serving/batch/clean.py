"""Cleaning a read chunk: typed features, ids, pass-through columns and the rejected rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from serving.batch.options import REJECT_COLUMNS
from serving.batch.sources import ColumnPlan, RawChunk


@dataclass
class CleanChunk:
    """The scorable rows of a chunk and the rejected ones."""

    features: pd.DataFrame  # the model's feature columns, in order (numeric float64, categorical object)
    ids: np.ndarray  # object array of str
    keep: Any  # pyarrow.Table of the pass-through columns
    row_numbers: np.ndarray
    rejects: pd.DataFrame  # row, id, column, value, reason
    blank: int = 0
    #: the categorical features' text as codes (rows aligned with ``features``), for :func:`feature_matrix`
    codes: dict[str, CategoryCodes] = field(default_factory=dict)
    #: the numeric features as one float64 block (rows × ``ColumnPlan.numeric``, column-major; the memory the
    #: numeric columns of ``features`` are views of), for :func:`feature_matrix`
    numeric: np.ndarray | None = None
    #: ``ids`` as an Arrow string array when the input's id texts needed no normalising (else None)
    id_text: Any = None


class NumericBlocks:
    """Numeric blocks (rows × numeric features, float64, column-major) handed back once their chunk is scored
    and reused for a later chunk of the same shape: the memory is written again instead of being mapped afresh
    (and page-faulted in by the kernel) for every chunk. Thread-safe; keeps at most ``keep`` spare blocks."""

    def __init__(self, keep: int = 2) -> None:
        import threading

        self.keep = keep
        self._free: list[np.ndarray] = []
        self._lock = threading.Lock()

    def take(self, n: int, k: int) -> np.ndarray:
        """A block of ``n`` rows × ``k`` columns (contents undefined)."""
        with self._lock:
            for i, b in enumerate(self._free):
                if b.shape == (n, k):
                    return self._free.pop(i)
        return np.empty((n, k), dtype="float64", order="F")

    def give(self, block: np.ndarray | None) -> None:
        """Hand back a block nothing reads any more (its chunk is scored)."""
        if block is None or not block.flags.f_contiguous or block.dtype != np.float64 or block.base is not None:
            return
        with self._lock:
            if len(self._free) < self.keep:
                self._free.append(block)


def _is_numeric_type(t: Any) -> bool:
    import pyarrow as pa

    return pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_boolean(t) or pa.types.is_decimal(t)


def _text_codes_of(col: Any) -> tuple[np.ndarray, CategoryCodes | None]:
    """An Arrow column as normalised text (``features.readers.normalize_text``, applied to distinct values only):
    an object array, and its :class:`CategoryCodes` when the column was text."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from features.readers import normalize_text

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
        enc = pc.dictionary_encode(arr)
        if _normal_already(enc.dictionary):
            values = enc.dictionary.to_numpy(zero_copy_only=False)
        else:
            values = normalize_text(pd.Series(enc.dictionary.to_pandas(), dtype=object)).to_numpy(
                dtype=object, na_value=None
            )
        idx = enc.indices.to_numpy(zero_copy_only=False)
        if enc.indices.null_count == 0:
            codes = idx.astype(np.int64)
            return values[codes], CategoryCodes(codes, values)
        valid = ~np.asarray(enc.indices.is_null())
        codes = np.where(valid, idx, -1).astype(np.int64)
        out = np.empty(len(arr), dtype=object)
        out[valid] = values[codes[valid]]
        out[~valid] = None
        return out, CategoryCodes(codes, values)
    return normalize_text(arr.to_pandas()).to_numpy(dtype=object, na_value=None), None


def _ids_of(col: Any) -> tuple[np.ndarray, Any]:
    """The id column as normalised text (:func:`_text_codes_of`) and, when the ids needed no normalising (checked
    on the column itself by pyarrow: no hashing of ids that are mostly distinct), the same texts as an Arrow
    array the output is built from."""
    import pyarrow as pa

    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_string(arr.type) and _normal_already(arr):
        return arr.to_numpy(zero_copy_only=False), arr
    return _text_codes_of(arr)[0], None


#: characters str.strip() removes in the ASCII range (RE2's \s lacks \v and the separators \x1c-\x1f)
_ASCII_EDGE_SPACE = r"^[\t\n\x0b\x0c\r\x1c-\x1f ]|[\t\n\x0b\x0c\r\x1c-\x1f ]$"


def _normal_already(values: Any) -> bool:
    """Whether ``features.readers.normalize_text`` would leave these distinct values (an Arrow string array
    without nulls) unchanged: all ASCII (no full-width forms), no space at either end, no null token. Checked by
    pyarrow without the GIL, so clean ids skip the Python pass."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from features.readers import null_variants

    if len(values) == 0:
        return True
    if values.null_count or not pc.all(pc.string_is_ascii(values)).as_py():
        return False
    if pc.any(pc.match_substring_regex(values, _ASCII_EDGE_SPACE)).as_py():
        return False
    return not pc.any(pc.is_in(values, value_set=pa.array(null_variants(), pa.string()))).as_py()


@dataclass
class CategoryCodes:
    """A text column as codes into its distinct values: ``values[codes[i]]`` is row i's text, -1 is null.

    :func:`feature_matrix` maps the few distinct values to the model's categories once instead of looking up
    every row's text."""

    codes: np.ndarray
    values: np.ndarray  # object: str or None

    def take(self, mask: np.ndarray) -> CategoryCodes:
        """The codes of the rows ``mask`` keeps."""
        return CategoryCodes(self.codes[mask], self.values)


def _fill_floats(col: Any, out: np.ndarray) -> bool:
    """Copy a float64 column (what the CSV reader parses plain-number columns as; nulls become NaN) chunk by
    chunk straight into ``out`` (a column of the chunk's numeric block); False, nothing copied, for other types."""
    import pyarrow as pa

    if not pa.types.is_float64(col.type) or len(out) != len(col):
        return False
    at = 0
    for part in col.chunks if isinstance(col, pa.ChunkedArray) else [col]:
        m = len(part)
        out[at : at + m] = part.to_numpy(zero_copy_only=False)
        at += m
    return True


def _numbers_of(col: Any, name: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(values, bad mask, bad values as text) of a numeric feature column; infinite values are kept here."""
    import pyarrow as pa
    import pyarrow.compute as pc

    from features.readers import normalize_text, parse_amounts

    n = len(col)
    no = np.zeros(n, dtype=bool)
    if _is_numeric_type(col.type):
        return pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False), no, np.empty(0, dtype=object)
    if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
        try:
            vals = pc.cast(col, pa.float64()).to_numpy(zero_copy_only=False)
            return vals.astype("float64", copy=False), no, np.empty(0, dtype=object)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            pass
    # slow path: spaces, thousands separators, currency signs, or real junk somewhere in this chunk
    text = normalize_text(pd.Series(col.to_pandas(), dtype=object))
    vals = pd.to_numeric(text.astype(object), errors="coerce").to_numpy(dtype="float64", na_value=np.nan)
    rest = text.notna().to_numpy() & np.isnan(vals)
    if rest.any():
        # what the fast cast accepts ("inf", "1e400") must give the same value here
        vals[rest] = text[rest].map(_float_or_nan).to_numpy(dtype="float64")
        rest = text.notna().to_numpy() & np.isnan(vals)
    if rest.any():
        vals[rest] = parse_amounts(text[rest]).to_numpy(dtype="float64", na_value=np.nan)
    bad = text.notna().to_numpy() & np.isnan(vals)
    return vals, bad, text[bad].to_numpy(dtype=object)


def _float_or_nan(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        return float("nan")


def _blank_mask(table: Any, text_numbers: frozenset[str] = frozenset()) -> np.ndarray:
    import pyarrow as pa
    import pyarrow.compute as pc

    blank = np.ones(table.num_rows, dtype=bool)
    for name, col in zip(table.column_names, table.columns, strict=True):
        m = np.asarray(pc.is_null(col, nan_is_null=name not in text_numbers))
        if pa.types.is_string(col.type) or pa.types.is_large_string(col.type):
            m = m | np.asarray(pc.fill_null(pc.equal(pc.utf8_trim_whitespace(col), ""), False))
        blank &= m
        if not blank.any():
            break
    return blank


def clean_chunk(raw: RawChunk, plan: ColumnPlan, blocks: NumericBlocks | None = None) -> CleanChunk:
    """Typed features, ids and pass-through columns of the scorable rows of ``raw``; the rest as rejects.

    A row is rejected for a blank id, a value that is not a number in a numeric feature (the column and the
    value are named), or an infinite value. Entirely blank rows are skipped and counted. ``blocks``: where the
    numeric block comes from (:class:`NumericBlocks`, reused memory), else a new array.
    """
    t = raw.table
    n = t.num_rows
    blank = _blank_mask(t, raw.text_numbers) if n else np.zeros(0, dtype=bool)
    problems: list[tuple[np.ndarray, str, np.ndarray | str, str | np.ndarray]] = []
    ids, id_text = _ids_of(t.column(plan.id_col)) if n else (np.empty(0, dtype=object), None)
    no_id = pd.isna(ids).astype(bool) & ~blank
    if no_id.any():
        problems.append((np.flatnonzero(no_id), plan.id_col, "", f"{plan.id_col} is blank"))
    cols: dict[str, Any] = {}
    # one float matrix for all numeric features: the frame built from it is a single block (no consolidation copy)
    num = blocks.take(n, len(plan.numeric)) if blocks is not None else np.empty(
        (n, len(plan.numeric)), dtype="float64", order="F"
    )
    for j, c in enumerate(plan.numeric):
        col = num[:, j]
        if n and not _fill_floats(t.column(c), col):
            vals, bad, bad_text = _numbers_of(t.column(c), c)
            if bad.any():
                problems.append((np.flatnonzero(bad), c, bad_text, f"{c} is not a number"))
            col[:] = vals
            del vals
        inf = np.isinf(col)
        if inf.any():
            problems.append((np.flatnonzero(inf), c, np.where(col[inf] > 0, "inf", "-inf"), f"{c} is infinite"))
    codes: dict[str, CategoryCodes] = {}
    for c in plan.categorical:
        cols[c], cc = _text_codes_of(t.column(c)) if n else (np.empty(0, dtype=object), None)
        if cc is not None:
            codes[c] = cc
    bad_rows = np.zeros(n, dtype=bool)
    for pos, *_ in problems:
        bad_rows[pos] = True
    ok = ~bad_rows & ~blank
    rejects = _reject_frame(problems, raw.row_numbers, ids)
    if raw.bad_rows:
        extra = pd.DataFrame(
            {"row": [r for r, _ in raw.bad_rows], "id": "", "column": "(row)", "value": "",
             "reason": [why for _, why in raw.bad_rows]}
        )
        rejects = pd.concat([rejects, extra], ignore_index=True) if len(rejects) else extra
    all_ok = bool(ok.all())
    if not all_ok:
        num = np.asfortranarray(num[ok])
    feats = pd.DataFrame(num, columns=plan.numeric, copy=False)
    for c in plan.categorical:
        feats[c] = cols[c] if all_ok else cols[c][ok]
    feats = feats[plan.features] if list(feats.columns) != plan.features else feats
    keep = t.select(plan.keep).filter(ok) if plan.keep else None
    if not all_ok:
        codes = {c: cc.take(ok) for c, cc in codes.items()}
    if id_text is not None and not all_ok:
        id_text = id_text.filter(ok)
    return CleanChunk(feats, ids[ok], keep, raw.row_numbers[ok], rejects, int(blank.sum()), codes, num, id_text)


def _reject_frame(problems: list, row_numbers: np.ndarray, ids: np.ndarray) -> pd.DataFrame:
    """One line per rejected row: row number, id, column(s), value(s) and reason(s) joined with '; '."""
    if not problems:
        return pd.DataFrame({c: pd.Series(dtype=object) for c in REJECT_COLUMNS})
    parts = []
    for pos, col, values, reason in problems:
        parts.append(
            pd.DataFrame(
                {"pos": pos, "column": col,
                 "value": values if not isinstance(values, str) else [values] * len(pos), "reason": reason}
            )
        )
    p = pd.concat(parts, ignore_index=True).astype({"value": str})
    p = p.sort_values("pos", kind="stable")
    if p["pos"].duplicated().any():
        p = p.groupby("pos", sort=True).agg({"column": "; ".join, "value": "; ".join, "reason": "; ".join})
        p = p.reset_index()
    pos = p["pos"].to_numpy()
    return pd.DataFrame(
        {
            "row": row_numbers[pos],
            "id": [("" if v is None or v is pd.NA else v) for v in ids[pos]],
            "column": p["column"].to_numpy(),
            "value": p["value"].to_numpy(),
            "reason": p["reason"].to_numpy(),
        }
    )
