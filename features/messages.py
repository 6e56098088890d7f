"""User messages raised by ``features`` and ``training``, in English, that a front end can show translated.

``M_("--as-of: not a date: {value!r}", value=x)`` is the English text (a ``str``, so exceptions, logs and tests see
plain English) that also keeps its template and fields. The command line (``serving.cli.output``) looks the
template up in the message catalogue and formats it again in the user's language; the catalogue finds the
templates by the ``M_`` name (``python -m serving.i18n.catalogue update``). Nothing here depends on ``serving``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class Message(str):
    """An English message that remembers its ``template`` and ``fields``."""

    template: str
    fields: dict[str, Any]

    def __new__(cls, template: str, /, **fields: Any) -> Message:
        self = super().__new__(cls, template.format(**fields) if fields else template)
        self.template = template
        self.fields = fields
        return self

    def __reduce__(self) -> tuple[Any, ...]:  # survives pickling (worker processes), fields and all
        return _rebuild, (self.template, self.fields)

    def localized(self, translate: Callable[[str], str]) -> str:
        """The message with its template passed through ``translate`` (English when that fails)."""
        try:
            return translate(self.template).format(**{k: _localized(v, translate) for k, v in self.fields.items()})
        except (KeyError, IndexError, ValueError):
            return str(self)


def _localized(value: Any, translate: Callable[[str], str]) -> Any:
    """A field that is itself a message (or an error raised with one, e.g. a wrapped reader error), localized."""
    inner = message_of(value) if isinstance(value, BaseException) else value
    return inner.localized(translate) if isinstance(inner, Message) else value


def _rebuild(template: str, fields: dict[str, Any]) -> Message:
    return Message(template, **fields)


def M_(template: str, /, **fields: Any) -> Message:
    """A user message: ``template.format(**fields)`` in English, translatable by a front end."""
    return Message(template, **fields)


def message_of(error: BaseException) -> Message | None:
    """The :class:`Message` an exception was raised with (its only argument), if any."""
    args: tuple[Any, ...] = tuple(getattr(error, "args", ()))
    first = args[0] if len(args) == 1 else None
    if isinstance(first, Message) and str(error) == str(first):
        return first
    return None
