"""What every `crmscore` command shares on the way out: the exit codes, the progress bar, the summary (prose or
``--json``), error lines, and the common options ``--json``, ``--quiet``, ``--verbose`` and ``--lang``.

* Progress goes to stderr through rich, only when stderr is a terminal, ``$CI`` is unset and ``--quiet`` is not
  given; pipes, files and CI logs get nothing. ``--verbose`` adds one line per finished stage with its time
  (to stderr, terminal or not).
* The summary goes to stdout: prose in the chosen language, or with ``--json`` one JSON object (English keys,
  the fields of the command's summary file) and nothing else.
* Messages are looked up in the ``serving.i18n`` catalogue; :class:`LocalizedGroup` translates the help of the
  whole command tree before click parses the arguments.
"""

from __future__ import annotations

import functools
import inspect
import json
import math
import os
import sys
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date, datetime
from enum import IntEnum
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import typer
from typer.core import TyperGroup

from serving.cli.framework import LocalizedContext, UsageError, localize_help_option, localized_usage_error
from serving.i18n import (
    N_,
    LanguageError,
    _,
    framework_language,
    get_language,
    localized,
    normalize_language,
    resolve_language,
    translate,
    using_language,
)

if TYPE_CHECKING:
    from serving.access.roles import Principal


class ExitCode(IntEnum):
    """Exit codes, the same for every command (README, "Exit codes")."""

    OK = 0
    #: an unexpected failure (a bug, or the environment: a crashed server, a lost database)
    FAILURE = 1
    #: bad input: a missing or invalid file, option, configuration or data (the message names it)
    BAD_INPUT = 2
    #: the command ran and found something to act on (monitor drift: drift or a performance drop)
    ALERT = 3


@dataclass
class Session:
    """The output choices of the running command."""

    quiet: bool = False
    verbose: bool = False
    json: bool = False
    lang: str = "en"
    bar: CliProgress | None = None
    #: prose goes to stderr: a command run inside another one's ``--json`` (the demo's steps)
    to_stderr: bool = False


_session = Session()
#: the commands running now (more than one: a command called by another, e.g. the demo's steps)
_depth: list[Callable[..., Any]] = []


def session() -> Session:
    """The current command's output choices."""
    return _session


# ------------------------------------------------------------------------------------------ messages
def echo(message: str) -> None:
    """One line of the prose summary on stdout (nothing with ``--json``)."""
    if not _session.json:
        typer.echo(message, err=_session.to_stderr)


def note(message: str, kind: str = "note") -> None:
    """A note or warning on stderr (``kind`` is ``note`` or ``warning``; prefixed in the current language)."""
    prefix = _("warning") if kind == "warning" else _("note")
    typer.echo(f"{prefix}: {message}", err=True)


def fail(message: object, code: ExitCode = ExitCode.BAD_INPUT) -> NoReturn:
    """Print ``error: message`` (one line, in the current language) on stderr and leave with ``code``."""
    typer.echo(f"{_('error')}: {' '.join(localized(message).split())}", err=True)
    raise typer.Exit(code=int(code))


#: What "the role R may not ..." says of the export actions (serving.access.roles).
EXPORT_VERBS = {
    "export_scores": N_("export scores"),
    "export_lists": N_("export customer lists"),
    "export_reports": N_("export reports"),
}


def require_permission(action: str, refused: str | None = None) -> Principal:
    """The command's principal (``$CRMSCORE_KEY``, else the local operator); leave with exit code 2 unless it may
    take ``action``. ``refused`` (default: :data:`EXPORT_VERBS`) completes "the role R may not ..."
    (docs/access.md)."""
    from serving.access.keys import principal_from_env

    try:
        who = principal_from_env()
    except PermissionError as e:
        fail(e)
    if not who.may(action):
        verb = translate(refused or EXPORT_VERBS.get(action, action))
        fail(_("the role {role} may not {action} (docs/access.md)").format(role=who.role, action=verb))
    return who


def _plain(value: Any) -> Any:
    if isinstance(value, Path | date | datetime):
        return str(value)
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if hasattr(value, "isoformat"):  # pandas Timestamp
        return value.isoformat()
    return str(value)


