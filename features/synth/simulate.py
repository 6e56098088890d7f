"""Demo CRM data generator (``crmscore synth``): four contract tables plus the exact truth.

The generator simulates customers in periods of ``horizon_days`` days, aligned so that the as-of
date T is a period boundary. Within a period every customer's purchase (order) hazard is fixed
from its state at the period start, and that state is built only from what the tables show up to
then (funnel depth, engagement counts per event type, coupon claims, marketing clicks, paid-order
recency/frequency/spend, refunds and complaints, profile fields) plus a modest hidden propensity
``z``. Paid orders in (T, T+H] are therefore a Poisson process with a known intensity, and the
truth written to ``truth/`` is exact:

    P(at least one paid order in (T, T+H]) = 1 - exp(-q * lambda_T * W(T, T+H))

where ``q`` is the share of orders that end "paid" and ``W`` integrates the weekly/daily
seasonality over the window. ``z`` also drives behaviour (engagement, funnel progress, campaign
responses, spend), so most of its information reaches the tables.

Tuned for H = 30 days (the project default): at 20k customers both oracle ROC-AUCs sit near
0.85 (0.84-0.87 over seeds), about 8% of leads convert and about 40% of active customers churn
within the window, and XGBoost on the project's features over four cut-offs 30 days apart reaches
about 98.5% of the oracle AUC. Another horizon changes the period length and with it the rates.

Everything is vectorised NumPy over customers; the only Python loop is over periods (about 13
for a year of data).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from features.contract import FUNNEL_STAGES, SOURCE_CHANNELS, TOUCH_CHANNELS
from features.messages import M_
from features.synth.params import (
    _AR_PHI,
    _AR_SD,
    _CH,
    _CUST_BASE,
    _CUST_RATES,
    _DEPTH_EFFECT,
    _ENGAGE_TYPES,
    _EV,
    _HAZARD_CAP,
    _K_CLICK,
    _K_OPEN,
    _LEAD_BASE,
    _LEAD_RATES,
    _MEMBER_EFFECT,
    _MIN_DEPTH,
    _N_EV,
    _N_KINDS,
    _NEVER,
    _ORDER_CATEGORIES,
    _P_CANCELLED,
    _P_PAID,
    _PRIMARY_CHANNEL,
    _SIZE_EFFECT,
    _SIZE_P,
    _SOURCE_EFFECT,
    _SOURCE_P,
    _STAGE_OF_EVENT,
    _WIN7,
    _Z_HAZARD,
    CHURN_LOOKBACK_DAYS,
    DAY,
    _avoid_midnight,
    _Timeline,
)

# ---------------------------------------------------------------------------------------------
# Static customer attributes
# ---------------------------------------------------------------------------------------------


def _check_args(n_customers: int, days: int, horizon_days: int) -> None:
    if n_customers < 1:
        raise ValueError(M_("n_customers must be >= 1, got {n_customers}", n_customers=n_customers))
    if horizon_days < 7:
        raise ValueError(M_("horizon_days must be >= 7, got {horizon_days}", horizon_days=horizon_days))
    if days < horizon_days + 30:
        raise ValueError(M_(
            "days must be >= horizon_days + 30 = {min_days}, got {days}",
            min_days=horizon_days + 30, days=days,
        ))


def _choice(rng: np.random.Generator, n: int, probs) -> np.ndarray:
    p = np.asarray(probs, dtype=float)
    return np.searchsorted(np.cumsum(p / p.sum()), rng.random(n), side="right").clip(0, len(p) - 1)


def _draw_static(n: int, tl: _Timeline, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Hidden propensity and profile fields, fixed for the customer's lifetime (no look-ahead)."""
    z = rng.standard_normal(n)
    created = tl.place(np.zeros(n, dtype=np.int64), tl.end_sec, rng.random(n))
    src = _choice(rng, n, [_SOURCE_P[s] for s in SOURCE_CHANNELS])
    size = _choice(rng, n, _SIZE_P)
    size = np.where(rng.random(n) < 0.55, size, -1)  # company size known for B2B-ish leads only
    # loyalty level chosen at sign-up, correlated with the hidden propensity
    score = 0.8 * z + 0.9 * rng.standard_normal(n)
    member = np.searchsorted(np.array([0.15, 1.0, 1.8]), score)
    consent = rng.random(n) < 0.72
    primary = np.array([_CH[_PRIMARY_CHANNEL[s]] for s in SOURCE_CHANNELS])[src]
    cat = _choice(rng, n, [c[1] for c in _ORDER_CATEGORIES])
    spend_mu = 4.9 + 0.25 * z + 0.15 * member + 0.35 * rng.standard_normal(n)
    grumpy = rng.standard_normal(n)  # drives complaints, which are observed
    return dict(
        z=z,
        created=np.sort(created),
        src=src,
        size=size,
        member=member,
        consent=consent,
        primary=primary,
        cat=cat,
        spend_mu=spend_mu,
        grumpy=grumpy,
    )


