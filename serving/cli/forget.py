"""`crmscore forget`: erase one customer's PII from every file crm-scoring wrote (the right to be forgotten)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serving.cli import output
from serving.i18n import N_, _


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

    output.require_permission("forget", N_("erase customers"))
    who = principal_from_env()
    try:
        r = forget(customer_id, data, who, home=home, extra=also or ())
    except ErasureError as e:
        output.fail(e)
    for f in r.skipped:
        output.note(_("not a text or Parquet file, left as it is: {file}").format(file=f))
    result = {"customer_id": customer_id, "fields": list(r.fields), "scanned": r.scanned, "changed": list(r.changed),
              "skipped": list(r.skipped), "tombstone": r.tombstone}
    output.summary(result, lambda: [
        _("forgot {customer}: {fields} erased from {changed:,} of {scanned:,} file(s) scanned; tombstone #{seq} in "
          "the audit trail").format(
            customer=customer_id, fields=", ".join(r.fields) or _("no PII fields"), changed=len(r.changed),
            scanned=r.scanned, seq=(r.tombstone or {}).get("seq"),
        ),
        *("  " + _("changed {file}").format(file=f) for f in r.changed),
    ])


def register(app: typer.Typer) -> None:
    """Add `crmscore forget` to the root app."""
    app.command("forget")(output.command(forget_cmd))
