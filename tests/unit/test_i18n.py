"""The message catalogue (issue 24): every user-facing message has a Chinese translation, the shipped ``.mo`` is
the compiled ``.po``, and the help of every command, the report and the page render in both languages with no
message left in the other one."""

from __future__ import annotations

import functools
import html
import json
import re
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.i18n import translate
from serving.i18n.catalogue import all_messages, compile_mo, missing, po_path, read_po

_PLACEHOLDER = re.compile(r"\{(\w*)(?:[!:][^{}]*)?\}")
_CJK = re.compile(r"[\u3400-\u9fff]")


def _chunks(message: str) -> list[str]:
    return [c.strip(" .,;:()–—·") for c in _PLACEHOLDER.split(message)]


def _normal(text: str) -> str:
    return " ".join(re.sub(r"[│╭╮╰╯─]", " ", html.unescape(text)).split())


@functools.cache
def _catalogue() -> tuple[str, ...]:
    return tuple(all_messages())


def untranslated(text: str, lang: str) -> list[str]:
    """Messages of the catalogue that appear in ``text`` in the other language than ``lang``: English phrases
    (two words or more, 12 characters or more) in a Chinese text, Chinese phrases (4 characters or more) in an
    English one. Messages whose translation is the message itself (paths, option names) are not counted."""
    flat = _normal(text)
    english = " ".join(_catalogue())  # some English messages name a Chinese term on purpose: 会员等级
    found = []
    for msgid in _catalogue():
        zh = translate(msgid, "zh")
        if zh == msgid:
            continue
        if lang == "zh":
            parts = [c for c in _chunks(msgid) if len(c) >= 12 and " " in c and not _CJK.search(c)]
        else:
            parts = [c for c in _chunks(zh) if len(_CJK.findall(c)) >= 4 and c not in english]
        found += [f"{msgid!r}: {p!r}" for p in parts if " ".join(p.split()) in flat]
    return found


def test_every_message_has_a_chinese_translation() -> None:
    assert missing("zh") == {}, "run `python -m serving.i18n.catalogue update` and translate the new messages"


def test_translations_keep_the_placeholders() -> None:
    for msgid, msgstr in read_po(po_path("zh")).items():
        names = sorted(set(_PLACEHOLDER.findall(msgid)))
        if names:
            assert sorted(set(_PLACEHOLDER.findall(msgstr))) == names, (msgid, msgstr)


def test_shipped_mo_is_the_compiled_po(tmp_path: Path) -> None:
    if shutil.which("msgfmt") is None:
        pytest.skip("GNU gettext's msgfmt is not installed (apt-get install gettext)")
    compile_mo(po_path("zh"), tmp_path / "crmscore.mo")
    assert (tmp_path / "crmscore.mo").read_bytes() == po_path("zh").with_suffix(".mo").read_bytes(), (
        "the .mo is stale: run `python -m serving.i18n.catalogue update`"
    )


def _command_paths() -> list[tuple[list[str], str]]:
    import typer.main

    from serving.cli.main import app

    out: list[tuple[list[str], str]] = []

    def walk(cmd, path: list[str]) -> None:
        out.append((path, cmd.help or ""))
        for name, sub in getattr(cmd, "commands", {}).items():
            walk(sub, [*path, name])

    walk(typer.main.get_command(app), [])
    return out


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_help_of_every_command_in_both_languages(lang: str) -> None:
    from serving.cli.main import app

    runner = CliRunner(env={"TERMINAL_WIDTH": "250", "CRMSCORE_LANG": ""})
    paths = _command_paths()
    assert len(paths) > 20
    for path, help_text in paths:
        r = runner.invoke(app, ["--lang", lang, *path, "--help"])
        assert r.exit_code == 0, (path, r.output)
        assert untranslated(r.output, lang) == [], (path, r.output)
        first = _normal(translate(help_text, lang)).split("。")[0].split(". ")[0][:20]
        assert first in _normal(r.output), (path, first, r.output)


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_report_in_both_languages(lang: str, tmp_path: Path) -> None:
    from serving.report.run import build_report
    from tests.fixtures.crm import make_tables

    res = build_report(None, "2025-06-30", tmp_path, tables=make_tables(n=200, seed=5), log_mlflow=False, lang=lang)
    page = res.html.read_text(encoding="utf-8")
    assert untranslated(page, lang) == []
    if lang == "zh":
        assert '<html lang="zh-CN">' in page and "销售" in page and "口径" in page
    else:
        assert '<html lang="en">' in page and "Sales" in page and not _CJK.search(page.split("<body>")[1][:2000])


def test_the_page_carries_its_messages_in_both_languages() -> None:
    from serving.i18n.catalogue import page_messages
    from serving.ui.routes import load_page

    page = load_page().html
    meta = re.search(r'<meta name="crmscore-messages" content="([^"]*)">', page)
    assert meta is not None
    data = json.loads(html.unescape(meta.group(1)))
    zh = data["messages"]["zh"]
    assert set(zh) == set(page_messages())
    assert all(zh[m] and zh[m] != m for m in zh), [m for m in zh if not zh[m] or zh[m] == m]
