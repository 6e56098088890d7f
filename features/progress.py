"""The progress callback long-running jobs accept: a stage name and counts, nothing about how it is shown.

A job calls ``progress("reading", done, total)`` as it goes; a new stage name ends the previous stage. The
command line turns the calls into a progress bar on a terminal (``serving.cli.output``); library callers pass
nothing and the calls cost nothing.
"""

from __future__ import annotations

from typing import Protocol


class ProgressCallback(Protocol):
    """Called with the current ``stage`` (a short English name, e.g. ``"scoring"``), the units ``done`` so far
    and the ``total`` expected (``None`` when unknown)."""

    def __call__(self, stage: str, done: int = 0, total: int | None = None) -> None: ...


def no_progress(stage: str, done: int = 0, total: int | None = None) -> None:
    """The default callback: does nothing."""
