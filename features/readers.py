"""Reading CRM exports and parsing their messy values.

Two halves, both reusable outside ingestion (batch scoring reads its input through them):

* **Readers** turn a CSV / Excel (.xlsx) / Parquet file or a SQL table or query into a
  :class:`RawTable`: the raw frame plus where it came from, its text encoding and the row number the
  user sees for its first data row. CSV encodings are found by a strict decode cascade
  (``utf-8-sig`` → ``utf-8`` → ``gb18030``, then charset-normalizer) and delimiters are sniffed.
* **Parsers** turn raw columns into typed ones, vectorised with pandas string operations:
  :func:`normalize_text`, :func:`parse_dates`, :func:`parse_amounts`, :func:`parse_bools`;
  :func:`parse_dates_inferred` also decides a column's day/month order from its own values.
  A value that cannot be parsed becomes missing; callers compare with the blank mask to tell
  "blank" from "malformed".
"""

from __future__ import annotations

import codecs
import csv
import io
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from features.messages import M_

#: file suffixes a table may be read from
CSV_SUFFIXES = (".csv", ".tsv", ".txt")
EXCEL_SUFFIXES = (".xlsx", ".xlsm")
PARQUET_SUFFIXES = (".parquet", ".pq")
FILE_SUFFIXES = CSV_SUFFIXES + EXCEL_SUFFIXES + PARQUET_SUFFIXES

DELIMITERS = (",", ";", "\t", "|")

#: cell texts read as blank (any case, after trimming). "none" is not one (it is a member_level value),
#: and "NA" and "-" are kept as values too.
NULL_TOKENS = ("", "null", "nan", "nat", "n/a", "#n/a")

_NULL_VARIANTS = sorted(
    {"".join(chars) for tok in NULL_TOKENS for chars in itertools.product(*({ch.lower(), ch.upper()} for ch in tok))}
)  # every upper/lower-case spelling, so blank detection is one hash lookup per cell
_CHUNK = 1 << 20
#: bytes the UTF-8 validator checks per call: each call gives the GIL back, and while a model loads beside the
#: check (batch scoring) every hand-back waits for the loading thread; 1 MiB calls made the check of an 824 MB
#: file take 1.8-2.6 s there against 0.6 s with 16 MiB ones (0.24 s alone either way)
_VALIDATE_CHUNK = 16 << 20
_SQL_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.\-]*://")
# full-width ASCII forms (U+FF01..U+FF5E) and the ideographic space fold to plain ASCII
_FULLWIDTH = {i: i - 0xFEE0 for i in range(0xFF01, 0xFF5F)} | {0x3000: 0x20}
_FULLWIDTH_RE = r"[\uff01-\uff5e\u3000]"


class IngestError(ValueError):
    """Input that cannot be ingested; the one-line message names the file, table or column and why."""


@dataclass
class RawTable:
    """A table as read from its source, before mapping and validation."""

    frame: pd.DataFrame
    source: str
    encoding: str | None = None
    #: row number the user sees for the frame's first row (2 for files with a header row, 1 for SQL/Parquet)
    first_row_number: int = 2
    #: position → reason for rows the reader could not split cleanly (e.g. too many CSV fields)
    bad_rows: dict[int, str] = field(default_factory=dict)


# ----------------------------------------------------------------------------------------- readers


def is_sql_url(source: str | Path) -> bool:
    """True when ``source`` looks like a SQLAlchemy URL (``sqlite:///crm.db``, ``postgresql://…``)."""
    return isinstance(source, str) and bool(_SQL_URL.match(source)) and not source.startswith("file://")


def mask_url(url: str) -> str:
    """``url`` with any password hidden, safe to print and to store in a summary."""
    from sqlalchemy.engine import make_url

    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unparsable URL is reported by the reader itself
        return re.sub(r"://([^:/@]+):[^@]*@", r"://\1:***@", url)


def _utf8_complete(data: bytes | bytearray) -> int:
    """Length of ``data`` without a multi-byte UTF-8 sequence cut off at its end."""
    n = len(data)
    for i in range(n - 1, max(n - 4, 0) - 1, -1):
        b = data[i]
        if b & 0xC0 != 0x80:  # the last lead (or ASCII) byte
            need = 2 if b >> 5 == 0b110 else 3 if b >> 4 == 0b1110 else 4 if b >> 3 == 0b11110 else 1
            return i if i + need > n else n
    return n