# ---------------------------------------------------------------------------------------------
# Simulation
# ---------------------------------------------------------------------------------------------


@dataclass
class _State:
    """Per-customer state at a period start: everything here is visible in the tables up to then."""

    depth: np.ndarray
    n_paid: np.ndarray
    last_paid: np.ndarray
    sum_paid: np.ndarray
    cnt30: np.ndarray  # (kinds, n) counts with ts in the last period
    recent7: np.ndarray  # any visit/login/browse in the last 7 days
    last_engage: np.ndarray  # last visit/login/browse
    ring_paid: np.ndarray  # (12, n) paid orders per period, newest first
    ring_refund: np.ndarray  # (3, n)
    ring_service: np.ndarray  # (3, n) complaints + support tickets
    ring_click: np.ndarray  # (3, n) marketing clicks
    x: np.ndarray  # hidden AR(1) interest shock (not visible; drives engagement only)

    @classmethod
    def empty(cls, n: int, rng: np.random.Generator) -> _State:
        return cls(
            depth=np.zeros(n, np.int8),
            n_paid=np.zeros(n, np.int32),
            last_paid=np.full(n, _NEVER, np.int64),
            sum_paid=np.zeros(n),
            cnt30=np.zeros((_N_KINDS, n), np.int16),
            recent7=np.zeros(n, bool),
            last_engage=np.full(n, _NEVER, np.int64),
            ring_paid=np.zeros((12, n), np.int32),
            ring_refund=np.zeros((3, n), np.int32),
            ring_service=np.zeros((3, n), np.int32),
            ring_click=np.zeros((3, n), np.int32),
            x=rng.normal(0.0, _AR_SD, n),
        )


def _log_hazard(st: _State, static: dict[str, np.ndarray], idx: np.ndarray, a: int) -> np.ndarray:
    """Daily order log-hazard at period start ``a`` for customers ``idx`` (leads and buyers differ)."""
    c = st.cnt30[:, idx].astype(float)
    lead = st.n_paid[idx] == 0
    created = static["created"][idx]
    tenure = np.maximum(a - created, 0) / DAY
    since_engage = np.where(st.last_engage[idx] > _NEVER, (a - st.last_engage[idx]) / DAY, tenure)
    since_engage = np.clip(since_engage, 0, 180)
    z = static["z"][idx]
    clicks90 = st.ring_click[:, idx].sum(axis=0)
    service90 = st.ring_service[:, idx].sum(axis=0)
    refunds90 = st.ring_refund[:, idx].sum(axis=0)
    engage = (
        0.25 * np.log1p(c[_EV["visit"]])
        + 0.25 * np.log1p(c[_EV["login"]])
        + 0.3 * np.log1p(c[_EV["browse"]])
        + 0.3 * np.log1p(c[_EV["favorite"]])
        + 0.35 * st.recent7[idx]
        - np.where(lead, 0.35, 0.2) * since_engage / 30
    )
    market = 0.35 * np.log1p(clicks90) + 0.6 * (c[_EV["coupon_claim"]] > 0)
    common = engage + market + _Z_HAZARD * z

    src_eff = np.array([_SOURCE_EFFECT[s] for s in SOURCE_CHANNELS])[static["src"][idx]]
    size = static["size"][idx]
    size_eff = np.where(size >= 0, np.array(_SIZE_EFFECT)[np.maximum(size, 0)], 0.0)
    lead_intent = (
        0.45 * np.log1p(c[_EV["consult"]])
        + 1.3 * (c[_EV["add_to_cart"]] > 0)
        + 0.8 * (c[_EV["checkout_page"]] > 0)
    )
    lead_lh = (
        _LEAD_BASE
        + _DEPTH_EFFECT[st.depth[idx]]
        + lead_intent
        + src_eff
        + size_eff
        - 0.4 * np.minimum(tenure, 360) / 90
    )

    since_paid = np.clip((a - st.last_paid[idx]) / DAY, 0, 365)
    paid30 = st.ring_paid[0, idx]
    paid90 = np.minimum(st.ring_paid[:3, idx].sum(axis=0), 4)
    paid365 = np.minimum(st.ring_paid[:, idx].sum(axis=0), 12)
    avg_amount = st.sum_paid[idx] / np.maximum(st.n_paid[idx], 1)
    cust_lh = (
        _CUST_BASE
        + 0.6 * (paid30 > 0)
        + 0.5 * np.log1p(paid90)
        + 0.3 * np.log1p(paid365)
        - 0.25 * np.minimum(since_paid, 180) / 30
        + 0.3 * (c[_EV["add_to_cart"]] > 0)
        + np.array(_MEMBER_EFFECT)[static["member"][idx]]
        + 0.1 * np.clip(np.log(np.maximum(avg_amount, 1.0)) - 5.0, -2, 2)
        - 0.5 * np.log1p(service90)
        - 0.4 * np.log1p(refunds90)
    )
    raw = np.where(lead, lead_lh, cust_lh) + common
    # soft cap: nobody orders more than a few times a month on average
    return raw - np.log1p(np.exp(raw) / _HAZARD_CAP)


