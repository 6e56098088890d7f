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


def _prose(chunk: str) -> bool:
    """Two or more English words in ``chunk`` besides identifiers (``customer_segments v`` is a model name and a
    version prefix, shown as is in both languages)."""
    words = [w for w in chunk.split() if "_" not in w and re.fullmatch(r"[A-Za-z][A-Za-z'-]+[.,:;!?]?", w)]
    return len(words) >= 2


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
            parts = [c for c in _chunks(msgid) if len(c) >= 12 and _prose(c) and not _CJK.search(c)]
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


def test_errors_raised_in_features_and_training_reach_the_cli_translated(tmp_path: Path) -> None:
    from serving.cli.main import app

    nope = str(tmp_path / "nope")
    cases = [
        (["members", "apply", "--data", nope, "--as-of", "2025-06-30", "--out", str(tmp_path / "m")],
         "data dir not found", "找不到数据目录"),  # features/io.py
        (["forecast", "--data", nope, "--as-of", "2025-06-30", "--horizon", "5x"],
         "--horizon: expected e.g. 13w or 91d", "--horizon：应为 13w 或 91d"),  # training/forecast_run.py
    ]
    for args, en, zh in cases:
        for lang, text in (("en", en), ("zh", zh)):
            r = CliRunner(env={"CRMSCORE_LANG": ""}).invoke(app, [*args, "--lang", lang])
            assert r.exit_code == 2 and r.stdout == "", r.output
            assert text in r.stderr and r.stderr.count("\n") == 1, (lang, r.stderr)


def test_a_message_is_english_text_that_keeps_its_template() -> None:
    import pickle

    from features.messages import M_
    from serving.cli.output import localized
    from serving.i18n import using_language

    m = M_("--horizon: {n} weeks is outside 1..104", n=200)
    assert isinstance(m, str) and m == "--horizon: 200 weeks is outside 1..104" and str(ValueError(m)) == m
    again = pickle.loads(pickle.dumps(m))  # worker processes send errors back pickled
    assert (again, again.template, again.fields) == (m, m.template, {"n": 200})
    with using_language("zh"):
        assert localized(ValueError(m)) == "--horizon：200 周超出 1..104 的范围"
        assert localized(ValueError(f"wrapped: {m}")) == "wrapped: --horizon: 200 weeks is outside 1..104"
