"""The messy-export writer: GB18030 / BOM / UTF-8 CSVs, an xlsx sheet, mixed date styles and injected faults."""

from __future__ import annotations

import json
import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.contract import MEMBER_LEVELS
from features.synth.params import _PHONE_PREFIXES, DAY
from features.synth.simulate import _choice

if TYPE_CHECKING:
    from features.synth.generate import SynthResult

# ---------------------------------------------------------------------------------------------
# Messy exports
# ---------------------------------------------------------------------------------------------

_MESSY_FILES = (
    "customers.csv",
    "orders.csv",
    "interactions.csv",
    "marketing_touches.xlsx",
    "marketing_touches.csv",
    "messy_manifest.json",
)
_DATE_STYLES = ("iso", "ymd_slash", "dmy_slash", "chinese", "excel_serial")
_DATE_STYLE_P = (0.80, 0.08, 0.06, 0.05, 0.01)
_EXCEL_EPOCH = np.datetime64("1899-12-30T00:00:00", "s")
_BAD_DATES = ("2024-13-45 10:00:00", "not a date", "00/00/0000", "2024年13月40日", "#VALUE!")
_BAD_NUMBERS = ("--", "abc", "待定", "#REF!")
_BAD_AGES = ("abc", "未知", "三十", "?")
_NA_TOKEN = "N/A"  # a missing-value marker: most readers (pandas by default) turn it into a blank
_BOOL_SPELLINGS = {True: ("True", "是", "Y", "1"), False: ("False", "否", "N", "0")}
_EXCEL_MAX_ROWS = 1_048_575  # one header row


class _RowPool:
    """Hands out disjoint random row positions so each injected fault sits on its own row."""

    def __init__(self, n: int, rng: np.random.Generator):
        self.rng = rng
        self.free = np.ones(n, bool)
        self.n = n

    def take(self, frac: float, eligible: np.ndarray | None = None) -> np.ndarray:
        ok = self.free if eligible is None else self.free & eligible
        cand = np.flatnonzero(ok)
        k = min(len(cand), max(1, int(round(frac * self.n)))) if self.n else 0
        rows = np.sort(self.rng.choice(cand, size=k, replace=False)) if k else np.zeros(0, np.int64)
        self.free[rows] = False
        return rows


def _format_dates(
    values: pd.Series, rng: np.random.Generator, styles=_DATE_STYLES, probs=_DATE_STYLE_P
) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps as strings in mixed styles (blank for NaT); returns (strings, style code per row)."""
    v = values.to_numpy(dtype="datetime64[s]")
    nat = np.isnat(v)
    code = _choice(rng, len(v), probs)
    code[nat] = -1
    out = np.char.replace(np.datetime_as_string(v, unit="s"), "T", " ").astype(object)
    out[nat] = ""
    other = np.flatnonzero(code > 0)
    if len(other):
        sub = pd.Series(v[other])
        y, mo, d = sub.dt.year.to_numpy(), sub.dt.month.to_numpy(), sub.dt.day.to_numpy()
        hh, mm, ss = sub.dt.hour.to_numpy(), sub.dt.minute.to_numpy(), sub.dt.second.to_numpy()
        serial = (v[other] - _EXCEL_EPOCH).astype(np.int64) / DAY
        name = [styles[k] for k in code[other]]
        out[other] = [
            f"{y_}/{m_}/{d_} {h_:02d}:{mi:02d}:{s_:02d}"
            if st == "ymd_slash"
            else f"{d_:02d}/{m_:02d}/{y_} {h_:02d}:{mi:02d}:{s_:02d}"
            if st == "dmy_slash"
            else f"{y_}年{m_}月{d_}日 {h_:02d}:{mi:02d}:{s_:02d}"
            if st == "chinese"
            else f"{x:.6f}"
            for st, y_, m_, d_, h_, mi, s_, x in zip(name, y, mo, d, hh, mm, ss, serial, strict=True)
        ]
    return out, code


def _style_counts(code: np.ndarray, rows_dropped: np.ndarray, styles=_DATE_STYLES) -> dict[str, int]:
    keep = np.ones(len(code), bool)
    keep[rows_dropped] = False
    return {st: int(((code == i) & keep).sum()) for i, st in enumerate(styles)}


def _plain(values: pd.Series) -> np.ndarray:
    """Contract values as export text: missing → blank."""
    return values.astype(object).where(values.notna(), "").astype(str).to_numpy(dtype=object)


def _pad(rng: np.random.Generator, values: np.ndarray) -> np.ndarray:
    left = np.array([" ", "  ", "", "\t"], dtype=object)[rng.integers(0, 4, len(values))]
    right = np.array([" ", "  ", " "], dtype=object)[rng.integers(0, 3, len(values))]
    return left + values + right


def _spell_bools(values: pd.Series, rng: np.random.Generator, probs=(0.7, 0.12, 0.1, 0.08)) -> np.ndarray:
    """Booleans spelled True/是/Y/1 (False/否/N/0) with the given shares; missing → blank."""
    v = values.to_numpy(dtype=object)
    k = _choice(rng, len(v), probs)
    return np.array(
        [
            _BOOL_SPELLINGS[bool(x)][j] if x is not pd.NA and x is not None else ""
            for x, j in zip(v, k, strict=True)
        ],
        dtype=object,
    )


def _spelling_counts(spelled: np.ndarray) -> dict[str, int]:
    counts = pd.Series(spelled[spelled != ""]).value_counts().to_dict()
    return {str(key): int(val) for key, val in sorted(counts.items())}


def _insert_duplicates(frame: pd.DataFrame, extra: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Append duplicate rows and shuffle them in at random positions (original order otherwise kept)."""
    if extra.empty:
        return frame
    pos = np.concatenate([np.arange(len(frame)), rng.uniform(-0.5, len(frame) - 0.5, len(extra))])
    both = pd.concat([frame, extra], ignore_index=True)
    return both.iloc[np.argsort(pos, kind="stable")].reset_index(drop=True)