def _empty_events() -> dict[str, list[np.ndarray]]:
    return {"c": [], "t": [], "ch": [], "ev": []}


def _simulate(
    static: dict[str, np.ndarray], tl: _Timeline, t_sec: int, period_days: int, rng: np.random.Generator
) -> dict[str, Any]:
    """Run the period-by-period process; returns raw event arrays and the truth snapshot at T."""
    n = len(static["z"])
    st = _State.empty(n, rng)
    created = static["created"]
    p_sec = period_days * DAY
    bounds = sorted({0, tl.end_sec, *range(t_sec % p_sec, tl.end_sec, p_sec)})
    campaigns = _draw_campaigns(tl, rng)

    ev = _empty_events()
    orders: dict[str, list[np.ndarray]] = {
        "c": [],
        "t": [],
        "amount": [],
        "status": [],
        "items": [],
        "cat": [],
    }
    touches: dict[str, list[np.ndarray]] = {
        k: [] for k in ("c", "camp", "ch", "sent", "opened", "clicked", "claimed", "responded")
    }
    pending = (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64))  # cust, ts, kind
    truth: dict[str, np.ndarray] | None = None
    ar_innov = math.sqrt(1 - _AR_PHI**2) * _AR_SD

    for a, b in zip(bounds[:-1], bounds[1:], strict=True):
        idx = np.flatnonzero(created < b)
        if len(idx) == 0:
            continue
        s = np.maximum(created[idx], a)
        w = tl.integrate(b) - tl.integrate(s)
        new = created[idx] >= a
        period_ev = _empty_events()

        # sign-up: first funnel events at created_at, initial depth 1-3
        new_idx = idx[new]
        d0 = 1 + _choice(rng, len(new_idx), [0.5, 0.35, 0.15])
        st.depth[new_idx] = d0
        for stage, delay in ((1, 0), (2, 40), (3, 150)):
            m = d0 >= stage
            tt = np.minimum(created[new_idx[m]] + delay + rng.integers(0, 60, m.sum()) * (stage > 1), b - 1)
            _add_events(
                period_ev,
                new_idx[m],
                _avoid_midnight(tt),
                _channel(static, new_idx[m], rng, "digital"),
                _EV[FUNNEL_STAGES[stage - 1]],
            )

        log_lam = _log_hazard(st, static, idx, a)
        if a == t_sec:
            known = ~new  # the truth population: created at or before T
            truth = _snapshot_truth(st, idx[known], log_lam[known], tl, t_sec, p_sec)

        # orders: Poisson with the period's fixed hazard, placed by the seasonal intensity
        lam = np.exp(log_lam)
        n_ord = rng.poisson(lam * w)
        period_orders = _make_orders(static, idx, s, b, n_ord, tl, rng, period_ev)
        for key, arr in period_orders.items():
            orders[key].append(arr)

        # engagement by event type, scaled by hidden interest and life-cycle stage
        st.x[idx] = _AR_PHI * st.x[idx] + ar_innov * rng.standard_normal(len(idx))
        _make_engagement(static, st, idx, s, b, w, a, tl, rng, period_ev)
        _make_service(static, st, idx, s, b, w, tl, rng, period_ev)

        # campaigns sent in this period
        sig = _make_touches(static, st, idx, a, b, campaigns, tl, rng, touches, period_ev)

        # everything generated this period, plus earlier spill-overs; tally what lies before b
        fresh = {key: np.concatenate(period_ev[key]) for key in ("c", "t", "ch", "ev")}
        keep = fresh["t"] < tl.end_sec  # follow-ups (refunds, reviews) after the data end never happened
        for key, arr in fresh.items():
            ev[key].append(arr[keep])
        new_c, new_t, new_k = fresh["c"], fresh["t"], fresh["ev"]
        all_c = np.concatenate([pending[0], new_c[keep], sig[0]])
        all_t = np.concatenate([pending[1], new_t[keep], sig[1]])
        all_k = np.concatenate([pending[2], new_k[keep].astype(np.int64), sig[2]])
        now = all_t < b
        pending = (all_c[~now], all_t[~now], all_k[~now])
        _update_state(st, all_c[now], all_t[now], all_k[now], b, period_orders, n)

    assert truth is not None, "as_of must be a period boundary"
    return {"events": ev, "orders": orders, "touches": touches, "campaigns": campaigns, "truth": truth}