def _utf8_valid(path: Path) -> bool:
    """True when the whole file is strict UTF-8, checked by pyarrow's validator (the same verdict as Python's
    strict decoder, without holding the GIL: a model loads beside this in batch scoring)."""
    import pyarrow as pa

    offsets = np.zeros(2, dtype=np.int32)
    carry = b""
    with path.open("rb") as fh:
        while chunk := fh.read(_VALIDATE_CHUNK):
            data = carry + chunk if carry else chunk
            cut = _utf8_complete(data)
            offsets[1] = cut
            arr = pa.Array.from_buffers(pa.binary(), 1, [None, pa.py_buffer(offsets), pa.py_buffer(data)])
            try:
                arr.cast(pa.string())
            except pa.ArrowInvalid:
                return False
            carry = data[cut:]
    return not carry  # a sequence cut off by the end of the file


def _decodes(path: Path, encoding: str) -> bool:
    """True when the whole file decodes strictly with ``encoding`` (read in 1 MiB chunks)."""
    if codecs.lookup(encoding).name in ("utf-8", "utf-8-sig"):
        try:
            return _utf8_valid(path)
        except ImportError:  # pragma: no cover - pyarrow is a dependency
            pass
    decoder = codecs.getincrementaldecoder(encoding)(errors="strict")
    ascii_superset = codecs.lookup(encoding).name in ("utf-8", "gb18030")
    try:
        with path.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                # pure-ASCII chunks decode in UTF-8 and GB18030 whatever came before a complete character; numpy
                # checks them without holding the GIL (a model loads beside this in batch scoring)
                if ascii_superset and not decoder.getstate()[0] and int(np.frombuffer(chunk, np.uint8).max()) < 0x80:
                    continue
                decoder.decode(chunk)
            decoder.decode(b"", final=True)
    except (UnicodeDecodeError, LookupError):
        return False
    return True


def detect_encoding(path: str | Path) -> str:
    """The text encoding of a CSV file.

    A strict cascade first: UTF-16 by its byte-order mark, ``utf-8-sig`` when the file starts with
    the UTF-8 BOM, ``utf-8``, then ``gb18030`` (a superset of GBK and GB2312); only when all fail,
    charset-normalizer's best guess, itself checked by a strict decode of the whole file.
    Raises :class:`IngestError` for a missing file or one no encoding reads.
    """
    p = Path(path)
    if not p.is_file():
        raise IngestError(M_("file not found: {p}", p=p))
    with p.open("rb") as fh:
        head = fh.read(4)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)) and _decodes(p, "utf-16"):
        return "utf-16"
    if head.startswith(codecs.BOM_UTF8) and _decodes(p, "utf-8-sig"):
        return "utf-8-sig"
    for enc in ("utf-8", "gb18030"):
        if _decodes(p, enc):
            return enc
    from charset_normalizer import from_path

    best = from_path(p).best()
    if best is not None and _decodes(p, best.encoding):
        with p.open("rb") as fh:
            sample = fh.read(_CHUNK).decode(best.encoding, errors="ignore")
        if "\x00" not in sample:
            return best.encoding
    raise IngestError(M_("{p}: unreadable encoding: the file is not UTF-8, GB18030 or any encoding detected", p=p))


def sniff_delimiter(sample: str) -> str:
    """The delimiter (comma, semicolon, tab or pipe) that splits ``sample``'s lines most consistently.

    Each candidate splits the first lines with the csv module (so quoted delimiters do not count);
    the winner gives the header more than one field and the most lines with the header's field
    count. A file with a single column gives a comma.
    """
    cut = sample.rfind("\n")
    lines = sample[: cut + 1] if cut > 0 else sample
    best, best_score = ",", (0.0, 1)
    for delim in DELIMITERS:
        try:
            rows = [r for r in csv.reader(io.StringIO(lines), delimiter=delim) if r][:50]
        except csv.Error:
            continue
        if not rows or len(rows[0]) < 2:
            continue
        n = len(rows[0])
        score = (sum(len(r) == n for r in rows) / len(rows), n)
        if score > best_score:
            best, best_score = delim, score
    return best


def _read_text_sample(path: Path, encoding: str, size: int = 1 << 16) -> str:
    with path.open("r", encoding=encoding, newline="") as fh:
        return fh.read(size)


def read_csv_file(path: str | Path, encoding: str | None = None, delimiter: str | None = None) -> RawTable:
    """Read a delimited text file as strings (blank cells are ``""``), detecting encoding and delimiter.

    Rows keep their place (blank lines included) so a row's position maps to the row number a
    spreadsheet user sees. A row with more non-empty fields than the header is kept, truncated, and
    reported in :attr:`RawTable.bad_rows` rather than failing the file.
    """
    p = Path(path)
    enc = encoding or detect_encoding(p)
    sample = _read_text_sample(p, enc)
    if not sample.strip():
        raise IngestError(M_("{p}: the file is empty", p=p))
    delim = delimiter or sniff_delimiter(sample)
    try:
        frame = pd.read_csv(
            p,
            sep=delim,
            encoding=enc,
            dtype=str,
            na_filter=False,
            skip_blank_lines=False,
            engine="c",
        )
        bad: dict[int, str] = {}
    except pd.errors.EmptyDataError:
        raise IngestError(M_("{p}: the file is empty", p=p)) from None
    except pd.errors.ParserError:
        frame, bad = _read_csv_ragged(p, enc, delim)
    frame.columns = [str(c).strip() for c in frame.columns]
    return RawTable(frame=frame, source=str(p), encoding=enc, first_row_number=2, bad_rows=bad)