def _finite(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(data: Mapping[str, Any]) -> str:
    """``data`` as one line of strict JSON (paths and dates as strings, NaN and infinities as null)."""
    return json.dumps(_finite(json.loads(json.dumps(data, default=_plain))), ensure_ascii=False, allow_nan=False)


def summary(data: Mapping[str, Any], lines: Callable[[], str | list[str]] | str | list[str]) -> None:
    """End a command: with ``--json`` print ``data`` as one JSON object, else the prose ``lines``."""
    if _session.json:
        typer.echo(to_json(data))
        return
    text = lines() if callable(lines) else lines
    typer.echo(text if isinstance(text, str) else "\n".join(text), err=_session.to_stderr)


# ------------------------------------------------------------------------------------------ progress
def progress_enabled() -> bool:
    """Whether a progress bar is drawn: stderr is a terminal, not CI, not ``--quiet``."""
    if _session.quiet or os.environ.get("CI"):
        return False
    try:
        return sys.stderr.isatty()
    except (AttributeError, ValueError):
        return False


class CliProgress:
    """A :class:`features.progress.ProgressCallback` drawing one rich progress bar per stage (stage, counts,
    elapsed, ETA) on stderr; with ``--verbose`` it also prints each finished stage's time."""

    def __init__(self, enabled: bool, verbose: bool, steps: int | None = None) -> None:
        self.enabled = enabled
        self.verbose = verbose
        #: with ``steps``, stages without counts of their own advance one bar of ``steps`` steps (n of N, ETA)
        self.steps = steps
        self._bar: Any = None
        self._task: Any = None
        self._steps_task: Any = None
        self._steps_done = 0
        self._stage: str | None = None
        self._t0 = 0.0
        if enabled:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                SpinnerColumn,
                TextColumn,
                TimeElapsedColumn,
                TimeRemainingColumn,
            )

            self._bar = Progress(
                SpinnerColumn(),
                TextColumn("[bold]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                TextColumn(_("ETA")),
                TimeRemainingColumn(),
                console=Console(stderr=True),
                transient=True,
            )
            self._bar.start()

    def __call__(self, stage: str, done: int = 0, total: int | None = None) -> None:
        if stage != self._stage:
            self._end_stage()
            self._stage = stage
            self._t0 = time.perf_counter()
            if self._bar is None:
                return
            if self.steps:  # one more step of the command's bar (stage, n of N steps, ETA)
                if self._steps_task is None:
                    self._steps_task = self._bar.add_task(translate(stage), total=self.steps, completed=0)
                self._bar.update(self._steps_task, description=translate(stage), completed=self._steps_done)
            # a stage with counts of its own gets its own bar under the steps
            self._task = self._bar.add_task(translate(stage), total=total, completed=done) \
                if total is not None or not self.steps else None
            return
        if self._bar is not None and self._task is not None:
            self._bar.update(self._task, completed=done, total=total)

    def _end_stage(self) -> None:
        if self._stage is None:
            return
        seconds = time.perf_counter() - self._t0
        if self.steps:
            self._steps_done = min(self._steps_done + 1, self.steps)
            if self._bar is not None and self._steps_task is not None:
                self._bar.update(self._steps_task, completed=self._steps_done)
                self._bar.refresh()
        if self._bar is not None and self._task is not None:
            total = next(t.total for t in self._bar.tasks if t.id == self._task)
            if total:
                self._bar.update(self._task, completed=total)  # the stage is done
            self._bar.refresh()  # every stage is drawn at least once, however short
            self._bar.remove_task(self._task)
            self._task = None
        if self.verbose:
            line = f"{translate(self._stage)}: {seconds:.2f} s"
            if self._bar is not None:
                self._bar.console.print(line, markup=False, highlight=False)
            else:
                typer.echo(line, err=True)
        self._stage = None

    def close(self) -> None:
        """End the last stage and take the bar off the terminal."""
        self._end_stage()
        if self._bar is not None and self._steps_task is not None:
            self._bar.remove_task(self._steps_task)
            self._steps_task = None
        if self._bar is not None:
            self._bar.stop()
            self._bar = None


def progress_bar(steps: int | None = None) -> CliProgress:
    """The progress callback of the running command; closed when the command ends (also on errors).

    ``steps``: how many stages the command reports; stages without counts of their own then move one bar
    (stage, n of N steps, ETA) instead of showing a bar each."""
    if _session.bar is None:
        _session.bar = CliProgress(progress_enabled(), _session.verbose, steps)
    return _session.bar


@contextmanager
def progress(steps: int | None = None) -> Iterator[CliProgress]:
    """A progress callback for a block of a command; the bar is removed when the block ends (also on errors)."""
    bar = progress_bar(steps)
    try:
        yield bar
    finally:
        bar.close()
        _session.bar = None


# ------------------------------------------------------------------------------------ common options
def _options(with_json: bool) -> list[inspect.Parameter]:
    kw = inspect.Parameter.KEYWORD_ONLY
    params = [
        inspect.Parameter(
            "quiet", kw, annotation=bool,
            default=typer.Option(False, "--quiet", "-q", help="no progress bar"),
        ),
        inspect.Parameter(
            "verbose", kw, annotation=bool,
            default=typer.Option(False, "--verbose", "-v", help="print each stage's time on stderr"),
        ),
        inspect.Parameter(
            "lang", kw, annotation=str | None,
            default=typer.Option(
                None, "--lang", help="language of the messages: zh or en (default $CRMSCORE_LANG, else en)"
            ),
        ),
    ]
    if with_json:
        params.insert(0, inspect.Parameter(
            "as_json", kw, annotation=bool,
            default=typer.Option(False, "--json", help="print the summary as one JSON object on stdout"),
        ))
    return params


def _default(param: inspect.Parameter) -> Any:
    """The plain default of one of the common options (a ``typer.Option``'s own default)."""
    d = param.default
    return getattr(d, "default", d)


def command(func: Callable[..., Any] | None = None, *, json_summary: bool = True) -> Any:
    """Give a typer command the common options (``--json`` when ``json_summary``, ``--quiet``, ``--verbose``,
    ``--lang``) and set them up before it runs: ``app.command("x")(output.command(x_cmd))``."""

    def wrap(f: Callable[..., Any]) -> Callable[..., Any]:
        sig = inspect.signature(f, eval_str=True)
        extra = _options(json_summary)

        @functools.wraps(f)
        def run(*args: Any, **kwargs: Any) -> Any:
            global _session
            # called as a plain function (e.g. by the demo), the common options take their defaults
            opts = {p.name: kwargs.pop(p.name, _default(p)) for p in extra}
            try:  # without --lang here: the language the root group chose (a root --lang, else $CRMSCORE_LANG)
                lang = resolve_language(opts["lang"]) if opts["lang"] else get_language()
            except LanguageError as e:
                fail(f"--lang: {e}")
            outer = _session if _depth else None  # a command run by another one (the demo) keeps its choices
            if outer is not None:
                lang = get_language()
            _session = Session(
                quiet=opts["quiet"] or (outer is not None and outer.quiet),
                verbose=opts["verbose"] or (outer is not None and outer.verbose),
                json=opts.get("as_json", False),
                lang=lang,
                to_stderr=outer is not None and (outer.json or outer.to_stderr),
            )
            _depth.append(f)
            try:
                with using_language(lang):
                    return f(*args, **kwargs)
            finally:
                _depth.pop()
                if _session.bar is not None:
                    _session.bar.close()
                _session = outer or Session()

        params = [*sig.parameters.values(), *extra]
        run.__signature__ = sig.replace(parameters=params)  # type: ignore[attr-defined]
        run.__annotations__ = {p.name: p.annotation for p in params}
        return run

    return wrap(func) if func is not None else wrap


# ------------------------------------------------------------------------------------------ help text
def _lang_in_args(args: list[str]) -> str | None:
    for i, a in enumerate(args):
        if a == "--lang" and i + 1 < len(args):
            return args[i + 1]
        if a.startswith("--lang="):
            return a.split("=", 1)[1]
    return None


def localize(cmd: Any, lang: str) -> None:
    """Translate the help of ``cmd``, its options and its sub-commands into ``lang`` (in place)."""
    code = normalize_language(lang) or "en"
    originals = cmd.__dict__.setdefault("_crmscore_en", {"help": cmd.help, "short_help": cmd.short_help})
    for key in ("help", "short_help"):
        text = originals[key]
        setattr(cmd, key, translate(text, code) if text else text)
    cmd.context_class = LocalizedContext  # the usage line's "Usage:" (serving.cli.framework)
    localize_help_option(cmd, code)
    for p in cmd.params:  # typer vendors its own click: options are recognised by their ``help``
        orig = p.__dict__.setdefault("_crmscore_en", getattr(p, "help", None))
        if orig:
            p.help = translate(orig, code)
    for sub in getattr(cmd, "commands", {}).values():
        localize(sub, code)


class LocalizedGroup(TyperGroup):
    """The root group: reads ``--lang`` (anywhere in the arguments) or ``$CRMSCORE_LANG`` first, so help is
    shown in that language; click's usage errors of the whole tree (the root's options here, a sub-command's
    while it is resolved and parsed in :meth:`invoke`) are raised again in that language."""

    context_class = LocalizedContext

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        """As click's, with a usage error in the current language."""
        try:
            return super().parse_args(ctx, args)
        except UsageError as e:
            raise localized_usage_error(e) from e

    def invoke(self, ctx: Any) -> Any:
        """As click's, with a usage error of a sub-command in the current language."""
        try:
            return super().invoke(ctx)
        except UsageError as e:
            raise localized_usage_error(e) from e

    def main(self, args: Any = None, *a: Any, **kw: Any) -> Any:  # type: ignore[override]
        argv = list(sys.argv[1:] if args is None else args)
        try:
            lang = resolve_language(_lang_in_args(argv))
        except LanguageError as e:
            if _lang_in_args(argv) is None:  # a bad $CRMSCORE_LANG: said once, then English
                typer.echo(f"{_('warning')}: CRMSCORE_LANG: {e}", err=True)
            lang = "en"  # a bad --lang is refused by the command itself (exit 2)
        localize(self, lang)
        with using_language(lang), framework_language(lang):  # click's and typer's own texts too
            return super().main(args, *a, **kw)
