"""`crmscore synth`, `crmscore ingest`, `crmscore features`: thin commands over typed functions."""

from __future__ import annotations

import typer


def register(app: typer.Typer) -> None:
    """Add this stage's commands to the root app."""
    # each command module registers itself; kept separate so stages can be built independently
    for mod in ("features.cli_synth", "features.cli_ingest", "features.cli_build"):
        try:
            module = __import__(mod, fromlist=["register"])
        except ModuleNotFoundError as e:
            if e.name != mod:
                raise
            continue
        module.register(app)
