"""The report's tables, computed from the contract tables as of a cutoff ``T`` (nothing after ``T`` is read).

Each function returns one plain DataFrame (one CSV of the report) of counts, sums and ratios over customers: no
customer id, name or other PII column ever appears in a result. Definitions are in :data:`DEFINITIONS`, which
the HTML prints under each chart.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.contract import FUNNEL_STAGES, empty_frame

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


def _paid(orders: pd.DataFrame, as_of: pd.Timestamp) -> pd.DataFrame:
    return orders.loc[_mask(orders["status"] == "paid") & _mask(orders["ts"] <= as_of)]


def _ratio(num, den) -> np.ndarray:
    num = np.asarray(num, dtype="float64")
    den = np.asarray(den, dtype="float64")
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1.0), np.nan)


def sales_monthly(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    """Revenue, paid orders, payment rate, AOV, new vs returning buyers by month, with change vs previous month."""
    orders = _t(tables, "orders")
    orders = orders.loc[_mask(orders["ts"] <= as_of)]
    month = orders["ts"].dt.to_period("M")
    paid = _mask(orders["status"] == "paid")
    all_orders = month.value_counts().sort_index()
    p = orders.loc[paid, ["customer_id", "amount"]].assign(month=month[paid].to_numpy())
    p["customer_id"] = p["customer_id"].astype(str)
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
    out.index = out.index.astype(str)
    return out.reset_index(names="month")


def funnel(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    """Customers reaching each funnel stage and the conversion from the previous stage, by source channel and all."""
    inter = _t(tables, "interactions")
    customers = _t(tables, "customers")
    cust = customers.loc[_mask(customers["created_at"] <= as_of), ["customer_id", "source_channel"]]
    chan = cust.set_index(cust["customer_id"].astype(str))["source_channel"].astype(object).fillna("unknown")
    ev = inter.loc[_mask(inter["ts"] <= as_of) & inter["event_type"].isin(FUNNEL_STAGES).to_numpy()]
    reached = pd.DataFrame(
        {"customer_id": ev["customer_id"].astype(str).to_numpy(), "stage": ev["event_type"].astype(str).to_numpy()}
    ).drop_duplicates()
    reached = reached.loc[reached["customer_id"].isin(chan.index)]
    reached["channel"] = chan.reindex(reached["customer_id"]).astype(str).to_numpy()
    counts = reached.groupby(["channel", "stage"]).size().unstack(fill_value=0)
    counts = counts.reindex(columns=list(FUNNEL_STAGES), fill_value=0)
    counts.loc["all"] = counts.sum(axis=0)
    leads = chan.astype(str).value_counts()
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


def time_to_payment(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    """Days from a customer's first visit to the first pay event after it: customers, median and mean, by channel."""
    inter = _t(tables, "interactions")
    customers = _t(tables, "customers")
    ev = inter.loc[_mask(inter["ts"] <= as_of) & inter["event_type"].isin(["visit", "pay"]).to_numpy()]
    ev = pd.DataFrame(
        {"c": ev["customer_id"].astype(str).to_numpy(), "e": ev["event_type"].astype(str).to_numpy(), "ts": ev["ts"]}
    )
    first_visit = ev.loc[ev["e"] == "visit"].groupby("c")["ts"].min()
    pays = ev.loc[ev["e"] == "pay"]
    pays = pays.loc[pays["ts"].to_numpy() >= first_visit.reindex(pays["c"]).to_numpy()]
    first_pay = pays.groupby("c")["ts"].min()
    days = ((first_pay - first_visit.reindex(first_pay.index)).dt.total_seconds() / 86400.0).rename("days")
    chan = customers.set_index(customers["customer_id"].astype(str))["source_channel"].astype(object)
    ch = chan.reindex(days.index).fillna("unknown").astype(str)
    frame = pd.DataFrame({"source_channel": ch.to_numpy(), "days": days.to_numpy()})
    out = frame.groupby("source_channel")["days"].agg(customers="size", median_days="median", mean_days="mean")
    out.loc["all"] = [len(frame), frame["days"].median(), frame["days"].mean()]
    out["customers"] = out["customers"].astype("int64")
    return out.reset_index()


def channels(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp) -> pd.DataFrame:
    """Leads, buyers, conversion rate, revenue and revenue share per source channel."""
    customers = _t(tables, "customers")
    cust = customers.loc[_mask(customers["created_at"] <= as_of)]
    chan = cust.set_index(cust["customer_id"].astype(str))["source_channel"].astype(object).fillna("unknown")
    chan = chan.astype(str)
    paid = _paid(_t(tables, "orders"), as_of)
    rev = paid.groupby(paid["customer_id"].astype(str))["amount"].sum()
    rev = rev.reindex(chan.index).dropna()
    out = pd.DataFrame(
        {
            "leads": chan.value_counts(),
            "buyers": chan.reindex(rev.index).value_counts(),
            "revenue": rev.groupby(chan.reindex(rev.index)).sum(),
        }
    ).fillna(0.0)
    out["conversion_rate"] = _ratio(out["buyers"], out["leads"])
    out["revenue_share"] = _ratio(out["revenue"], out["revenue"].sum())
    out[["leads", "buyers"]] = out[["leads", "buyers"]].astype("int64")
    out = out.sort_values("revenue", ascending=False)
    return out.reset_index(names="source_channel")[
        ["source_channel", "leads", "buyers", "conversion_rate", "revenue", "revenue_share"]
    ]


