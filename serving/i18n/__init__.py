"""Messages in the user's language: one gettext catalogue (``crmscore``) for the command line, the report and
the profile page.

Messages are written in English in the code and looked up with :func:`_`; the Chinese catalogue is
``locale/zh/LC_MESSAGES/crmscore.po`` with its compiled ``.mo`` beside it (both shipped as package data;
``python -m serving.i18n.catalogue update`` adds new messages to the ``.po`` and recompiles). Field names and
JSON keys are never translated. The language is chosen per command (``--lang``), else ``$CRMSCORE_LANG``,
else English.

Typer marks its own texts (panel titles, "[default: …]", "Try … for help.") with gettext in the default domain,
as click does; :func:`framework_language` binds this catalogue as that domain while a command runs in Chinese,
and ``catalogue.FRAMEWORK_MESSAGES`` lists the ones translated here. Typer's vendored click has no gettext: its
usage line, the --help option's help and its parse errors are translated through click's public hooks by
``serving.cli.framework``.
"""

from __future__ import annotations

import functools
import gettext as _gettext
import os
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Literal

Lang = Literal["en", "zh"]
#: languages with a catalogue (English is the messages themselves)
LANGUAGES: tuple[Lang, ...] = ("en", "zh")
DOMAIN = "crmscore"
LOCALE_DIR = Path(__file__).parent / "locale"

_current: ContextVar[Lang] = ContextVar("crmscore_lang", default="en")


class LanguageError(ValueError):
    """A language that has no catalogue."""


def normalize_language(value: str | None) -> Lang | None:
    """``zh``, ``zh_CN``, ``zh-Hans``, ``en_US.UTF-8`` … → ``zh`` / ``en``; ``None`` or empty → ``None``.

    Raises :class:`LanguageError` for any other language.
    """
    if not value or not value.strip():
        return None
    code = value.strip().replace("-", "_").split(".")[0].split("_")[0].lower()
    if code == "zh":
        return "zh"
    if code == "en":
        return "en"
    raise LanguageError(f"language {value!r}: use zh or en")


def resolve_language(explicit: str | None = None) -> Lang:
    """``explicit`` (``--lang``), else ``$CRMSCORE_LANG``, else English."""
    return normalize_language(explicit) or normalize_language(os.environ.get("CRMSCORE_LANG")) or "en"


def set_language(lang: str | None) -> Lang:
    """Make ``lang`` (resolved as :func:`resolve_language`) the language of this thread/context; returns it."""
    code = resolve_language(lang)
    _current.set(code)
    return code


def get_language() -> Lang:
    """The current language."""
    return _current.get()


@functools.cache
def translations(lang: Lang) -> _gettext.NullTranslations:
    """The compiled catalogue of ``lang`` (English: messages unchanged)."""
    if lang == "en":
        return _gettext.NullTranslations()
    return _gettext.translation(DOMAIN, localedir=LOCALE_DIR, languages=[lang])


def translate(message: str, lang: Lang | None = None) -> str:
    """``message`` in ``lang`` (default: the current language); the message itself when it has no translation."""
    return translations(lang or _current.get()).gettext(message)


def _(message: str) -> str:
    """``message`` in the current language (the name gettext tools look for)."""
    return translations(_current.get()).gettext(message)


def N_(message: str) -> str:
    """Marks ``message`` for the catalogue without translating it now (module-level constants)."""
    return message


__all__ = [
    "LANGUAGES",
    "PYDANTIC_MESSAGES",
    "pydantic_message",
    "localized",
    "request_language",
    "Lang",
    "LanguageError",
    "N_",
    "_",
    "get_language",
    "normalize_language",
    "resolve_language",
    "set_language",
    "translate",
    "translations",
    "using_language",
    "framework_language",
]


@contextmanager
def using_language(lang: str | None) -> Iterator[Lang]:
    """Within the block, the current language is ``lang`` (``None``: keep the current one)."""
    code = normalize_language(lang) or _current.get()
    token = _current.set(code)
    try:
        yield code
    finally:
        _current.reset(token)