def _snapshot_truth(
    st: _State, idx: np.ndarray, log_lam: np.ndarray, tl: _Timeline, t_sec: int, p_sec: int
) -> dict[str, np.ndarray]:
    """Exact P(paid order in (T, T+H]) for customers created at or before T."""
    w_full = float(tl.integrate(t_sec + p_sec) - tl.integrate(t_sec))
    expected_paid = _P_PAID * np.exp(log_lam) * w_full  # paid orders are a thinned Poisson process
    lead = st.n_paid[idx] == 0
    active = st.last_paid[idx] > t_sec - CHURN_LOOKBACK_DAYS * DAY
    return {
        "idx": idx,
        "is_lead": lead,
        "is_active": active,
        "p_convert": np.where(lead, -np.expm1(-expected_paid), np.nan),
        "p_churn": np.where(active, np.exp(-expected_paid), np.nan),
    }


def _add_events(
    ev: dict[str, list[np.ndarray]],
    c: np.ndarray,
    t: np.ndarray,
    ch: np.ndarray | int,
    kind: np.ndarray | int,
) -> None:
    ev["c"].append(np.asarray(c, np.int32))
    ev["t"].append(np.asarray(t, np.int64))
    ev["ch"].append(np.broadcast_to(np.asarray(ch, np.int8), len(c)).copy())
    ev["ev"].append(np.broadcast_to(np.asarray(kind, np.int8), len(c)).copy())


# channel mixes in CHANNELS order: web, app, phone, sms, email, wechat, store, other
_DIGITAL_MIX = np.array([0.30, 0.32, 0.0, 0.0, 0.0, 0.30, 0.05, 0.03])
_SERVICE_MIX = np.array([0.25, 0.15, 0.30, 0.0, 0.10, 0.15, 0.05, 0.0])
_CONSULT_MIX = np.array([0.20, 0.10, 0.25, 0.0, 0.05, 0.30, 0.10, 0.0])


def _channel(static: dict[str, np.ndarray], c: np.ndarray, rng: np.random.Generator, kind: str) -> np.ndarray:
    """Event channel: the customer's primary channel most of the time, else a mix for the event kind."""
    mix = {"digital": _DIGITAL_MIX, "service": _SERVICE_MIX, "consult": _CONSULT_MIX}[kind]
    other = _choice(rng, len(c), mix)
    primary = static["primary"][c]
    ok = mix[primary] > 0
    return np.where((rng.random(len(c)) < 0.6) & ok, primary, other)


