"""The `crmscore` root app: one plain import per command module, so a missing module fails loudly.

Heavy libraries are imported inside the commands, so ``crmscore --help`` stays fast and nothing
runs at import time.
"""

from __future__ import annotations

import os

import typer

from serving.cli import (
    actions,
    audience,
    audit,
    demo,
    features,
    forecast,
    forget,
    ingest,
    keys,
    members,
    monitor,
    recommend,
    registry,
    report,
    route,
    score,
    segment,
    serve,
    synth,
    tags,
    train,
)
from serving.cli.output import LocalizedGroup

app = typer.Typer(
    name="crmscore",
    help="Open, measured ML scoring for CRM: synth → ingest → features → train → score → serve → monitor.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=LocalizedGroup,
)


@app.callback()
def _root(
    lang: str | None = typer.Option(
        None, "--lang", help="language of the messages: zh or en (default $CRMSCORE_LANG, else en)"
    ),
) -> None:
    """Open, measured ML scoring for CRM: synth → ingest → features → train → score → serve → monitor."""

for module in (
    synth, ingest, features, train, registry, segment, members, tags, audience, actions, recommend, serve, score,
    monitor, demo, forecast, report, route, keys, audit, forget,
):
    module.register(app)


def main() -> None:
    """Console-script entry point."""
    # MLflow's artifact progress bars write to a terminal nobody watches in batch jobs
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    app()
