"""The same member levels and tags from batch (`crmscore members apply` + `crmscore tags apply`) and from a real
`POST /segment` over HTTP for the same customers.

Reuses the browser tests' session server (``profile_server``: lead, churn and segment champions on demo data).
Online, RFM scores, value tier and P(alive) come from the served segment model, so the batch run is given that
model's output for every customer (``--scores``), exactly as a CRM team would feed the segment job's file.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pandas as pd
import pytest
from typer.testing import CliRunner

from serving.cli.main import app
from tests.e2e.conftest import ProfileServer
from tests.integration.conftest import keep_mlflow_globals

runner = CliRunner()
N_CUSTOMERS = 60


def _ok(args: list[object]) -> None:
    res = runner.invoke(app, [str(a) for a in args])
    assert res.exit_code == 0, (res.output, res.exception)


def test_batch_tags_equal_segment_tags(profile_server: ProfileServer, profile_data: tuple[Path, str],
                                       tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from features.io import load_tables
    from serving.http.loader import load_segments_artifact
    from serving.ui.index import ProfileIndex
    from training.segment import summarise_customers
    from training.segment_config import SegmentConfig

    data = profile_server.data
    index = ProfileIndex.load(data)
    t = index.as_of
    tables = load_tables(data)

    # the served segment model (the version /model_info reports) over every customer as of T: --scores file
    keep_mlflow_globals(monkeypatch)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", profile_data[1])
    monkeypatch.setenv("MLFLOW_REGISTRY_URI", profile_data[1])
    version = profile_server.versions["segments"]
    assert version is not None, "the profile server has no segment champion"
    seg_model = load_segments_artifact(f"models:/customer_segments/{version}")
    window = SegmentConfig().window_days
    summary = summarise_customers(tables, t, window)
    seg_out = seg_model.predict(summary)
    scores = pd.concat(
        [summary.reset_index(drop=True), seg_out.reset_index(drop=True).drop(columns="customer_id")], axis=1
    )
    scores_file = tmp_path / "segments.parquet"
    scores.to_parquet(scores_file)

    members_out, tags_out = tmp_path / "members", tmp_path / "tags"
    _ok(["members", "apply", "--data", data, "--as-of", t.isoformat(), "--out", members_out])
    _ok(["tags", "apply", "--data", data, "--as-of", t.isoformat(), "--members", members_out, "--scores",
         scores_file, "--out", tags_out])
    levels = pd.read_parquet(members_out / "levels.parquet").set_index("customer_id")
    long = pd.read_parquet(tags_out / "tags.parquet")
    long = long.loc[long["kind"] != "manual"]
    batch_tags = long.groupby(long["customer_id"].astype(str), observed=True)["tag"].agg(
        lambda s: sorted(map(str, s))
    )

    # customers of every level and with and without tags, created on or before T
    cust = tables["customers"]
    known = cust.loc[cust["created_at"] <= t, "customer_id"].astype(str)
    by_level = levels.loc[levels.index.isin(known)].groupby("member_level", observed=True).head(N_CUSTOMERS // 4)
    ids = list(by_level.index.astype(str))[:N_CUSTOMERS]
    assert len(set(levels.loc[ids, "member_level"])) >= 2, "the demo data should give several levels"

    body = {"customers": []}
    for cid in ids:
        row = index.row_of(cid)
        record = index.customer_record(row)
        body["customers"].append({"profile": index.profile_of(record), "events": index.events_of(row),
                                  "as_of": index.as_of_iso})
    r = httpx.post(f"{profile_server.url}/segment", json=body, headers=profile_server.headers, timeout=120)
    assert r.status_code == 200, r.text[:500]
    results = r.json()["results"]
    assert [x["customer_id"] for x in results] == ids
    n_tagged = 0
    for cid, res in zip(ids, results, strict=True):
        card = res["member"]
        assert card is not None, cid
        assert card["member_level"] == levels.loc[cid, "member_level"], cid
        assert (card["progress"] or "") == levels.loc[cid, "progress"], cid
        assert card["level_progress"] == pytest.approx(float(levels.loc[cid, "level_progress"]))
        online = sorted(h["tag"] for h in card["tags"])
        expected = batch_tags.get(cid, [])
        assert online == expected, (cid, online, expected)
        assert all(h["why"] for h in card["tags"])
        n_tagged += bool(online)
        assert set(card["tags_not_evaluated"]) >= {"VIP关怀", "投诉跟进"}  # manual tags are batch-only
    assert n_tagged >= 5, "too few tagged customers to compare"
