"""`crmscore members apply`, `tags apply` and `audience export` end to end through typer's CliRunner."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from serving.cli.main import app
from tests.members_data import demo_tables, write_data_dir

runner = CliRunner()
WHERE = "tag:高价值流失风险 and member_level>=silver"


def ok(args: list[str]) -> str:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, (res.output, res.exception)
    return res.output


def fails(args: list[str]) -> str:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 2, (res.output, res.exception)
    return res.output


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    return write_data_dir(demo_tables(), tmp_path_factory.mktemp("members") / "data")


def test_members_tags_audience(data: Path, tmp_path: Path, tracking_uri: str):
    m1, m2 = tmp_path / "m1", tmp_path / "m2"
    out = ok(["members", "apply", "--data", data, "--as-of", "2025-03-31", "--out", m1])
    assert "customers as of 2025-03-31" in out
    manual = tmp_path / "manual.csv"
    orders = pd.read_parquet(data / "orders.parquet")
    later = set(orders.loc[orders["ts"] > "2025-04-15", "customer_id"])
    upgraded = pd.read_parquet(m1 / "levels.parquet").query("member_level != 'none'")["customer_id"]
    gold = next(c for c in upgraded if c not in later)  # no order after the change: the downgrade holds
    pd.DataFrame(
        [(gold, "none", "ops01", "2025-04-15", "复核")],
        columns=["customer_id", "level", "changed_by", "changed_at", "reason"],
    ).to_csv(manual, index=False)
    ok(["members", "apply", "--data", data, "--as-of", "2025-06-30", "--previous", m1, "--manual", manual, "--out", m2])
    for f in ("levels.parquet", "levels.csv", "history.parquet", "history.csv", "summary.json"):
        assert (m2 / f).is_file(), f
    lv = pd.read_parquet(m2 / "levels.parquet").set_index("customer_id")
    assert lv.loc[gold, "member_level"] == "none" and lv.loc[gold, "reason"] == "manual"
    s = json.loads((m2 / "summary.json").read_text(encoding="utf-8"))
    assert s["manual_applied"] == 1 and s["previous_as_of"].startswith("2025-03-31")
    # upgrade only: nobody is below their level at m1 unless changed by hand
    before = pd.read_parquet(m1 / "levels.parquet").set_index("customer_id")["level_rank"]
    after = lv["level_rank"].reindex(before.index)
    assert ((after >= before) | (after.index == gold)).all()
    assert "customer_id" in (m2 / "levels.csv").read_text(encoding="utf-8-sig").splitlines()[0]

    # tags: with the levels, a churn score file and a manual tag
    scores = tmp_path / "churn.csv"
    ids = lv.index.tolist()
    pd.DataFrame(
        {"customer_id": ids, "score": range(len(ids)), "grade": (["A", "B", "C", "D"] * len(ids))[: len(ids)]}
    ).to_csv(scores, index=False)
    tags_yaml = tmp_path / "tags.yaml"
    tags_yaml.write_text(
        "tags:\n"
        '  - {name: 高价值流失风险, kind: rule, rule: "churn_grade in [A, B] and member_level >= silver"}\n'
        "  - {name: 老客, kind: rule, rule: \"r_score >= 1 and rfm_segment != 'No purchase'\"}\n"
        "  - {name: 母婴人群, kind: product, categories: [母婴用品], window_days: 90}\n"
        "  - {name: VIP关怀, kind: manual}\n",
        encoding="utf-8",
    )
    add = tmp_path / "add.csv"
    pd.DataFrame(
        [(ids[0], "VIP关怀", "li", "2025-06-01")], columns=["customer_id", "tag", "added_by", "added_at"]
    ).to_csv(add, index=False)
    t1 = tmp_path / "t1"
    out = ok(
        [
            "tags", "apply", "--data", data, "--as-of", "2025-06-30", "--members", m2, "--scores", f"churn={scores}",
            "--config", tags_yaml, "--manual", add, "--out", t1,
        ]
    )  # fmt: skip
    assert "tags on" in out
    counts = pd.read_csv(t1 / "tag_counts.csv", encoding="utf-8-sig").set_index("tag")["customers"]
    assert counts["VIP关怀"] == 1 and counts["高价值流失风险"] > 0 and counts["老客"] > 0 and counts["母婴人群"] > 0
    long = pd.read_parquet(t1 / "tags.parquet")
    assert list(long.columns) == ["customer_id", "tag", "kind", "since", "source"]
    ctx = pd.read_parquet(t1 / "context.parquet")
    assert not {"name", "phone", "email", "address"} & set(ctx.columns)

    # a missing field: the error names the tag and the field
    err = fails(
        ["tags", "apply", "--data", data, "--as-of", "2025-06-30", "--config", tags_yaml, "--out", tmp_path / "x"]
    )
    assert "tag '高价值流失风险'" in err and "churn_grade" in err and "--scores" in err

    # audience: consent respected and counted, counts in MLflow, no PII anywhere
    lst = tmp_path / "list.csv"
    out = ok(
        [
            "audience", "export", "--data", data, "--tags", t1,
            "--where", WHERE, "--columns", "member_level_zh,progress", "--out", lst,
        ]
    )  # fmt: skip
    summ = json.loads(lst.with_suffix(".summary.json").read_text(encoding="utf-8"))
    exported = pd.read_csv(lst, encoding="utf-8-sig")
    assert list(exported.columns) == ["customer_id", "member_level_zh", "progress"]
    assert summ["matched"] == summ["exported"] + summ["excluded_no_consent"] + summ["excluded_consent_unknown"]
    assert summ["excluded_no_consent"] > 0 and len(exported) == summ["exported"]
    consent = pd.read_parquet(data / "customers.parquet").set_index("customer_id")["marketing_consent"]
    assert consent.reindex(exported["customer_id"]).fillna(False).all()
    svc = tmp_path / "svc.csv"
    ok(
        [
            "audience", "export", "--data", data, "--tags", t1,
            "--where", WHERE, "--purpose", "service", "--out", svc, "--no-mlflow",
        ]
    )  # fmt: skip
    assert len(pd.read_csv(svc)) == summ["matched"]

    from mlflow import MlflowClient

    client = MlflowClient(tracking_uri)
    exp = client.get_experiment_by_name("crmscore-audiences")
    runs = client.search_runs([exp.experiment_id])
    assert len(runs) == 1
    r = runs[0]
    assert r.data.metrics["exported"] == summ["exported"] and r.data.metrics["matched"] == summ["matched"]
    logged = json.dumps([r.data.params, r.data.tags], ensure_ascii=False)
    phones = pd.read_parquet(data / "customers.parquet")["phone"].tolist()
    assert not any(p in logged for p in phones) and not any(c in logged for c in exported["customer_id"])

    # PII only on request, and errors for bad rules name the position
    assert "PII" in fails(["audience", "export", "--data", data, "--tags", t1, "--where", "tag:VIP关怀",
                           "--columns", "phone", "--out", tmp_path / "p.csv", "--no-mlflow"])  # fmt: skip
    err = fails(["audience", "export", "--data", data, "--tags", t1, "--where", "__import__('os')",
                 "--out", tmp_path / "p.csv", "--no-mlflow"])  # fmt: skip
    assert "rule error at character" in err


def test_config_errors_exit_2(data: Path, tmp_path: Path):
    bad = tmp_path / "members.yaml"
    bad.write_text(
        "levels:\n  - {id: none, zh: 普通, en: M}\n  - {id: a, zh: A, en: A, reach: {spend: 100}}\n"
        "  - {id: b, zh: B, en: B, reach: {spend: 50}}\n",
        encoding="utf-8",
    )
    err = fails(["members", "apply", "--data", data, "--as-of", "2025-06-30", "--config", bad, "--out", tmp_path / "o"])
    assert "level 'b': field 'reach.spend'" in err
    err = fails(["members", "apply", "--data", data, "--as-of", "someday", "--out", tmp_path / "o"])
    assert "--as-of" in err


def test_demo_members_step_runs_the_three_commands(tmp_path: Path, tracking_uri: str):
    """`crmscore demo`'s member step on generated data: levels, tags with the generator's manual-tags file, and
    one audience export whose counts are printed and logged."""
    from features.synth import generate_crm_data, write_crm_data
    from serving.cli.demo_members import run_members_demo

    result = generate_crm_data(400, 200, 2)
    write_crm_data(result, tmp_path / "data")
    lines: list[str] = []
    figures = run_members_demo(tmp_path / "data", result.meta["as_of"], tmp_path / "out", echo=lines.append)
    assert sum(figures["levels"].values()) > 0 and figures["audience_exported"] <= figures["audience_matched"]
    tags = json.loads((tmp_path / "out" / "tags" / "summary.json").read_text(encoding="utf-8"))
    manual = pd.read_csv(tmp_path / "data" / "manual_tags.csv")
    pairs = manual.drop_duplicates(["customer_id", "tag"]).shape[0]
    assert sum(tags["tags"][t] for t in ("VIP关怀", "投诉跟进")) == pairs
    assert (tmp_path / "out" / "audience_high_value_churn_risk.csv").is_file()
    assert lines and "manual_tags.csv" in lines[0]