@contextmanager
def framework_language(lang: str | None) -> Iterator[Lang]:
    """Within the block, click's and typer's own messages are in ``lang``.

    They call :func:`gettext.gettext` (the default domain); for Chinese this binds the ``crmscore`` catalogue
    with :func:`gettext.bindtextdomain`/:func:`gettext.textdomain` and sets ``$LANGUAGE``, the variable gettext
    reads to choose the catalogue's language. Domain and variable are put back on exit. Typer builds its panel
    titles when ``typer.rich_utils`` is first imported, so they follow the language of the first help or error a
    process shows (one per run of ``crmscore``).
    """
    code = normalize_language(lang) or _current.get()
    if code == "en":
        yield code
        return
    domain = _gettext.textdomain()
    language = os.environ.get("LANGUAGE")
    _gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    _gettext.textdomain(DOMAIN)
    os.environ["LANGUAGE"] = code
    try:
        yield code
    finally:
        _gettext.textdomain(domain)
        if language is None:
            os.environ.pop("LANGUAGE", None)
        else:
            os.environ["LANGUAGE"] = language


def localized(message: object) -> str:
    """``message`` (text, or an exception) in the current language: a :class:`features.messages.Message` (or an
    exception raised with one) is looked up in the catalogue; other text is shown as it is."""
    from features.messages import Message, message_of

    if isinstance(message, BaseException):
        message = message_of(message) or message
    if isinstance(message, Message):
        return message.localized(translate)
    return str(message)


def request_language(accept_language: str | None, query: str | None = None) -> Lang:
    """The language of an HTTP request's messages: ``?lang=`` when it names a language, else the first
    language of ``Accept-Language`` (by its ``q`` weights) that has a catalogue, else English."""
    try:
        chosen = normalize_language(query)
    except LanguageError:
        chosen = None
    if chosen is not None:
        return chosen
    ranked: list[tuple[float, int, str]] = []
    for i, part in enumerate((accept_language or "").split(",")):
        tag, _sep, params = part.strip().partition(";")
        q = 1.0
        for p in params.split(";"):
            key, _eq, value = p.strip().partition("=")
            if key == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        ranked.append((-q, i, tag.strip()))
    for neg_q, _i, tag in sorted(ranked):
        if neg_q >= 0 or tag == "*":
            continue
        try:
            code = normalize_language(tag)
        except LanguageError:
            continue
        if code is not None:
            return code
    return "en"


#: pydantic error type → a message for it (``{ctx}`` fields filled in), shown instead of pydantic's own English
#: text in another language than English (typer's option values, the HTTP service's request fields)
PYDANTIC_MESSAGES: dict[str, str] = {
    "int_parsing": N_("Input should be a valid integer, unable to parse string as an integer"),
    "int_from_float": N_("Input should be a valid integer, got a number with a fractional part"),
    "int_type": N_("Input should be a valid integer"),
    "float_parsing": N_("Input should be a valid number, unable to parse string as a number"),
    "float_type": N_("Input should be a valid number"),
    "finite_number": N_("Input should be a finite number"),
    "bool_parsing": N_("Input should be a valid boolean, unable to interpret input"),
    "bool_type": N_("Input should be a valid boolean"),
    "string_type": N_("Input should be a valid string"),
    "list_type": N_("Input should be a valid list"),
    "dict_type": N_("Input should be a valid dictionary"),
    "model_type": N_("Input should be a valid dictionary or instance of {class_name}"),
    "datetime_type": N_("Input should be a valid datetime"),
    "datetime_parsing": N_("Input should be a valid datetime ({error})"),
    "datetime_from_date_parsing": N_("Input should be a valid datetime or date ({error})"),
    "greater_than_equal": N_("Input should be greater than or equal to {ge}"),
    "greater_than": N_("Input should be greater than {gt}"),
    "less_than_equal": N_("Input should be less than or equal to {le}"),
    "less_than": N_("Input should be less than {lt}"),
    "literal_error": N_("Input should be {expected}"),
    "enum": N_("Input should be {expected}"),
    "too_short": N_("should have at least {min_length} item(s), not {actual_length}"),
    "too_long": N_("should have at most {max_length} item(s), not {actual_length}"),
    "string_too_short": N_("should have at least {min_length} character(s)"),
    "string_too_long": N_("should have at most {max_length} character(s)"),
    "string_pattern_mismatch": N_("String should match pattern '{pattern}'"),
    "int_parsing_size": N_("Unable to parse input string as an integer, exceeded maximum size"),
}
#: the text of an error type without an entry above (or whose fields cannot be read back), in another language
#: than English: the field is named by the caller; the input value is never shown
PYDANTIC_FALLBACK = N_("invalid value (pydantic error {type})")
#: pydantic's text of a model given something else than an object in JSON (no class name to read back)
_PYDANTIC_NOT_AN_OBJECT = N_("Input should be an object")