def _messy_customers(
    df: pd.DataFrame, rng: np.random.Generator, end_sec_ts: pd.Timestamp
) -> tuple[pd.DataFrame, dict[str, Any]]:
    n = len(df)
    pool = _RowPool(n, rng)
    out = {c: _plain(df[c]) for c in df.columns}
    created, style = _format_dates(df["created_at"], rng)
    out["created_at"] = created
    blank_created = pool.take(0.004)
    out["created_at"][blank_created] = ""
    bad_created = pool.take(0.003)
    out["created_at"][bad_created] = rng.choice(np.array(_BAD_DATES, dtype=object), len(bad_created))
    bad_age = pool.take(0.01)
    out["age"][bad_age] = rng.choice(np.array(_BAD_AGES, dtype=object), len(bad_age))
    na_age = pool.take(0.003)
    out["age"][na_age] = _NA_TOKEN
    oor_age = pool.take(0.005)
    out["age"][oor_age] = rng.choice(np.array(["0", "3", "150", "230", "-5"], dtype=object), len(oor_age))
    pts = df["points_balance"].to_numpy()
    sep = pool.take(0.02, eligible=pts >= 1000)
    out["points_balance"][sep] = [f"{x:,.1f}" for x in pts[sep]]
    padded: dict[str, int] = {}
    for col in ("source_channel", "province", "city"):
        rows = pool.take(0.02, eligible=df[col].notna().to_numpy())
        out[col][rows] = _pad(rng, out[col][rows])
        padded[col] = len(rows)
    out["marketing_consent"] = _spell_bools(df["marketing_consent"], rng)
    # updated_at: the current row's last update; stale versions get an earlier one
    created_s = df["created_at"].to_numpy(dtype="datetime64[s]")
    span = (np.datetime64(end_sec_ts, "s") - created_s).astype(np.int64)
    upd = created_s + (rng.random(n) * span).astype(np.int64).astype("timedelta64[s]")
    out["updated_at"] = np.char.replace(np.datetime_as_string(upd, unit="s"), "T", " ").astype(object)
    frame = pd.DataFrame(out, columns=[*df.columns, "updated_at"])

    exact = pool.take(0.01)
    stale = pool.take(0.01, eligible=(upd > created_s))
    older = frame.iloc[stale].copy()
    gap = ((upd[stale] - created_s[stale]).astype(np.int64) * rng.random(len(stale))).astype(np.int64)
    older["updated_at"] = np.char.replace(
        np.datetime_as_string(created_s[stale] + gap.astype("timedelta64[s]"), unit="s"), "T", " "
    ).astype(object)
    levels = np.array(MEMBER_LEVELS, dtype=object)
    lvl = np.maximum(
        pd.Series(df["member_level"].to_numpy()[stale])
        .map({v: i for i, v in enumerate(MEMBER_LEVELS)})
        .fillna(0)
        .to_numpy(int)
        - 1,
        0,
    )
    older["member_level"] = levels[lvl]
    older["points_balance"] = [f"{x:.1f}" for x in np.floor(pts[stale] * 0.5)]
    older["phone"] = np.array(_PHONE_PREFIXES, dtype=object)[
        rng.integers(0, len(_PHONE_PREFIXES), len(stale))
    ] + pd.Series(rng.integers(0, 10**8, len(stale))).astype(str).str.zfill(8).to_numpy(dtype=object)
    dups = pd.concat([frame.iloc[exact], older], ignore_index=True)
    written = _insert_duplicates(frame, dups, rng)
    manifest = {
        "rows_clean": n,
        "rows_written": len(written),
        "extra_columns": ["updated_at"],
        "duplicates": {
            "exact": len(exact),
            "stale_version": len(stale),
            "rule": "same customer_id: keep the row with the latest updated_at (stale versions "
            "have an older updated_at and outdated member_level/points_balance/phone)",
        },
        "blank_required": {"created_at": len(blank_created)},
        "malformed": {"created_at": len(bad_created), "age": len(bad_age)},
        "na_token": {"age": len(na_age)},
        "out_of_range": {"age": len(oor_age)},
        "thousands_separator": {"points_balance": len(sep)},
        "whitespace_padded": padded,
        "date_formats": {
            "created_at": _date_counts_with_dups(style, blank_created, bad_created, exact, stale)
        },
        "bool_spellings": {
            "marketing_consent": _bool_counts_with_dups(out["marketing_consent"], exact, stale)
        },
    }
    return written, manifest