def _read_csv_ragged(path: Path, encoding: str, delim: str) -> tuple[pd.DataFrame, dict[int, str]]:
    """Files whose rows have more fields than the header: re-read wide enough with the C parser.

    Extra fields that are all empty (a trailing delimiter) are harmless; a row with a non-empty
    extra field is reported as bad, with its field count.
    """
    with path.open("r", encoding=encoding, newline="") as fh:
        header = next(csv.reader(fh, delimiter=delim), [])
    n = len(header)
    width = n + 1
    for _ in range(20):  # each retry learns a larger field count from the parser's message
        try:
            frame = pd.read_csv(path, sep=delim, encoding=encoding, dtype=str, na_filter=False, header=None,
                                skiprows=1, names=list(range(width)), skip_blank_lines=False, engine="c")
            break
        except pd.errors.ParserError as e:
            seen = re.search(r"saw (\d+)", str(e))
            if seen is None or int(seen.group(1)) <= width:
                raise IngestError(M_(
                    "{path}: not a readable delimited file ({value})",
                    path=path, value=str(e).splitlines()[0],
                )) from None
            width = int(seen.group(1))
    else:
        raise IngestError(M_("{path}: rows have too many different field counts to read", path=path))
    extra = frame.iloc[:, n:].fillna("").to_numpy(dtype=object) != ""
    bad_pos = np.flatnonzero(extra.any(axis=1))
    # fields up to the last non-empty one
    fields = n + extra.shape[1] - np.argmax(extra[bad_pos, ::-1], axis=1)
    bad = {int(p): f"row has {int(f)} fields, the header has {n}" for p, f in zip(bad_pos, fields, strict=True)}
    frame = frame.iloc[:, :n].fillna("")
    frame.columns = header
    return frame, bad


def excel_sheet_names(path: str | Path) -> list[str]:
    """The sheet names of an .xlsx workbook, in order."""
    with pd.ExcelFile(path, engine="openpyxl") as book:
        return [str(s) for s in book.sheet_names]


def read_excel_file(path: str | Path, sheet: str | int | None = None) -> RawTable:
    """Read one sheet (default: the first) of an .xlsx workbook; cells keep their Excel types."""
    p = Path(path)
    if not p.is_file():
        raise IngestError(M_("file not found: {p}", p=p))
    try:
        frame = pd.read_excel(p, sheet_name=0 if sheet is None else sheet, dtype=object, engine="openpyxl")
    except ValueError as e:  # unknown sheet name or index
        raise IngestError(M_("{p}: {value}", p=p, value=str(e).splitlines()[0])) from None
    except Exception as e:  # noqa: BLE001 - openpyxl raises many types for corrupt files
        raise IngestError(M_(
            "{p}: not a readable .xlsx workbook ({kind})",
            p=p, kind=type(e).__name__,
        )) from None
    if frame.shape[1] == 0:
        raise IngestError(M_("{p}: the file is empty", p=p))
    frame.columns = [str(c).strip() for c in frame.columns]
    label = str(p) if sheet is None else f"{p} [sheet {sheet}]"
    return RawTable(frame=frame, source=label, encoding=None, first_row_number=2)


def read_parquet_file(path: str | Path) -> RawTable:
    """Read a Parquet file; its columns keep their stored types."""
    p = Path(path)
    if not p.is_file():
        raise IngestError(M_("file not found: {p}", p=p))
    try:
        frame = pd.read_parquet(p)
    except Exception as e:  # noqa: BLE001 - pyarrow raises many types for corrupt files
        raise IngestError(M_("{p}: not a readable Parquet file ({kind})", p=p, kind=type(e).__name__)) from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return RawTable(frame=frame.reset_index(drop=True), source=str(p), encoding=None, first_row_number=1)


def _check_sqlite_file(url: str) -> None:
    """SQLite would silently create a missing database file; refuse instead."""
    from sqlalchemy.engine import make_url

    try:
        u = make_url(url)
    except Exception as e:  # noqa: BLE001
        raise IngestError(M_("not a valid SQLAlchemy URL: {value} ({e})", value=mask_url(url), e=e)) from None
    if u.get_backend_name() == "sqlite" and u.database and u.database != ":memory:":
        db = u.database.removeprefix("file:").split("?")[0]
        if not Path(db).is_file():
            raise IngestError(M_("file not found: {db} (from {value})", db=db, value=mask_url(url)))


