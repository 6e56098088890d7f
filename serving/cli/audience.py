"""`crmscore audience export`: a customer list for a campaign from tags, levels, segments and grades.

Marketing consent is respected (customers without ``marketing_consent`` are left out and counted) unless the
export is declared ``--purpose service``. The list holds customer ids and the context columns asked for; PII
columns (name, phone, email, address) only with ``--include-pii`` for a campaign tool that needs them. The
counts go to MLflow (experiment ``crmscore-audiences``, one run per export), never a customer id or PII.
"""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli import output
from serving.i18n import _

audience_app = typer.Typer(
    name="audience",
    help="Audiences (人群): customer lists for campaigns from tags and levels, marketing consent respected.",
    no_args_is_help=True,
)


def _split(v: str | None) -> list[str]:
    return [x.strip() for x in (v or "").split(",") if x.strip()]


def log_audience(name: str, summary: dict, experiment: str = "crmscore-audiences") -> str:
    """One MLflow run with the audience's counts (params: rule, purpose, as-of; no ids, no PII); its run id."""
    import mlflow

    from training.registry import configure_tracking

    configure_tracking()
    mlflow.set_experiment(experiment)
    with mlflow.start_run(run_name=f"{name}-{str(summary.get('as_of', ''))[:10]}") as run:
        mlflow.set_tags({"audience": name, "purpose": summary["purpose"]})
        mlflow.log_params(
            {
                "rule": summary["rule"][:500],
                "purpose": summary["purpose"],
                "as_of": summary.get("as_of"),
                "columns": ",".join(summary.get("columns", [])),
            }
        )
        mlflow.log_metrics(
            {
                k: float(summary[k])
                for k in ("customers", "matched", "excluded_no_consent", "excluded_consent_unknown", "exported")
            }
        )
    return run.info.run_id


