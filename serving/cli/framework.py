"""Typer's own usage line, ``--help`` option and parse errors in the user's language, through public hooks only.

Typer 0.29 vendors click (``typer._click``) without gettext, so its texts are plain English strings. They are
translated here without patching anything:

* the usage line: every command of the tree gets :class:`LocalizedContext` as its ``context_class`` (click's
  documented way to change the context), whose :class:`LocalizedFormatter` writes ``Usage:`` translated;
* the ``--help`` option's help: the option object a command hands out (``Command.get_help_option``) gets its
  ``help`` translated like every other option's (:func:`localize_help_option`);
* parse errors (unknown option, missing option or argument, a bad value, an extra argument): the root group
  (``serving.cli.output.LocalizedGroup``) catches click's :class:`UsageError` in ``parse_args`` and ``invoke``
  and raises :func:`localized_usage_error` instead: the same kind of error, same context and exit code, with
  its message rebuilt from the error's fields (option name, hint, pydantic error type and limits) in the
  current language. Typer prints it as usual (usage line, "Try … for help.", the error panel).

The English templates below are click's and pydantic's own wording, so an English run reads as before.
"""

from __future__ import annotations

import re
from typing import Any

import typer
from typer._click.exceptions import (
    BadParameter,
    MissingParameter,
    NoArgsIsHelpError,
    NoSuchOption,
    UsageError,
)
from typer._click.formatting import HelpFormatter

from serving.i18n import N_, Lang, _, pydantic_message, translate

#: the --help option's help text (click's ``help_option`` decorator)
HELP_OPTION_HELP = N_("Show this message and exit.")

_MISSING = {
    "option": N_("Missing option {hint}."),
    "argument": N_("Missing argument {hint}."),
    "parameter": N_("Missing parameter {hint}."),
}
#: click's fixed usage-error messages (parser, core) → their templates
_PATTERNS: tuple[tuple[re.Pattern[str], str], ...] = (
    (re.compile(r"Option (?P<name>'[^']*') does not take a value\."), N_("Option {name} does not take a value.")),
    (re.compile(r"Option (?P<name>'[^']*') requires an argument\."), N_("Option {name} requires an argument.")),
    (re.compile(r"Option (?P<name>'[^']*') requires (?P<n>\d+) arguments\."),
     N_("Option {name} requires {n} arguments.")),
    (re.compile(r"Argument (?P<name>'[^']*') takes (?P<n>\d+) values\."), N_("Argument {name} takes {n} values.")),
    (re.compile(r"Got unexpected extra argument(?:s|\(s\))? \((?P<args>.*)\)", re.S),
     N_("Got unexpected extra argument(s) ({args})")),
    (re.compile(r"No such option: (?P<name>.+)", re.S), N_("No such option: {name}")),
)
_SUGGESTION = re.compile(r"(?P<base>.*)\. Did you mean (?P<names>.+)\?", re.S)


class LocalizedFormatter(HelpFormatter):
    """Click's help formatter with the usage line's ``Usage:`` in the current language."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        """As click's, with the default prefix translated."""
        super().write_usage(prog, args, _("Usage: ") if prefix is None else prefix)


class LocalizedContext(typer.Context):
    """The context of every ``crmscore`` command: its formatter writes the usage line translated."""

    formatter_class = LocalizedFormatter


def localize_help_option(cmd: Any, lang: Lang) -> None:
    """Translate the help of ``cmd``'s ``--help`` option into ``lang`` (the option click creates once)."""
    if not getattr(cmd, "add_help_option", False):
        return
    opt = cmd.get_help_option(LocalizedContext(cmd, info_name=cmd.name))
    if opt is not None:
        opt.help = translate(HELP_OPTION_HELP, lang)


def _pydantic_reason(error: BaseException) -> str | None:
    """The first pydantic error behind a bad value, in the current language (None: not a pydantic error)."""
    errors = getattr(error, "errors", None)
    if not callable(errors):
        return None
    try:
        return pydantic_message(errors()[0])
    except (IndexError, TypeError):
        return None


def _hint(error: BadParameter) -> str | None:
    if error.param_hint is not None:
        hint = error.param_hint
        return hint if isinstance(hint, str) else " / ".join(repr(x) for x in hint)
    return error.param.get_error_hint() if error.param is not None else None


def _plain(message: str) -> str:
    """A usage-error message of click or typer (a fixed text, or one of :data:`_PATTERNS`) translated."""
    m = _SUGGESTION.fullmatch(message)
    if m:  # typer's suggestion for a mistyped command, added after the message
        base = m["base"] if m["base"].endswith(("。", ".")) else m["base"] + "."  # typer strips the English "."
        return _("{message} Did you mean {names}?").format(message=_plain(base), names=m["names"])
    for pattern, template in _PATTERNS:
        m = pattern.fullmatch(message)
        if m:
            return _(template).format(**m.groupdict())
    return translate(message)


def _message(error: UsageError) -> str:
    if isinstance(error, MissingParameter):
        kind = error.param_type or (error.param.param_type_name if error.param is not None else "parameter")
        hint = _hint(error) or ""
        text = re.sub(r"\s+([.。])", r"\1", _(_MISSING.get(kind, _MISSING["parameter"])).format(hint=hint))
        extra = error.message
        if error.param is not None and hasattr(error.param, "get_missing_message"):
            extra = " ".join(x for x in (extra, error.param.get_missing_message(error.ctx) or "") if x)
        return f"{text} {extra.replace('Choose from:', _('Choose from:'))}" if extra else text
    if isinstance(error, BadParameter):
        cause = error.__cause__
        reason = (_pydantic_reason(cause) if cause is not None else None) or _plain(error.message)
        bad_hint = _hint(error)
        if bad_hint is None:
            return _("Invalid value: {reason}").format(reason=reason)
        return _("Invalid value for {hint}: {reason}").format(hint=bad_hint, reason=reason)
    if isinstance(error, NoSuchOption) and error.possibilities:
        names = ", ".join(sorted(error.possibilities))
        return _("{message} (Possible options: {names})").format(message=_plain(error.message), names=names)
    return _plain(error.message)


class LocalizedUsageError(UsageError):
    """A click usage error whose message is already in the user's language."""

    def __init__(self, message: str, original: UsageError) -> None:
        super().__init__(message, original.ctx)
        self.exit_code = original.exit_code
        self.original = original

    def format_message(self) -> str:
        """The translated message."""
        return self.message


def localized_usage_error(error: UsageError) -> UsageError:
    """``error`` with its message in the current language (a request for help is passed through)."""
    if isinstance(error, NoArgsIsHelpError | LocalizedUsageError):
        return error
    return LocalizedUsageError(_message(error), error)


__all__ = [
    "HELP_OPTION_HELP",
    "LocalizedContext",
    "LocalizedFormatter",
    "LocalizedUsageError",
    "UsageError",
    "localize_help_option",
    "localized_usage_error",
]
