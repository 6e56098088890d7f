"""The message catalogue's upkeep: find every user-facing message, keep the ``.po`` file in step, compile it.

Messages come from four places:

* the command line's help: every command's and option's help text (read from the click command tree);
* Python code: string literals passed to ``_()``, ``N_()``, ``M_()`` (``features.messages``),
  ``translate()``, a progress callback
  (``progress("stage")``) or a chart label (``label("…")``) in ``features/``, ``training/`` and ``serving/``,
  plus the report's definitions (``serving.report.tables.DEFINITIONS``);
* the profile page: ``t('…')`` in ``serving/ui/static/profile.js`` and ``data-i18n*="…"`` attributes in
  ``profile.html``;
* typer's own texts (panel titles, defaults, "Try … for help."): the fixed list :data:`FRAMEWORK_MESSAGES`,
  shown translated through :func:`serving.i18n.framework_language`.

``python -m serving.i18n.catalogue update`` adds new messages to ``locale/zh/LC_MESSAGES/crmscore.po`` (with an
empty translation) and compiles the ``.mo`` with GNU ``msgfmt``; ``python -m serving.i18n.catalogue missing``
lists the messages without a Chinese translation (the test suite fails on any).
"""

from __future__ import annotations

import ast
import re
import shutil
import subprocess
import sys
from pathlib import Path

from serving.i18n import DOMAIN, LOCALE_DIR

ROOT = Path(__file__).resolve().parents[2]
#: the packages whose Python code is searched for messages
PACKAGES = ("features", "training", "serving")
#: call names whose first string argument is a message
MESSAGE_CALLS = {"_", "N_", "M_", "translate", "progress", "label"}
STATIC = Path(__file__).resolve().parents[1] / "ui" / "static"
_JS_MESSAGE = re.compile(r"\bt\(\s*'((?:[^'\\]|\\.)*)'")
_HTML_MESSAGE = re.compile(r'\bdata-i18n(?:-[a-z-]+)?="([^"]*)"')


#: typer's own messages translated here: the ones typer 0.29 passes to gettext (``typer/core.py``,
#: ``typer/rich_utils.py``), verbatim. Typer's vendored click (``typer._click``) has no gettext: its usage line
#: ("Usage:"), the --help option's help and its parse errors ("No such option", "Missing option", "Invalid
#: value for") are translated by ``serving.cli.framework`` (messages marked with ``N_`` there).
FRAMEWORK_MESSAGES: tuple[str, ...] = (
    # help
    "Options",
    "Commands",
    "Arguments",
    "[default: {}]",
    "[env var: {}]",
    "[required]",
    "(deprecated) ",
    "default: {default}",
    "env var: {var}",
    "required",
    "(dynamic)",
    # errors
    "Error",
    "Try [blue]'{command_path} {help_option}'[/] for help.",
    "Missing command.",
    "No such command {name!r}.",
    "Aborted!",
    "Aborted.",
)


def po_path(lang: str = "zh") -> Path:
    """The ``.po`` file of ``lang``."""
    return LOCALE_DIR / lang / "LC_MESSAGES" / f"{DOMAIN}.po"


def help_messages() -> dict[str, str]:
    """Help texts of every command and option of ``crmscore`` → where each is used."""
    import typer.main

    from serving.cli.main import app

    out: dict[str, str] = {}

    def walk(cmd, path: str) -> None:
        for text in (cmd.help, cmd.short_help):
            if text:
                out.setdefault(text, f"crmscore {path}".strip())
        for p in cmd.params:
            text = getattr(p, "help", None)
            if text:
                out.setdefault(text, f"crmscore {path} {p.opts[0] if p.opts else p.name}".strip())
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, f"{path} {name}".strip())

    walk(typer.main.get_command(app), "")
    return out


def code_messages(packages: tuple[str, ...] = PACKAGES) -> dict[str, str]:
    """String literals given to the message calls in the packages' Python files → ``file:line``."""
    out: dict[str, str] = {}
    for pkg in packages:
        for f in sorted((ROOT / pkg).rglob("*.py")):
            tree = ast.parse(f.read_text(encoding="utf-8"), str(f))
            for node in ast.walk(tree):
                if not isinstance(node, ast.Call) or not node.args:
                    continue
                fn = node.func
                name = fn.id if isinstance(fn, ast.Name) else fn.attr if isinstance(fn, ast.Attribute) else None
                arg = node.args[0]
                if name in MESSAGE_CALLS and isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                    out.setdefault(arg.value, f"{f.relative_to(ROOT)}:{node.lineno}")
    import importlib

    for f in sorted((ROOT / "serving" / "report").glob("*.py")):  # the report's definitions, shown translated
        mod = importlib.import_module(f"serving.report.{f.stem}")
        texts = dict(getattr(mod, "DEFINITIONS", {}))
        if isinstance(getattr(mod, "DEFINITION", None), str):
            texts["DEFINITION"] = mod.DEFINITION
        for key, text in texts.items():
            out.setdefault(text, f"serving/report/{f.name} {key}")
    return out


