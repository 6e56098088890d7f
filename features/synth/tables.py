"""Table assembly: the simulator's arrays as the four contract tables and the truth frame."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from features.contract import (
    CHANNELS,
    COMPANY_SIZES,
    EVENT_TYPES,
    MEMBER_LEVELS,
    ORDER_STATUSES,
    SOURCE_CHANNELS,
    TOUCH_CHANNELS,
    coerce_types,
    empty_frame,
)
from features.synth.params import (
    _EMAIL_DOMAINS,
    _ENGLISH_F,
    _ENGLISH_M,
    _GEO,
    _GIVEN_F,
    _GIVEN_M,
    _INDUSTRIES,
    _JOB_TITLES,
    _N_EV,
    _ORDER_CATEGORIES,
    _PHONE_PREFIXES,
    _STREETS,
    _SURNAMES,
    _Timeline,
)
from features.synth.simulate import _choice

# ---------------------------------------------------------------------------------------------
# Table assembly
# ---------------------------------------------------------------------------------------------


def _ids(prefix: str, n: int, width: int) -> np.ndarray:
    """Zero-padded string ids as an object array: C00000001, ..."""
    return np.array([f"{prefix}{i:0{width}d}" for i in range(1, n + 1)], dtype=object)


def _rate(s: pd.Series) -> float | None:
    return float(s.mean()) if len(s) else None


def _pick(values: tuple, codes: np.ndarray) -> np.ndarray:
    return np.asarray(values, dtype=object)[codes]


def _build_customers(
    static: dict[str, np.ndarray], ids: np.ndarray, tl: _Timeline, rng: np.random.Generator
) -> pd.DataFrame:
    n = len(ids)
    prov_i = _choice(rng, n, [g[1] for g in _GEO])
    provinces = np.array([g[0] for g in _GEO], dtype=object)[prov_i]
    city_pick = rng.random(n)
    cities = np.array(
        [g[2][int(u * len(g[2]))] for g, u in zip((_GEO[i] for i in prov_i), city_pick, strict=True)],
        dtype=object,
    )
    b2b = static["size"] >= 0
    industry = np.where(  # type: ignore[call-overload]  # numpy's stubs reject None in np.where
        rng.random(n) < np.where(b2b, 0.9, 0.25),
        _pick(_INDUSTRIES, _choice(rng, n, np.ones(len(_INDUSTRIES)))),
        None,
    )
    job = np.where(  # type: ignore[call-overload]  # numpy's stubs reject None in np.where
        rng.random(n) < np.where(b2b, 0.85, 0.35),
        _pick(_JOB_TITLES, _choice(rng, n, np.ones(len(_JOB_TITLES)))),
        None,
    )
    gender = _choice(rng, n, [0.47, 0.49, 0.04])
    age = np.clip(np.round(rng.normal(34, 10, n)), 16, 75).astype(float)
    age[rng.random(n) < 0.06] = np.nan
    member = static["member"]
    points = np.where(
        (member > 0) | (rng.random(n) < 0.2), np.round(np.exp(rng.normal(5.0 + 0.8 * member, 0.9)), 0), 0.0
    )
    names, emails = _fake_names_and_emails(rng, gender)
    phones = _pick(_PHONE_PREFIXES, _choice(rng, n, np.ones(len(_PHONE_PREFIXES)))) + pd.Series(
        rng.integers(0, 10**8, n)
    ).astype(str).str.zfill(8).to_numpy(dtype=object)
    phones[rng.random(n) < 0.03] = None
    emails[rng.random(n) < 0.08] = None
    street = _pick(_STREETS, _choice(rng, n, np.ones(len(_STREETS))))
    prefix = np.where(provinces == cities, cities, provinces + cities)
    address = (
        prefix
        + street
        + pd.Series(rng.integers(1, 999, n)).astype(str).to_numpy(dtype=object)
        + "号"
        + pd.Series(rng.integers(1, 30, n)).astype(str).to_numpy(dtype=object)
        + "栋"
        + pd.Series(rng.integers(101, 2999, n)).astype(str).to_numpy(dtype=object)
        + "室"
    )
    address[rng.random(n) < 0.1] = None
    size = static["size"]
    df = pd.DataFrame(
        {
            "customer_id": ids,
            "created_at": tl.to_datetime(static["created"]),
            "source_channel": _pick(SOURCE_CHANNELS, static["src"]),
            "province": provinces,
            "city": cities,
            "industry": industry,
            # numpy's stubs reject None in np.where (it gives None cells)
            "company_size": np.where(size >= 0, _pick(COMPANY_SIZES, np.maximum(size, 0)), None),  # type: ignore[call-overload]
            "job_title": job,
            "gender": _pick(("M", "F", "U"), gender),
            "age": pd.array(age, dtype="Float64").astype("Int64"),
            "member_level": _pick(MEMBER_LEVELS, member),
            "points_balance": points,
            "marketing_consent": static["consent"],
            "name": names,
            "phone": phones,
            "email": emails,
            "address": address,
        }
    )
    return coerce_types(df, "customers")


def _fake_names_and_emails(rng: np.random.Generator, gender: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Chinese names (张伟), some pinyin (Zhang Wei) and English (Emily Chen); emails on example.* domains."""
    n = len(gender)
    sur = _choice(rng, n, [s[2] for s in _SURNAMES])
    sur_h = np.array([s[0] for s in _SURNAMES], dtype=object)[sur]
    sur_p = np.array([s[1] for s in _SURNAMES], dtype=object)[sur]
    female = (gender == 1) | ((gender == 2) & (rng.random(n) < 0.5))
    gm = rng.integers(0, len(_GIVEN_M), n)
    gf = rng.integers(0, len(_GIVEN_F), n)
    giv_h = np.where(
        female,
        np.array([g[0] for g in _GIVEN_F], dtype=object)[gf],
        np.array([g[0] for g in _GIVEN_M], dtype=object)[gm],
    )
    giv_p = np.where(
        female,
        np.array([g[1] for g in _GIVEN_F], dtype=object)[gf],
        np.array([g[1] for g in _GIVEN_M], dtype=object)[gm],
    )
    eng = np.where(
        female,
        np.array(_ENGLISH_F, dtype=object)[rng.integers(0, len(_ENGLISH_F), n)],
        np.array(_ENGLISH_M, dtype=object)[rng.integers(0, len(_ENGLISH_M), n)],
    )
    style = _choice(rng, n, [0.85, 0.09, 0.06])
    names = np.where(style == 0, sur_h + giv_h, np.where(style == 1, sur_p + " " + giv_p, eng + " " + sur_p))
    first = np.where(style == 2, eng, giv_p)
    digits = pd.Series(rng.integers(1, 9999, n)).astype(str).to_numpy(dtype=object)
    local = np.where(rng.random(n) < 0.5, first + "." + sur_p, sur_p + first + digits)
    local = pd.Series(local).str.lower().to_numpy(dtype=object)
    emails = local + "@" + _pick(_EMAIL_DOMAINS, rng.integers(0, len(_EMAIL_DOMAINS), n))
    return names, emails


