"""`crmscore score`: batch scoring of a lead list (file, SQL query or CRM tables) into a scored file or table."""

from __future__ import annotations

import typer


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
    from serving.access.exports import policy_for, record_export
    from serving.access.keys import principal_from_env
    from serving.batch import BatchError, BatchOptions
    from serving.batch.uplift import is_uplift_model

    if is_uplift_model(model):
        from serving.cli.uplift import score_uplift_cmd

        extra = {"--mapping": mapping, "--as-of": as_of, "--engine spark": engine != "local", "--keep": keep}
        return score_uplift_cmd(model, input, output, id_col, reasons, sort, rejects, query, extra)

    try:
        principal = principal_from_env()
    except PermissionError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(code=2) from None
    if not principal.may("export_scores"):
        typer.echo(f"error: the role {principal.role} may not export scores (docs/access.md)", err=True)
        raise typer.Exit(code=2)
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

            summary = score_batch(opts)
        elif engine == "spark":
            from serving.batch.spark import score_batch_spark

            summary = score_batch_spark(opts, master=spark_master)
        else:
            raise BatchError(f"--engine {engine!r}: use local or spark")
    except BatchError as e:
        typer.echo(f"error: {' '.join(str(e).split())}", err=True)
        raise typer.Exit(code=2) from None
    files = [f for f in (summary.output, summary.rejects_file) if "://" not in f]
    record_export("export_scores", principal, files, fields=opts.keep, masked=bool(policy.mask & set(opts.keep)),
                  rows=summary.scored, output=summary.output)
    _report(summary)


def _report(s) -> None:
    grades = ", ".join(f"{k} {v:,}" for k, v in s.grades.items())
    q = s.score_quantiles
    dist = f"score p10 {q['p10']:.0f} / median {q['p50']:.0f} / p90 {q['p90']:.0f}" if q else "no scores"
    typer.echo(
        f"{s.model_name or s.model_uri} v{s.model_version or '?'} ({s.engine}): rows in {s.rows_in:,} = "
        f"scored {s.scored:,} + rejected {s.rejected:,} + duplicates {s.duplicates:,}"
        + (f" ({s.blank_rows:,} blank lines skipped)" if s.blank_rows else "")
    )
    typer.echo(f"  grades: {grades}; {dist}")
    typer.echo(f"  {s.seconds:,.1f} s, {s.rows_per_second:,.0f} rows/s; wrote {s.output}")
    if s.rejected:
        top = ", ".join(f"{r} ({n:,})" for r, n in list(s.reject_reasons.items())[:3])
        typer.echo(f"  rejects in {s.rejects_file}: {top}")
    typer.echo(f"  summary in {s.summary_file}")


def register(app: typer.Typer) -> None:
    """Add `crmscore score` to the root app."""
    app.command("score")(score_cmd)
