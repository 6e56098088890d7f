"""What every long `crmscore` command does on the way out (issue 24): a progress bar on a terminal and nothing in
a pipe, ``--json`` equal to the summary file, the same exit codes, and summaries in both languages.

The progress tests run the real console script with its stderr on a pseudo-terminal (``pty``) or a pipe; the
``--json`` tests run the commands through typer's CliRunner on small synthetic data.
"""

from __future__ import annotations

import json
import os
import pty
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from serving.cli import app
from tests.unit.test_i18n import untranslated

CRMSCORE = str(Path(sys.executable).with_name("crmscore"))
AS_OF = "2025-05-31"
SYNTH = ["synth", "--customers", "400", "--days", "200", "--seed", "4"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("CI", "CRMSCORE_LANG")}
    return {**env, "COLUMNS": "120", **extra}


def _run_on_pty(args: list[str], env: dict[str, str]) -> tuple[int, str, str]:
    """Run crmscore with stderr on a pseudo-terminal; (exit code, stdout, everything the terminal received)."""
    master, slave = pty.openpty()
    proc = subprocess.Popen([CRMSCORE, *args], stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    seen = b""
    while True:
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    out = proc.stdout.read() if proc.stdout else b""
    proc.wait()
    os.close(master)
    return proc.returncode, out.decode(), seen.decode(errors="replace")


def test_progress_on_a_terminal_not_in_a_pipe_and_not_with_quiet(tmp_path: Path) -> None:
    code, out, tty = _run_on_pty([*SYNTH, "--out", str(tmp_path / "a")], _env())
    assert code == 0, tty
    assert "simulating behaviour" in tty and "━" in tty and "ETA" in tty  # stage, bar, counts' ETA
    assert "400/400" in tty  # the customers stage's count
    assert "wrote clean data" in out and "━" not in out  # the summary stays on stdout, without the bar

    piped = subprocess.run([CRMSCORE, *SYNTH, "--out", str(tmp_path / "b")], capture_output=True, text=True,
                           env=_env())
    assert piped.returncode == 0, piped.stderr
    assert piped.stderr == "" and "wrote clean data" in piped.stdout

    code, _, tty = _run_on_pty([*SYNTH, "--out", str(tmp_path / "c"), "--quiet"], _env())
    assert code == 0 and "━" not in tty and "simulating" not in tty

    code, _, tty = _run_on_pty([*SYNTH, "--out", str(tmp_path / "d")], _env(CI="true"))
    assert code == 0 and "━" not in tty  # CI logs get no bar either


def test_verbose_prints_stage_times_in_a_pipe_too(tmp_path: Path) -> None:
    r = subprocess.run([CRMSCORE, *SYNTH, "--out", str(tmp_path / "v"), "-v"], capture_output=True, text=True,
                       env=_env())
    assert r.returncode == 0, r.stderr
    stages = [line.split(":")[0] for line in r.stderr.splitlines()]
    assert stages == ["drawing customers", "simulating behaviour", "building tables", "labels and oracle AUC",
                      "writing files"], r.stderr
    assert all(line.endswith(" s") for line in r.stderr.splitlines())


# ------------------------------------------------------------------------------------------------ --json
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("cli_data")
    r = CliRunner().invoke(app, [*SYNTH, "--out", str(d / "clean"), "--json"])
    assert r.exit_code == 0, r.output
    summary = json.loads(r.stdout)
    assert summary["rows"]["customers"] == 400 and summary["mode"] == "clean"
    assert {"customers.parquet", "orders.parquet"} <= set(summary["files"])
    r = CliRunner().invoke(app, [*SYNTH, "--out", str(d / "messy"), "--messy", "-q"])
    assert r.exit_code == 0, r.output
    return d


def _json(args: list[str]) -> dict:
    r = CliRunner().invoke(app, [*args, "--json"])
    assert r.exit_code == 0, r.output
    assert r.stdout.count("\n") == 1, r.stdout  # one line: one JSON object and nothing else
    return json.loads(r.stdout)


def _file(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def test_json_equals_the_summary_files(data_dir: Path, tmp_path: Path, tracking_uri: str) -> None:
    clean = data_dir / "clean"
    got = _json(["ingest", "--source", str(data_dir / "messy"), "--out", str(tmp_path / "in")])
    assert got == _file(tmp_path / "in" / "ingest_summary.json")

    got = _json(["members", "apply", "--data", str(clean), "--as-of", AS_OF, "--out", str(tmp_path / "m")])
    assert got == _file(tmp_path / "m" / "summary.json")

    got = _json(["tags", "apply", "--data", str(clean), "--as-of", AS_OF, "--out", str(tmp_path / "t")])
    assert got == _file(tmp_path / "t" / "summary.json")

    got = _json(["forecast", "--data", str(clean), "--as-of", AS_OF, "--out", str(tmp_path / "f"), "--origins", "0",
                 "--horizon", "4w"])
    assert got == _file(tmp_path / "f" / "summary.json")

    got = _json(["features", "--data", str(clean), "--as-of", AS_OF, "--out", str(tmp_path / "x.parquet")])
    import pandas as pd

    feats = pd.read_parquet(tmp_path / "x.parquet")
    assert (got["customers"], got["columns"]) == (len(feats), feats.shape[1] - 1)  # less the customer_id column

    got = _json(["report", "--data", str(clean), "--as-of", AS_OF, "--out", str(tmp_path / "r")])
    assert Path(got["html"]).is_file() and set(got["csvs"]) >= {"sales_monthly", "funnel"} and got["run_id"]


def test_json_of_score_equals_its_summary_file(crm_registry, tmp_path: Path, isolated_mlflow) -> None:
    from tests.integration.conftest import lead_features

    isolated_mlflow.setenv("MLFLOW_TRACKING_URI", crm_registry.uri)
    isolated_mlflow.setenv("MLFLOW_REGISTRY_URI", crm_registry.uri)
    leads, _ = lead_features(crm_registry, AS_OF, n=20)
    import pandas as pd

    src = tmp_path / "leads.csv"
    pd.DataFrame(leads).to_csv(src, index=False)
    got = _json(["score", "--input", str(src), "--output", str(tmp_path / "s.csv"), "--no-records"])
    assert got == _file(Path(got["summary_file"]))
    assert got["rows_in"] == 20 == got["scored"] + got["rejected"] + got["duplicates"]


# --------------------------------------------------------------------------------------- exit codes, zh
def test_exit_codes_are_the_same_across_commands(tmp_path: Path) -> None:
    nope = str(tmp_path / "nope")
    for args in (["features", "--data", nope, "--as-of", AS_OF, "--out", str(tmp_path / "x.parquet")],
                 ["members", "apply", "--data", nope, "--as-of", AS_OF, "--out", str(tmp_path / "m")],
                 ["tags", "apply", "--data", nope, "--as-of", AS_OF, "--out", str(tmp_path / "t")],
                 ["ingest", "--source", nope, "--out", str(tmp_path / "i")],
                 ["synth", "--out", str(tmp_path / "s"), "--lang", "fr"]):
        r = CliRunner().invoke(app, args)
        assert r.exit_code == 2, (args, r.output)
        assert r.stderr.startswith("error: ") and r.stdout == "", (args, r.output)


def test_summaries_in_both_languages(data_dir: Path, tmp_path: Path) -> None:
    clean = data_dir / "clean"
    cases = [
        ["features", "--data", str(clean), "--as-of", AS_OF, "--out", str(tmp_path / "x.parquet")],
        ["members", "apply", "--data", str(clean), "--as-of", AS_OF, "--out", str(tmp_path / "m")],
        ["ingest", "--source", str(data_dir / "messy"), "--out", str(tmp_path / "in")],
    ]
    for args in cases:
        outputs = {}
        for lang in ("en", "zh"):
            r = CliRunner().invoke(app, [*args, "--lang", lang])
            assert r.exit_code == 0, r.output
            assert untranslated(r.stdout, lang) == [], (args, lang, r.stdout)
            outputs[lang] = r.stdout
        assert outputs["en"] != outputs["zh"]
    r = CliRunner(env={"CRMSCORE_LANG": "zh"}).invoke(app, cases[0])
    assert "位客户" in r.stdout  # $CRMSCORE_LANG without --lang


# ------------------------------------------------------------------------- --json of the other commands
def test_json_of_registry_commands(crm_registry, tmp_path: Path, isolated_mlflow) -> None:
    from tests.integration.conftest import copy_registry

    reg = copy_registry(crm_registry, tmp_path / "reg")  # promote and rollback change the aliases
    isolated_mlflow.setenv("MLFLOW_TRACKING_URI", reg.uri)
    isolated_mlflow.setenv("MLFLOW_REGISTRY_URI", reg.uri)
    models = {m["name"]: m for m in _json(["registry", "list"])["models"]}
    lead = crm_registry.versions["lead_scoring"]
    assert models["lead_scoring"]["aliases"]["champion"] == lead and models["churn_risk"]["versions"]
    got = _json(["registry", "promote", "lead_scoring", lead, "--reason", "test"])
    assert got == {"name": "lead_scoring", "alias": "champion", "version": lead, "reason": "test"}
    r = CliRunner().invoke(app, ["registry", "promote", "lead_scoring", "99", "--json"])
    assert r.exit_code == 2 and r.stdout == "", r.output


def test_json_of_forget(data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    import pandas as pd

    data = tmp_path / "data"
    shutil.copytree(data_dir / "clean", data)
    monkeypatch.delenv("CRMSCORE_KEY", raising=False)
    monkeypatch.setenv("CRMSCORE_AUDIT_FILE", str(tmp_path / "audit.jsonl"))
    cid = str(pd.read_parquet(data / "customers.parquet")["customer_id"].iloc[0])
    got = _json(["forget", "--customer-id", cid, "--data", str(data), "--home", str(tmp_path / "home")])
    assert got["customer_id"] == cid and got["fields"] and got["scanned"] >= 1
    assert str(data / "customers.parquet") in got["changed"] and got["tombstone"]["seq"] >= 1


def test_step_progress_of_forecast_on_a_terminal_and_silent_in_a_pipe(
    data_dir: Path, tmp_path: Path, tracking_uri: str
) -> None:
    args = ["forecast", "--data", str(data_dir / "clean"), "--as-of", AS_OF, "--horizon", "4w", "--origins", "1"]
    code, out, tty = _run_on_pty([*args, "--out", str(tmp_path / "a")], _env())  # the tracking_uri store
    assert code == 0, tty
    assert "backtesting" in tty and "/5" in tty and "ETA" in tty and "━" in tty  # stage, n of N steps, ETA
    assert "━" not in out
    r = CliRunner().invoke(app, [*args, "--out", str(tmp_path / "b")])
    assert r.exit_code == 0, r.output
    assert "━" not in r.stderr and "backtesting" not in r.stderr  # a pipe: no bar
    r = CliRunner().invoke(app, ["members", "apply", "--data", str(data_dir / "clean"), "--as-of", AS_OF, "--out",
                                 str(tmp_path / "m"), "-v"])
    assert r.exit_code == 0, r.output
    assert [line.split(":")[0] for line in r.stderr.splitlines()] == ["reading tables", "computing levels", "writing"]
