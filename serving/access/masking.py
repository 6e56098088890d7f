"""PII masking for roles without PII access: phone ``138****2206``, e-mail ``m***@example.com``, address cut to
province and city, name to the family name plus ``*``.

The same functions mask the profile page's API (:func:`mask_record`), pandas exports (:func:`mask_frame`) and
Arrow exports (:func:`mask_arrow`). Masking is per value and never fails: a value it cannot read is replaced by
``***``. Which columns are PII comes from the data contract (``features.contract.PII_COLUMNS``).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from typing import Any

#: Two-character family names (复姓) kept whole by :func:`mask_name`.
COMPOUND_SURNAMES = frozenset(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 "
    "司徒 夏侯 轩辕 令狐 钟离 端木 百里 呼延 南宫 西门 独孤".split()
)
#: Common family names in pinyin: decide which word of a Latin-script name is the family name.
PINYIN_SURNAMES = frozenset(
    "wang li zhang liu chen yang huang zhao wu zhou xu sun ma zhu hu guo he gao lin luo zheng liang xie song tang "
    "han feng deng cao peng zeng xiao tian dong yuan pan cai jiang yu du ye cheng wei su lu ding ren shen yao jin "
    "fan fu zhong lv qin qiu tan kong mao hao shi cui jia xia gu duan lei hou long shao wan qian yan dai mo bai "
    "meng qiao".split()
)
_PROVINCE_RE = re.compile(r"^(.+?(?:省|自治区|特别行政区|市))")
_CITY_RE = re.compile(r"^(.+?(?:自治州|地区|盟|市|州))")


def mask_phone(v: str) -> str:
    """``13812342206`` → ``138****2206`` (the first 3 and last 4 digits kept; separators and ``+86`` dropped)."""
    digits = re.sub(r"\D", "", v)
    if digits.startswith("86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) < 7:
        return "***"
    return f"{digits[:3]}****{digits[-4:]}"


def mask_email(v: str) -> str:
    """``ming.li@example.com`` → ``m***@example.com`` (the first character and the domain kept)."""
    local, at, domain = v.strip().rpartition("@")
    if not at or not local or not domain:
        return "***"
    return f"{local[0]}***@{domain}"


def mask_name(v: str) -> str:
    """``张伟`` → ``张*``, ``欧阳娜娜`` → ``欧阳*``, ``Linda Wang`` → ``Wang *``: the family name plus ``*``.

    Chinese names: the first character (two for a compound family name). Latin names: the first word when it
    is a common pinyin family name (``Wang Siyuan``), else the last word (``Linda Wang``)."""
    s = v.strip()
    if not s:
        return "*"
    if re.match(r"^[\u3400-\u9fff]", s):
        return (s[:2] if s[:2] in COMPOUND_SURNAMES else s[0]) + "*"
    parts = s.split()
    if len(parts) == 1:
        return parts[0][0] + "*"
    family = parts[0] if parts[0].casefold() in PINYIN_SURNAMES else parts[-1]
    return f"{family} *"


def mask_address(v: str, province: Any = None, city: Any = None) -> str:
    """An address cut to province and city: the customer's ``province`` and ``city`` fields when known, else
    the leading ``…省…市`` of the address itself, else ``***``."""
    known = [str(x) for x in (province, city) if isinstance(x, str) and x.strip()]
    if known:
        return " ".join(dict.fromkeys(known))
    s = v.strip()
    m = _PROVINCE_RE.match(s)
    if not m:
        return "***"
    prov = m.group(1)
    rest = s[len(prov):]
    c = _CITY_RE.match(rest)
    return prov + (c.group(1) if c else "")


_MASKERS: dict[str, Callable[[str], str]] = {"phone": mask_phone, "email": mask_email, "name": mask_name}


def mask_value(column: str, v: Any, province: Any = None, city: Any = None) -> Any:
    """One value of a PII column masked (missing values stay missing; unknown PII columns become ``***``)."""
    if v is None or (isinstance(v, float) and v != v):
        return v
    try:
        import pandas as pd

        if v is pd.NA:
            return v
    except ImportError:  # pragma: no cover
        pass
    s = str(v)
    if column == "address":
        return mask_address(s, province, city)
    fn = _MASKERS.get(column)
    return fn(s) if fn is not None else "***"


def pii_columns() -> frozenset[str]:
    """The contract's PII columns."""
    from features.contract import PII_COLUMNS

    return PII_COLUMNS


def mask_record(record: Mapping[str, Any]) -> dict[str, Any]:
    """A customer record (dict) with its PII values masked."""
    pii = pii_columns()
    prov, city = record.get("province"), record.get("city")
    return {k: mask_value(k, v, prov, city) if k in pii else v for k, v in record.items()}


def mask_frame(df: Any, columns: Any = None) -> Any:
    """A pandas frame with the PII columns (``columns``, default the contract's) masked; other columns as they are."""
    import pandas as pd

    pii = set(columns) if columns is not None else pii_columns()
    todo = [c for c in df.columns if c in pii]
    if not todo:
        return df
    out = df.copy()
    prov = df["province"].tolist() if "province" in df.columns else [None] * len(df)
    city = df["city"].tolist() if "city" in df.columns else [None] * len(df)
    for c in todo:
        vals = [mask_value(c, v, p, ct) for v, p, ct in zip(df[c].tolist(), prov, city, strict=True)]
        out[c] = pd.Series(vals, index=df.index, dtype="string")
    return out


def mask_arrow(table: Any, columns: Any = None) -> Any:
    """An Arrow table with the PII columns masked (they become string columns)."""
    import pyarrow as pa

    pii = set(columns) if columns is not None else pii_columns()
    todo = [c for c in table.column_names if c in pii]
    if not todo:
        return table
    prov = table.column("province").to_pylist() if "province" in table.column_names else [None] * table.num_rows
    city = table.column("city").to_pylist() if "city" in table.column_names else [None] * table.num_rows
    for c in todo:
        i = table.column_names.index(c)
        vals = [mask_value(c, v, p, ct) for v, p, ct in zip(table.column(c).to_pylist(), prov, city, strict=True)]
        table = table.set_column(i, c, pa.array([None if v is None else str(v) for v in vals], pa.string()))
    return table
