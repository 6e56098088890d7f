"""`crmscore registry list|promote|rollback`: the MLflow Model Registry with aliases."""

from __future__ import annotations

import typer

from serving.cli import output
from serving.i18n import _

registry_app = typer.Typer(help="Registered models, their versions and the champion/challenger aliases.")


@registry_app.command("list")
@output.command
def list_cmd() -> None:
    """List registered models, versions, aliases and out-of-time metrics."""
    from training.registry import configure_tracking, list_models

    configure_tracking()
    models = list_models()
    output.summary({"models": models}, lambda: _list_lines(models))


def _list_lines(models: list[dict]) -> list[str]:
    if not models:
        return [_("no registered models")]
    lines = []
    for m in models:
        aliases = ", ".join(f"{k}→v{v}" for k, v in m["aliases"].items()) or "-"
        lines.append(_("{name}  aliases: {aliases}").format(name=m["name"], aliases=aliases))
        for v in m["versions"]:
            t = v["tags"]
            auc = t.get("crmscore.test_roc_auc", "")
            gate = t.get("crmscore.gate.reason", t.get("crmscore.promotion_reason", ""))
            lines.append(f"  v{v['version']:<4} auc={auc[:6]:<7} {t.get('crmscore.candidate', ''):<12} {gate}")
    return lines


@registry_app.command("promote")
@output.command
def promote_cmd(name: str, version: str, reason: str = typer.Option("manual promotion", "--reason")) -> None:
    """Point `champion` at VERSION of NAME (by hand, bypassing the gate)."""
    from mlflow.exceptions import MlflowException

    from training.registry import CHAMPION, RegistryError, configure_tracking, set_champion

    configure_tracking()
    try:
        set_champion(name, version, reason)
    except RegistryError as e:
        output.fail(e)
    except MlflowException as e:
        _unknown(e, name)
    data = {"name": name, "alias": CHAMPION, "version": str(version), "reason": reason}
    output.summary(data, _("{name}: champion → v{version}").format(name=name, version=version))


@registry_app.command("rollback")
@output.command
def rollback_cmd(name: str) -> None:
    """Move `champion` of NAME back to the previous champion."""
    from mlflow.exceptions import MlflowException

    from training.registry import CHAMPION, RegistryError, configure_tracking, rollback

    configure_tracking()
    try:
        v = rollback(name)
    except RegistryError as e:
        output.fail(e)
    except MlflowException as e:
        _unknown(e, name)
    data = {"name": name, "alias": CHAMPION, "version": str(v), "rolled_back": True}
    output.summary(data, _("{name}: champion → v{version} (rolled back)").format(name=name, version=v))


def _unknown(e: Exception, name: str) -> None:
    """A model the registry does not know is bad input (exit 2); any other registry failure stays exit 1."""
    if getattr(e, "error_code", "") == "RESOURCE_DOES_NOT_EXIST":
        output.fail(_("no registered model named {name!r} (see `crmscore registry list`)").format(name=name))
    raise e


def register(app: typer.Typer) -> None:
    """Add the `registry` group to the root app."""
    app.add_typer(registry_app, name="registry")
