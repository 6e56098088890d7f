"""`crmscore ingest`: validated ingestion of CRM exports (files or SQL) into a data dir."""

from __future__ import annotations

from pathlib import Path

import typer

from serving.cli import output
from serving.i18n import _


def ingest_cmd(
    source: str = typer.Option(
        ..., "--source", help="a directory of table files, one CSV/.xlsx/Parquet file, or a SQLAlchemy URL"
    ),
    out: Path = typer.Option(..., "--out", help="data dir to write <table>.parquet, rejects/ and the summary to"),
    mapping: Path | None = typer.Option(None, "--mapping", help="column mapping YAML (source column → field)"),
    day_first: bool = typer.Option(
        False,
        "--day-first",
        help="read all-ambiguous date columns (05/03/2024) day first; a column with a value like 23/02/2024 "
        "or 02/23/2024 decides for itself",
    ),
    table: list[str] | None = typer.Option(
        None, "--table", help="table(s) to ingest; for a single file, the table it holds (repeatable)"
    ),
) -> None:
    """Read, map, validate and write the contract tables; rejected rows go to OUT/rejects/."""
    from features.ingest import IngestError, ingest

    try:
        with output.progress() as progress:
            summary = ingest(
                source, out, mapping=mapping, day_first=day_first, tables=table or None, progress=progress
            )
    except IngestError as e:
        output.fail(e)
    output.summary(summary.model_dump(), lambda: _lines(summary))


def _lines(summary) -> list[str]:
    lines = []
    for name, s in summary.tables.items():
        orphans = "-" if s.orphans is None else str(s.orphans)
        lines.append(
            _("{table}: read {read}, accepted {accepted}, rejected {rejected}, duplicates {duplicates}, "
              "orphans {orphans}").format(
                table=name, read=s.read, accepted=s.accepted, rejected=s.rejected, duplicates=s.duplicates,
                orphans=orphans,
            )
            + (_("; ignored columns: {columns}").format(columns=", ".join(s.ignored_columns))
               if s.ignored_columns else "")
        )
        if s.rejected:
            top = ", ".join(f"{r} ({n})" for r, n in list(s.reasons.items())[:3])
            lines.append("  " + _("rejects in {file}: {top}").format(file=s.rejects_file, top=top))
    if summary.absent_tables:
        lines.append(_("not in the source: {tables}").format(tables=", ".join(summary.absent_tables)))
    if summary.ignored_files:
        lines.append(_("files not ingested: {files}").format(files=", ".join(summary.ignored_files)))
    lines.append(_("wrote {file}").format(file=Path(summary.out) / "ingest_summary.json"))
    return lines


def register(app: typer.Typer) -> None:
    """Add `crmscore ingest` to the root app."""
    app.command("ingest")(output.command(ingest_cmd))