def _sql_error(url: str, e: Exception) -> IngestError:
    first = str(getattr(e, "orig", None) or e).splitlines()[0]
    return IngestError(f"{mask_url(url)}: {first}")


def list_sql_tables(url: str) -> list[str]:
    """The table and view names of the database at ``url``."""
    from sqlalchemy import create_engine, inspect
    from sqlalchemy.exc import SQLAlchemyError

    _check_sqlite_file(url)
    try:
        engine = create_engine(url)
    except Exception as e:  # noqa: BLE001 - unknown dialect, missing driver
        raise IngestError(M_("{value}: cannot open ({e})", value=mask_url(url), e=e)) from None
    try:
        with engine.connect() as conn:
            insp = inspect(conn)
            return list(insp.get_table_names()) + list(insp.get_view_names())
    except SQLAlchemyError as e:
        raise _sql_error(url, e) from None
    finally:
        engine.dispose()


def read_sql_source(url: str, table: str | None = None, query: str | None = None) -> RawTable:
    """Read a whole table (matched case-insensitively) or the result of a query through SQLAlchemy."""
    from sqlalchemy import create_engine, inspect, text
    from sqlalchemy.exc import SQLAlchemyError

    if (table is None) == (query is None):
        raise IngestError(M_("give exactly one of a table name or a query to read from a SQL source"))
    _check_sqlite_file(url)
    try:
        engine = create_engine(url)
    except Exception as e:  # noqa: BLE001
        raise IngestError(M_("{value}: cannot open ({e})", value=mask_url(url), e=e)) from None
    try:
        with engine.connect() as conn:
            if query is not None:
                frame = pd.read_sql_query(text(query), conn)
                label = f"{mask_url(url)} (query)"
            else:
                insp = inspect(conn)
                names = list(insp.get_table_names()) + list(insp.get_view_names())
                match = next((n for n in names if n == table), None) or next(
                    (n for n in names if n.lower() == str(table).lower()), None
                )
                if match is None:
                    raise IngestError(
                        M_(
                            "table {table!r} not found in {value} (tables: {value2})",
                            table=table, value=mask_url(url), value2=", ".join(names) or "none",
                        )
                    )
                frame = pd.read_sql_query(text(f"SELECT * FROM {conn.dialect.identifier_preparer.quote(match)}"),
                                          conn)
                label = f"{mask_url(url)} table {match}"
    except SQLAlchemyError as e:
        raise _sql_error(url, e) from None
    finally:
        engine.dispose()
    frame.columns = [str(c).strip() for c in frame.columns]
    return RawTable(frame=frame, source=label, encoding=None, first_row_number=1)


def read_table_source(
    source: str | Path,
    *,
    table: str | None = None,
    query: str | None = None,
    sheet: str | int | None = None,
    encoding: str | None = None,
) -> RawTable:
    """Read one table from a file (CSV, .xlsx, Parquet, by suffix) or a SQLAlchemy URL.

    For a SQL URL give ``table`` (a table name in the database) or ``query``; for a workbook
    ``sheet`` picks the sheet; for a CSV ``encoding`` skips detection.
    """
    if is_sql_url(source):
        return read_sql_source(str(source), table=table, query=query)
    p = Path(source)
    if not p.exists():
        raise IngestError(M_("file not found: {p}", p=p))
    if p.is_dir():
        raise IngestError(M_("{p} is a directory; give one file", p=p))
    suffix = p.suffix.lower()
    if suffix in CSV_SUFFIXES:
        return read_csv_file(p, encoding=encoding)
    if suffix in EXCEL_SUFFIXES:
        return read_excel_file(p, sheet=sheet)
    if suffix in PARQUET_SUFFIXES:
        return read_parquet_file(p)
    if suffix == ".xls":
        raise IngestError(M_("{p}: old .xls workbooks are not supported; save it as .xlsx or CSV", p=p))
    raise IngestError(M_(
        "{p}: unsupported file type {value}; use {value2}",
        p=p, value=suffix or '(none)', value2=", ".join(FILE_SUFFIXES),
    ))


# ----------------------------------------------------------------------------------------- parsers


def null_variants() -> list[str]:
    """Every spelling :func:`normalize_text` reads as null (the null tokens in any upper/lower case)."""
    return list(_NULL_VARIANTS)


