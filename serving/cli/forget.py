"""`crmscore forget`: erase one customer's PII from every file crm-scoring wrote (the right to be forgotten)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer


def forget_cmd(
    customer_id: Annotated[str, typer.Option("--customer-id", help="the customer to forget")],
    data: Annotated[Path, typer.Option("--data", help="data dir with the contract tables")],
    home: Annotated[
        Path | None, typer.Option("--home", help="records and drift home (default $CRMSCORE_HOME, else ./.crmscore)")
    ] = None,
    also: Annotated[
        list[Path] | None, typer.Option("--also", help="more files or folders to scrub (exports made elsewhere)")
    ] = None,
) -> None:
    """Remove the customer's name, phone, e-mail and address from the data dir, the drift records, every export
    in the audit trail and --also paths; keep ids and scores; write a tombstone to the audit trail."""
    from serving.access.erasure import ErasureError, forget
    from serving.access.keys import principal_from_env

    try:
        who = principal_from_env()
    except PermissionError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    if not who.may("forget"):
        typer.echo(f"error: the role {who.role} may not erase customers (docs/access.md)", err=True)
        raise typer.Exit(2)
    try:
        r = forget(customer_id, data, who, home=home, extra=also or ())
    except ErasureError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"forgot {customer_id}: {', '.join(r.fields) or 'no PII fields'} erased from {len(r.changed):,} of "
               f"{r.scanned:,} file(s) scanned; tombstone #{(r.tombstone or {}).get('seq')} in the audit trail")
    for f in r.changed:
        typer.echo(f"  changed {f}")
    for f in r.skipped:
        typer.echo(f"  not a text or Parquet file, left as it is: {f}", err=True)


def register(app: typer.Typer) -> None:
    """Add `crmscore forget` to the root app."""
    app.command("forget")(forget_cmd)
