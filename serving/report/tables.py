"""The report's tables, computed from the contract tables as of a cutoff ``T`` (nothing after ``T`` is read).

Each function returns one plain DataFrame (one CSV of the report) of counts, sums and ratios over customers: no
customer id, name or other PII column ever appears in a result. Definitions are in :data:`DEFINITIONS`, which
the HTML prints under each chart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import FUNNEL_STAGES, empty_frame
from serving.report.keys import CustomerKeys, lookup, text_codes

#: What each table's figures mean (printed under the chart; the tests check the figures against these words).
DEFINITIONS: dict[str, str] = {
    "sales_monthly": (
        "Calendar months up to T. Revenue = sum of amount of paid orders (status 'paid'). Paid orders = their count. "
        "Payment rate = paid orders / all orders placed in the month (paid, refunded, cancelled). AOV (average "
        "order value) = revenue / paid orders. Buyers = customers with a paid order in the month; new = their first "
        "paid order ever is in that month, returning = the others. New share of buyers = new / buyers; new share of "
        "revenue = new buyers' revenue / revenue. Change = relative change against the previous month."
    ),
    "funnel": (
        "Customers (created up to T) who reached each funnel stage: at least one interaction of that event type up "
        "to T, by source channel. Stage conversion = customers reaching the stage / customers reaching the "
        "previous stage (stages are counted independently, so a customer can skip one). Days to first payment = "
        "days from a customer's first 'visit' to the first 'pay' event after it: median and mean over customers "
        "with both."
    ),
    "channels": (
        "Per source channel: leads = customers created up to T; buyers = leads with a paid order up to T; "
        "conversion rate = buyers / leads; revenue = their paid orders' amount up to T; share = of all revenue."
    ),
    "campaigns": (
        "Per campaign, touches sent up to T: open, click and coupon-claim rates = touches opened / clicked / with a "
        "coupon claimed (by T) / touches sent. Conversion within N days: share of touched customers (first touch of "
        "the campaign, only touches whose N-day window ends by T) with a paid order in the N days after the touch. "
        "Untouched: customers created before the campaign's first touch and not touched by any campaign from "
        "then until N days after its last touch, with a paid order in the N days after the campaign's median send "
        "time. Difference = touched - untouched. NOT a randomised test: touched customers were chosen by the "
        "campaign, so the difference mixes the campaign's effect with who was targeted."
    ),
    "regions": (
        "Per province and city (from customers): customers created up to T, buyers with a paid order up to T, "
        "their revenue and its share of all revenue. Customers without a province or city count as 'unknown'."
    ),
    "retention": (
        "Monthly cohorts: customers by the month of their first paid order. Month k = the share of the cohort with a "
        "paid order in the k-th calendar month after the first (month 0 = 100%). Only months that ended by T "
        "(the month containing T is included as far as T) are filled."
    ),
    "forecast": (
        "Weekly paid revenue in the weeks ending at T (actual) and the forecast of the following weeks with its "
        "80% and 95% intervals (see docs/forecast.md for the two methods and how the reported one is chosen)."
    ),
}


def _t(tables: dict[str, pd.DataFrame], name: str) -> pd.DataFrame:
    df = tables.get(name)
    return empty_frame(name) if df is None else df


def _mask(s: pd.Series) -> np.ndarray:
    return s.fillna(False).to_numpy(dtype=bool)


def _months(ts: pd.Series) -> np.ndarray:
    """Calendar month of each (non-missing) time as year * 12 + month - 1."""
    return ts.dt.year.to_numpy(dtype=np.int64) * 12 + ts.dt.month.to_numpy(dtype=np.int64) - 1


def _month_labels(months) -> list[str]:
    return [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in months]


def _paid_mask(orders: pd.DataFrame, as_of: pd.Timestamp) -> np.ndarray:
    return _mask(orders["status"] == "paid") & _mask(orders["ts"] <= as_of)


def _revenue_by_customer(keys: CustomerKeys, as_of: pd.Timestamp) -> tuple[np.ndarray, np.ndarray]:
    """(paid revenue up to T, has a paid order up to T) of each customer in ``keys.ids``."""
    orders = keys.table("orders")
    paid = _paid_mask(orders, as_of)
    pos = keys.positions("orders")[paid]
    keep = pos >= 0
    # per-customer sums over the orders in row order, as a groupby over the id text adds them
    rev = pd.Series(orders["amount"].to_numpy(dtype="float64")[paid][keep]).groupby(pos[keep]).sum()
    revenue = np.zeros(len(keys.ids))
    revenue[rev.index.to_numpy()] = rev.to_numpy()
    buyer = np.zeros(len(keys.ids), dtype=bool)
    buyer[pos[keep]] = True
    return revenue, buyer


def _created_by(keys: CustomerKeys, as_of: pd.Timestamp) -> np.ndarray:
    return _mask(keys.table("customers")["created_at"] <= as_of)


def _stage_codes(event_type: pd.Series, stages: tuple[str, ...]) -> np.ndarray:
    """Each event's index in ``stages`` (-1 for another event type)."""
    codes, ids = text_codes(event_type)
    return lookup(codes, ids, pd.Index(list(stages), dtype=object))