def normalize_text(series: pd.Series) -> pd.Series:
    """Cells as trimmed text (pandas ``string``), blank and null tokens as ``<NA>``.

    Full-width ASCII forms (digits, letters, punctuation, the ideographic space) fold to ASCII;
    integral floats (``17850.0``, as ids come out of spreadsheets) lose their ``.0``.
    """
    s = series
    if pd.api.types.is_float_dtype(s.dtype) or pd.api.types.is_integer_dtype(s.dtype):
        values = s.to_numpy(dtype="float64", na_value=np.nan)
        out = np.full(len(values), None, dtype=object)
        with np.errstate(invalid="ignore"):
            integral = np.isfinite(values) & (np.round(values) == values) & (np.abs(values) < 2**53)
        other = np.isfinite(values) & ~integral
        # numpy's str conversion is much faster than pandas' element-wise one
        out[integral] = values[integral].astype(np.int64).astype(str)
        out[other] = values[other].astype(str)
        return pd.Series(pd.array(out, dtype="string"), index=s.index, name=s.name)
    if pd.api.types.is_bool_dtype(s.dtype):
        return s.astype("string")
    t = s.astype("string")
    # one regex scan over the joined column decides whether the per-cell passes are needed at all
    joined = "\x00" + "\x00".join(t.to_numpy(dtype=object, na_value="")) + "\x00"
    if re.search(r"\x00\s|\s\x00", joined):
        t = t.str.strip()
    if not joined.isascii() and re.search(_FULLWIDTH_RE, joined):
        wide = t.str.contains(_FULLWIDTH_RE, regex=True, na=False)
        t[wide] = t[wide].str.translate(_FULLWIDTH).str.strip()
    return t.mask(t.isin(_NULL_VARIANTS))


def _num(s: pd.Series) -> pd.Series:
    return pd.to_numeric(s.astype(object), errors="coerce").astype("float64")


_TIME = (
    r"(?:\s*T?\s*(?P<ap1>上午|下午|晚上)?\s*(?P<H>\d{1,2})\s*[:时点]\s*(?P<M>\d{1,2})?"
    r"(?:\s*(?::|分)\s*(?P<S>\d{1,2})(?:[.,](?P<F>\d{1,9}))?)?\s*[分秒]?"
    r"\s*(?P<ap2>[AaPp]\.?[Mm]\.?)?)?"
    r"\s*(?:Z|UTC|GMT|[+-]\d{2}(?::?\d{2})?)?"
)
_YMD = re.compile(
    r"^(?P<y>\d{4})\s*[-/.年]\s*(?P<m>\d{1,2})\s*[-/.月]\s*(?P<d>\d{1,2})\s*日?" + _TIME + r"$"
)
_DMY = re.compile(r"^(?P<a>\d{1,2})\s*[-/.]\s*(?P<b>\d{1,2})\s*[-/.]\s*(?P<y>\d{4})" + _TIME + r"$")
_COMPACT = re.compile(r"^(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})(?:\s*T?\s*(?P<H>\d{2})(?P<M>\d{2})(?P<S>\d{2})?)?$")
_SERIAL = r"^\d{5}(?:\.\d+)?$"  # Excel day serials 10000..99999 = 1927..2173
_EPOCH_S = r"^\d{10}(?:\.\d+)?$"
_EPOCH_MS = r"^\d{13}$"
_MONTH_NAME = r"^(?=.*[A-Za-z]{3})(?=.*\d{4})(?=.*\b\d{1,2}\b)"
_EXCEL_EPOCH = pd.Timestamp("1899-12-30")


def _assemble(parts: pd.DataFrame) -> pd.Series:
    """Datetimes from extracted year/month/day/time parts; impossible combinations become NaT."""
    y, m, d = _num(parts["y"]), _num(parts["m"]), _num(parts["d"])
    hour = _num(parts["H"]).fillna(0) if "H" in parts else pd.Series(0.0, index=parts.index)
    minute = _num(parts["M"]).fillna(0) if "M" in parts else 0.0
    second = _num(parts["S"]).fillna(0) if "S" in parts else 0.0
    us: pd.Series | float
    if "F" in parts:
        us = _num(parts["F"].str.slice(0, 6).str.ljust(6, "0")).fillna(0)
    else:
        us = 0.0
    valid = y.notna() & m.between(1, 12) & d.between(1, 31)
    for col in ("ap1", "ap2"):
        if col in parts:
            ap = parts[col].fillna("").str.lower().str.replace(".", "", regex=False)
            pm = ap.isin(["pm", "下午", "晚上"])
            am = ap.isin(["am", "上午"])
            valid &= ~((pm | am) & ((hour > 12) | (hour < 1)))
            hour = hour.where(~(pm & (hour < 12)), hour + 12).where(~(am & (hour == 12)), 0)
    valid &= pd.Series(hour, index=parts.index).between(0, 23)
    valid &= pd.Series(minute, index=parts.index).between(0, 59)
    valid &= pd.Series(second, index=parts.index).between(0, 59)
    frame = pd.DataFrame(
        {"year": y, "month": m, "day": d, "hour": hour, "minute": minute, "second": second, "us": us},
        index=parts.index,
    )[valid]
    out = pd.Series(pd.NaT, index=parts.index, dtype="datetime64[ns]")
    if len(frame):
        out[valid] = pd.to_datetime(frame, errors="coerce")
    return out


