"""`crmscore audit`: who looked at which customer (the hash-chained audit trail), and `crmscore audit verify`."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serving.cli import output
from serving.i18n import N_, _

audit_app = typer.Typer(
    name="audit", help="The audit trail: who viewed, searched, exported or erased which customer.",
    invoke_without_command=True,
)

FileOpt = Annotated[
    Path | None,
    typer.Option("--file", help="audit file (default $CRMSCORE_AUDIT_FILE, else $CRMSCORE_HOME/audit/audit.jsonl)"),
]


@audit_app.callback()
@output.command
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

    output.require_permission("audit", N_("read the audit trail"))
    try:
        rows = audit.query(audit.parse_since(since), who, customer, file)
    except audit.AuditError as err:
        output.fail(err)
    data = {"since": since, "who": who, "customer": customer, "count": len(rows), "lines": rows}
    if rows or output.session().json:
        output.summary(data, lambda: [_line(e) for e in rows])
    if not output.session().json:
        typer.echo(_("{n:,} line(s)").format(n=len(rows)), err=True)


def _line(e: dict) -> str:
    ids = e.get("customers") or []
    more = e.get("customers_total", len(ids)) - len(ids)
    shown = ",".join(ids[:5]) + (_(" (+{n} more)").format(n=len(ids) - 5 + more) if len(ids) > 5 or more else "")
    return (f"{e['ts']}  {e.get('principal')} ({e.get('role')})  {e.get('action')}  "
            + _("customers: {customers}  fields: {fields}").format(
                customers=shown or "-", fields=",".join(e.get("fields") or []) or "-"
            )
            + ("  " + _("[masked]") if e.get("masked") else ""))


@audit_app.command("verify")
@output.command
def verify_cmd(file: FileOpt = None) -> None:
    """Check the hash chain: exit 1 naming the first removed, edited or inserted line."""
    from serving.access import audit

    output.require_permission("audit", N_("read the audit trail"))
    try:
        v = audit.verify(file)
    except audit.AuditError as e:
        output.fail(e)
    data = {"path": v.path, "ok": v.ok, "lines": v.lines, "last_hash": v.last_hash, "broken_line": v.broken_line,
            "reason": v.reason}
    if not v.ok:
        if output.session().json:
            output.summary(data, "")
        typer.echo(_("audit trail {path} is BROKEN at line {line}: {reason}").format(
            path=v.path, line=v.broken_line, reason=v.reason
        ), err=True)
        raise typer.Exit(int(output.ExitCode.FAILURE))
    output.summary(data, _("audit trail {path}: {lines:,} line(s), chain intact; last hash {hash}").format(
        path=v.path, lines=v.lines, hash=v.last_hash
    ))


def register(app: typer.Typer) -> None:
    """Add the `audit` command group to the root app."""
    app.add_typer(audit_app, name="audit")
