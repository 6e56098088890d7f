"""The ``crmscore report`` job: every section's table, the charts, one HTML file, one CSV per table, one MLflow run."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from features.export import neutralise_frame
from features.progress import ProgressCallback, no_progress
from serving.i18n import _, using_language
from serving.report import tables as T
from serving.report.keys import CustomerKeys
from serving.report.render import Painter, Section, page_html
from serving.report.scoring import scoring_section

log = logging.getLogger(__name__)


class ReportConfig(BaseModel):
    """Settings of ``crmscore report`` (embedded defaults)."""

    model_config = ConfigDict(extra="forbid")

    campaign_window_days: int = Field(default=14, gt=0, description="N of 'conversion within N days of a touch'")
    retention_months: int = Field(default=12, ge=1)
    forecast_weeks: int = Field(default=13, ge=1, le=104)
    history_weeks_shown: int = Field(default=52, ge=4)
    top_n: int = Field(default=15, ge=1, description="bars shown in the region and campaign charts")
    experiment: str = "crmscore-report"


@dataclass
class ReportRun:
    """What ``crmscore report`` wrote."""

    html: Path
    csvs: dict[str, Path]
    run_id: str | None
    notes: list[str]


#: the columns the report's sections read (Members levels included); order, touch and event-channel columns and the
#: profile's other columns are never read, which matters for an event table of tens of millions of rows
INPUT_COLUMNS: dict[str, tuple[str, ...]] = {
    "customers": ("customer_id", "created_at", "source_channel", "province", "city"),
    "orders": ("customer_id", "ts", "amount", "status"),
    "interactions": ("customer_id", "ts", "event_type"),
    "marketing_touches": ("customer_id", "campaign_id", "sent_at", "opened_at", "clicked_at", "coupon_claimed"),
}


def input_columns(value_tiers: bool = False) -> dict[str, tuple[str, ...]]:
    """Columns to read per table: :data:`INPUT_COLUMNS`, plus what the value tiers of the churn watch list read."""
    if not value_tiers:
        return dict(INPUT_COLUMNS)
    from serving.members.context import input_columns as tag_columns

    more = tag_columns(["value_tier"])
    return {k: tuple(dict.fromkeys([*INPUT_COLUMNS.get(k, ()), *more.get(k, ())])) for k in {*INPUT_COLUMNS, *more}}


def _pct(v: float) -> str:
    return "–" if pd.isna(v) else f"{v:.1%}"


def compute_tables(
    tables: dict[str, pd.DataFrame],
    as_of: pd.Timestamp,
    cfg: ReportConfig,
    gaps: dict[str, list[str]] | None = None,
) -> dict[str, pd.DataFrame]:
    """Every report table by CSV name (no PII: sums and ratios over customers).

    A table needing an optional column the data lacks (``serving.report.optional``) is left empty, and its
    section's note goes into ``gaps`` (section key → notes).
    """
    from serving.report.optional import SECTION_OF, gap_note, missing_columns

    keys = CustomerKeys(tables)  # every table's customer ids looked up once for all the tables below
    makers = {
        "sales_monthly": lambda: T.sales_monthly(tables, as_of, keys),
        "funnel": lambda: T.funnel(tables, as_of, keys),
        "time_to_payment": lambda: T.time_to_payment(tables, as_of, keys),
        "channels": lambda: T.channels(tables, as_of, keys),
        "campaigns": lambda: T.campaigns(tables, as_of, cfg.campaign_window_days, keys),
        "regions_province": lambda: T.regions(tables, as_of, "province", keys),
        "regions_city": lambda: T.regions(tables, as_of, "city", keys),
        "retention": lambda: T.retention(tables, as_of, cfg.retention_months, keys),
    }
    out: dict[str, pd.DataFrame] = {}
    for name, make in makers.items():
        missing = missing_columns(tables, name)
        if missing:
            out[name] = pd.DataFrame()
            if gaps is not None:
                gaps.setdefault(SECTION_OF[name], []).append(gap_note(name, missing))
        else:
            out[name] = make()
    return out


def _forecast_frames(
    tables: dict[str, pd.DataFrame], as_of: pd.Timestamp, cfg: ReportConfig, forecast_dir: Path | None
) -> tuple[pd.Series, pd.DataFrame, str, str]:
    """(weekly actuals, forecast of the total, method, where it came from)."""
    if forecast_dir is not None:
        fc = pd.read_csv(forecast_dir / "forecast.csv", parse_dates=["week_start", "week_end"])
        hist = pd.read_csv(forecast_dir / "history.csv", parse_dates=["week_end"]).set_index("week_end")["total"]
        sel = fc.loc[(fc["group"] == "total") & fc["selected"].astype(bool)]
        where = _("read from {file} (selected method)").format(file=f"{forecast_dir.name}/forecast.csv")
        return hist, sel, str(sel["method"].iloc[0]), where
    from training.forecast import ForecastConfig, forecast_at

    fcfg = ForecastConfig(horizon_weeks=cfg.forecast_weeks)
    res = forecast_at(tables["orders"], as_of, fcfg, methods=("top_down",))
    sel = res.table.loc[res.table["group"] == "total"]
    return res.history["total"], sel, "top_down", _("top-down SARIMAX made for this report, without a backtest")


def build_report(
    data_dir: str | Path | None,
    as_of: str | pd.Timestamp,
    out_dir: str | Path,
    forecast_dir: str | Path | None = None,
    tables: dict[str, pd.DataFrame] | None = None,
    log_mlflow: bool = True,
    cfg: ReportConfig | None = None,
    lang: str | None = None,
    progress: ProgressCallback = no_progress,
    scores: dict[str, pd.DataFrame] | None = None,
) -> ReportRun:
    """Compute the report as of ``as_of``, write ``report.html`` and one CSV per table to ``out_dir``, log them.

    ``forecast_dir`` is the ``--out`` folder of a ``crmscore forecast`` run (its selected method is shown);
    without it a top-down forecast is made here. Every file goes through :func:`features.io.atomic_path`.
    The page's text is in ``lang`` (``zh`` or ``en``; default the current language, ``serving.i18n``); the CSV
    files and their column names are the same in both. ``scores`` (``lead`` / ``churn``: ``crmscore score``
    output) feed the Scoring section. ``progress`` is told the stages.
    """
    with using_language(lang):
        return _build_report(data_dir, as_of, out_dir, forecast_dir, tables, log_mlflow, cfg, progress, scores)


def _build_report(
    data_dir: str | Path | None,
    as_of: str | pd.Timestamp,
    out_dir: str | Path,
    forecast_dir: str | Path | None,
    tables: dict[str, pd.DataFrame] | None,
    log_mlflow: bool,
    cfg: ReportConfig | None,
    progress: ProgressCallback,
    scores: dict[str, pd.DataFrame] | None = None,
) -> ReportRun:
    from features.contract import drop_pii
    from features.io import atomic_path, load_tables, write_text_atomic

    cfg = cfg or ReportConfig()
    t = pd.Timestamp(as_of)
    if tables is None:
        if data_dir is None:
            raise ValueError(_("no data: pass a data dir"))
        progress("reading tables")
        cols = input_columns(value_tiers="churn" in (scores or {}))
        tables = load_tables(data_dir, required=("customers", "orders"), columns=cols)
    tables = {k: drop_pii(v) for k, v in tables.items()}
    notes: list[str] = []
    for name in ("interactions", "marketing_touches"):
        if name not in tables:
            notes.append(_("table {name} absent: its sections are empty").format(name=name))
    progress("computing tables")
    gaps: dict[str, list[str]] = {}
    res = compute_tables(tables, t, cfg, gaps)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csvs: dict[str, Path] = {}
    for name, df in res.items():
        with atomic_path(out / f"{name}.csv") as tmp:
            neutralise_frame(df).to_csv(tmp, index=False, encoding="utf-8-sig")
        csvs[name] = out / f"{name}.csv"

    progress("drawing charts")
    p = Painter()
    sections: list[Section] = []
    s = res["sales_monthly"]
    last = s.iloc[-1] if len(s) else None
    kpis = (
        []
        if last is None
        else [
            (_("revenue {month}").format(month=last["month"]),
             f"{last['revenue']:,.0f} ({_pct(last['revenue_change'])})"),
            (_("paid orders"), f"{int(last['paid_orders']):,} ({_pct(last['paid_orders_change'])})"),
            (_("payment rate"), _pct(last["payment_rate"])),
            (_("AOV"), f"{last['aov']:,.2f} ({_pct(last['aov_change'])})"),
            (
                _("new buyers' share of buyers / revenue"),
                f"{_pct(last['new_share_buyers'])} / {_pct(last['new_share_revenue'])}",
            ),
        ]
    )
    sections.append(
        Section(
            "sales",
            _("Sales"),
            [p.sales(s)] if len(s) else [],
            [(_("by month"), s)],
            _(T.DEFINITIONS["sales_monthly"]),
            [],
            kpis,
        )
    )
    f = res["funnel"]
    sections.append(
        Section(
            "funnel",
            _("Funnel"),
            [p.funnel(f)] if len(f) else [],
            [(_("stages by source channel"), f), (_("days from first visit to first payment"), res["time_to_payment"])],
            _(T.DEFINITIONS["funnel"]),
            [],
        )
    )
    c = res["channels"]
    sections.append(
        Section(
            "channels",
            _("Channels"),
            [
                p.bars(
                    c["source_channel"],
                    c["conversion_rate"],
                    p.label("Conversion rate by source channel"),
                    p.label("conversion rate"),
                    pct=True,
                )
            ]
            if len(c)
            else [],
            [(_("per source channel"), c)],
            _(T.DEFINITIONS["channels"]),
            [],
        )
    )
    cp = res["campaigns"]
    sections.append(
        Section(
            "campaigns",
            _("Campaigns"),
            [p.campaigns(cp, cfg.top_n)] if len(cp) else [],
            [(_("per campaign (conversion within {n} days)").format(n=cfg.campaign_window_days), cp)],
            _(T.DEFINITIONS["campaigns"]) + " " + _("Here N = {n} days.").format(n=cfg.campaign_window_days),
            [
                _(
                    "Not a randomised test: the touched-vs-untouched difference is a comparison, not the "
                    "campaign's effect."
                )
            ],
        )
    )
    rp = res["regions_province"]
    sections.append(
        Section(
            "regions",
            _("Regions"),
            [
                p.bars(
                    rp["province"].head(cfg.top_n),
                    rp["revenue"].head(cfg.top_n),
                    p.label("Revenue by province"),
                    p.label("revenue"),
                )
            ]
            if len(rp)
            else [],
            [(_("by province"), rp), (_("by province and city"), res["regions_city"])],
            _(T.DEFINITIONS["regions"]),
            [],
        )
    )
    r = res["retention"]
    sections.append(
        Section(
            "retention",
            _("Retention"),
            [p.retention(r)] if len(r) else [],
            [(_("monthly cohorts"), r)],
            _(T.DEFINITIONS["retention"]),
            [],
        )
    )
    sections.append(_members_section(tables, t, out, csvs, p))
    sections.append(_satisfaction_section(tables.get("feedback"), data_dir, t, out, csvs, p))
    sections.append(scoring_section(tables, t, scores or {}, out, csvs, p))
    fnotes: list[str] = []
    progress("forecast")
    try:
        hist, fc, method, source = _forecast_frames(tables, t, cfg, Path(forecast_dir) if forecast_dir else None)
        fnotes.append(_("Forecast {source}.").format(source=source))
        fc_table = fc[["week", "week_start", "week_end", "forecast", "lo80", "hi80", "lo95", "hi95"]].copy()
        for col in ("week_start", "week_end"):
            fc_table[col] = pd.to_datetime(fc_table[col]).dt.strftime("%Y-%m-%d")
        with atomic_path(out / "forecast.csv") as tmp:
            neutralise_frame(fc_table).to_csv(tmp, index=False, encoding="utf-8-sig")
        csvs["forecast"] = out / "forecast.csv"
        charts = [p.forecast(hist.iloc[-cfg.history_weeks_shown :], fc, method)]
        ftables = [(_("forecast of the total"), fc_table)]
    except (ValueError, FileNotFoundError, KeyError) as e:
        fnotes.append(_("no forecast: {reason}").format(reason=e))
        notes.append(fnotes[-1])
        charts, ftables = [], []
    sections.append(Section("forecast", _("Forecast"), charts, ftables, _(T.DEFINITIONS["forecast"]), fnotes))
    if p.cjk is None:
        notes.append(_("no CJK font found: chart labels in English only"))
    for sec in sections:
        sec.notes = list(sec.notes) + gaps.get(sec.key, [])
    subtitle = _("as of {t} · generated by crmscore report · definitions under each chart").format(t=t) + (
        f" · {'; '.join(notes)}" if notes else ""
    )
    progress("writing")
    html_path = write_text_atomic(out / "report.html", page_html(_("CRM report"), subtitle, sections))
    if log_mlflow:
        progress("logging to MLflow")
    run_id = _log(cfg, t, out, html_path, csvs, p.cjk) if log_mlflow else None
    return ReportRun(html=html_path, csvs=csvs, run_id=run_id, notes=notes)


def _members_section(
    tables: dict[str, pd.DataFrame], t: pd.Timestamp, out: Path, csvs: dict[str, Path], p: Painter
) -> Section:
    """Members 会员: level distribution, movements and revenue share (serving.report.members_tables), CSVs written."""
    from features.io import atomic_path
    from serving.report.members_tables import DEFINITION, member_tables

    try:
        mt = member_tables(tables, t)
    except (ValueError, KeyError) as e:
        why = _("no member levels: {reason}").format(reason=e)
        return Section("members", _("Members"), [], [], _(DEFINITION), [why])
    for name, df in mt.items():
        with atomic_path(out / f"{name}.csv") as tmp:
            neutralise_frame(df).to_csv(tmp, index=False, encoding="utf-8-sig")
        csvs[name] = out / f"{name}.csv"
    lv = mt["members_levels"]
    chart = p.bars(
        [p.text(f"{a} {b}") for a, b in zip(lv["level"], lv["level_zh"], strict=True)],
        lv["share_of_revenue"].fillna(0.0),
        p.label("Share of revenue by member level"),
        p.label("share of revenue"),
        pct=True,
    )
    return Section(
        "members",
        _("Members"),
        [chart],
        [(_("levels at T"), lv), (_("movements from one month before T"), mt["members_movements"])],
        _(DEFINITION),
        [],
    )


def _satisfaction_section(
    feedback: pd.DataFrame | None,
    data_dir: str | Path | None,
    t: pd.Timestamp,
    out: Path,
    csvs: dict[str, Path],
    p: Painter,
) -> Section:
    """Satisfaction 满意度 from the optional feedback table (serving.report.satisfaction), CSVs written."""
    from features.io import atomic_path
    from serving.report.satisfaction import DEFINITION, read_feedback, satisfaction_tables

    fb = feedback if feedback is not None else read_feedback(data_dir)
    if fb is None:
        return Section(
            "satisfaction", _("Satisfaction"), [], [], _(DEFINITION), [_("no feedback table in the data")]
        )
    st = satisfaction_tables(fb, t)
    for name, df in st.items():
        with atomic_path(out / f"{name}.csv") as tmp:
            neutralise_frame(df).to_csv(tmp, index=False, encoding="utf-8-sig")
        csvs[name] = out / f"{name}.csv"
    m = st["satisfaction_monthly"]
    charts = (
        [p.bars(m["month"], m["csat"], p.label("CSAT (rating 4–5) by month"), "CSAT", pct=True)]
        if len(m)
        else []
    )
    return Section(
        "satisfaction",
        _("Satisfaction"),
        charts,
        [
            (_("CSAT by month"), m),
            (_("complaints by category and channel"), st["complaints_by"]),
            (_("time to resolve"), st["complaint_resolution"]),
            (_("unresolved backlog at T"), st["complaint_backlog"]),
        ],
        _(DEFINITION),
        [],
    )


def _log(
    cfg: ReportConfig, t: pd.Timestamp, out: Path, html_path: Path, csvs: dict[str, Path], font: str | None
) -> str:
    import mlflow

    from training.registry import configure_tracking

    configure_tracking()
    mlflow.set_experiment(cfg.experiment)
    with mlflow.start_run(run_name=f"report-{t.date()}") as run:
        mlflow.log_params(
            {
                "as_of": str(t),
                "campaign_window_days": cfg.campaign_window_days,
                "retention_months": cfg.retention_months,
                "cjk_font": font or "none",
            }
        )
        mlflow.log_artifact(str(html_path), artifact_path="report")
        for pth in csvs.values():
            mlflow.log_artifact(str(pth), artifact_path="report")
        return run.info.run_id
