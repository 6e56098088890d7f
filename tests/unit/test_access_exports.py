"""`crmscore audience export` by role: scope of managers and sales reps, PII refused for the analyst, formula
cells neutralised (and kept raw with --no-neutralise), and the audit line with the exported ids."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.io import write_parquet_atomic
from serving.access import audit
from serving.access.keys import add_key
from serving.cli.main import app

PAYLOAD = "=cmd|' /C calc'!A0"


@pytest.fixture()
def audience_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    data, tags = tmp_path / "data", tmp_path / "tags"
    ids = [f"C{i}" for i in range(8)]
    owners = ["r001", "r001", "r002", "r003", None, "r001", "r002", "r004"]
    teams = ["east", "east", "east", "north", None, "east", "east", "south"]
    write_parquet_atomic(pd.DataFrame({
        "customer_id": ids, "marketing_consent": [True] * 8, "name": [f"王{i}号" for i in range(8)],
        "phone": [f"1380000{i:04d}" for i in range(8)], "owner_id": owners, "team_id": teams,
        "created_at": pd.Timestamp("2024-01-01"),
    }), data / "customers.parquet")
    write_parquet_atomic(pd.DataFrame({"customer_id": ids, "note": [PAYLOAD, "+1 call", "-5", "ok", "@me", "x", "y",
                                                                     "z"]}), tags / "context.parquet")
    write_parquet_atomic(pd.DataFrame({"customer_id": ids, "tag": ["VIP"] * 8}), tags / "tags.parquet")
    (tags / "summary.json").write_text(json.dumps({"tags": {"VIP": 8}, "as_of": "2025-06-30"}), encoding="utf-8")
    keys = tmp_path / "keys.yaml"
    monkeypatch.setenv("CRMSCORE_KEYS_FILE", str(keys))
    monkeypatch.setenv("CRMSCORE_AUDIT_FILE", str(tmp_path / "audit.jsonl"))
    return {
        "data": data, "tags": tags, "tmp": tmp_path,
        "sales": add_key(keys, "sam", "sales", owner_id="r001")[0],
        "manager": add_key(keys, "mia", "manager", team="east")[0],
        "analyst": add_key(keys, "ana", "analyst")[0],
    }


def _export(s: dict, monkeypatch: pytest.MonkeyPatch, role: str | None, *extra: str) -> tuple[int, str, Path]:
    if role:
        monkeypatch.setenv("CRMSCORE_KEY", s[role])
    else:
        monkeypatch.delenv("CRMSCORE_KEY", raising=False)
    out = s["tmp"] / f"aud_{role}_{len(extra)}.csv"
    r = CliRunner().invoke(app, ["audience", "export", "--data", str(s["data"]), "--tags", str(s["tags"]),
                                 "--out", str(out), "--where", "tag:VIP", "--no-mlflow", *extra])
    return r.exit_code, r.output, out


def test_audience_export_by_role(audience_dir: dict, monkeypatch: pytest.MonkeyPatch) -> None:
    code, out, path = _export(audience_dir, monkeypatch, "sales", "--columns", "note,phone", "--include-pii")
    assert code == 0, out
    got = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert got["customer_id"].tolist() == ["C0", "C1", "C5"]  # only the rep's own customers
    assert got["phone"].tolist() == ["13800000000", "13800000001", "13800000005"]
    assert got["note"].tolist() == ["'" + PAYLOAD, "'+1 call", "x"]

    code, out, path = _export(audience_dir, monkeypatch, "manager", "--columns", "note")
    assert code == 0, out
    got = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert got["customer_id"].tolist() == ["C0", "C1", "C2", "C5", "C6"]
    assert got.loc[got["customer_id"] == "C2", "note"].item() == "-5"  # a number stays a number

    code, out, _ = _export(audience_dir, monkeypatch, "analyst", "--columns", "phone", "--include-pii")
    assert code == 2 and "may not export PII" in out
    code, out, path = _export(audience_dir, monkeypatch, "analyst", "--columns", "note", "--no-neutralise")
    assert code == 0, out
    got = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    assert len(got) == 8 and got["note"].iloc[0] == PAYLOAD  # raw for a machine consumer

    lines = audit.query(path=audience_dir["tmp"] / "audit.jsonl")
    assert [(e["principal"], e["action"]) for e in lines] == [("sam", "export_audience"), ("mia", "export_audience"),
                                                               ("ana", "export_audience")]
    assert lines[0]["customers"] == ["C0", "C1", "C5"] and lines[0]["fields"] == ["customer_id", "note", "phone"]
    assert str(Path(lines[0]["detail"]["files"][0])).endswith("aud_sales_3.csv")
    assert "13800000000" not in (audience_dir["tmp"] / "audit.jsonl").read_text(encoding="utf-8")


def test_ingestion_maps_owner_and_team_and_neutralises_its_rejects(tmp_path: Path) -> None:
    from features.ingest import ingest

    src = tmp_path / "src"
    src.mkdir()
    pd.DataFrame({
        "客户编号": ["C1", "C2", "C3"],
        "创建时间": ["2024-01-01", "2024-01-02", "=HYPERLINK(\"http://x.example\")"],
        "负责人": ["r001", "r002", "r003"],
        "团队": ["east", "east", "north"],
    }).to_csv(src / "customers.csv", index=False)
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text(
        "tables:\n  customers:\n    columns: {客户编号: customer_id, 创建时间: created_at, 负责人: owner_id, "
        "团队: team_id}\n",
        encoding="utf-8",
    )
    out = tmp_path / "data"
    ingest(src, out, mapping)
    got = pd.read_parquet(out / "customers.parquet")
    assert got[["customer_id", "owner_id", "team_id"]].values.tolist() == [["C1", "r001", "east"],
                                                                          ["C2", "r002", "east"]]
    rejects = (out / "rejects" / "customers.csv").read_text(encoding="utf-8-sig")
    assert "'=HYPERLINK" in rejects and ",=HYPERLINK" not in rejects


def _run(monkeypatch: pytest.MonkeyPatch, key: str | None, args: list) -> tuple[int, str]:
    if key:
        monkeypatch.setenv("CRMSCORE_KEY", key)
    else:
        monkeypatch.delenv("CRMSCORE_KEY", raising=False)
    r = CliRunner().invoke(app, [str(a) for a in args])
    return r.exit_code, r.output


def test_every_other_cli_export_checks_the_role_neutralises_and_is_audited(
    audience_dir: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    """route, members apply, tags apply, actions, report, forecast: refused to roles without the action, formula
    cells neutralised (raw with --no-neutralise), one audit line with the files and the ids written."""
    from tests.members_data import demo_tables, write_data_dir

    tmp = audience_dir["tmp"]
    integration = add_key(tmp / "keys.yaml", "ivy", "integration")[0]
    trail = tmp / "audit.jsonl"
    # route: the caller's lead list, with formula payloads in the ids and a PII pass-through column
    leads = pd.DataFrame({"lead_id": [PAYLOAD, "@SUM(A1:A2)", "L3"], "city": ["上海"] * 3, "grade": ["A", "B", "C"],
                          "contact_phone": ["13800000009"] * 3})
    src = tmp / "leads.csv"
    leads.to_csv(src, index=False)
    cfg = tmp / "routing.yaml"
    cfg.write_text("reps:\n  - {id: e1, team: east, territories: [上海], skills: [retail], daily_capacity: 3}\n",
                   encoding="utf-8")
    route = ["route", "--leads", src, "--as-of", "2025-06-02", "--config", cfg, "--out"]
    code, out = _run(monkeypatch, audience_dir["sales"], [*route, tmp / "r.csv"])
    assert code == 0, out
    got = pd.read_csv(tmp / "r.csv", dtype=str, keep_default_na=False)
    assert got["lead_id"].tolist() == ["'" + PAYLOAD, "'@SUM(A1:A2)", "L3"]
    assert "13800000009" not in (tmp / "r.csv").read_text(encoding="utf-8")
    code, out = _run(monkeypatch, audience_dir["sales"], [*route, tmp / "raw.csv", "--no-neutralise"])
    assert code == 0 and pd.read_csv(tmp / "raw.csv", dtype=str)["lead_id"].iloc[0] == PAYLOAD
    line = audit.query(who="sam", path=trail)[0]
    assert line["action"] == "export_scores" and line["customers"] == leads["lead_id"].tolist()
    assert line["detail"]["command"] == "route" and str(tmp / "r.csv") in line["detail"]["files"]

    # lists over every customer: admin and analyst only
    data = write_data_dir(demo_tables(), tmp / "crm")
    members = ["members", "apply", "--data", data, "--as-of", "2025-06-30", "--out"]
    tags = ["tags", "apply", "--data", data, "--as-of", "2025-06-30", "--csv", "--out"]
    actions = ["actions", "--data", data, "--as-of", "2025-06-30", "--out"]
    for role in ("sales", "manager"):
        for cmd in (members, tags, actions):
            code, out = _run(monkeypatch, audience_dir[role], [*cmd, tmp / f"no_{role}"])
            assert code == 2 and f"the role {role} may not export customer lists" in out, (cmd[0], out)
    for cmd in (["report", "--data", data, "--as-of", "2025-06-30", "--out", tmp / "rep"],
                ["forecast", "--data", data, "--as-of", "2025-06-30", "--out", tmp / "fc"]):
        code, out = _run(monkeypatch, integration, cmd)
        assert code == 2 and "the role integration may not export reports" in out, out
    before = len(audit.query(path=trail))
    for cmd, dest in ((members, tmp / "m"), (tags, tmp / "t")):  # actions: tests/integration/test_cross_sell_job.py
        code, out = _run(monkeypatch, audience_dir["analyst"], [*cmd, dest])
        assert code == 0, (cmd[0], out)
    lines = audit.query(who="ana", path=trail)[-2:]
    assert len(audit.query(path=trail)) == before + 2 and audit.verify(trail).ok
    assert [(e["action"], e["detail"]["command"]) for e in lines] == [
        ("export_lists", "members apply"), ("export_lists", "tags apply")]
    n = len(demo_tables()["customers"])
    assert all(e["customers_total"] == n for e in lines), [e["customers_total"] for e in lines]
    assert str(tmp / "m" / "levels.csv") in lines[0]["detail"]["files"]
    assert str(tmp / "t" / "tags.csv") in lines[1]["detail"]["files"]
