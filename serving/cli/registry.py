"""`crmscore registry list|promote|rollback`: the MLflow Model Registry with aliases."""

from __future__ import annotations

import json

import typer

registry_app = typer.Typer(help="Registered models, their versions and the champion/challenger aliases.")


@registry_app.command("list")
def list_cmd(as_json: bool = typer.Option(False, "--json", help="machine-readable output")) -> None:
    """List registered models, versions, aliases and out-of-time metrics."""
    from training.registry import configure_tracking, list_models

    configure_tracking()
    models = list_models()
    if as_json:
        typer.echo(json.dumps(models, indent=2, default=str))
        return
    if not models:
        typer.echo("no registered models")
    for m in models:
        typer.echo(f"{m['name']}  aliases: {', '.join(f'{k}→v{v}' for k, v in m['aliases'].items()) or '-'}")
        for v in m["versions"]:
            t = v["tags"]
            auc = t.get("crmscore.test_roc_auc", "")
            gate = t.get("crmscore.gate.reason", t.get("crmscore.promotion_reason", ""))
            typer.echo(f"  v{v['version']:<4} auc={auc[:6]:<7} {t.get('crmscore.candidate', ''):<12} {gate}")


@registry_app.command("promote")
def promote_cmd(name: str, version: str, reason: str = typer.Option("manual promotion", "--reason")) -> None:
    """Point `champion` at VERSION of NAME (by hand, bypassing the gate)."""
    from training.registry import RegistryError, configure_tracking, set_champion

    configure_tracking()
    try:
        set_champion(name, version, reason)
    except RegistryError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{name}: champion → v{version}")


@registry_app.command("rollback")
def rollback_cmd(name: str) -> None:
    """Move `champion` of NAME back to the previous champion."""
    from training.registry import RegistryError, configure_tracking, rollback

    configure_tracking()
    try:
        v = rollback(name)
    except RegistryError as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2) from None
    typer.echo(f"{name}: champion → v{v} (rolled back)")


def register(app: typer.Typer) -> None:
    """Add the `registry` group to the root app."""
    app.add_typer(registry_app, name="registry")