def campaigns(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, window_days: int = 14) -> pd.DataFrame:
    """Per campaign: sent, open/click/coupon-claim rates, and N-day conversion of touched vs untouched customers."""
    touches = _t(tables, "marketing_touches")
    touches = touches.loc[_mask(touches["sent_at"] <= as_of)]
    customers = _t(tables, "customers")
    paid = _paid(_t(tables, "orders"), as_of)
    pc = paid["customer_id"].astype(str).to_numpy()
    pts = paid["ts"].to_numpy()
    win = pd.Timedelta(days=window_days)
    tc = touches["customer_id"].astype(str).to_numpy()
    tsent = touches["sent_at"].to_numpy()
    cust_created = customers.set_index(customers["customer_id"].astype(str))["created_at"]
    rows = []
    for camp, idx in touches.groupby(touches["campaign_id"].astype(str)).indices.items():
        t = touches.iloc[idx]
        sent = len(t)
        opened = int(_mask(t["opened_at"] <= as_of).sum())
        clicked = int(_mask(t["clicked_at"] <= as_of).sum())
        claimed = int(t["coupon_claimed"].astype("boolean").fillna(False).sum())
        first = t.assign(c=t["customer_id"].astype(str)).sort_values("sent_at").drop_duplicates("c")
        done = first.loc[(first["sent_at"] + win <= as_of).to_numpy()]
        conv = _converted(pc, pts, done["c"].to_numpy(), done["sent_at"].to_numpy(), win)
        start, end = t["sent_at"].min(), t["sent_at"].max() + win
        mid = t["sent_at"].median()
        touched_any = pd.unique(tc[(tsent >= start.to_datetime64()) & (tsent <= end.to_datetime64())])
        eligible = cust_created.index[_mask(cust_created < start)]
        untouched = eligible[~eligible.isin(touched_any)].to_numpy(dtype=object)
        u_conv = (
            _converted(pc, pts, untouched, np.full(len(untouched), mid.to_datetime64()), win)
            if mid + win <= as_of
            else np.array([])
        )
        rows.append(
            {
                "campaign_id": camp,
                "sent": sent,
                "open_rate": opened / sent,
                "click_rate": clicked / sent,
                "coupon_claim_rate": claimed / sent,
                "touched_customers": len(done),
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


def _converted(pc: np.ndarray, pts: np.ndarray, cust: np.ndarray, t0: np.ndarray, win: pd.Timedelta) -> np.ndarray:
    """For each (customer, t0): a paid order in (t0, t0 + win]."""
    if len(cust) == 0:
        return np.array([], dtype=bool)
    a = pd.DataFrame({"c": cust.astype(str), "t0": t0, "i": np.arange(len(cust))})
    b = pd.DataFrame({"c": pc, "ts": pts})
    m = a.merge(b, on="c", how="inner")
    hit = m.loc[(m["ts"] > m["t0"]) & (m["ts"] <= m["t0"] + win), "i"].unique()
    out = np.zeros(len(cust), dtype=bool)
    out[hit] = True
    return out


def regions(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, level: str = "province") -> pd.DataFrame:
    """Customers, buyers, revenue and revenue share per province (``level="province"``) or province and city."""
    customers = _t(tables, "customers")
    cust = customers.loc[_mask(customers["created_at"] <= as_of)].copy()
    keys = ["province"] if level == "province" else ["province", "city"]
    for k in keys:
        cust[k] = cust[k].astype(object).fillna("unknown").astype(str)
    cust["customer_id"] = cust["customer_id"].astype(str)
    paid = _paid(_t(tables, "orders"), as_of)
    rev = paid.groupby(paid["customer_id"].astype(str))["amount"].sum()
    cust["revenue"] = rev.reindex(cust["customer_id"]).fillna(0.0).to_numpy()
    cust["buyer"] = cust["customer_id"].isin(rev.index)
    out = cust.groupby(keys).agg(customers=("customer_id", "size"), buyers=("buyer", "sum"), revenue=("revenue", "sum"))
    out["buyers"] = out["buyers"].astype("int64")
    out["revenue_share"] = _ratio(out["revenue"], out["revenue"].sum())
    return out.sort_values("revenue", ascending=False).reset_index()


def retention(tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, max_months: int = 12) -> pd.DataFrame:
    """Monthly cohort retention: cohort size and the share with a paid order k months after the first month."""
    paid = _paid(_t(tables, "orders"), as_of)
    ts = paid["ts"]
    frame = pd.DataFrame({"c": paid["customer_id"].astype(str).to_numpy(), "m": (ts.dt.year * 12 + ts.dt.month - 1)})
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
