"""`crmscore synth`, `crmscore ingest`, `crmscore features`: thin commands over typed functions."""

from __future__ import annotations

import importlib
import importlib.util

import typer


def register_modules(app: typer.Typer, modules: tuple[str, ...]) -> None:
    """Call ``register(app)`` of each command module that exists (stages are built independently)."""
    for mod in modules:
        if importlib.util.find_spec(mod) is not None:
            importlib.import_module(mod).register(app)


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    register_modules(app, ("features.cli_synth", "features.cli_ingest", "features.cli_build"))
