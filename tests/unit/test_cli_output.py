"""The shared CLI output (issue 24) on commands that need no trained model: ``--json`` of `keys`, `audit`,
`bento build`'s bad input, the nesting a command run by another one relies on (the demo), the step progress
(stage, n of N) on a terminal and nothing in a pipe. All in-process through typer's CliRunner."""

from __future__ import annotations

import io
import json
import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from serving.cli import app, output


@pytest.fixture()
def local_admin(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """The local operator (admin) with a private keys file and audit trail."""
    monkeypatch.delenv("CRMSCORE_KEY", raising=False)
    monkeypatch.delenv("CRMSCORE_LANG", raising=False)
    monkeypatch.setenv("CRMSCORE_KEYS_FILE", str(tmp_path / "keys.yaml"))
    monkeypatch.setenv("CRMSCORE_AUDIT_FILE", str(tmp_path / "audit.jsonl"))
    return tmp_path


def _json(args: list[str], code: int = 0) -> dict:
    r = CliRunner().invoke(app, [*args, "--json"])
    assert r.exit_code == code, r.output
    assert r.stdout.count("\n") == 1, r.stdout  # one line: one JSON object and nothing else
    data = json.loads(r.stdout)
    assert isinstance(data, dict)
    return data


def _refused(args: list[str], code: int = 2) -> str:
    r = CliRunner().invoke(app, [*args, "--json"])
    assert r.exit_code == code, r.output
    last = r.stderr.splitlines()[-1]  # after any library's log lines (MLflow creating its tables)
    assert r.stdout == "" and last.startswith("error: "), r.output
    return last


def test_keys_json(local_admin: Path) -> None:
    keys = str(local_admin / "keys.yaml")
    added = _json(["keys", "add", "--name", "rita", "--role", "analyst", "--expires", "30d", "--file", keys])
    assert added["name"] == "rita" and added["role"] == "analyst" and added["state"] == "active"
    assert added["key"] and added["expires_at"] and added["file"] == keys
    listed = _json(["keys", "list", "--file", keys])
    assert [k["id"] for k in listed["keys"]] == [added["id"]]
    assert added["key"] not in json.dumps(listed)  # never a key in the list
    revoked = _json(["keys", "revoke", "rita", "--file", keys])
    assert [k["id"] for k in revoked["revoked"]] == [added["id"]] and revoked["revoked"][0]["state"] == "revoked"
    assert "--role 'boss'" in _refused(["keys", "add", "--name", "x", "--role", "boss", "--file", keys])


def test_audit_json_and_a_broken_chain(local_admin: Path) -> None:
    from serving.access import audit
    from serving.access.roles import Principal

    trail = local_admin / "audit.jsonl"
    ana = Principal("ana", "analyst")
    audit.append("view_profile", ana, customers=["c1"], fields=["phone"], masked=True, path=trail)
    audit.append("export", ana, customers=[f"c{i}" for i in range(8)], path=trail)
    got = _json(["audit", "--since", "1d", "--file", str(trail)])
    assert got["count"] == 2 and [e["action"] for e in got["lines"]] == ["view_profile", "export"]
    assert _json(["audit", "--since", "1d", "--customer", "c1", "--file", str(trail)])["count"] == 2
    ok = _json(["audit", "verify", "--file", str(trail)])
    assert ok["ok"] is True and ok["lines"] == 2 and ok["broken_line"] is None
    lines = trail.read_text(encoding="utf-8").splitlines()
    trail.write_text(lines[1] + "\n", encoding="utf-8")  # the first line removed
    bad = _json(["audit", "verify", "--file", str(trail)], code=1)
    assert bad["ok"] is False and bad["broken_line"] == 1 and bad["reason"]
    assert "--since" in _refused(["audit", "--since", "yesterday-ish", "--file", str(trail)])
    # prose, both languages
    for lang, word in (("en", "chain intact"), ("zh", "哈希链完整")):
        trail.write_text(lines[0] + "\n", encoding="utf-8")
        r = CliRunner().invoke(app, ["audit", "verify", "--file", str(trail), "--lang", lang])
        assert r.exit_code == 0 and word in r.stdout, r.output


def test_bento_build_json_bad_input(tmp_path: Path) -> None:
    assert "bentofile not found" in _refused(["bento", "build", "--bentofile", str(tmp_path / "nope.yaml")])


def test_registry_json_bad_input(tracking_uri: str) -> None:
    _refused(["registry", "rollback", "no_such_model"])
    assert _json(["registry", "list"]) == {"models": []}


def test_a_command_run_by_another_keeps_stdout_to_the_outer_json(tmp_path: Path) -> None:
    """The demo runs `members apply` and others as functions: with `demo --json` their prose goes to stderr."""

    def inner(x: int = 1) -> None:
        output.summary({"inner": x}, f"inner prose {x}")

    inner_cmd = output.command(inner)

    def outer() -> None:
        inner_cmd(x=2)
        assert output.session().json or not output.session().to_stderr  # the outer choices are back
        output.summary({"outer": True}, "outer prose")

    demo_like = typer.Typer()
    demo_like.command()(output.command(outer))
    r = CliRunner().invoke(demo_like, ["--json"])
    assert r.exit_code == 0, r.output
    assert json.loads(r.stdout) == {"outer": True} and "inner prose 2" in r.stderr
    r = CliRunner().invoke(demo_like, [])
    assert r.stdout == "inner prose 2\nouter prose\n" and r.stderr == ""


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_step_progress_shows_stage_n_of_n_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    screen = _Terminal()
    monkeypatch.setattr("sys.stderr", screen)
    monkeypatch.delenv("CI", raising=False)
    bar = output.CliProgress(enabled=True, verbose=True, steps=3)
    bar("reading tables")
    bar("computing levels")
    bar("writing")
    bar.close()
    seen = screen.getvalue()
    assert "reading tables" in seen and "1/3" in seen and "2/3" in seen and "ETA" in seen
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", seen)  # without the terminal's control sequences
    assert [line.split(":")[0] for line in plain.splitlines() if line.endswith(" s")][-3:] == [
        "reading tables", "computing levels", "writing"
    ]  # --verbose: each stage's time


def test_progress_is_silent_in_a_pipe_and_with_quiet(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    monkeypatch.setattr("sys.stderr", io.StringIO())  # a pipe: not a terminal
    assert output.progress_enabled() is False
    monkeypatch.setattr("sys.stderr", _Terminal())
    assert output.progress_enabled() is True
    monkeypatch.setenv("CI", "true")
    assert output.progress_enabled() is False


def test_new_summaries_in_both_languages(local_admin: Path) -> None:
    from tests.unit.test_i18n import untranslated

    keys = str(local_admin / "keys.yaml")
    for who in ("rita", "rosa"):
        CliRunner().invoke(app, ["keys", "add", "--name", who, "--role", "analyst", "--file", keys, "-q"])
    cases = ((["keys", "list", "--file", keys], ["keys", "list", "--file", keys], "创建"),
             (["keys", "revoke", "rita", "--file", keys], ["keys", "revoke", "rosa", "--file", keys], "已吊销"))
    for en_args, zh_args, zh in cases:
        seen = {}
        for lang, args in (("en", en_args), ("zh", zh_args)):
            r = CliRunner().invoke(app, [*args, "--lang", lang])
            assert r.exit_code == 0, r.output
            assert untranslated(r.stdout, lang) == [], (args, lang, r.stdout)
            seen[lang] = r.stdout
        assert zh in seen["zh"] and zh not in seen["en"], seen
    r = CliRunner().invoke(app, ["keys", "add", "--name", "x", "--role", "boss", "--file", keys, "--lang", "zh"])
    assert r.exit_code == 2 and r.stderr.startswith("错误: --role 'boss'：请使用"), r.stderr
