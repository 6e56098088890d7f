"""`crmscore score`: batch scoring of a lead list (file, SQL query or CRM tables) into a scored file or table."""

from __future__ import annotations

import typer

from serving.cli import output as cli_output
from serving.i18n import _


def score_cmd(
    model: str = typer.Option(
        "lead_scoring@champion", "--model", help="NAME@alias, NAME/version, or a models:/ or runs:/ URI"
    ),
    input: str = typer.Option(
        ..., "--input", help="CSV/Parquet/.xlsx of feature rows, a SQLAlchemy URL (with --query), or a directory "
        "of CRM tables (with --as-of)"
    ),
    output: str = typer.Option(..., "--output", help="scored .csv or .parquet, or a SQL URL (with --output-table)"),
    mapping: str | None = typer.Option(
        None, "--mapping", help="YAML: for feature rows 'columns: {source header: feature}'; for raw CRM exports "
        "the ingestion mapping"
    ),
    reasons: int = typer.Option(0, "--reasons", help="top K positive and K negative reasons as text columns"),
    reasons_method: str = typer.Option(
        "exact", "--reasons-method", help="exact (TreeSHAP, as the HTTP service) or approx (XGBoost's per-path "
        "Saabas attribution, may order reasons differently; see docs/batch.md)"
    ),
    engine: str = typer.Option("local", "--engine", help="local (chunked pandas/pyarrow) or spark"),
    spark_master: str = typer.Option("local[*]", "--spark-master", help="Spark master URL for --engine spark"),
    as_of: str | None = typer.Option(None, "--as-of", help="feature date for a directory of CRM tables"),
    id_col: str | None = typer.Option(
        None, "--id-col", help="the id column (required, kept in the output; default: the id column the model was "
        "trained with, e.g. train table --id, else customer_id)"
    ),
    keep: str | None = typer.Option(None, "--keep", help="pass-through columns, comma-separated"),
    sort: bool = typer.Option(False, "--sort", help="write rows by score, best first (default: input order)"),
    rejects: str | None = typer.Option(None, "--rejects", help="rejects CSV (default <output>.rejects.csv)"),
    chunk_size: int = typer.Option(100_000, "--chunk-size", help="rows read and scored at a time"),
    query: str | None = typer.Option(None, "--query", help="SQL query giving the rows to score (SQL --input)"),
    output_table: str | None = typer.Option(None, "--output-table", help="table name for a SQL --output"),
    bom: bool = typer.Option(False, "--bom", help="write the CSV as UTF-8 with a BOM (for Excel)"),
    threads: int | None = typer.Option(None, "--threads", help="XGBoost threads (default: CPU count, at most 4)"),
    records: bool = typer.Option(True, "--records/--no-records", help="record scored rows for drift monitoring"),
    neutralise: bool = typer.Option(
        True, "--neutralise/--no-neutralise", help="prefix CSV cells starting with = + - @ with ' (spreadsheet "
        "formula injection); turn off only for machine consumers"
    ),
) -> None:
    """Score a lead list: probability, score 1–99, grade, rank, decile and reasons; rejects and a summary beside.
    With an uplift model (coupon_uplift): uplift, rank and decile per customer (serving/batch/uplift.py).

    Runs as the principal of ``$CRMSCORE_KEY`` (else the local operator, admin): PII pass-through columns are
    masked for roles without PII access, and the export is written to the audit trail (docs/access.md)."""
    from serving.access.exports import ids_of_output, policy_for, record_export
    from serving.batch import BatchError, BatchOptions
    from serving.batch.run import check_input
    from serving.batch.uplift import is_uplift_model

    principal = cli_output.require_permission("export_scores")
    try:  # a wrong path is refused before the registry is opened (is_uplift_model looks the model up)
        check_input(input)
    except BatchError as e:
        cli_output.fail(e)
    if is_uplift_model(model):
        from serving.cli.uplift import score_uplift_cmd

        extra = {"--mapping": mapping, "--as-of": as_of, "--engine spark": engine != "local", "--keep": keep}
        return score_uplift_cmd(model, input, output, id_col, reasons, sort, rejects, query, extra,
                                principal=principal, neutralise=neutralise)

    policy = policy_for(principal, neutralise)

    opts = BatchOptions(
        model=model,
        input=input,
        output=output,
        mapping=mapping,
        reasons=reasons,
        reason_method=reasons_method,
        as_of=as_of,
        id_col=id_col,
        keep=[k.strip() for k in (keep or "").split(",") if k.strip()],
        sort=sort,
        rejects=rejects,
        chunk_size=chunk_size,
        query=query,
        output_table=output_table,
        bom=bom,
        threads=threads,
        records=records,
        export_policy=policy,
    )
    try:
        if engine == "local":
            from serving.batch import score_batch

            with cli_output.progress() as progress:
                summary = score_batch(opts, progress)
        elif engine == "spark":
            from serving.batch.spark import score_batch_spark

            summary = score_batch_spark(opts, master=spark_master)
        else:
            raise BatchError(_("--engine {engine!r}: use local or spark").format(engine=engine))
    except BatchError as e:
        cli_output.fail(e)
    files = [f for f in (summary.output, summary.rejects_file) if "://" not in f]
    ids = summary.written_ids  # the local engine's, in output order; Spark's are read back from its output
    if ids is None:
        ids = ids_of_output(opts.output, opts.output_table, id_col)
    record_export("export_scores", principal, files, ids, fields=opts.keep,
                  masked=bool(policy.mask & set(opts.keep)),
                  rows=summary.scored, output=summary.output)
    cli_output.summary(summary.model_dump(), lambda: _report(summary))


def _report(s) -> list[str]:
    grades = ", ".join(f"{k} {v:,}" for k, v in s.grades.items())
    q = s.score_quantiles
    dist = (
        _("score p10 {p10:.0f} / median {p50:.0f} / p90 {p90:.0f}").format(**q) if q else _("no scores")
    )
    lines = [
        _("{model} v{version} ({engine}): rows in {rows_in:,} = scored {scored:,} + rejected {rejected:,} + "
          "duplicates {duplicates:,}").format(
            model=s.model_name or s.model_uri, version=s.model_version or "?", engine=s.engine, rows_in=s.rows_in,
            scored=s.scored, rejected=s.rejected, duplicates=s.duplicates,
        )
        + (_(" ({n:,} blank lines skipped)").format(n=s.blank_rows) if s.blank_rows else ""),
        "  " + _("grades: {grades}; {dist}").format(grades=grades, dist=dist),
        "  " + _("{seconds:,.1f} s, {rate:,.0f} rows/s; wrote {out}").format(
            seconds=s.seconds, rate=s.rows_per_second, out=s.output
        ),
    ]
    if s.rejected:
        top = ", ".join(f"{r} ({n:,})" for r, n in list(s.reject_reasons.items())[:3])
        lines.append("  " + _("rejects in {file}: {top}").format(file=s.rejects_file, top=top))
    lines.append("  " + _("summary in {file}").format(file=s.summary_file))
    return lines


def register(app: typer.Typer) -> None:
    """Add `crmscore score` to the root app."""
    app.command("score")(cli_output.command(score_cmd))
