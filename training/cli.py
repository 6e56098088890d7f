"""`crmscore train ...`, `crmscore registry ...`, `crmscore segment ...`."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's command groups to the root app."""
    for mod in ("training.cli_train", "training.cli_registry", "training.cli_segment"):
        try:
            module = __import__(mod, fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
            continue
        module.register(app)
