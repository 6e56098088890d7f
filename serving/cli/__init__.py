"""The ``crmscore`` command line: one thin typer module per command group.

``main`` assembles the root app; ``synth``, ``ingest``, ``features`` (data), ``train``, ``table``,
``registry``, ``segment`` (training), ``score``, ``serve``, ``monitor`` and ``demo`` each own their
commands and call typed functions in ``features``, ``training`` and ``serving``. Command modules may
import any package; no other package imports from here.
"""

from serving.cli.main import app, main

__all__ = ["app", "main"]
