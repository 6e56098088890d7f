"""The message catalogue (issue 24): every user-facing message has a Chinese translation, the shipped ``.mo`` is
the compiled ``.po``, and the help of every command, the report and the page render in both languages with no
message left in the other one."""

from __future__ import annotations

import functools
import html
import json
import re
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from serving.i18n import translate
from serving.i18n.catalogue import all_messages, compile_mo, missing, po_path, read_po
from tests.aio import run_async

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


#: renders every command's help, and a bad option's error, in one fresh process: typer builds its panel titles
#: ("Options", "Error") in the language of the first help a process shows, as `crmscore` does once per run
_RENDER = """
import json, sys
from typer.testing import CliRunner
from serving.cli.main import app
lang, runs = sys.argv[1], json.loads(sys.argv[2])
runner = CliRunner(env={"TERMINAL_WIDTH": "250", "CRMSCORE_LANG": ""})
out = []
for args in runs:
    r = runner.invoke(app, ["--lang", lang, *args])
    out.append([args, r.exit_code, r.output])
print(json.dumps(out))
"""

#: click's parse errors, one of each kind (typer's vendored click: usage line, hint, message all translated)
PARSE_ERRORS: tuple[tuple[list[str], str, str], ...] = (
    (["score", "--no-such-option"], "No such option: --no-such-option", "没有选项：--no-such-option"),
    (["score"], "Missing option '--input'.", "缺少选项 '--input'。"),
    (["score", "--input"], "Option '--input' requires an argument.", "选项 '--input' 需要一个值。"),
    (["demo", "--customers", "x"], "Invalid value for '--customers': Input should be a valid integer",
     "'--customers' 的值无效：应为整数"),
    (["demo", "--customers", "5"], "Invalid value for '--customers': Input should be greater than or equal to 500",
     "'--customers' 的值无效：应大于或等于 500"),
    (["recommend", "--k", "500"], "Input should be less than or equal to 100", "应小于或等于 100"),
    (["synth", "--out", "x", "extra"], "Got unexpected extra argument(s) (extra)", "多余的参数（extra）"),
    (["scor"], "No such command 'scor'. Did you mean 'score'?", "没有命令 'scor'。是否要输入 'score'？"),
    (["--verbose"], "No such option: --verbose", "没有选项：--verbose"),
)


def _render(lang: str, runs: list[list[str]]) -> list[tuple[list[str], int, str]]:
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k not in ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")}
    r = subprocess.run(
        [sys.executable, "-c", _RENDER, lang, json.dumps(runs)],
        capture_output=True, text=True, encoding="utf-8", env={**env, "CRMSCORE_LANG": ""}, check=True,
        cwd=Path(__file__).resolve().parents[2],
    )
    return [(p, code, text) for p, code, text in json.loads(r.stdout)]