def _date_counts_with_dups(style: np.ndarray, *faulted_then_dups: np.ndarray) -> dict[str, int]:
    """Date style counts over rows written: faulted rows excluded, duplicated rows counted again."""
    *faulted, exact, stale = faulted_then_dups
    base = _style_counts(style, np.concatenate(faulted) if faulted else np.zeros(0, np.int64))
    for rows in (exact, stale):
        for i, st in enumerate(_DATE_STYLES):
            base[st] += int((style[rows] == i).sum())
    return base


def _bool_counts_with_dups(spelled: np.ndarray, *dups: np.ndarray) -> dict[str, int]:
    return _spelling_counts(np.concatenate([spelled, *(spelled[d] for d in dups)]))


def _messy_orders(df: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, Any]]:
    n = len(df)
    pool = _RowPool(n, rng)
    out = {c: _plain(df[c]) for c in df.columns}
    amount = df["amount"].to_numpy()
    out["amount"] = np.array([f"{x:.2f}" for x in amount], dtype=object)
    out["ts"], style = _format_dates(df["ts"], rng)
    blank_ts = pool.take(0.003)
    out["ts"][blank_ts] = ""
    bad_ts = pool.take(0.002)
    out["ts"][bad_ts] = rng.choice(np.array(_BAD_DATES, dtype=object), len(bad_ts))
    cny = pool.take(0.05)
    out["amount"][cny] = [f"¥{x:,.2f}" for x in amount[cny]]
    usd = pool.take(0.01)
    out["amount"][usd] = [f"${x:,.2f}" for x in amount[usd]]
    sep = pool.take(0.02, eligible=amount >= 1000)
    out["amount"][sep] = [f"{x:,.2f}" for x in amount[sep]]
    bad_amt = pool.take(0.004)
    out["amount"][bad_amt] = rng.choice(np.array(_BAD_NUMBERS, dtype=object), len(bad_amt))
    na_amt = pool.take(0.002)
    out["amount"][na_amt] = _NA_TOKEN
    blank_amt = pool.take(0.003)
    out["amount"][blank_amt] = ""
    status_var = pool.take(0.02)
    variants = np.char.upper(out["status"][status_var].astype(str)).astype(object)
    half = rng.random(len(status_var)) < 0.5
    variants[half] = _pad(rng, out["status"][status_var][half])
    out["status"][status_var] = variants
    frame = pd.DataFrame(out, columns=list(df.columns))
    exact = pool.take(0.005)
    written = _insert_duplicates(frame, frame.iloc[exact], rng)
    manifest = {
        "rows_clean": n,
        "rows_written": len(written),
        "duplicates": {"exact": len(exact), "rule": "identical lines (same order_id): keep one"},
        "blank_required": {"ts": len(blank_ts), "amount": len(blank_amt)},
        "malformed": {"ts": len(bad_ts), "amount": len(bad_amt)},
        "na_token": {"amount": len(na_amt)},
        "currency_symbol": {"amount_cny": len(cny), "amount_usd": len(usd)},
        "thousands_separator": {
            "amount": len(sep) + int((amount[cny] >= 1000).sum()) + int((amount[usd] >= 1000).sum())
        },
        "case_or_whitespace": {"status": len(status_var)},
        "date_formats": {"ts": _date_counts_with_dups(style, blank_ts, bad_ts, exact, np.zeros(0, np.int64))},
    }
    return written, manifest