def _page_messages(html_text: str, js_text: str) -> dict[str, str]:
    import html

    out: dict[str, str] = {}
    for name, text, pattern in (("profile.js", js_text, _JS_MESSAGE), ("profile.html", html_text, _HTML_MESSAGE)):
        for m in pattern.finditer(text):
            msg = m.group(1).replace("\\'", "'") if name.endswith(".js") else html.unescape(m.group(1))
            out.setdefault(msg, f"serving/ui/static/{name}:{text.count(chr(10), 0, m.start()) + 1}")
    return out


def page_message_ids(html_text: str, js_text: str) -> list[str]:
    """The messages of the page given its HTML and script (what the served page carries translations of)."""
    return list(_page_messages(html_text, js_text))


def page_messages() -> dict[str, str]:
    """Messages of the profile page (``t('…')`` in the script, ``data-i18n*`` attributes in the HTML)."""
    return _page_messages(
        (STATIC / "profile.html").read_text(encoding="utf-8"), (STATIC / "profile.js").read_text(encoding="utf-8")
    )


def framework_messages() -> dict[str, str]:
    """:data:`FRAMEWORK_MESSAGES` → ``click/typer`` (where they are used)."""
    return dict.fromkeys(FRAMEWORK_MESSAGES, "click/typer")


def all_messages() -> dict[str, str]:
    """Every user-facing message → one place it is used."""
    out = help_messages()
    for part in (code_messages(), page_messages(), framework_messages()):
        for k, v in part.items():
            out.setdefault(k, v)
    return out


# ------------------------------------------------------------------------------------------------ .po
def _unquote(s: str) -> str:
    return ast.literal_eval(s)


def read_po(path: Path) -> dict[str, str]:
    """msgid → msgstr of a ``.po`` file written by :func:`write_po` (no plural forms, no contexts)."""
    entries: dict[str, str] = {}
    msgid: list[str] | None = None
    msgstr: list[str] | None = None
    current: list[str] | None = None

    def flush() -> None:
        if msgid is not None and msgstr is not None:
            entries["".join(msgid)] = "".join(msgstr)

    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line.startswith("msgid "):
            flush()
            msgid, msgstr = [_unquote(line[6:])], None
            current = msgid
        elif line.startswith("msgstr "):
            msgstr = [_unquote(line[7:])]
            current = msgstr
        elif line.startswith('"') and current is not None:
            current.append(_unquote(line))
        elif not line or line.startswith("#"):
            continue
    flush()
    entries.pop("", None)  # the header
    return entries


def _quote(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


HEADER = (
    'msgid ""\nmsgstr ""\n"Project-Id-Version: crm-scoring\\n"\n"Language: {lang}\\n"\n'
    '"MIME-Version: 1.0\\n"\n"Content-Type: text/plain; charset=UTF-8\\n"\n"Content-Transfer-Encoding: 8bit\\n"\n'
)


def write_po(path: Path, lang: str, entries: dict[str, str], where: dict[str, str]) -> None:
    """Write ``entries`` (msgid → msgstr) sorted by where they are used."""
    order = sorted(entries, key=lambda m: (where.get(m, ""), m))
    parts = [HEADER.format(lang=lang)]
    for m in order:
        loc = where.get(m, "")
        parts.append(f"#: {loc}\nmsgid {_quote(m)}\nmsgstr {_quote(entries[m])}\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(parts), encoding="utf-8")


def compile_mo(po: Path, mo: Path) -> None:
    """Compile ``po`` into ``mo`` with GNU gettext's ``msgfmt`` (checked: format strings, header)."""
    exe = shutil.which("msgfmt")
    if exe is None:
        raise RuntimeError("msgfmt not found: install GNU gettext (apt-get install gettext)")
    subprocess.run([exe, "--check-format", "--check-domain", "-o", str(mo), str(po)], check=True)


def missing(lang: str = "zh") -> dict[str, str]:
    """Messages in use without a translation in ``lang``'s ``.po`` → where each is used."""
    have = read_po(po_path(lang))
    return {m: w for m, w in all_messages().items() if not have.get(m)}


def update(lang: str = "zh") -> int:
    """Add new messages to the ``.po`` (empty translations) and drop the ones no longer used, then compile the
    ``.mo``; returns the count without a translation."""
    po = po_path(lang)
    have = read_po(po) if po.is_file() else {}
    where = all_messages()
    entries = {m: have.get(m, "") for m in where}
    write_po(po, lang, entries, where)
    untranslated = [m for m in where if not entries[m]]
    compile_mo(po, po.with_suffix(".mo"))
    return len(untranslated)


def main(argv: list[str]) -> int:
    """``update`` or ``missing``."""
    cmd = argv[0] if argv else "missing"
    if cmd == "update":
        n = update()
        print(f"{po_path()}: {n} message(s) without a translation")
        return 0
    if cmd == "missing":
        todo = missing()
        for m, w in todo.items():
            print(f"{w}: {m}")
        return 1 if todo else 0
    print("usage: python -m serving.i18n.catalogue update|missing", file=sys.stderr)
    return 2


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