def _render_help(lang: str, paths: list[list[str]]) -> list[tuple[list[str], int, str]]:
    """Every command's help, then a bad option of ``score`` and an unknown command."""
    return _render(lang, [*([*p, "--help"] for p in paths), ["score", "--no-such-option"], ["no-such-command"]])


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_help_of_every_command_in_both_languages(lang: str) -> None:
    from serving.i18n.catalogue import FRAMEWORK_MESSAGES

    paths = _command_paths()
    assert len(paths) > 20
    rendered = _render_help(lang, [p for p, _help in paths])
    titles = {"Options": "选项", "Commands": "命令", "Error": "错误"}
    want, other = (titles.keys(), titles.values()) if lang == "en" else (titles.values(), titles.keys())
    for (path, help_text), (_path, code, output) in zip(paths, rendered, strict=False):
        assert code == 0, (path, output)
        assert untranslated(output, lang) == [], (path, output)
        assert ("用法：crmscore" if lang == "zh" else "Usage: crmscore") in _normal(output), (path, output)
        first = _normal(translate(help_text, lang)).split("。")[0].split(". ")[0][:20]
        assert first in _normal(output), (path, first, output)
        # typer's own texts (FRAMEWORK_MESSAGES) follow the language: the panel titles, "[default: …]"
        shown = {t for t in (*want, *other) if f"─ {t} ─" in output}
        assert shown and shown <= set(want), (path, output)
        if lang == "zh":
            assert "[default:" not in output and all(m in FRAMEWORK_MESSAGES for m in titles), (path, output)
    (_p, code, bad_option), (_q, code2, bad_command) = rendered[-2:]
    assert code == code2 == 2
    if lang == "zh":
        assert "─ 错误 ─" in bad_option and "运行 'crmscore score --help' 查看帮助。" in bad_option, bad_option
        assert "没有命令 'no-such-command'。" in bad_command and "─ Error ─" not in bad_command, bad_command
    else:
        assert "─ Error ─" in bad_option and "Try 'crmscore score --help' for help." in bad_option, bad_option
        assert "No such command 'no-such-command'." in bad_command, bad_command


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_parse_errors_of_every_command_in_both_languages(lang: str) -> None:
    """An unknown option on every command and group, and each kind of click parse error, in ``lang``: the usage
    line, the hint and the message; nothing of the catalogue left in the other language."""
    paths = [p for p, _help in _command_paths()]
    runs = [[*p, "--no-such-option"] for p in paths] + [args for args, _en, _zh in PARSE_ERRORS]
    rendered = _render(lang, runs)
    usage, other_usage = ("用法：", "Usage:") if lang == "zh" else ("Usage:", "用法：")
    for args, code, output in rendered:
        assert code == 2, (args, output)
        assert untranslated(output, lang) == [], (args, output)
        assert other_usage not in output, (args, output)
        if args != ["score", "--input"]:  # click raises a missing option value without its context: no usage line
            assert f"{usage}crmscore" in output.replace(" ", ""), (args, output)
    for (args, en, zh), (_args, _code, output) in zip(PARSE_ERRORS, rendered[len(paths):], strict=True):
        assert (zh if lang == "zh" else en) in _normal(output), (args, output)
    for path, (_args, _code, output) in zip(paths, rendered, strict=False):
        name = "没有选项：--no-such-option" if lang == "zh" else "No such option: --no-such-option"
        assert name in _normal(output), (path, output)


def test_framework_messages_are_bound_only_while_a_chinese_command_runs() -> None:
    import gettext
    import os

    from serving.i18n import framework_language

    before = (gettext.textdomain(), os.environ.get("LANGUAGE"))
    with framework_language("zh"):
        assert gettext.gettext("Options") == "选项" and gettext.gettext("[required]") == "[必填]"
    with framework_language("en"):
        assert gettext.gettext("Options") == "Options"
    assert (gettext.textdomain(), os.environ.get("LANGUAGE")) == before
    assert gettext.gettext("Options") == "Options"


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


