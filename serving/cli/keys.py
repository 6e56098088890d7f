"""`crmscore keys add|revoke|list`: the API keys file (principals, roles, salted hashes, expiry; docs/access.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serving.cli import output

keys_app = typer.Typer(
    name="keys", help="API keys: who may call the service, with which role (configs/keys.yaml).", no_args_is_help=True
)

FileOpt = Annotated[
    Path | None,
    typer.Option("--file", help="keys file (default $CRMSCORE_KEYS_FILE, else configs/keys.yaml)"),
]


def _file(path: Path | None) -> Path:
    from serving.access.keys import DEFAULT_KEYS_FILE, keys_file_path

    return path or keys_file_path() or DEFAULT_KEYS_FILE


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(2)


@keys_app.command("add")
def add_cmd(
    name: Annotated[str, typer.Option("--name", help="principal: the employee or system holding the key")],
    role: Annotated[str, typer.Option("--role", help="admin, manager, sales, analyst or integration")],
    team: Annotated[str | None, typer.Option("--team", help="team id (required for a manager)")] = None,
    owner_id: Annotated[str | None, typer.Option("--owner-id", help="owner id (required for sales)")] = None,
    expires: Annotated[
        str | None, typer.Option("--expires", help="expiry: an ISO date/time (UTC) or a duration such as 90d")
    ] = None,
    file: FileOpt = None,
) -> None:
    """Add a key; the key is printed once (only its salted hash is stored)."""
    from datetime import UTC, datetime, timedelta

    from serving.access.keys import KeysFileError, add_key
    from serving.access.roles import ROLES

    output.require_permission("keys", "manage keys")
    if role not in ROLES:
        raise _fail(f"--role {role!r}: use one of {', '.join(ROLES)}")
    when = None
    if expires:
        import re

        m = re.fullmatch(r"(\d+)([dh])", expires.strip())
        try:
            if m:
                n = int(m.group(1))
                when = datetime.now(UTC) + (timedelta(days=n) if m.group(2) == "d" else timedelta(hours=n))
            else:
                when = datetime.fromisoformat(expires.replace("Z", "+00:00"))
        except ValueError:
            raise _fail(f"--expires {expires!r}: use an ISO date such as 2027-01-31 or a duration such as 90d") \
                from None
    path = _file(file)
    try:
        key, entry = add_key(path, name, role, team, owner_id, when)  # type: ignore[arg-type]
    except KeysFileError as e:
        raise _fail(str(e)) from None
    typer.echo(key)
    typer.echo(
        f"added key {entry.id} for {entry.name} ({entry.role}) to {path}"
        + (f", expires {entry.expires_at.isoformat()}" if entry.expires_at else "")
        + "; the key above is shown only now",
        err=True,
    )


@keys_app.command("revoke")
def revoke_cmd(
    who: Annotated[str, typer.Argument(help="key id (8 hex digits) or principal name: all its active keys")],
    file: FileOpt = None,
) -> None:
    """Revoke keys (refused from the next request on; the entry stays, marked revoked)."""
    from serving.access.keys import KeysFileError, revoke_key

    output.require_permission("keys", "manage keys")
    path = _file(file)
    try:
        hit = revoke_key(path, who)
    except KeysFileError as e:
        raise _fail(str(e)) from None
    for k in hit:
        typer.echo(f"revoked key {k.id} of {k.name} ({k.role})")


@keys_app.command("list")
def list_cmd(file: FileOpt = None) -> None:
    """List the keys: id, principal, role, scope, state and dates (never a key or a hash)."""
    from serving.access.keys import KeysFileError, describe, read_keys_file

    output.require_permission("keys", "manage keys")
    path = _file(file)
    try:
        kf = read_keys_file(path)
    except KeysFileError as e:
        raise _fail(str(e)) from None
    if not kf.keys:
        typer.echo(f"no keys in {path}")
        return
    for k in kf.keys:
        d = describe(k)
        scope = d["team"] or d["owner_id"] or "-"
        typer.echo(f"{d['id']}  {d['name']:<20} {d['role']:<12} {scope:<14} {d['state']:<8} "
                   f"created {d['created_at'] or '-'}  expires {d['expires_at'] or '-'}")


def register(app: typer.Typer) -> None:
    """Add the `keys` command group to the root app."""
    app.add_typer(keys_app, name="keys")
