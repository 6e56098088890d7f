"""`crmscore keys add|revoke|list`: the API keys file (principals, roles, salted hashes, expiry; docs/access.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from serving.cli import output
from serving.i18n import N_, _

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


@keys_app.command("add")
@output.command
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

    output.require_permission("keys", N_("manage keys"))
    if role not in ROLES:
        output.fail(_("--role {role!r}: use one of {roles}").format(role=role, roles=", ".join(ROLES)))
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
            output.fail(_("--expires {value!r}: use an ISO date such as 2027-01-31 or a duration such as 90d").format(
                value=expires
            ))
    path = _file(file)
    try:
        key, entry = add_key(path, name, role, team, owner_id, when)  # type: ignore[arg-type]
    except KeysFileError as e:
        output.fail(e)
    from serving.access.keys import describe

    output.summary({"key": key, **describe(entry), "file": path}, key)
    expiry = _(", expires {when}").format(when=entry.expires_at.isoformat()) if entry.expires_at else ""
    typer.echo(
        _("added key {id} for {name} ({role}) to {file}{expiry}; the key above is shown only now").format(
            id=entry.id, name=entry.name, role=entry.role, file=path, expiry=expiry
        ),
        err=True,
    )


@keys_app.command("revoke")
@output.command
def revoke_cmd(
    who: Annotated[str, typer.Argument(help="key id (8 hex digits) or principal name: all its active keys")],
    file: FileOpt = None,
) -> None:
    """Revoke keys (refused from the next request on; the entry stays, marked revoked)."""
    from serving.access.keys import KeysFileError, describe, revoke_key

    output.require_permission("keys", N_("manage keys"))
    path = _file(file)
    try:
        hit = revoke_key(path, who)
    except KeysFileError as e:
        output.fail(e)
    output.summary(
        {"revoked": [describe(k) for k in hit], "file": path},
        [_("revoked key {id} of {name} ({role})").format(id=k.id, name=k.name, role=k.role) for k in hit],
    )


@keys_app.command("list")
@output.command
def list_cmd(file: FileOpt = None) -> None:
    """List the keys: id, principal, role, scope, state and dates (never a key or a hash)."""
    from serving.access.keys import KeysFileError, describe, read_keys_file

    output.require_permission("keys", N_("manage keys"))
    path = _file(file)
    try:
        kf = read_keys_file(path)
    except KeysFileError as e:
        output.fail(e)
    keys = [describe(k) for k in kf.keys]
    output.summary({"keys": keys, "file": path}, lambda: _list_lines(keys, path))


def _list_lines(keys: list[dict], path: Path) -> list[str]:
    if not keys:
        return [_("no keys in {file}").format(file=path)]
    lines = []
    for d in keys:
        scope = d["team"] or d["owner_id"] or "-"
        lines.append(f"{d['id']}  {d['name']:<20} {d['role']:<12} {scope:<14} {d['state']:<8} " + _(
            "created {created}  expires {expires}"
        ).format(created=d["created_at"] or "-", expires=d["expires_at"] or "-"))
    return lines


def register(app: typer.Typer) -> None:
    """Add the `keys` command group to the root app."""
    app.add_typer(keys_app, name="keys")
