"""`crmscore audit`: who looked at which customer (the hash-chained audit trail), and `crmscore audit verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serving.cli import output

audit_app = typer.Typer(
    name="audit", help="The audit trail: who viewed, searched, exported or erased which customer.",
    invoke_without_command=True,
)

FileOpt = Annotated[
    Path | None,
    typer.Option("--file", help="audit file (default $CRMSCORE_AUDIT_FILE, else $CRMSCORE_HOME/audit/audit.jsonl)"),
]


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@audit_app.callback()
def audit_cmd(
    ctx: typer.Context,
    since: Annotated[str, typer.Option("--since", help="how far back: 7d, 24h, 30m or an ISO date")] = "7d",
    who: Annotated[str | None, typer.Option("--who", help="only this principal")] = None,
    customer: Annotated[str | None, typer.Option("--customer", help="only lines touching this customer id")] = None,
    file: FileOpt = None,
) -> None:
    """List audit lines (time, principal, role, action, customers, fields) matching the filters."""
    if ctx.invoked_subcommand is not None:
        return
    from serving.access import audit

    output.require_permission("audit", "read the audit trail")
    try:
        rows = audit.query(audit.parse_since(since), who, customer, file)
    except audit.AuditError as err:
        raise _fail(str(err)) from None
    for e in rows:
        ids = e.get("customers") or []
        more = e.get("customers_total", len(ids)) - len(ids)
        shown = ",".join(ids[:5]) + (f" (+{len(ids) - 5 + more} more)" if len(ids) > 5 or more else "")
        typer.echo(f"{e['ts']}  {e.get('principal')} ({e.get('role')})  {e.get('action')}  "
                   f"customers: {shown or '-'}  fields: {','.join(e.get('fields') or []) or '-'}"
                   + ("  [masked]" if e.get("masked") else ""))
    typer.echo(f"{len(rows):,} line(s)", err=True)


@audit_app.command("verify")
def verify_cmd(file: FileOpt = None) -> None:
    """Check the hash chain: exit 1 naming the first removed, edited or inserted line."""
    from serving.access import audit

    output.require_permission("audit", "read the audit trail")
    try:
        v = audit.verify(file)
    except audit.AuditError as e:
        raise _fail(str(e)) from None
    if not v.ok:
        typer.echo(f"audit trail {v.path} is BROKEN at line {v.broken_line}: {v.reason}", err=True)
        raise typer.Exit(1)
    typer.echo(f"audit trail {v.path}: {v.lines:,} line(s), chain intact; last hash {v.last_hash}")


def register(app: typer.Typer) -> None:
    """Add the `audit` command group to the root app."""
    app.add_typer(audit_app, name="audit")