@audience_app.command("export")
@output.command
def export_cmd(
    data: Path = typer.Option(..., "--data", help="data dir with the contract tables (consent is read here)"),
    tags: Path = typer.Option(..., "--tags", help="a `tags apply` output folder"),
    out: Path = typer.Option(..., "--out", help="output CSV (a summary JSON is written beside it)"),
    where: str | None = typer.Option(
        None, "--where", help='rule, e.g. "tag:高价值流失风险 and member_level>=gold" (docs/members.md)'
    ),
    lead_grade: str | None = typer.Option(None, "--lead-grade", help="lead grades, e.g. A,B (needs --scores lead=…)"),
    churn_grade: str | None = typer.Option(None, "--churn-grade", help="churn grades, e.g. A,B"),
    segment: str | None = typer.Option(None, "--segment", help="RFM segments, e.g. 'Champions,At risk'"),
    purpose: str = typer.Option("marketing", "--purpose", help="marketing (consent required) or service"),
    columns: str | None = typer.Option(
        None, "--columns", help="extra columns for the campaign tool, e.g. member_level_zh,progress"
    ),
    include_pii: bool = typer.Option(False, "--include-pii", help="allow PII columns (phone, email, …) in --columns"),
    name: str | None = typer.Option(None, "--name", help="audience name for MLflow (default: the output file name)"),
    mlflow_log: bool = typer.Option(True, "--mlflow/--no-mlflow", help="log the counts to MLflow"),
    neutralise: bool = typer.Option(
        True, "--neutralise/--no-neutralise", help="prefix CSV cells starting with = + - @ with ' (spreadsheet "
        "formula injection); turn off only for machine consumers"
    ),
) -> None:
    """Export the customers matching a rule (and the shortcuts) with the columns a campaign tool needs.

    Runs as the principal of ``$CRMSCORE_KEY`` (else the local operator, admin): a manager or sales rep exports
    only the customers in their scope, PII columns need a role with PII access, and the export is written to
    the audit trail (docs/access.md)."""
    import json

    import pandas as pd

    from serving.access.exports import record_export
    from serving.access.keys import principal_from_env
    from serving.access.roles import scope_mask

    try:
        principal = principal_from_env()
        if not principal.may("export_audience"):
            raise PermissionError(f"the role {principal.role} may not export audiences (docs/access.md)")
        if include_pii and not principal.may("export_pii"):
            raise PermissionError(f"--include-pii: the role {principal.role} may not export PII (docs/access.md)")
    except PermissionError as e:
        output.fail(e)

    from features.contract import PII_COLUMNS
    from features.io import DataDirError, load_tables, write_text_atomic
    from features.members.audience import audience_rule, select_audience
    from features.members.outputs import OutputDirError, read_summary, write_csv_atomic
    from serving.cli.tags import MISSING_HINT, context_fields

    aud_name = name or out.stem
    try:
        rule_text = audience_rule(where, _split(lead_grade), _split(churn_grade), _split(segment))
        tag_summary = read_summary(tags)
        for f in ("context.parquet", "tags.parquet"):
            if not (tags / f).is_file():
                raise OutputDirError(f"--tags {tags}: no {f} (is it a `crmscore tags apply` output?)")
        ctx = pd.read_parquet(tags / "context.parquet")
        long = pd.read_parquet(tags / "tags.parquet", columns=["customer_id", "tag"])
        extra = _split(columns)
        pii = [c for c in extra if c in PII_COLUMNS]
        if pii and not include_pii:
            raise ValueError(f"--columns: {', '.join(pii)} is PII; add --include-pii if the campaign tool needs it")
        unknown = [c for c in extra if c not in ctx.columns and c not in PII_COLUMNS]
        if unknown:
            raise ValueError(f"--columns: unknown column(s) {', '.join(unknown)} (context: {', '.join(ctx.columns)})")
        want = ["customer_id", "marketing_consent", *pii, *(["owner_id", "team_id"] if principal.scoped else [])]
        customers = load_tables(data, required=("customers",), columns={"customers": want})["customers"]
        consent = (
            customers.set_index("customer_id")["marketing_consent"]
            if "marketing_consent" in customers.columns
            else None
        )
        order = tuple(tag_summary.get("member_level_order") or ())
        fields = context_fields(ctx, order) if order else context_fields(ctx, ())
        res = select_audience(
            ctx,
            long,
            rule_text,
            fields,
            consent,
            purpose,
            aud_name,
            known_tags=set(tag_summary.get("tags", {})),
            hint=MISSING_HINT,
        )
    except (DataDirError, OutputDirError, ValueError) as e:
        output.fail(e)
    sel = res.selected[["customer_id", *[c for c in extra if c in ctx.columns]]]
    if principal.scoped:  # only the customers of the manager's team / the rep's own
        none = pd.Series([None] * len(customers), dtype="string")
        inside = scope_mask(principal, customers.get("owner_id", none), customers.get("team_id", none))
        mine = set(customers.loc[inside, "customer_id"].astype(str))
        sel = sel.loc[sel["customer_id"].astype(str).isin(mine).to_numpy(dtype=bool)]
    if pii:
        p = customers[["customer_id", *pii]].drop_duplicates("customer_id")
        p["customer_id"] = p["customer_id"].astype("string")
        sel = sel.astype({"customer_id": "string"}).merge(p, on="customer_id", how="left")
    write_csv_atomic(sel[["customer_id", *extra]], out, neutralise=neutralise)
    summary = res.summary | {
        "audience": aud_name,
        "as_of": tag_summary.get("as_of"),
        "tags": str(tags),
        "columns": extra,
        "pii_columns": pii,
        "output": str(out),
    }
    if mlflow_log:
        summary["mlflow_run_id"] = log_audience(aud_name, summary)
    if principal.scoped:
        summary["exported"] = len(sel)
    write_text_atomic(out.with_suffix(".summary.json"), json.dumps(summary, ensure_ascii=False, indent=1))
    ids = sel["customer_id"].astype(str).tolist()
    # every exported id (1,000 per audit line): "who exported this customer"
    record_export("export_audience", principal, [out, out.with_suffix(".summary.json")], ids, ["customer_id", *extra],
                  audience=aud_name, rows=len(ids))
    output.summary(summary, lambda: _(
        "{name}: {matched:,} matched, {no_consent:,} without consent and {unknown:,} with unknown consent left out "
        "({purpose}), {exported:,} exported → {out}"
    ).format(
        name=aud_name, matched=summary["matched"], no_consent=summary["excluded_no_consent"],
        unknown=summary["excluded_consent_unknown"], purpose=purpose, exported=summary["exported"], out=out,
    ))


def register(app: typer.Typer) -> None:
    """Add the `audience` command group to the root app."""
    app.add_typer(audience_app, name="audience")