def _messy_interactions(df: pd.DataFrame, rng: np.random.Generator) -> tuple[pd.DataFrame, dict[str, Any]]:
    n = len(df)
    pool = _RowPool(n, rng)
    out = {c: df[c].to_numpy(dtype=object) for c in ("customer_id", "channel", "event_type")}
    out["ts"], style = _format_dates(df["ts"], rng)
    blank_ts = pool.take(0.001)
    out["ts"][blank_ts] = ""
    bad_ts = pool.take(0.001)
    out["ts"][bad_ts] = rng.choice(np.array(_BAD_DATES, dtype=object), len(bad_ts))
    blank_ev = pool.take(0.002)
    out["event_type"] = out["event_type"].copy()
    out["event_type"][blank_ev] = ""
    out["channel"] = out["channel"].copy()
    case = pool.take(0.01)
    cased = {
        "web": "Web",
        "app": "APP",
        "wechat": "WeChat",
        "sms": "SMS",
        "email": "Email",
        "phone": "Phone",
        "store": "Store",
        "other": "Other",
    }
    out["channel"][case] = [cased.get(x, x.upper()) for x in out["channel"][case]]
    padded = pool.take(0.01)
    out["channel"][padded] = _pad(rng, out["channel"][padded])
    frame = pd.DataFrame(out, columns=list(df.columns))
    exact = pool.take(0.002)
    written = _insert_duplicates(frame, frame.iloc[exact], rng)
    manifest = {
        "rows_clean": n,
        "rows_written": len(written),
        "duplicates": {"exact": len(exact), "rule": "identical lines: keep one"},
        "blank_required": {"ts": len(blank_ts), "event_type": len(blank_ev)},
        "malformed": {"ts": len(bad_ts)},
        "case_variants": {"channel": len(case)},
        "whitespace_padded": {"channel": len(padded)},
        "date_formats": {"ts": _date_counts_with_dups(style, blank_ts, bad_ts, exact, np.zeros(0, np.int64))},
    }
    return written, manifest


_TOUCH_STYLES = ("excel_datetime", *_DATE_STYLES)
_TOUCH_STYLE_P = (0.85, 0.06, 0.03, 0.02, 0.02, 0.02)


