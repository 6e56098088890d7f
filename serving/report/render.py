"""Charts (matplotlib → inline base64 PNG) and the one self-contained HTML file of the report (no CDN, no script)."""

from __future__ import annotations

import base64
import html
import io
import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from serving.i18n import _, get_language

if TYPE_CHECKING:
    from matplotlib.typing import RcKeyType

log = logging.getLogger(__name__)

#: CJK font families tried in order (first one matplotlib can find, by name or by a system font file).
CJK_FAMILIES = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "SimHei",
    "PingFang SC",
    "AR PL UMing CN",
    "Droid Sans Fallback",
)
_CJK_FILE_HINTS = (
    "notosanscjk",
    "notosanssc",
    "sourcehansans",
    "wqy",
    "msyh",
    "simhei",
    "pingfang",
    "uming",
    "droidsansfallback",
)


def pick_cjk_font() -> str | None:
    """Name of a CJK-capable font matplotlib can use, registering a system font file if needed; None when absent."""
    from matplotlib import font_manager as fm

    names = {f.name for f in fm.fontManager.ttflist}
    for fam in CJK_FAMILIES:
        if fam in names:
            return fam
    for path in fm.findSystemFonts():
        low = path.lower().replace("-", "").replace("_", "")
        if any(h in low for h in _CJK_FILE_HINTS):
            try:
                fm.fontManager.addfont(path)
                name = fm.FontProperties(fname=path).get_name()
            except (OSError, RuntimeError, ValueError):
                continue
            if name:
                return name
    return None


@dataclass
class Chart:
    """One section's chart: a base64 PNG."""

    png_b64: str