#: pydantic's English messages with fields, to read the fields back when an error comes without its ``ctx``
#: (BentoML answers with ``errors(include_context=False)``)
_PYDANTIC_FIELDS: dict[str, str] = {
    "model_type": r"Input should be a valid dictionary or instance of (?P<class_name>.+)",
    "datetime_parsing": r"Input should be a valid datetime, (?P<error>.+)",
    "datetime_from_date_parsing": r"Input should be a valid datetime or date, (?P<error>.+)",
    "greater_than_equal": r"Input should be greater than or equal to (?P<ge>.+)",
    "greater_than": r"Input should be greater than (?P<gt>.+)",
    "less_than_equal": r"Input should be less than or equal to (?P<le>.+)",
    "less_than": r"Input should be less than (?P<lt>.+)",
    "literal_error": r"Input should be (?P<expected>.+)",
    "enum": r"Input should be (?P<expected>.+)",
    "too_short": r"\w+ should have at least (?P<min_length>\d+) items? after validation, not (?P<actual_length>\d+)",
    "too_long": r"\w+ should have at most (?P<max_length>\d+) items? after validation, not (?P<actual_length>\d+)",
    "string_too_short": r"String should have at least (?P<min_length>\d+) characters?",
    "string_too_long": r"String should have at most (?P<max_length>\d+) characters?",
    "string_pattern_mismatch": r"String should match pattern '(?P<pattern>.+)'",
}


def pydantic_message(error: dict) -> str:
    """One pydantic error (an item of ``ValidationError.errors()``) as text in the current language: pydantic's
    own message in English, else :data:`PYDANTIC_MESSAGES` with the error's ``ctx`` fields (read back from the
    English message when the error has no ``ctx``); an error type without an entry (or whose fields cannot be
    read back) gets :data:`PYDANTIC_FALLBACK`, which names the error type but never the input."""
    import re

    english = str(error.get("msg", ""))
    kind = str(error.get("type", ""))
    if _current.get() == "en":
        return english
    fallback = _(PYDANTIC_FALLBACK).format(type=kind or "?")
    if kind == "model_type" and english == _PYDANTIC_NOT_AN_OBJECT:  # JSON input: pydantic names no class
        return _(_PYDANTIC_NOT_AN_OBJECT)
    template = PYDANTIC_MESSAGES.get(kind)
    if template is None:
        return fallback
    fields = {k: str(v) for k, v in (error.get("ctx") or {}).items()}
    if not fields and kind in _PYDANTIC_FIELDS:
        m = re.fullmatch(_PYDANTIC_FIELDS[kind], english, re.S)
        if m is None:
            return fallback
        fields = m.groupdict()
    try:
        return _(template).format(**fields)
    except (KeyError, IndexError, ValueError):
        return fallback