def _messy_touches(df: pd.DataFrame, rng: np.random.Generator, out_dir: Path) -> dict[str, Any]:
    """marketing_touches as Excel (native datetime and boolean cells mixed with text), or CSV if too big."""
    n = len(df)
    pool = _RowPool(n, rng)
    as_excel = n <= _EXCEL_MAX_ROWS
    cols: dict[str, np.ndarray] = {
        c: _plain(df[c]) for c in ("touch_id", "customer_id", "campaign_id", "channel")
    }
    date_counts: dict[str, dict[str, int]] = {}
    blank_dates: dict[str, int] = {}
    for c in ("sent_at", "opened_at", "clicked_at"):
        styles = _TOUCH_STYLES if as_excel else _DATE_STYLES
        probs = _TOUCH_STYLE_P if as_excel else _DATE_STYLE_P
        text, code = _format_dates(df[c], rng, styles, probs)
        vals = text.copy()
        if as_excel:
            native = np.flatnonzero(code == 0)
            vals[native] = list(pd.DatetimeIndex(df[c].iloc[native]).to_pydatetime())
            serial = np.flatnonzero(code == styles.index("excel_serial"))
            vals[serial] = [float(x) for x in text[serial]]
            vals[code == -1] = None
        cols[c] = vals
        date_counts[c] = {st: int((code == i).sum()) for i, st in enumerate(styles)}
        blank_dates[c] = int((code == -1).sum())
    blank_camp = pool.take(0.003)
    cols["campaign_id"][blank_camp] = None if as_excel else ""
    padded = pool.take(0.01)
    cols["channel"][padded] = _pad(rng, cols["channel"][padded])
    bool_counts: dict[str, dict[str, int]] = {}
    for c in ("coupon_claimed", "responded"):
        if as_excel:
            v = df[c].to_numpy(dtype=object)
            text_rows = rng.random(n) < 0.1
            spelled = _spell_bools(df[c], rng, probs=(0.0, 0.5, 0.3, 0.2))
            vals = np.array([bool(x) for x in v], dtype=object)
            vals[text_rows] = spelled[text_rows]
            cols[c] = vals
            bool_cells = ~text_rows
            nv = v[bool_cells].astype(bool)
            counts = {"TRUE (boolean cell)": int(nv.sum()), "FALSE (boolean cell)": int((~nv).sum())}
            counts.update(pd.Series(spelled[text_rows]).value_counts().to_dict())
            bool_counts[c] = {str(k): int(val) for k, val in counts.items()}
        else:
            cols[c] = _spell_bools(df[c], rng)
            bool_counts[c] = _spelling_counts(cols[c])
    frame = pd.DataFrame(cols, columns=list(df.columns))
    if as_excel:
        path = out_dir / "marketing_touches.xlsx"
        _write_xlsx(frame, path)
    else:
        path = out_dir / "marketing_touches.csv"
        frame.to_csv(path, index=False, encoding="utf-8")
    return {
        "file": path.name,
        "format": "xlsx" if as_excel else "csv",
        "encoding": None if as_excel else "utf-8",
        "rows_clean": n,
        "rows_written": n,
        "duplicates": {"exact": 0},
        "blank_required": {"campaign_id": len(blank_camp)},
        "blank_optional": blank_dates,
        "whitespace_padded": {"channel": len(padded)},
        "date_formats": date_counts,
        "bool_spellings": bool_counts,
    }


_XLSX_STATIC = {
    "[Content_Types].xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">'
        '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>'
        '<Default Extension="xml" ContentType="application/xml"/>'
        '<Override PartName="/xl/workbook.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet.main+xml"/>'
        '<Override PartName="/xl/worksheets/sheet1.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.worksheet+xml"/>'
        '<Override PartName="/xl/styles.xml" '
        'ContentType="application/vnd.openxmlformats-officedocument.spreadsheetml.styles+xml"/>'
        "</Types>"
    ),
    "_rels/.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" '
        'Target="xl/workbook.xml"/></Relationships>'
    ),
    "xl/workbook.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<workbook xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main" '
        'xmlns:r="http://schemas.openxmlformats.org/officeDocument/2006/relationships">'
        '<sheets><sheet name="marketing_touches" sheetId="1" r:id="rId1"/></sheets></workbook>'
    ),
    "xl/_rels/workbook.xml.rels": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">'
        '<Relationship Id="rId1" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/worksheet" '
        'Target="worksheets/sheet1.xml"/>'
        '<Relationship Id="rId2" '
        'Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/styles" '
        'Target="styles.xml"/></Relationships>'
    ),
    "xl/styles.xml": (
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
        '<styleSheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main">'
        '<numFmts count="1"><numFmt numFmtId="164" formatCode="yyyy-mm-dd hh:mm:ss"/></numFmts>'
        '<fonts count="1"><font><sz val="11"/><name val="Calibri"/></font></fonts>'
        '<fills count="1"><fill><patternFill patternType="none"/></fill></fills>'
        '<borders count="1"><border/></borders>'
        '<cellStyleXfs count="1"><xf numFmtId="0" fontId="0" fillId="0" borderId="0"/></cellStyleXfs>'
        '<cellXfs count="2"><xf numFmtId="0" fontId="0" fillId="0" borderId="0" xfId="0"/>'
        '<xf numFmtId="164" fontId="0" fillId="0" borderId="0" xfId="0" applyNumberFormat="1"/></cellXfs>'
        '<cellStyles count="1"><cellStyle name="Normal" xfId="0" builtinId="0"/></cellStyles>'
        "</styleSheet>"
    ),
}


def _xlsx_cell(ref: str, v: Any) -> str:
    """One worksheet cell: inline string, number, boolean or date-time (style 1); None → no cell."""
    from xml.sax.saxutils import escape

    if v is None or (isinstance(v, float) and math.isnan(v)):
        return ""
    if isinstance(v, bool | np.bool_):
        return f'<c r="{ref}" t="b"><v>{int(v)}</v></c>'
    if isinstance(v, datetime):
        serial = (v - datetime(1899, 12, 30)) / timedelta(days=1)
        return f'<c r="{ref}" s="1"><v>{serial!r}</v></c>'
    if isinstance(v, int | float | np.integer | np.floating):
        return f'<c r="{ref}"><v>{float(v)!r}</v></c>'
    return f'<c r="{ref}" t="inlineStr"><is><t xml:space="preserve">{escape(str(v))}</t></is></c>'