class Painter:
    """Draws the report's charts with one font set-up (a CJK font when one exists)."""

    def __init__(self) -> None:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        self.plt = plt
        self.cjk = pick_cjk_font()
        self.rc: dict[RcKeyType, Any] = {
            "font.family": [self.cjk, "DejaVu Sans"] if self.cjk else ["DejaVu Sans"],
            "axes.unicode_minus": False,
        }
        if self.cjk is None:
            log.warning("no CJK font found: chart labels in English only; Chinese data labels are shown escaped")

    def label(self, en: str) -> str:
        """``en`` in the report's language when a CJK font is available, else in English (never boxes)."""
        return _(en) if self.cjk else en

    def text(self, value: str) -> str:
        """A data label: kept as is with a CJK font; non-ASCII text replaced by its escape without one."""
        if self.cjk or value.isascii():
            return value
        return value.encode("ascii", "backslashreplace").decode("ascii")

    def _save(self, fig) -> Chart:
        buf = io.BytesIO()
        fig.tight_layout()
        fig.savefig(buf, format="png", dpi=100)
        self.plt.close(fig)
        return Chart(base64.b64encode(buf.getvalue()).decode("ascii"))

    def sales(self, df: pd.DataFrame) -> Chart:
        """Monthly revenue bars with AOV as a line on a second axis."""
        with self.plt.rc_context(self.rc):
            fig, ax = self.plt.subplots(figsize=(9, 3.6))
            ax.bar(df["month"], df["revenue"], color="#4c78a8", label=self.label("revenue"))
            ax.set_ylabel(self.label("revenue"))
            ax2 = ax.twinx()
            ax2.plot(df["month"], df["aov"], color="#f58518", marker="o", label=self.label("AOV"))
            ax2.set_ylabel(self.label("AOV"))
            ax.tick_params(axis="x", rotation=60)
            ax.set_title(self.label("Monthly sales"))
            return self._save(fig)

    def bars(self, labels, values, title: str, xlabel: str, pct: bool = False) -> Chart:
        """Horizontal bars (largest on top)."""
        with self.plt.rc_context(self.rc):
            n = len(labels)
            fig, ax = self.plt.subplots(figsize=(9, max(2.4, 0.32 * n + 1)))
            y = np.arange(n)[::-1]
            ax.barh(y, values, color="#4c78a8")
            ax.set_yticks(y, [self.text(str(v)) for v in labels])
            ax.set_xlabel(xlabel)
            ax.set_title(title)
            if pct:
                ax.xaxis.set_major_formatter(self.plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
            return self._save(fig)

    def funnel(self, df: pd.DataFrame) -> Chart:
        """Customers reaching each stage (all channels) with the stage conversion written beside each bar."""
        d = df.loc[df["source_channel"] == "all"]
        with self.plt.rc_context(self.rc):
            fig, ax = self.plt.subplots(figsize=(9, 3.8))
            y = np.arange(len(d))[::-1]
            ax.barh(y, d["customers"], color="#54a24b")
            ax.set_yticks(y, list(d["stage"]))
            for yy, n, c in zip(y, d["customers"], d["conversion_from_previous"], strict=True):
                ax.text(n, yy, f" {n:,}" + ("" if pd.isna(c) else f"  ({c:.0%})"), va="center", fontsize=8)
            ax.set_xlabel(self.label("customers"))
            ax.set_title(self.label("Funnel, all channels"))
            return self._save(fig)

    def campaigns(self, df: pd.DataFrame, top: int = 15) -> Chart:
        """Open, click and claim rates of the largest campaigns."""
        d = df.head(top)
        with self.plt.rc_context(self.rc):
            fig, ax = self.plt.subplots(figsize=(9, max(2.6, 0.35 * len(d) + 1)))
            y = np.arange(len(d))[::-1]
            h = 0.27
            ax.barh(y + h, d["open_rate"], h, label=self.label("open"))
            ax.barh(y, d["click_rate"], h, label=self.label("click"))
            ax.barh(y - h, d["coupon_claim_rate"], h, label=self.label("coupon claim"))
            ax.set_yticks(y, [self.text(str(v)) for v in d["campaign_id"]], fontsize=7)
            ax.xaxis.set_major_formatter(self.plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
            ax.legend(fontsize=8)
            ax.set_title(self.label("Campaigns (largest by touches sent)"))
            return self._save(fig)

    def retention(self, df: pd.DataFrame) -> Chart:
        """Cohort retention heat map."""
        cols = [c for c in df.columns if c.startswith("month_")]
        m = df[cols].to_numpy(dtype="float64")
        with self.plt.rc_context(self.rc):
            fig, ax = self.plt.subplots(figsize=(9, max(2.6, 0.3 * len(df) + 1.2)))
            im = ax.imshow(np.ma.masked_invalid(m), aspect="auto", cmap="Blues", vmin=0, vmax=1)
            ax.set_xticks(range(len(cols)), [c.split("_")[1] for c in cols])
            ax.set_yticks(range(len(df)), list(df["cohort"]), fontsize=7)
            ax.set_xlabel(self.label("months after the first purchase"))
            ax.set_title(self.label("Monthly cohort retention"))
            fig.colorbar(im, ax=ax, format=self.plt.FuncFormatter(lambda v, _: f"{v:.0%}"))
            return self._save(fig)

    def forecast(self, history: pd.Series, fc: pd.DataFrame, method: str) -> Chart:
        """Weekly actuals and the forecast with its 80% and 95% bands."""
        with self.plt.rc_context(self.rc):
            fig, ax = self.plt.subplots(figsize=(9, 3.6))
            ax.plot(history.index, history.to_numpy(), color="#333", label=self.label("actual"))
            x = pd.to_datetime(fc["week_end"])
            ax.fill_between(x, fc["lo95"], fc["hi95"], color="#4c78a8", alpha=0.15, lw=0, label="95%")
            ax.fill_between(x, fc["lo80"], fc["hi80"], color="#4c78a8", alpha=0.3, lw=0, label="80%")
            ax.plot(x, fc["forecast"], color="#4c78a8", lw=2, label=self.label("forecast") + f" ({method})")
            ax.legend(fontsize=8, loc="upper left")
            ax.set_title(self.label("Weekly revenue forecast"))
            fig.autofmt_xdate()
            return self._save(fig)


# ------------------------------------------------------------------------------------------------------ HTML

CSS = """
body { font: 14px/1.5 system-ui, -apple-system, "Segoe UI", "PingFang SC", "Microsoft YaHei", "Noto Sans CJK SC",
  "WenQuanYi Micro Hei", sans-serif; margin: 0; color: #1d2330; background: #f5f6f8; }
header { background: #1f3b5c; color: #fff; padding: 16px 28px; }
header h1 { margin: 0; font-size: 22px; } header p { margin: 4px 0 0; opacity: .85; }
nav { padding: 8px 28px; background: #fff; border-bottom: 1px solid #dde1e7; }
nav a { margin-right: 14px; color: #1f3b5c; text-decoration: none; }
section { background: #fff; margin: 16px 28px; padding: 16px 20px; border-radius: 8px; border: 1px solid #dde1e7; }
section h2 { margin: 0 0 10px; font-size: 18px; }
img { max-width: 100%; height: auto; display: block; margin: 8px 0; }
table { border-collapse: collapse; font-size: 12px; margin: 8px 0; }
th, td { border-bottom: 1px solid #e6e8ec; padding: 3px 8px; text-align: right; white-space: nowrap; }
th:first-child, td:first-child { text-align: left; }
th { background: #f0f2f5; }
.def { color: #555; font-size: 13px; background: #f8f9fb; border-left: 3px solid #9db0c8; padding: 6px 10px; }
.kpis { display: flex; gap: 16px; flex-wrap: wrap; }
.kpi { background: #f0f4f9; padding: 8px 14px; border-radius: 6px; }
.kpi b { display: block; font-size: 18px; } .note { color: #8a5a00; }
.scroll { overflow-x: auto; }
"""


def fmt_value(col: str, v) -> str:
    """One cell as text: rates and shares as percentages, money with thousands separators."""
    if v is None or (isinstance(v, float) and np.isnan(v)):
        return "–"
    if isinstance(v, (int, np.integer)):
        return f"{int(v):,}"
    if isinstance(v, (float, np.floating)):
        if any(k in col for k in ("rate", "share", "conversion", "change", "difference")) or col.startswith("month_"):
            return f"{v:.1%}"
        return f"{v:,.2f}"
    return str(v)


def table_html(df: pd.DataFrame, max_rows: int = 30) -> str:
    """An HTML table of the first ``max_rows`` rows (the CSV holds all)."""
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in df.columns)
    rows = []
    for rec in df.head(max_rows).itertuples(index=False):
        cells = "".join(f"<td>{html.escape(fmt_value(c, v))}</td>" for c, v in zip(df.columns, rec, strict=True))
        rows.append(f"<tr>{cells}</tr>")
    more = "<p>" + _("{n:,} more rows in the CSV.").format(n=len(df) - max_rows) + "</p>" if len(df) > max_rows else ""
    return (
        f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>{more}'
    )


@dataclass
class Section:
    """One report section."""

    key: str
    title: str
    charts: list[Chart]
    tables: list[tuple[str, pd.DataFrame]]
    definition: str
    notes: list[str]
    kpis: list[tuple[str, str]] | None = None


def page_html(title: str, subtitle: str, sections: list[Section]) -> str:
    """The whole self-contained HTML page."""
    nav = "".join(f'<a href="#{s.key}">{html.escape(s.title)}</a>' for s in sections)
    body = []
    for s in sections:
        parts = [f'<section id="{s.key}" data-section="{s.key}"><h2>{html.escape(s.title)}</h2>']
        if s.kpis:
            parts.append(
                '<div class="kpis">'
                + "".join(f'<div class="kpi">{html.escape(k)}<b>{html.escape(v)}</b></div>' for k, v in s.kpis)
                + "</div>"
            )
        parts += [f'<img alt="{html.escape(s.title)}" src="data:image/png;base64,{c.png_b64}">' for c in s.charts]
        parts.append(f'<p class="def"><b>{html.escape(_("Definitions"))}:</b> {html.escape(s.definition)}</p>')
        parts += [f'<p class="note">{html.escape(n)}</p>' for n in s.notes]
        for name, df in s.tables:
            parts.append(f"<h3>{html.escape(name)}</h3>{table_html(df)}")
        parts.append("</section>")
        body.append("".join(parts))
    return (
        f'<!DOCTYPE html><html lang="{"zh-CN" if get_language() == "zh" else "en"}"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{html.escape(title)}</title><style>{CSS}</style></head><body>"
        f"<header><h1>{html.escape(title)}</h1><p>{html.escape(subtitle)}</p></header><nav>{nav}</nav>"
        + "".join(body)
        + "</body></html>"
    )
