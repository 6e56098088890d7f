"""`crmscore demo`: the main job end to end on embedded defaults.

generate demo data → ingest a messy export of it → train and register the lead and churn models →
fit and register the customer segments → batch-score the current leads → (optionally) serve.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

import typer

from serving.cli import output
from serving.i18n import _


def run_demo(out: Path, customers: int, days: int, seed: int, echo=typer.echo) -> dict[str, object]:
    """Run every stage on generated data under ``out``; returns the headline figures."""
    import pandas as pd

    from features.build import build_features
    from features.ingest import ingest
    from features.io import load_tables
    from features.labels import build_labels
    from features.synth import generate_crm_data, write_crm_data
    from serving.batch import BatchOptions, score_batch
    from training.config import TrainConfig
    from training.registry import configure_tracking
    from training.segment import fit_segments
    from training.train import train_crm

    uri = configure_tracking()
    echo(_("MLflow tracking and registry: {uri}").format(uri=uri))
    t0 = time.perf_counter()
    data, exports, ingested = out / "data", out / "exports", out / "ingested"

    result = generate_crm_data(customers, days, seed)
    info = write_crm_data(result, data)
    echo("[1/6] " + _("demo data: {customers:,} customers → {data} (oracle AUC convert {convert:.3f}, churn "
                      "{churn:.3f})").format(
        customers=customers, data=data, convert=info["oracle_auc_convert"], churn=info["oracle_auc_churn"]
    ))
    messy = generate_crm_data(min(customers, 3000), days, seed + 1)
    write_crm_data(messy, exports, messy=True)
    summary = ingest(str(exports), ingested)
    counts = ", ".join(
        _("{table}: {read:,} read = {accepted:,} accepted + {rejected:,} rejected + {duplicates:,} duplicates").format(
            table=t, read=s.read, accepted=s.accepted, rejected=s.rejected, duplicates=s.duplicates
        )
        for t, s in summary.tables.items()
    )
    echo("[2/6] " + _("ingested a messy export (GB18030, BOM, xlsx, mixed dates) → {out}: {counts}").format(
        out=ingested, counts=counts
    ))

    figures: dict[str, object] = {}
    steps: tuple[tuple[int, Literal["lead", "churn"]], ...] = ((3, "lead"), (4, "churn"))
    for step, task in steps:
        r = train_crm(data, TrainConfig(task=task))
        m = r.test_metrics
        share = _(", {share:.1%} of the oracle").format(share=m["test_auc_share_of_oracle"]) \
            if "test_auc_share_of_oracle" in m else ""
        echo(f"[{step}/6] " + _(
            "{model} v{version} ({candidate}): out-of-time ROC-AUC {auc:.3f}{share}, ECE {ece:.3f}, top-20% capture "
            "{capture:.1%}; champion {what} ({decision})"
        ).format(
            model=r.model_name, version=r.version, candidate=r.best_candidate, auc=m["roc_auc"], share=share,
            ece=m["ece"], capture=m["capture_top20"], what=_("moved") if r.promoted else _("kept"), decision=r.decision,
        ))
        figures[r.model_name] = {"version": r.version, "roc_auc": m["roc_auc"], "promoted": r.promoted}

    seg = fit_segments(data)
    echo("[5/6] " + _(
        "customer_segments v{version}: {customers:,} customers, k={k} clusters (silhouette {silhouette:.3f}), "
        "segments {sizes} …"
    ).format(
        version=seg.version, customers=seg.n_customers, k=seg.k, silhouette=seg.silhouette,
        sizes=dict(list(seg.segment_sizes.items())[:4]),
    ))

    # the sales team's lead list: today's open leads (no paid order yet) with their features, as a CSV export
    as_of = pd.Timestamp(result.meta["as_of"])
    tables = load_tables(data)
    labels = build_labels(tables, as_of, 30, 180)
    leads = build_features(tables, as_of).loc[labels.index[labels["is_lead"].to_numpy()]]
    lead_list, scored = out / "lead_list.csv", out / "scored_leads.csv"
    leads.reset_index().to_csv(lead_list, index=False)
    batch = score_batch(
        BatchOptions(
            model="lead_scoring@champion",
            input=str(lead_list),
            output=str(scored),
            reasons=3,
            sort=True,
        )
    )
    echo("[6/6] " + _(
        "scored a lead list of {leads:,} open leads as of {as_of} → {out} (grades {grades}; {speed:,.0f} rows/s)"
    ).format(leads=batch.rows_in, as_of=as_of.date(), out=scored, grades=batch.grades, speed=batch.rows_per_second))
    from serving.cli.demo_members import run_members_demo

    figures["members"] = run_members_demo(data, as_of, out, echo)
    echo(_(
        "done in {seconds:.0f}s. Serve the champions with: crmscore serve  (then POST /score_leads with an API key; "
        "see docs/serving.md)"
    ).format(seconds=time.perf_counter() - t0))
    figures.update({"seconds": time.perf_counter() - t0, "scored": batch.scored})
    return figures


def demo_cmd(
    out: Path = typer.Option(Path("demo_data"), "--out", help="folder for the generated data and outputs"),
    customers: int = typer.Option(20_000, "--customers", min=500),
    days: int = typer.Option(365, "--days", min=120),
    seed: int = typer.Option(7, "--seed"),
    serve: bool = typer.Option(False, "--serve", help="start the scoring service at the end"),
) -> None:
    """Run the main job end to end on embedded defaults (demo data → train → register → score)."""

    def say(message: str) -> None:  # the steps as they finish; on stderr with --json (stdout: one JSON object)
        if not (output.session().json and output.session().quiet):
            typer.echo(message, err=output.session().json)

    try:
        figures = run_demo(out, customers, days, seed, echo=say)
    except (ValueError, OSError) as e:
        output.fail(e)
    if output.session().json:
        output.summary({"out": out, **figures}, "")
    if serve:
        import os
        import shutil
        import sys

        exe = shutil.which("crmscore") or sys.argv[0]
        os.execv(exe, [exe, "serve"])


def register(app: typer.Typer) -> None:
    """Add `demo` to the root app."""
    app.command("demo")(output.command(demo_cmd))
