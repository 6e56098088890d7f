"""Timestamps of online records (a CRM's JSON events) as float epoch seconds, the builder's time unit.

``to_seconds`` reads one value (datetime, pandas Timestamp, ISO text, or missing; an offset is converted to
UTC); ``record_seconds`` reads one column of them and gives the same values and errors, parsing the plain
naive ISO text CRMs send in one numpy call.
"""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from typing import Any

import numpy as np
import pandas as pd

_EPOCH = datetime(1970, 1, 1)


def ts_seconds(value: pd.Timestamp | str | datetime) -> float:
    """A cutoff (or any value ``pd.Timestamp`` reads) as float epoch seconds; an offset is converted to UTC."""
    ts = pd.Timestamp(value)
    if ts.tzinfo is not None:
        ts = ts.tz_convert("UTC").tz_localize(None)
    return float(ts.value) / 1e9


def to_seconds(v: Any) -> float:
    """One timestamp (datetime, pandas Timestamp, ISO string, or missing) as float epoch seconds."""
    if v is None or v is pd.NaT or (isinstance(v, float) and np.isnan(v)):
        return np.nan
    if isinstance(v, str):
        v = v.strip()
        if not v:
            return np.nan
        try:
            v = datetime.fromisoformat(v)
        except ValueError:
            return ts_seconds(v)
    if isinstance(v, pd.Timestamp):
        return ts_seconds(v)
    if isinstance(v, datetime):
        if v.tzinfo is not None:
            v = v.astimezone(UTC).replace(tzinfo=None)
        return (v - _EPOCH) / timedelta(seconds=1)
    if isinstance(v, date):
        return (datetime(v.year, v.month, v.day) - _EPOCH) / timedelta(seconds=1)
    return ts_seconds(v)


#: the plain naive ISO form: "YYYY-MM-DD", then optionally "THH:MM" (or " HH:MM"), ":SS", ".f" to ".ffffff"
_PLAIN_ISO = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}(?:[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?)?")
_ISO_LENGTHS = frozenset((10, 16, 19, 21, 22, 23, 24, 25, 26))
_ISO_TEMPLATE = "dddd-dd-ddTdd:dd:dd.dddddd"  # d: a digit; "T" also may be " "
_ISO_LOW = np.array([48 if c == "d" else ord(c) for c in _ISO_TEMPLATE], dtype=np.uint8)
_ISO_HIGH = np.array([57 if c == "d" else ord(c) for c in _ISO_TEMPLATE], dtype=np.uint8)
_MAX_EXACT_US = 2**53  # |microseconds| below this convert to float64 exactly (about 1685 … 2255)


def plain_iso(texts: list[str]) -> np.ndarray:
    """Which of ``texts`` match ``_PLAIN_ISO``; a column of one length is checked as one byte matrix."""
    width = len(texts[0])
    if width in _ISO_LENGTHS and all(len(x) == width for x in texts):
        try:
            raw = "".join(texts).encode("ascii")
        except UnicodeEncodeError:
            raw = b""
        if len(raw) == width * len(texts):
            chars = np.frombuffer(raw, dtype=np.uint8).reshape(len(texts), width)
            ok = (chars >= _ISO_LOW[:width]) & (chars <= _ISO_HIGH[:width])
            if width > 10:
                ok[:, 10] |= chars[:, 10] == 32
            return np.asarray(ok.all(axis=1))
    return np.fromiter((_PLAIN_ISO.fullmatch(x) is not None for x in texts), dtype=bool, count=len(texts))


def record_seconds(values: list[Any]) -> np.ndarray:
    """Epoch seconds of one column of record timestamps, equal value for value to ``to_seconds``.

    Strings in the plain naive ISO form (what CRMs and ``isoformat()`` send; numpy and
    ``datetime.fromisoformat`` read it alike) are parsed in one numpy call instead of one ``datetime``
    per value. Everything else (missing, UTC offsets, other forms, objects), and a column numpy cannot
    parse, goes through ``to_seconds`` one value at a time, errors included.
    """
    texts = [i for i, v in enumerate(values) if type(v) is str]
    if len(texts) < 4:  # too few for one numpy parse to pay off
        return np.array([to_seconds(v) for v in values], dtype=float)
    every = len(texts) == len(values)
    strings = values if every else [values[i] for i in texts]
    ok = plain_iso(strings)
    plain = strings if ok.all() else [x for x, good in zip(strings, ok.tolist(), strict=True) if good]
    try:
        us = np.array(plain, dtype="datetime64[us]").view(np.int64)
    except ValueError:  # a field out of range: _to_seconds raises its own error
        return np.array([to_seconds(v) for v in values], dtype=float)
    if not np.all(np.abs(us) < _MAX_EXACT_US):
        return np.array([to_seconds(v) for v in values], dtype=float)
    parsed = us / 1e6  # the exact quotient rounded once, as (dt - epoch) / 1 second
    if every and len(plain) == len(values):
        return parsed
    out = np.full(len(values), np.nan)
    done = np.zeros(len(values), dtype=bool)
    rows = np.asarray(texts)[ok]
    out[rows] = parsed
    done[rows] = True
    for i in np.flatnonzero(~done).tolist():  # in row order: the first bad value raises, as before
        out[i] = to_seconds(values[i])
    return out