def _expand(idx: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Repeat customer index and position for each event."""
    pos = np.repeat(np.arange(len(idx)), counts)
    return idx[pos], pos


def _make_orders(static, idx, s, b, n_ord, tl: _Timeline, rng, period_ev) -> dict[str, np.ndarray]:
    """This period's orders (status 0 paid, 1 refunded, 2 cancelled) and their funnel/pay events."""
    c, pos = _expand(idx, n_ord)
    m = len(c)
    t = tl.place(s[pos], b, rng.random(m))
    u = rng.random(m)
    status = np.where(u < _P_PAID, 0, np.where(u < _P_PAID + _P_CANCELLED, 2, 1))  # paid, refunded, cancelled
    cat = np.where(rng.random(m) < 0.55, static["cat"][c], _choice(rng, m, [x[1] for x in _ORDER_CATEGORIES]))
    shift = np.array([x[2] for x in _ORDER_CATEGORIES])[cat]
    amount = np.round(
        np.maximum(np.exp(static["spend_mu"][c] + shift + 0.8 * rng.standard_normal(m)), 1.0), 2
    )
    items = 1 + rng.poisson(np.clip(amount / 300.0, 0.1, 4.0))
    ch = _channel(static, c, rng, "digital")
    lo = s[pos] + 1
    cart = rng.random(m) < 0.65
    _add_events(
        period_ev,
        c[cart],
        _avoid_midnight(np.maximum(t[cart] - rng.integers(120, 1800, cart.sum()), lo[cart])),
        ch[cart],
        _EV["add_to_cart"],
    )
    chk = rng.random(m) < 0.9
    _add_events(
        period_ev,
        c[chk],
        _avoid_midnight(np.maximum(t[chk] - rng.integers(10, 110, chk.sum()), lo[chk])),
        ch[chk],
        _EV["checkout_page"],
    )
    _add_events(period_ev, c, t, ch, _EV["order"])
    was_paid = status != 2  # paid, or paid and later refunded
    tp = t[was_paid] + rng.integers(5, 120, was_paid.sum())
    tp = np.where(tp < b, tp, t[was_paid] + (b - t[was_paid]) // 2)  # stay inside the period
    _add_events(period_ev, c[was_paid], _avoid_midnight(tp), ch[was_paid], _EV["pay"])
    ref = status == 1
    _add_events(
        period_ev,
        c[ref],
        _avoid_midnight(t[ref] + rng.integers(DAY, 6 * DAY, ref.sum())),
        _channel(static, c[ref], rng, "service"),
        _EV["refund"],
    )
    rev = (status == 0) & (rng.random(m) < 0.2)
    _add_events(
        period_ev,
        c[rev],
        _avoid_midnight(t[rev] + rng.integers(DAY, 10 * DAY, rev.sum())),
        ch[rev],
        _EV["review"],
    )
    return {"c": c, "t": t, "amount": amount, "status": status, "items": items, "cat": cat}


def _make_engagement(static, st: _State, idx, s, b, w, a, tl: _Timeline, rng, period_ev) -> None:
    z = static["z"][idx]
    lead = st.n_paid[idx] == 0
    tenure = np.maximum(a - static["created"][idx], 0) / DAY
    since_paid = np.maximum(a - st.last_paid[idx], 0) / DAY
    life = np.where(lead, 0.2 + 0.8 * np.exp(-tenure / 120), 0.35 + 1.1 * np.exp(-since_paid / 60))
    interest = np.exp(0.5 * z + st.x[idx]) * life * w / 30.0
    depth = st.depth[idx]

    # funnel progress for leads that have not reached checkout_page yet
    c = st.cnt30[:, idx]
    eng = c[_EV["visit"]] + c[_EV["login"]] + c[_EV["browse"]] + c[_EV["favorite"]]
    logit = -1.3 + 0.6 * z + st.x[idx] + 0.35 * np.log1p(eng) - 0.12 * depth - tenure / 150
    adv = (
        lead & (depth >= 1) & (depth < 7) & (rng.random(len(idx)) < 1 / (1 + np.exp(-logit))) & (s < b - 600)
    )
    step = 1 + (rng.random(len(idx)) < 0.3)
    new_depth = np.where(adv, np.minimum(depth + step, 7), depth)
    for stage in range(2, 8):
        m = adv & (depth < stage) & (new_depth >= stage)
        cm, pm = idx[m], np.flatnonzero(m)
        n_ev = 1 + rng.poisson(0.3, len(cm))
        cc, pp = _expand(cm, n_ev)
        tt = tl.place(s[pm][pp], b, rng.random(len(cc)))
        kind = "consult" if FUNNEL_STAGES[stage - 1] == "consult" else "digital"
        _add_events(period_ev, cc, tt, _channel(static, cc, rng, kind), _EV[FUNNEL_STAGES[stage - 1]])
    st.depth[idx] = new_depth

    base = np.where(lead[None, :], _LEAD_RATES[:, None], _CUST_RATES[:, None])
    allowed = (~lead[None, :]) | (new_depth[None, :] >= _MIN_DEPTH[:, None])
    counts = rng.poisson(base * interest[None, :] * allowed)
    for j, name in enumerate(_ENGAGE_TYPES):
        cj, pj = _expand(idx, counts[j])
        if len(cj) == 0:
            continue
        tt = tl.place(s[pj], b, rng.random(len(cj)))
        kind = "consult" if name == "consult" else "digital"
        _add_events(period_ev, cj, tt, _channel(static, cj, rng, kind), _EV[name])


def _make_service(static, st: _State, idx, s, b, w, tl: _Timeline, rng, period_ev) -> None:
    paid30 = np.minimum(st.ring_paid[0, idx], 3).astype(float)
    refunds90 = st.ring_refund[:, idx].sum(axis=0).astype(float)
    g = np.exp(0.4 * static["grumpy"][idx])
    rate_ticket = (0.03 + 0.2 * paid30 + 0.4 * refunds90) * g * w / 30
    rate_complaint = (0.01 + 0.04 * paid30 + 0.35 * refunds90) * g * w / 30
    for name, rate in (("support_ticket", rate_ticket), ("complaint", rate_complaint)):
        cnt = rng.poisson(rate)
        cj, pj = _expand(idx, cnt)
        tt = tl.place(s[pj], b, rng.random(len(cj)))
        _add_events(period_ev, cj, tt, _channel(static, cj, rng, "service"), _EV[name])


# campaign segments: who is eligible (consent is always required)
_SEGMENTS = ("all", "new_leads", "engaged_leads", "active_buyers", "lapsed_buyers", "vip")
_SEGMENT_P = (0.25, 0.15, 0.2, 0.2, 0.1, 0.1)
_TOUCH_OPEN_BASE = dict(sms=-1.6, email=-1.3, wechat=-0.3, app=-0.8, phone=-0.4)


def _draw_campaigns(tl: _Timeline, rng: np.random.Generator) -> pd.DataFrame:
    """A campaign calendar: one send every 3-8 days, each to a segment and a random share of it."""
    t, rows = 2 * DAY, []
    while True:
        t += int(rng.integers(3, 9)) * DAY
        if t >= tl.end_sec - DAY:
            break
        hour = int(rng.choice([10, 12, 19, 20]))
        rows.append(
            {
                "t": t - (t % DAY) + hour * 3600 + int(rng.integers(1, 1800)),
                "channel": int(_choice(rng, 1, [0.3, 0.15, 0.3, 0.2, 0.05])[0]),
                "segment": int(_choice(rng, 1, _SEGMENT_P)[0]),
                "coupon": bool(rng.random() < 0.5),
                "share": float(rng.uniform(0.15, 0.55)),
            }
        )
    df = pd.DataFrame(rows, columns=["t", "channel", "segment", "coupon", "share"])
    day = pd.Series(tl.to_datetime(df["t"].to_numpy())).dt.strftime("%Y%m%d")
    df["campaign_id"] = (
        "CMP-" + day + "-" + pd.Series(np.arange(len(df)) + 1).astype(str).str.zfill(3)
    ).to_numpy()
    return df


def _make_touches(
    static, st: _State, idx, a, b, campaigns: pd.DataFrame, tl: _Timeline, rng, touches, period_ev
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Send this period's campaigns; returns open/click signals (cust, ts, kind) for the tallies."""
    sig_c, sig_t, sig_k = [], [], []
    in_period = campaigns[(campaigns["t"] >= a) & (campaigns["t"] < b)]
    lead = st.n_paid[idx] == 0
    since_paid = (a - st.last_paid[idx]) / DAY
    tenure = (a - static["created"][idx]) / DAY
    # segment membership from the state at the period start (what the marketer could see)
    seg_ok = {
        "all": np.ones(len(idx), bool),
        "new_leads": lead & (tenure < 60),
        "engaged_leads": lead & (st.depth[idx] >= 3),
        "active_buyers": ~lead & (since_paid <= 90),
        "lapsed_buyers": ~lead & (since_paid > 90),
        "vip": static["member"][idx] >= 2,
    }
    c30 = st.cnt30[:, idx]
    eng = np.log1p(c30[_EV["visit"]] + c30[_EV["login"]] + c30[_EV["browse"]])
    for row in in_period.itertuples(index=False):
        ok = (static["created"][idx] < row.t - 3600) & static["consent"][idx] & seg_ok[_SEGMENTS[row.segment]]
        ok &= rng.random(len(idx)) < row.share
        c = idx[ok]
        m = len(c)
        if m == 0:
            continue
        ch_name = TOUCH_CHANNELS[row.channel]
        z = static["z"][c]
        sent = _avoid_midnight(row.t + rng.integers(0, 3600, m))
        p_open = 1 / (1 + np.exp(-(_TOUCH_OPEN_BASE[ch_name] + 0.5 * z + 0.3 * eng[ok])))
        opened = rng.random(m) < p_open
        t_open = sent + np.minimum(np.exp(rng.normal(8.0, 1.3, m)), 2 * DAY).astype(np.int64) + 1
        p_click = 1 / (1 + np.exp(-(-1.2 + 0.6 * z + 0.5 * row.coupon + 0.3 * eng[ok])))
        clicked = opened & (rng.random(m) < p_click)
        t_click = t_open + np.minimum(np.exp(rng.normal(4.5, 1.2, m)), DAY).astype(np.int64) + 1
        claimed = clicked & row.coupon & (rng.random(m) < 0.6)
        t_claim = t_click + rng.integers(5, 90, m)
        # anything after the data end has not happened yet at export time
        opened &= t_open < tl.end_sec
        clicked &= opened & (t_click < tl.end_sec)
        claimed &= clicked & (t_claim < tl.end_sec)
        touches["c"].append(c)
        touches["camp"].append(np.full(m, row.campaign_id, dtype=object))
        touches["ch"].append(np.full(m, row.channel))
        touches["sent"].append(sent)
        touches["opened"].append(np.where(opened, _avoid_midnight(t_open), -1))
        touches["clicked"].append(np.where(clicked, _avoid_midnight(t_click), -1))
        touches["claimed"].append(claimed)
        touches["responded"].append(clicked)
        _add_events(
            period_ev, c[claimed], _avoid_midnight(t_claim[claimed]), _CH[ch_name], _EV["coupon_claim"]
        )
        sig_c += [c[opened], c[clicked]]
        sig_t += [_avoid_midnight(t_open[opened]), _avoid_midnight(t_click[clicked])]
        sig_k += [np.full(opened.sum(), _K_OPEN), np.full(clicked.sum(), _K_CLICK)]
    if not sig_c:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64)
    return (
        np.concatenate(sig_c).astype(np.int64),
        np.concatenate(sig_t).astype(np.int64),
        np.concatenate(sig_k).astype(np.int64),
    )


def _update_state(
    st: _State, c: np.ndarray, t: np.ndarray, k: np.ndarray, b: int, orders: dict[str, np.ndarray], n: int
) -> None:
    """Roll the tallies forward to period end ``b`` from the events with ts < b."""
    counts = np.bincount(k * n + c, minlength=_N_KINDS * n).reshape(_N_KINDS, n)
    st.cnt30 = np.minimum(counts, 32767).astype(np.int16)
    engage = np.isin(k, [_EV["visit"], _EV["login"], _EV["browse"]])
    np.maximum.at(st.last_engage, c[engage], t[engage])
    st.recent7 = st.last_engage >= b - _WIN7
    stage = _STAGE_OF_EVENT[k[k < _N_EV]]
    np.maximum.at(st.depth, c[k < _N_EV], stage.astype(np.int8))

    oc, status = orders["c"], orders["status"]
    paid = status == 0
    st.ring_paid = np.roll(st.ring_paid, 1, axis=0)
    st.ring_paid[0] = np.bincount(oc[paid], minlength=n)
    st.ring_refund = np.roll(st.ring_refund, 1, axis=0)
    st.ring_refund[0] = np.bincount(oc[status == 1], minlength=n)
    st.ring_service = np.roll(st.ring_service, 1, axis=0)
    st.ring_service[0] = st.cnt30[_EV["complaint"]] + st.cnt30[_EV["support_ticket"]]
    st.ring_click = np.roll(st.ring_click, 1, axis=0)
    st.ring_click[0] = st.cnt30[_K_CLICK]
    st.n_paid += st.ring_paid[0]
    if paid.any():
        np.maximum.at(st.last_paid, oc[paid], orders["t"][paid])
        st.sum_paid += np.bincount(oc[paid], weights=orders["amount"][paid], minlength=n)