_FAST_FORMATS = (
    "%Y-%m-%d", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d %H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S.%f", "%Y/%m/%d", "%Y/%m/%d %H:%M:%S", "%Y/%m/%d %H:%M", "%Y.%m.%d",
    "%Y年%m月%d日", "%Y年%m月%d日 %H:%M", "%Y年%m月%d日 %H:%M:%S",
)  # fmt: skip
_FAST_DM = ("{a}/{b}/%Y", "{a}/{b}/%Y %H:%M", "{a}/{b}/%Y %H:%M:%S", "{a}-{b}-%Y", "{a}.{b}.%Y")


def _parse_fast_formats(
    text: pd.Series, todo: pd.Series, out: pd.Series, day_first: bool, day_month: bool = True
) -> pd.Series:
    """Speed-up only: parse rows in the common fixed formats with pandas' C parser.

    The formats that match a sample of the remaining rows are applied to all of them, most
    frequent first; every format here is a strict subset of what the regex parser accepts, so the
    result does not depend on which rows get here. ``day_month=False`` leaves ``a/b/yyyy`` values
    to the regex parser (which sees both fields, to decide their order).
    """
    a, b = ("%d", "%m") if day_first else ("%m", "%d")
    formats = list(_FAST_FORMATS) + ([f.format(a=a, b=b) for f in _FAST_DM] if day_month else [])
    while formats and todo.any():
        rest = text[todo]
        sample = rest.iloc[:: max(1, len(rest) // 500)]
        hits = {f: pd.to_datetime(sample, format=f, errors="coerce").notna().sum() for f in formats}
        best = max(hits, key=hits.__getitem__)
        if hits[best] == 0:
            break
        formats.remove(best)
        parsed = pd.to_datetime(rest, format=best, errors="coerce")
        ok = parsed.notna()
        out[parsed.index[ok]] = parsed[ok].astype("datetime64[ns]")
        todo = todo & ~text.index.isin(parsed.index[ok])
    return todo


#: why a column's day/month order was chosen (see ``DateOrder``)
DateOrderBasis = Literal["inferred", "default", "conflict", "none"]


@dataclass(frozen=True)
class DateOrder:
    """How one column's ``a/b/yyyy`` dates (``05/03/2024``) were read, day first or month first, and why.

    The evidence is the values only one reading makes valid: ``23/02/2024`` (a first field over 12) can only
    be day first, ``02/23/2024`` (a second field over 12) only month first; ``05/03/2024`` is ambiguous.
    ``basis`` is ``inferred`` (evidence one way only), ``conflict`` (evidence both ways: the configured default
    is used and the values it cannot read are rejected), ``default`` (ambiguous values only: the configured
    default) or ``none`` (no ``a/b/yyyy`` value; nothing to decide).
    """

    day_first: bool
    basis: DateOrderBasis
    day_first_only: int = 0
    month_first_only: int = 0
    ambiguous: int = 0
    day_first_example: str | None = None
    month_first_example: str | None = None

    @property
    def order(self) -> Literal["day_first", "month_first"]:
        """``day_first`` or ``month_first``."""
        return "day_first" if self.day_first else "month_first"

    @property
    def note(self) -> str:
        """One sentence saying what was decided and on what evidence."""
        read = "day first" if self.day_first else "month first"
        day = f"{self.day_first_only} value(s) can only be day first (e.g. {self.day_first_example})"
        month = f"{self.month_first_only} value(s) can only be month first (e.g. {self.month_first_example})"
        if self.basis == "inferred":
            return f"{day if self.day_first else month}: read {read}"
        if self.basis == "conflict":
            lost = self.month_first_only if self.day_first else self.day_first_only
            return (f"conflicting evidence: {day} and {month}; read {read} (the configured default), "
                    f"so the {lost} value(s) that cannot be read {read} are rejected")
        if self.basis == "default":
            return (f"{self.ambiguous} ambiguous value(s) (both fields 12 or less) and none that decides: "
                    f"read {read} (the configured default)")
        return "no dd/mm/yyyy or mm/dd/yyyy values: nothing to decide"


def decide_date_order(a: pd.Series, b: pd.Series, text: pd.Series, default_day_first: bool) -> DateOrder:
    """The day/month order of a column from the first and second fields (``a``, ``b``) of its ``a/b/yyyy``
    values (``text`` gives the examples): day first when some values can only be day first and none only
    month first, month first in the opposite case, else ``default_day_first`` (basis ``conflict`` when
    evidence points both ways, ``default`` when every value is ambiguous)."""
    day_ok = a.between(1, 31) & b.between(1, 12)  # valid as day/month
    month_ok = a.between(1, 12) & b.between(1, 31)  # valid as month/day
    day_only, month_only = day_ok & ~month_ok, month_ok & ~day_ok
    n_day, n_month, n_amb = int(day_only.sum()), int(month_only.sum()), int((day_ok & month_ok).sum())
    basis: DateOrderBasis
    if n_day and not n_month:
        day_first, basis = True, "inferred"
    elif n_month and not n_day:
        day_first, basis = False, "inferred"
    else:
        day_first, basis = default_day_first, "conflict" if n_day else "default" if n_amb else "none"

    def example(mask: pd.Series) -> str | None:
        return str(text[mask[mask].index[0]]) if mask.any() else None

    return DateOrder(day_first, basis, n_day, n_month, n_amb, example(day_only), example(month_only))


def _parse_date_text(text: pd.Series, day_first: bool) -> pd.Series:
    """Vectorised date parsing of normalised text; the formats are tried on the rows still unparsed."""
    return _parse_dates_core(text, day_first, infer=False)[0]


def _parse_date_text_inferred(text: pd.Series, default_day_first: bool) -> tuple[pd.Series, DateOrder]:
    """Like :func:`_parse_date_text`, with the column's day/month order decided from its own values."""
    values, order = _parse_dates_core(text, default_day_first, infer=True)
    assert order is not None
    return values, order


def _parse_dates_core(text: pd.Series, day_first: bool, infer: bool) -> tuple[pd.Series, DateOrder | None]:
    """The date parser; with ``infer``, ``day_first`` is only the default (see :func:`decide_date_order`)."""
    index = text.index
    text = text.reset_index(drop=True)
    out = pd.Series(pd.NaT, index=text.index, dtype="datetime64[ns]")
    order = DateOrder(day_first, "none") if infer else None
    todo = _parse_fast_formats(text, text.notna(), out, day_first, day_month=not infer)

    def _apply(pattern: re.Pattern[str], dmy: bool = False) -> None:
        nonlocal todo, order, day_first
        if not todo.any():
            return
        parts = text[todo].str.extract(pattern)
        hit = parts["y"].notna()
        if not hit.any():
            return
        parts = parts[hit]
        if dmy:
            if infer:
                order = decide_date_order(_num(parts["a"]), _num(parts["b"]), text[parts.index], day_first)
                day_first = order.day_first
            first, second = ("a", "b") if day_first else ("b", "a")
            parts = parts.rename(columns={first: "d", second: "m"})
        out[parts.index] = _assemble(parts)
        todo &= ~text.index.isin(parts.index)

    _apply(_YMD)
    _apply(_DMY, dmy=True)
    _apply(_COMPACT)
    if todo.any():
        rest = text[todo]
        for pattern, unit, origin in (
            (_SERIAL, "D", _EXCEL_EPOCH),
            (_EPOCH_S, "s", "unix"),
            (_EPOCH_MS, "ms", "unix"),
        ):
            hit = rest.str.match(pattern, na=False)
            if hit.any():
                out[rest.index[hit]] = pd.to_datetime(_num(rest[hit]), unit=unit, origin=origin, errors="coerce")
                rest = rest[~hit]
        named = rest.str.contains(_MONTH_NAME, regex=True, na=False)
        if named.any():
            try:
                parsed = pd.to_datetime(rest[named].astype(object), format="mixed", dayfirst=day_first,
                                        errors="coerce")
                if isinstance(parsed.dtype, pd.DatetimeTZDtype):
                    parsed = parsed.dt.tz_localize(None)
                if pd.api.types.is_datetime64_dtype(parsed.dtype):
                    out[parsed.index] = parsed.astype("datetime64[ns]")
            except (ValueError, TypeError, OverflowError):
                pass
    return out.set_axis(index), order


def parse_dates(series: pd.Series, day_first: bool = False) -> pd.Series:
    """Parse dates in mixed formats to ``datetime64[ns]``; blank or unparseable values become NaT.

    Accepted: ``2024-03-05``, ``2024/3/5``, ``2024.3.5``, ``20240305``, ``2024年3月5日`` (with an
    optional time such as ``14:30``, ``14时30分``, ``下午2:30`` or ``2:30 PM``), ISO 8601 with ``T``,
    fractions and an offset, ``05/03/2024`` (day first only when ``day_first``, otherwise month
    first), Excel day serials (``45356`` = 2024-03-05), Unix seconds (10 digits) or milliseconds
    (13 digits), and English month names (``5 Mar 2024``). An offset (``Z``, ``+08:00``) is
    dropped, keeping the wall-clock time as written. Values already typed as datetimes pass through.
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        return series.dt.tz_localize(None).astype("datetime64[ns]")
    if pd.api.types.is_datetime64_dtype(series.dtype):
        return series.astype("datetime64[ns]")
    return _parse_date_text(normalize_text(series), day_first)


def parse_dates_inferred(series: pd.Series, default_day_first: bool = False) -> tuple[pd.Series, DateOrder]:
    """:func:`parse_dates` for one column whose day/month order is decided from its own values.

    ``05/03/2024``-style values are read day first when some of them can only be day first (``23/02/2024``)
    and none only month first, month first in the opposite case (``02/23/2024``), and by
    ``default_day_first`` when all are ambiguous or the evidence conflicts. Returns the dates and the
    :class:`DateOrder` (decision, basis, evidence counts). Typed datetime columns pass through (basis ``none``).
    """
    if isinstance(series.dtype, pd.DatetimeTZDtype) or pd.api.types.is_datetime64_dtype(series.dtype):
        return parse_dates(series, default_day_first), DateOrder(default_day_first, "none")
    return _parse_date_text_inferred(normalize_text(series), default_day_first)


_CURRENCY = r"(?i:rmb|cny|usd|eur|gbp|hkd|us\$|hk\$)|[元圆¥￥$€£]"
_JUNK = _CURRENCY + r"|[\s\u00a0\u2009\u202f'’]"
_US_NUMBER = r"^[+-]?(?:\d{1,3}(?:,\d{3})+|\d+)(?:\.\d+)?$"
_EU_NUMBER = r"^[+-]?(?:\d{1,3}(?:\.\d{3})+|\d+),\d+$"


def _parse_amount_text(text: pd.Series) -> pd.Series:
    """Vectorised number parsing of normalised text (see :func:`parse_amounts`)."""
    index = text.index
    text = text.reset_index(drop=True)
    # plain numbers parse in C; to_numeric's extra spellings (inf, nan) are dropped as non-finite below
    out = _num(text)
    rest = text[out.isna() & text.notna()]
    if len(rest):
        negative = (rest.str.startswith("(") & rest.str.endswith(")")).to_numpy(dtype=bool)
        t = rest.copy()
        if negative.any():
            t[negative] = t[negative].str.slice(1, -1)
        if "\u2212" in "".join(t.to_numpy(dtype=object)):
            t = t.str.replace("\u2212", "-", regex=False)
        t = t.str.replace(_JUNK, "", regex=True)
        us = t.str.match(_US_NUMBER, na=False).to_numpy(dtype=bool)
        values = pd.Series(np.nan, index=t.index, dtype="float64")
        values[us] = _num(t[us].str.replace(",", "", regex=False))
        eu = ~us & t.str.contains(",", regex=False, na=False).to_numpy(dtype=bool)
        if eu.any():
            eu[eu] = t[eu].str.match(_EU_NUMBER, na=False).to_numpy(dtype=bool)
            values[eu] = _num(t[eu].str.replace(".", "", regex=False).str.replace(",", ".", regex=False))
        values[negative] = -values[negative].abs()
        out[values.index] = values
    return out.where(np.isfinite(out)).set_axis(index)


def parse_amounts(series: pd.Series) -> pd.Series:
    """Parse money and other numbers to ``float64``; blank or unparseable values become NaN.

    Strips currency signs and codes (¥ ￥ $ € £ 元 RMB CNY USD …), spaces and thousands separators
    (``1,234.50``; European ``1.234,50`` and a decimal comma ``12,5`` are recognised), folds
    full-width digits, and reads ``(12.00)`` as -12. Numeric columns pass through as floats.
    """
    if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
        out = series.astype("float64")
        return out.where(np.isfinite(out))
    return _parse_amount_text(normalize_text(series))


_BOOLS = {
    "yes": True, "y": True, "true": True, "t": True, "1": True, "1.0": True, "是": True,
    "no": False, "n": False, "false": False, "f": False, "0": False, "0.0": False, "否": False,
}  # fmt: skip


def _parse_bool_text(text: pd.Series) -> pd.Series:
    return text.str.lower().map(_BOOLS).astype("boolean")


def parse_bools(series: pd.Series) -> pd.Series:
    """Parse yes/no/true/false/y/n/t/f/1/0/是/否 (any case) to pandas ``boolean``; others become ``<NA>``."""
    if pd.api.types.is_bool_dtype(series.dtype):
        return series.astype("boolean")
    return _parse_bool_text(normalize_text(series))