def _build_interactions(sim: dict[str, Any], ids: np.ndarray, tl: _Timeline) -> pd.DataFrame:
    ev = sim["events"]
    c, t, ch, et = (np.concatenate(ev[k]) for k in ("c", "t", "ch", "ev"))
    ev.clear()  # release the per-period arrays early: this is the largest table
    # one sortable int64 key (time, customer, channel, event type): sorts by time and puts exact
    # key duplicates next to each other, so they can be dropped
    n_c = int(c.max()) + 1 if len(c) else 1
    key = ((t * n_c + c) * len(CHANNELS) + ch) * _N_EV + et
    order = np.argsort(key, kind="stable")
    key = key[order]
    keep = np.ones(len(key), bool)
    keep[1:] = key[1:] != key[:-1]
    order = order[keep]
    df = pd.DataFrame(
        {
            "customer_id": ids[c[order]],
            "ts": tl.to_datetime(t[order]),
            "channel": _pick(CHANNELS, ch[order]),
            "event_type": _pick(EVENT_TYPES, et[order]),
        }
    )
    return coerce_types(df, "interactions")


def _build_orders(sim: dict[str, Any], ids: np.ndarray, tl: _Timeline) -> pd.DataFrame:
    o = {k: np.concatenate(v) for k, v in sim["orders"].items()}
    order = np.lexsort((o["c"], o["t"]))
    n = len(order)
    df = pd.DataFrame(
        {
            "order_id": _ids("O", n, 9),
            "customer_id": ids[o["c"][order]],
            "ts": tl.to_datetime(o["t"][order]),
            "amount": o["amount"][order],
            "status": _pick(ORDER_STATUSES, o["status"][order]),
            "items": o["items"][order],
            "category": np.array([x[0] for x in _ORDER_CATEGORIES], dtype=object)[o["cat"][order]],
        }
    )
    return coerce_types(df, "orders")


def _build_touches(sim: dict[str, Any], ids: np.ndarray, tl: _Timeline) -> pd.DataFrame:
    tch = sim["touches"]
    if not tch["c"]:
        return empty_frame("marketing_touches")
    o = {k: np.concatenate(v) for k, v in tch.items()}
    order = np.lexsort((o["c"], o["sent"]))

    def when(x: np.ndarray) -> pd.Series:
        x = x[order]
        return pd.Series(tl.to_datetime(np.maximum(x, 0))).where(x >= 0)

    df = pd.DataFrame(
        {
            "touch_id": _ids("T", len(order), 9),
            "customer_id": ids[o["c"][order]],
            "campaign_id": o["camp"][order],
            "channel": _pick(TOUCH_CHANNELS, o["ch"][order]),
            "sent_at": tl.to_datetime(o["sent"][order]),
            "opened_at": when(o["opened"]),
            "clicked_at": when(o["clicked"]),
            "coupon_claimed": o["claimed"][order],
            "responded": o["responded"][order],
        }
    )
    return coerce_types(df, "marketing_touches")


def _build_truth(truth: dict[str, np.ndarray], ids: np.ndarray) -> pd.DataFrame:
    df = pd.DataFrame(
        {
            "customer_id": pd.array(ids[truth["idx"]], dtype="string"),
            "is_lead": truth["is_lead"],
            "p_convert": truth["p_convert"],
            "is_active": truth["is_active"],
            "p_churn": truth["p_churn"],
        }
    )
    return df

