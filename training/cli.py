"""`crmscore train ...`, `crmscore registry ...`, `crmscore segment ...`."""

from __future__ import annotations

import typer

from features.cli import register_modules


def register(app: typer.Typer) -> None:
    """Add this stage's command groups to the root app."""
    register_modules(app, ("training.cli_train", "training.cli_registry", "training.cli_segment"))