def _ratio(num, den) -> np.ndarray:
    num = np.asarray(num, dtype="float64")
    den = np.asarray(den, dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def sales_monthly(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, keys: CustomerKeys | None = None
) -> pd.DataFrame:
    """Revenue, paid orders, payment rate, AOV, new vs returning buyers by month, with change vs previous month."""
    keys = keys or CustomerKeys(tables)
    orders = keys.table("orders")
    upto = _mask(orders["ts"] <= as_of)
    codes = keys.codes("orders")[0][upto]
    orders = orders.loc[upto]
    month = _months(orders["ts"])
    paid = _mask(orders["status"] == "paid")
    all_orders = pd.Series(month).value_counts().sort_index()
    p = pd.DataFrame({"customer_id": codes[paid], "amount": orders["amount"].to_numpy()[paid], "month": month[paid]})
    first = p.groupby("customer_id")["month"].min()
    p["new"] = p["month"].to_numpy() == first.reindex(p["customer_id"]).to_numpy()
    g = p.groupby("month")
    out = pd.DataFrame(
        {
            "revenue": g["amount"].sum(),
            "paid_orders": g.size(),
            "buyers": g["customer_id"].nunique(),
            "new_buyers": p.loc[p["new"]].groupby("month")["customer_id"].nunique(),
            "new_revenue": p.loc[p["new"]].groupby("month")["amount"].sum(),
        }
    )
    out = out.reindex(all_orders.index).fillna(0.0)
    out.insert(2, "orders", all_orders.to_numpy())
    out["payment_rate"] = _ratio(out["paid_orders"], out["orders"])
    out["aov"] = _ratio(out["revenue"], out["paid_orders"])
    out["returning_buyers"] = out["buyers"] - out["new_buyers"]
    out["new_share_buyers"] = _ratio(out["new_buyers"], out["buyers"])
    out["new_share_revenue"] = _ratio(out["new_revenue"], out["revenue"])
    for c in ("revenue", "paid_orders", "aov", "buyers"):
        prev = out[c].shift(1)
        out[f"{c}_change"] = _ratio(out[c] - prev, prev)
    for c in ("paid_orders", "orders", "buyers", "new_buyers", "returning_buyers"):
        out[c] = out[c].astype("int64")
    out.index = _month_labels(out.index)
    return out.reset_index(names="month")


def funnel(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, keys: CustomerKeys | None = None) -> pd.DataFrame:
    """Customers reaching each funnel stage and the conversion from the previous stage, by source channel and all."""
    keys = keys or CustomerKeys(tables)
    inter = keys.table("interactions")
    created = _created_by(keys, as_of)
    chan = keys.table("customers")["source_channel"].astype(object).fillna("unknown").astype(str).to_numpy()[created]
    # each customer's row among those created by T
    row_of = np.full(len(created) + 1, -1)
    row_of[np.flatnonzero(created)] = np.arange(len(chan))
    pos = row_of[keys.positions("interactions")]  # -1 (not a customer) picks the last entry, -1
    stage = _stage_codes(inter["event_type"], FUNNEL_STAGES)
    keep = _mask(inter["ts"] <= as_of) & (stage >= 0) & (pos >= 0)
    # one flag per customer and stage: repeated events count once
    reached = np.zeros((len(chan), len(FUNNEL_STAGES)), dtype=bool)
    reached[pos[keep], stage[keep]] = True
    ch_codes, ch_names = pd.factorize(chan)
    counts = pd.DataFrame(
        {st: np.bincount(ch_codes[reached[:, i]], minlength=len(ch_names)) for i, st in enumerate(FUNNEL_STAGES)},
        index=pd.Index(ch_names, dtype=object),
    ).astype("int64")
    # the channels with a customer at some stage, by name
    counts = counts.loc[np.bincount(ch_codes[reached.any(axis=1)], minlength=len(ch_names)) > 0].sort_index()
    counts.loc["all"] = counts.sum(axis=0)
    leads = pd.Series(chan).value_counts()
    leads.loc["all"] = len(chan)
    rows = []
    for ch in counts.index:
        prev = None
        for st in FUNNEL_STAGES:
            n = int(counts.loc[ch, st])
            rows.append(
                {
                    "source_channel": ch,
                    "stage": st,
                    "customers": n,
                    "leads": int(leads.get(ch, 0)),
                    "share_of_leads": float(_ratio(n, leads.get(ch, 0))),
                    "conversion_from_previous": float(_ratio(n, prev)) if prev is not None else np.nan,
                }
            )
            prev = n
    return pd.DataFrame(rows)


def time_to_payment(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, keys: CustomerKeys | None = None
) -> pd.DataFrame:
    """Days from a customer's first visit to the first pay event after it: customers, median and mean, by channel."""
    keys = keys or CustomerKeys(tables)
    inter = keys.table("interactions")
    codes, ids, where = keys.codes("interactions")
    kind = _stage_codes(inter["event_type"], ("visit", "pay"))
    keep = _mask(inter["ts"] <= as_of) & (kind >= 0)
    c, k, t = codes[keep], kind[keep], inter["ts"].to_numpy(dtype="datetime64[ns]")[keep].view(np.int64)
    never = np.iinfo(np.int64).max
    first_visit = np.full(len(ids), never)
    np.minimum.at(first_visit, c[k == 0], t[k == 0])
    after = (k == 1) & (first_visit[c] != never) & (t >= first_visit[c])
    first_pay = np.full(len(ids), never)
    np.minimum.at(first_pay, c[after], t[after])
    who = np.flatnonzero(first_pay != never)
    who = who[np.argsort(ids.to_numpy()[who], kind="stable")]  # by customer id, as a groupby over the ids
    days = (
        pd.Series(first_pay[who].view("datetime64[ns]")) - pd.Series(first_visit[who].view("datetime64[ns]"))
    ).dt.total_seconds() / 86400.0
    chan = keys.table("customers")["source_channel"].astype(object).to_numpy()
    ch = pd.Series(np.append(chan, [None])[where[who]]).fillna("unknown").astype(str)  # -1: no such customer
    frame = pd.DataFrame({"source_channel": ch.to_numpy(), "days": days.to_numpy()})
    out = frame.groupby("source_channel")["days"].agg(customers="size", median_days="median", mean_days="mean")
    out.loc["all"] = [len(frame), frame["days"].median(), frame["days"].mean()]
    out["customers"] = out["customers"].astype("int64")
    return out.reset_index()


def channels(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, keys: CustomerKeys | None = None) -> pd.DataFrame:
    """Leads, buyers, conversion rate, revenue and revenue share per source channel."""
    keys = keys or CustomerKeys(tables)
    created = _created_by(keys, as_of)
    chan_all = keys.table("customers")["source_channel"].astype(object).fillna("unknown").astype(str).to_numpy()
    revenue, buyer = _revenue_by_customer(keys, as_of)
    chan = pd.Series(chan_all[created])
    rev = pd.Series(revenue[created & buyer])
    chan_b = chan_all[created & buyer]
    out = pd.DataFrame(
        {
            "leads": chan.value_counts(),
            "buyers": pd.Series(chan_b).value_counts(),
            "revenue": rev.groupby(chan_b).sum(),
        }
    ).fillna(0.0)
    out["conversion_rate"] = _ratio(out["buyers"], out["leads"])
    out["revenue_share"] = _ratio(out["revenue"], out["revenue"].sum())
    out[["leads", "buyers"]] = out[["leads", "buyers"]].astype("int64")
    out = out.sort_values("revenue", ascending=False)
    return out.reset_index(names="source_channel")[
        ["source_channel", "leads", "buyers", "conversion_rate", "revenue", "revenue_share"]
    ]


def campaigns(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, window_days: int = 14, keys: CustomerKeys | None = None
) -> pd.DataFrame:
    """Per campaign: sent, open/click/coupon-claim rates, and N-day conversion of touched vs untouched customers."""
    keys = keys or CustomerKeys(tables)
    touches = keys.table("marketing_touches")
    orders = keys.table("orders")
    (tc, oc), n_ids = keys.with_others("marketing_touches", "orders")  # a touched id that is no customer's counts
    sent_by = _mask(touches["sent_at"] <= as_of)
    touches, tc = touches.loc[sent_by], tc[sent_by]
    paid = _paid_mask(orders, as_of)
    win = pd.Timedelta(days=window_days)
    orders_of = _OrdersByCustomer(oc[paid], orders["ts"].to_numpy(dtype="datetime64[ns]")[paid])
    tsent = touches["sent_at"].to_numpy(dtype="datetime64[ns]")
    created = keys.table("customers")["created_at"].to_numpy(dtype="datetime64[ns]")
    ccodes, cids = text_codes(touches["campaign_id"])
    by_campaign = np.argsort(ccodes, kind="stable")
    bounds = np.searchsorted(ccodes[by_campaign], np.arange(len(cids) + 1))
    rows = []
    for code in np.argsort(cids.to_numpy(), kind="stable"):  # campaigns by id
        idx = by_campaign[bounds[code] : bounds[code + 1]]
        if len(idx) == 0:  # a category of the column with no touch up to T
            continue
        t = touches.iloc[idx]
        sent = len(t)
        opened = int(_mask(t["opened_at"] <= as_of).sum())
        clicked = int(_mask(t["clicked_at"] <= as_of).sum())
        claimed = int(t["coupon_claimed"].astype("boolean").fillna(False).sum())
        # each touched customer's first touch of the campaign, if its window has ended by T
        c, sent_at = tc[idx], tsent[idx]
        srt = np.lexsort((sent_at, c))
        c, sent_at = c[srt], sent_at[srt]
        first = np.r_[True, c[1:] != c[:-1]] if len(c) else np.zeros(0, dtype=bool)
        done = first & (sent_at + win.to_timedelta64() <= as_of.to_datetime64())
        conv = orders_of.any_within(c[done], sent_at[done], win)
        start, end = t["sent_at"].min(), t["sent_at"].max() + win
        mid = t["sent_at"].median()
        touched_any = np.zeros(n_ids, dtype=bool)
        touched_any[tc[(tsent >= start.to_datetime64()) & (tsent <= end.to_datetime64())]] = True
        untouched = np.flatnonzero((created < start.to_datetime64()) & ~touched_any[: len(created)])
        u_conv = (
            orders_of.any_within(untouched, np.full(len(untouched), mid.to_datetime64()), win)
            if mid + win <= as_of
            else np.array([])
        )
        rows.append(
            {
                "campaign_id": cids[code],
                "sent": sent,
                "open_rate": opened / sent,
                "click_rate": clicked / sent,
                "coupon_claim_rate": claimed / sent,
                "touched_customers": int(done.sum()),
                "touched_conversion": float(conv.mean()) if len(conv) else np.nan,
                "untouched_customers": len(u_conv),
                "untouched_conversion": float(u_conv.mean()) if len(u_conv) else np.nan,
            }
        )
    cols = [
        "campaign_id", "sent", "open_rate", "click_rate", "coupon_claim_rate", "touched_customers",
        "touched_conversion", "untouched_customers", "untouched_conversion",
    ]  # fmt: skip
    out = pd.DataFrame(rows, columns=cols)
    out["difference"] = out["touched_conversion"] - out["untouched_conversion"]
    return out.sort_values("sent", ascending=False, kind="stable").reset_index(drop=True)


class _OrdersByCustomer:
    """Paid order times grouped by customer position, to ask "a paid order in (t0, t0 + win]?" for many at once."""

    def __init__(self, customer: np.ndarray, ts: np.ndarray) -> None:
        order = np.lexsort((ts, customer))
        self.customer, self.ts = customer[order], ts[order]

    def any_within(self, cust: np.ndarray, t0: np.ndarray, win: pd.Timedelta) -> np.ndarray:
        """For each (customer, t0): a paid order in (t0, t0 + win]."""
        lo = np.searchsorted(self.customer, cust, side="left")
        n = np.searchsorted(self.customer, cust, side="right") - lo
        query = np.repeat(np.arange(len(cust)), n)  # one row per (query, that customer's order)
        row = np.arange(int(n.sum())) - np.repeat(np.cumsum(n) - n, n) + np.repeat(lo, n)
        ts, start = self.ts[row], t0[query]
        hit = (ts > start) & (ts <= start + win.to_timedelta64())
        out = np.zeros(len(cust), dtype=bool)
        out[query[hit]] = True
        return out


def regions(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, level: str = "province", keys: CustomerKeys | None = None
) -> pd.DataFrame:
    """Customers, buyers, revenue and revenue share per province (``level="province"``) or province and city."""
    keys = keys or CustomerKeys(tables)
    created = _created_by(keys, as_of)
    cols = ["province"] if level == "province" else ["province", "city"]
    cust = keys.table("customers").loc[created, cols]
    revenue, buyer = _revenue_by_customer(keys, as_of)
    frame = pd.DataFrame({k: cust[k].astype(object).fillna("unknown").astype(str).to_numpy() for k in cols})
    frame["revenue"] = revenue[created]
    frame["buyer"] = buyer[created]
    out = frame.groupby(cols).agg(customers=("buyer", "size"), buyers=("buyer", "sum"), revenue=("revenue", "sum"))
    out["buyers"] = out["buyers"].astype("int64")
    out["revenue_share"] = _ratio(out["revenue"], out["revenue"].sum())
    return out.sort_values("revenue", ascending=False).reset_index()


def retention(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, max_months: int = 12, keys: CustomerKeys | None = None
) -> pd.DataFrame:
    """Monthly cohort retention: cohort size and the share with a paid order k months after the first month."""
    keys = keys or CustomerKeys(tables)
    orders = keys.table("orders")
    paid = _paid_mask(orders, as_of)
    frame = pd.DataFrame({"c": keys.codes("orders")[0][paid], "m": _months(orders.loc[paid, "ts"])})
    frame = frame.drop_duplicates()
    cohort = frame.groupby("c")["m"].min()
    frame["k"] = frame["m"].to_numpy() - cohort.reindex(frame["c"]).to_numpy()
    frame["cohort"] = cohort.reindex(frame["c"]).to_numpy()
    sizes = cohort.value_counts().sort_index()
    counts = frame.loc[frame["k"] <= max_months].groupby(["cohort", "k"])["c"].nunique().unstack(fill_value=0)
    counts = counts.reindex(index=sizes.index, columns=range(max_months + 1), fill_value=0)
    shares = counts.div(sizes, axis=0)
    last = as_of.year * 12 + as_of.month - 1
    avail = last - shares.index.to_numpy()
    shares = shares.where(np.arange(max_months + 1)[None, :] <= avail[:, None])
    shares.columns = [f"month_{k}" for k in shares.columns]
    shares.insert(0, "customers", sizes.to_numpy())
    shares.index = [f"{m // 12:04d}-{m % 12 + 1:02d}" for m in shares.index]
    return shares.reset_index(names="cohort")