def test_errors_raised_in_features_and_training_reach_the_cli_translated(tmp_path: Path, tracking_uri: str) -> None:
    """A bad input is refused with one line on stderr, before any store is opened: with a fresh (empty) MLflow
    store, a command that opened the registry first would add MLflow's "Creating initial MLflow database
    tables" log lines (``crmscore score`` did, through its uplift-model check)."""
    from serving.cli.main import app

    nope = str(tmp_path / "nope")
    cases = [
        (["members", "apply", "--data", nope, "--as-of", "2025-06-30", "--out", str(tmp_path / "m")],
         "data dir not found", "找不到数据目录"),  # features/io.py
        (["forecast", "--data", nope, "--as-of", "2025-06-30", "--horizon", "5x"],
         "--horizon: expected e.g. 13w or 91d", "--horizon：应为 13w 或 91d"),  # training/forecast_run.py
        (["score", "--input", str(tmp_path / "nope.csv"), "--output", str(tmp_path / "out.csv")],
         f"file not found: {tmp_path / 'nope.csv'}", f"找不到文件：{tmp_path / 'nope.csv'}"),  # serving/batch/run.py
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


def test_a_wrapped_error_keeps_its_message_in_both_languages() -> None:
    from features.messages import M_
    from serving.cli.output import localized
    from serving.i18n import using_language

    inner = ValueError(M_("transactions: missing column(s) {missing}", missing="amount"))
    outer = RuntimeError(M_("{data}: {error}", data="crm/", error=inner))
    assert str(outer) == "crm/: transactions: missing column(s) amount"
    with using_language("zh"):
        assert localized(outer) == "crm/：transactions：缺少列 amount"


def test_the_language_of_an_http_request() -> None:
    from serving.i18n import request_language

    assert request_language(None) == request_language("") == request_language("*") == "en"
    assert request_language("zh-CN,zh;q=0.9,en;q=0.8") == "zh"
    assert request_language("en-US,en;q=0.9,zh;q=0.5") == "en"
    assert request_language("fr-FR, zh-Hans;q=0.8") == "zh"  # the first language with a catalogue
    assert request_language("en;q=0.4, zh;q=0.6") == "zh"  # by weight, not order
    assert request_language("zh;q=0, en") == "en"  # q=0: not acceptable
    assert request_language("zh-CN", "en") == "en" and request_language(None, "zh") == "zh"  # ?lang= first
    assert request_language("zh-CN", "klingon") == "zh"  # an unknown ?lang= is ignored


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_the_page_api_refusals_in_both_languages(lang: str) -> None:
    """The profile page's API refuses a bad body with a message in the request's language; the error body's keys
    and the field names stay English."""
    from starlette.requests import Request

    from serving.i18n import using_language
    from serving.ui.index import ProfileError
    from serving.ui.routes import _body_field, _error

    async def refusal(body: bytes) -> tuple[int, dict]:
        async def receive() -> dict:
            return {"type": "http.request", "body": body, "more_body": False}

        request = Request({"type": "http", "method": "POST", "headers": []}, receive)
        with using_language(lang):
            try:
                await _body_field(request, "customer_id", 8)
            except ProfileError as e:
                response = _error(e.status, e.message)
                return response.status_code, json.loads(response.body)
        raise AssertionError(f"{body!r} was accepted")

    bodies = {b"{": "body", b"[]": "body", b'{"x": 1}': "x", b'{"customer_id": 5}': "customer_id",
              b'{"customer_id": " "}': "customer_id", b'{"customer_id": "123456789"}': "customer_id"}
    for body, field in bodies.items():
        status, err = run_async(refusal(body))
        assert status in (400, 422) and set(err) == {"error", "errors"}, err
        assert [e["field"] for e in err["errors"]] == [field], err
        text = err["error"] + " " + err["errors"][0]["reason"]
        assert untranslated(text, lang) == [], err
        assert bool(_CJK.search(text)) == (lang == "zh"), err


@pytest.mark.parametrize("lang", ["en", "zh"])
def test_request_validation_errors_in_both_languages(lang: str) -> None:
    """The HTTP service's 422 for a body that fails the request schema (pydantic's errors, as the middleware
    rewrites them): the message and each reason in ``lang``, the field names as in English."""
    from pydantic import ValidationError

    from serving.http.postprocess import format_validation_errors
    from serving.http.schemas import ScoreRequest
    from serving.i18n import using_language

    bodies = [
        {}, {"leads": []}, {"leads": "x"}, {"leads": [{"features": {}}]},
        {"leads": [{"customer_id": "c", "features": {"a": float("nan")}}]},
        {"leads": [{"customer_id": "c", "features": {}, "nope": 1}]},
        {"table": {"customer_ids": ["a"], "columns": ["x"], "rows": []}},
        {"table": {"customer_ids": ["a"], "columns": ["x", "y"], "rows": [[1]]}},
    ]
    for body in bodies:
        with pytest.raises(ValidationError) as info:
            ScoreRequest.model_validate(body)
        # as BentoML hands them to the middleware: without ctx (the middleware reads the fields from the text)
        errors = info.value.errors(include_input=False, include_context=False)
        with using_language("en"):
            _status, _message, english = format_validation_errors(errors)
        with using_language(lang):
            status, message, items = format_validation_errors(errors)
        assert status == 422 and [e["field"] for e in items] == [e["field"] for e in english], (body, items)
        text = message + " " + " ".join(e["reason"] for e in items)
        assert untranslated(text, lang) == [], (body, text)
        assert bool(_CJK.search(text)) == (lang == "zh"), (body, text)


def _bad_bodies(example: dict) -> Iterator[str]:
    """``example`` with each of its values (at every depth) replaced by wrong ones, as JSON."""
    bad = [None, True, -1, 1.5, 1e300, "x", "", "a" * 300, "9" * 5000, [], {}, {"zz": 1}, "2025-13-45"]

    def paths(obj: Any, p: tuple = ()) -> Iterator[tuple]:
        yield p
        items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
        for k, v in items:
            yield from paths(v, (*p, k))

    for p in paths(example):
        for v in bad:
            body = json.loads(json.dumps(example))
            if not p:
                yield json.dumps(v)
                continue
            cur = body
            for k in p[:-1]:
                cur = cur[k]
            cur[p[-1]] = v
            yield json.dumps(body)
    yield from ("{", '{"a":', "[" * 300)


def test_every_pydantic_error_of_the_request_models_in_chinese() -> None:
    """Every pydantic error a body can raise against the service's request models (each value of a valid body
    replaced by wrong ones, plus malformed JSON) has a Chinese reason that names no input value; English keeps
    pydantic's own text."""
    from pydantic import ValidationError

    from serving.http.postprocess import format_validation_errors
    from serving.http.schemas import ScoreRequest, SegmentRequest
    from serving.http.schemas_actions import NextActionRequest, RecommendRequest
    from serving.http.schemas_uplift import CouponUpliftRequest, RouteLeadRequest
    from serving.i18n import pydantic_message, using_language

    t = "2025-01-01T00:00:00"
    examples = [
        (ScoreRequest, {"leads": [
            {"profile": {"customer_id": "a", "created_at": t, "age": 20, "points_balance": 1.0,
                         "marketing_consent": True},
             "events": {"interactions": [{"ts": t, "channel": "web", "event_type": "visit"}],
                        "orders": [{"ts": t, "amount": 1.0, "status": "paid", "items": 1}],
                        "marketing_touches": [{"sent_at": t, "channel": "sms", "coupon_claimed": True}]},
             "as_of": t},
            {"customer_id": "b", "features": {"a": 1}}], "reasons": True}),
        (ScoreRequest, {"table": {"customer_ids": ["a"], "columns": ["x"], "rows": [[1]]}}),
        (SegmentRequest, {"customers": [{"customer_id": "a", "summary": {"x": 1.0}}]}),
        (RecommendRequest, {"customer_id": "a", "purchases": [{"sku": "M", "ts": t, "order_id": "o"}], "k": 3,
                            "exclude_days": 3, "as_of": t}),
        (NextActionRequest, {"customers": [{"customer_id": "a", "lead_grade": "A", "churn_grade": "B",
                                            "value_tier": "x", "member_level": "g", "marketing_consent": True,
                                            "recency_days": 1.0, "frequency": 1.0, "monetary": 1.0,
                                            "tags": ["t"]}]}),
        (CouponUpliftRequest, {"customers": [{"id": "a", "features": {"x": 1}}], "reasons": True}),
        (RouteLeadRequest, {"lead": {"lead_id": "a", "city": "c", "score": 1.0, "fields": {"x": 1}},
                            "as_of": "2025-01-01", "assigned_today": {"r": 1}}),
    ]
    kinds: set[str] = set()
    for model, example in examples:
        model.model_validate_json(json.dumps(example))
        for body in _bad_bodies(example):
            try:
                model.model_validate_json(body)
            except ValidationError as e:
                errors = e.errors(include_url=False, include_input=False, include_context=False)
            else:
                continue
            kinds |= {err["type"] for err in errors}
            for err in errors:
                with using_language("en"):
                    assert pydantic_message(err) == err["msg"]
            with using_language("zh"):
                _status, message, items = format_validation_errors(errors)
            for item in items:
                reason = item["reason"]
                assert _CJK.search(reason), (model.__name__, body[:80], item)
                assert "9999999999" not in reason and "aaaaaaaaaa" not in reason, item  # no input value
                # the JSON and date-time parsers' own detail (in brackets) stays English (docs/serving.md)
                own = re.sub(r"（[^）]*）$", "", reason) if not reason.startswith("不是有效的 JSON") else ""
                assert not re.search(r"[A-Za-z]{3,} [a-z]{3,} [a-z]{3,}", own), (model.__name__, item)
    assert {"string_pattern_mismatch", "int_parsing_size", "model_type", "datetime_parsing"} <= kinds
    with using_language("zh"):  # a type without a translation: a generic reason, never the input
        assert pydantic_message({"type": "url_parsing", "msg": "Input should be a valid URL, secret"}) == (
            "取值无效（pydantic 错误 url_parsing）")


def test_rule_and_routing_errors_inside_http_messages_in_both_languages() -> None:
    """A rule error (features.rules) quoted in a refusal, and the /route_lead wrappers, in the request's
    language; the English text is the one the service gave before."""
    from features.messages import M_
    from features.rules import FieldSpec, RuleError, compile_rule
    from serving.http.postprocess import RequestError
    from serving.http.routing import route_one
    from serving.i18n import localized, using_language
    from training.routing import RoutingConfig

    with pytest.raises(RuleError) as info:
        compile_rule("lead_grade == A and nope > 1", {"lead_grade": FieldSpec("text")},
                     name=M_("action {name!r}", name="call"))
    wrapped = M_("customers: {error}", error=info.value)
    assert str(wrapped).startswith("customers: action 'call': rule error at character 21: unknown field 'nope'")
    with using_language("zh"):
        zh = localized(wrapped)
    assert zh.startswith("customers：行动 'call'：规则错误，第 21 个字符：未知字段 'nope'"), zh
    assert untranslated(zh, "zh") == []

    rep = {"id": "r1", "team": "t", "territories": ["上海"], "daily_capacity": 5}
    config = RoutingConfig.model_validate({"reps": [rep]})
    for as_of, field, en, zh_start in (("not-a-day", "as_of", "as_of: as_of 'not-a-day' is not a date",
                                        "as_of：as_of 'not-a-day' 不是日期"),):
        with pytest.raises(RequestError) as refused:
            route_one(config, {"lead_id": "L1", "city": "上海", "fields": {}}, as_of, {})
        assert str(refused.value) == en and refused.value.errors[0]["field"] == field
        with using_language("zh"):
            message, errors = refused.value.localized()
        assert message == zh_start and errors[0]["field"] == field, (message, errors)
    with pytest.raises(RequestError) as refused:
        route_one(config, {"lead_id": "L1", "city": "上海", "fields": {}}, "2025-06-02", {"nobody": 1})
    assert str(refused.value) == "assigned_today: assigned: unknown rep id(s) nobody"
    with using_language("zh"):
        message, _errors = refused.value.localized()
    assert message.startswith("assigned_today：") and _CJK.search(message[len("assigned_today："):]), message


def test_bentoml_texts_through_the_catalogue() -> None:
    """BentoML's fallback 400 and its fixed 5xx texts: unchanged in English, translated in Chinese, same keys."""
    from serving.http.middleware import rewrite_400, translate_bentoml_body
    from serving.i18n import using_language

    with using_language("en"):
        assert rewrite_400(b'[{"error": "x"}]') == (400, b'{"error":"bad request","errors":[]}')
        assert rewrite_400(b'{"error": "boom"}') == (400, b'{"error":"boom","errors":[]}')
    with using_language("zh"):
        status, body = rewrite_400(b'[{"error": "x"}]')
        assert status == 400 and json.loads(body) == {"error": "请求无效", "errors": []}
        five = b'{"error": "An unexpected error has occurred, please check the server log."}'
        assert json.loads(translate_bentoml_body(five)) == {"error": "发生了意外错误，请查看服务器日志。"}
        ready = b"Service is not ready because .__is_ready__() returns False."
        assert _CJK.search(translate_bentoml_body(ready).decode())
        assert translate_bentoml_body(b'{"error": "our own text"}') == b'{"error": "our own text"}'