def _write_xlsx(frame: pd.DataFrame, path: Path) -> None:
    """A minimal one-sheet .xlsx (inline strings, native date-time and boolean cells), readable by Excel
    and openpyxl; written directly because openpyxl's pure-Python writer is too slow for large sheets."""
    import zipfile

    def entry(name: str) -> zipfile.ZipInfo:  # fixed time stamps: same seed, same bytes
        info = zipfile.ZipInfo(name, date_time=(2025, 1, 1, 0, 0, 0))
        info.compress_type = zipfile.ZIP_DEFLATED
        return info

    letters = [chr(ord("A") + i) for i in range(len(frame.columns))]
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for name, text in _XLSX_STATIC.items():
            zf.writestr(entry(name), text)
        with zf.open(entry("xl/worksheets/sheet1.xml"), "w", force_zip64=True) as fh:
            fh.write(
                b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n'
                b'<worksheet xmlns="http://schemas.openxmlformats.org/spreadsheetml/2006/main"><sheetData>'
            )
            header = "".join(
                _xlsx_cell(f"{col}1", name) for col, name in zip(letters, frame.columns, strict=True)
            )
            fh.write(f'<row r="1">{header}</row>'.encode())
            chunk: list[str] = []
            for r, row in enumerate(frame.itertuples(index=False, name=None), start=2):
                cells = "".join(_xlsx_cell(f"{col}{r}", v) for col, v in zip(letters, row, strict=True))
                chunk.append(f'<row r="{r}">{cells}</row>')
                if len(chunk) >= 10_000:
                    fh.write("".join(chunk).encode())
                    chunk = []
            fh.write("".join(chunk).encode())
            fh.write(b"</sheetData></worksheet>")


def _write_messy(result: SynthResult, out: Path) -> dict[str, Any]:
    """Write the messy exports and ``messy_manifest.json``; returns the manifest."""
    rng = np.random.default_rng(np.random.SeedSequence([result.meta["seed"], 7]))
    end_ts = pd.Timestamp(result.meta["data_end"]) + pd.Timedelta(days=1) - pd.Timedelta(seconds=1)
    tables: dict[str, Any] = {}

    cust, man = _messy_customers(result.customers, rng, end_ts)
    cust.to_csv(out / "customers.csv", index=False, encoding="gb18030")
    tables["customers"] = {"file": "customers.csv", "format": "csv", "encoding": "gb18030", **man}

    orders, man = _messy_orders(result.orders, rng)
    orders.to_csv(out / "orders.csv", index=False, encoding="utf-8-sig")
    tables["orders"] = {"file": "orders.csv", "format": "csv", "encoding": "utf-8-sig", **man}

    inter, man = _messy_interactions(result.interactions, rng)
    inter.to_csv(out / "interactions.csv", index=False, encoding="utf-8")
    tables["interactions"] = {"file": "interactions.csv", "format": "csv", "encoding": "utf-8", **man}

    tables["marketing_touches"] = _messy_touches(result.marketing_touches, rng, out)
    manifest = {
        "generator": "crmscore synth --messy",
        "seed": result.meta["seed"],
        "n_customers": result.meta["n_customers"],
        "counting": "counts are rows written; each injected fault has its own row; duplicates copy "
        "fault-free rows; date_formats count parseable timestamps per style; na_token counts "
        "the literal 'N/A' (a missing-value marker that pandas reads as blank by default), "
        "kept apart from malformed values",
        "date_styles": {
            "iso": "2024-03-05 14:03:22",
            "ymd_slash": "2024/3/5 14:03:22",
            "dmy_slash": "05/03/2024 14:03:22 (day first)",
            "chinese": "2024年3月5日 14:03:22",
            "excel_serial": "45356.585671 (days since 1899-12-30, six decimals; round to the second)",
            "excel_datetime": "native Excel date-time cell (xlsx only)",
        },
        "tables": tables,
    }
    (out / "messy_manifest.json").write_text(
        json.dumps(manifest, indent=2, ensure_ascii=False) + "\n", encoding="utf-8"
    )
    return manifest
