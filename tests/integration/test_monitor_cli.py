"""`crmscore monitor drift` end to end: registry lookup, records, Evidently, MLflow, workspace, webhook, exit codes.

The registered model is cheap: a run holding only ``evaluation/reference.parquet`` and a model version whose
source is that run (the monitor never loads the model itself), tagged like a trained one.
"""

from __future__ import annotations

import http.server
import json
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.io import write_parquet_atomic

MODEL = "lead_scoring"
PROVINCES = ["广东省", "浙江省", "北京市", "上海市"]


def feature_rows(n: int, seed: int, shift: float = 0.0) -> pd.DataFrame:
    """Lead-like feature rows and a probability; ``shift`` moves three features and the scores."""
    r = np.random.default_rng(seed)
    df = pd.DataFrame(
        {
            "age": r.normal(40, 10, n) + 10 * shift,
            "spend_90d": r.gamma(2.0, 50.0, n) * (1 + shift),
            "n_visit_30d": r.poisson(2.0, n).astype(float) + 2 * shift,
            "days_since_visit": r.exponential(20, n),
            "province": r.choice(PROVINCES, n, p=[0.4, 0.3, 0.2, 0.1]).astype(object),
        }
    )
    df["probability"] = np.clip(r.beta(2, 8, n) + 0.2 * shift, 0.001, 0.999)
    return df


@pytest.fixture(scope="module")
def template_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite store with lead_scoring v1 (champion) whose run logged a 2,000-row reference sample.

    Built through an explicit client, so MLflow's global tracking URI is left alone.
    """
    from mlflow import MlflowClient

    root = tmp_path_factory.mktemp("monitor_store")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    exp = client.create_experiment("crmscore-lead", artifact_location=(root / "artifacts").as_uri())
    ev = root / "evaluation"
    ev.mkdir()
    feature_rows(2000, seed=100).to_parquet(ev / "reference.parquet", index=False)
    run = client.create_run(exp)
    client.log_artifacts(run.info.run_id, str(ev), artifact_path="evaluation")
    client.set_terminated(run.info.run_id)
    client.create_registered_model(MODEL)
    mv = client.create_model_version(
        MODEL,
        source=f"{run.info.artifact_uri}/evaluation",
        run_id=run.info.run_id,
        tags={"crmscore.run_id": run.info.run_id, "crmscore.test_roc_auc": "0.800000"},
    )
    client.set_registered_model_alias(MODEL, "champion", mv.version)
    return root / "mlflow.db"


@pytest.fixture()
def env(template_store: Path, tracking_uri: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A private copy of the template store as the ``tracking_uri`` store, and ``CRMSCORE_HOME``; returns home."""
    shutil.copy2(template_store, tmp_path / "mlflow.db")
    home = tmp_path / "home"
    monkeypatch.setenv("CRMSCORE_HOME", str(home))
    return home


def write_records(home: Path, df: pd.DataFrame, ts: pd.Series, version: str = "1") -> None:
    """Records in the layout of ``serving.http.records`` (one part file per day)."""
    rec = pd.DataFrame(
        {
            "ts": pd.to_datetime(ts, utc=True).to_numpy(),
            "model_name": MODEL,
            "model_version": version,
            "source": "batch",
            "customer_id": [f"C{i:05d}" for i in range(len(df))],
            "probability": df["probability"].to_numpy(),
            "score": np.clip(np.rint(df["probability"].to_numpy() * 100), 1, 99).astype("int64"),
            "grade": "C",
        }
    )
    rec["ts"] = pd.to_datetime(rec["ts"], utc=True)
    for c in df.columns.drop("probability"):
        rec[c] = df[c].astype("string") if df[c].dtype == object else df[c].to_numpy()
    for c in ("model_name", "model_version", "source", "customer_id", "grade"):
        rec[c] = rec[c].astype("string")
    for day, part in rec.groupby(rec["ts"].dt.strftime("%Y-%m-%d")):
        path = home / "records" / MODEL / f"date={day}" / f"part-{uuid.uuid4().hex}.parquet"
        write_parquet_atomic(part.reset_index(drop=True), path)


def spread(n: int, start: str, days: float) -> pd.Series:
    """``n`` timestamps evenly over ``days`` from ``start`` (UTC)."""
    return pd.Series(pd.Timestamp(start, tz="UTC") + pd.to_timedelta(np.linspace(0, days * 86400, n), unit="s"))


def invoke(*args: str):
    from serving.cli import app

    return CliRunner().invoke(app, ["monitor", "drift", "--model", MODEL, *args])


@pytest.fixture()
def webhook() -> Iterator[tuple[str, list[dict]]]:
    """A local HTTP server on 127.0.0.1 collecting POSTed JSON bodies."""
    received: list[dict] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server API
            body = self.rfile.read(int(self.headers["Content-Length"]))
            received.append(json.loads(body))
            self.send_response(204)
            self.end_headers()

        def log_message(self, *args) -> None:
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook", received
    finally:
        server.shutdown()
        server.server_close()


def test_no_drift_exit_0_with_report_mlflow_workspace_and_webhook(env: Path, tmp_path: Path, webhook):
    from mlflow import MlflowClient

    from serving.http.records import RecordSink

    url, received = webhook
    rows = feature_rows(1500, seed=1)
    sink = RecordSink(home=env, source="http")
    feats = rows.drop(columns="probability")
    ids = [f"L{i}" for i in range(len(rows))]
    assert sink.record(MODEL, "1", ids, rows["probability"].to_numpy(), [50] * len(rows), ["B"] * len(rows), feats)
    assert sink.flush() == 1500

    out = tmp_path / "out"
    res = invoke("--since", "1d", "--out", str(out), "--webhook", url, "--verbose")
    assert res.exit_code == 0, res.output
    assert "0/5 drifted" in res.output and "status: ok" in res.output
    stages = [line.split(":")[0] for line in res.stderr.splitlines() if line.endswith(" s")]  # --verbose timings
    assert stages == ["reading the recorded rows", "comparing with the training reference", "writing the report",
                      "logging to MLflow"], res.stderr
    # this registered "model" is only a reference sample: no contributions, so the share rule alone, said once
    assert "warning: top-feature rule not applied, share rule only" in res.output
    assert "retention: no records older than 90 days; no reports older than 365 days" in res.output

    summary = json.loads((out / "drift_summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "ok" and summary["model_version"] == "1"
    assert summary["rows"]["current"] == 1500 and summary["rows"]["by_source"] == {"http": 1500}
    assert summary["prediction_drift"]["psi"] < 0.05
    assert (out / "drift_report.html").stat().st_size > 10_000
    latest = json.loads((env / "drift" / MODEL / "latest.json").read_text(encoding="utf-8"))
    assert latest == summary
    assert received == [summary]

    client = MlflowClient()
    exp = client.get_experiment_by_name("crmscore-monitoring")
    (run,) = client.search_runs([exp.experiment_id])
    assert run.info.run_id == summary["mlflow_run_id"]
    assert run.data.tags["crmscore.model_name"] == MODEL and run.data.tags["crmscore.model_version"] == "1"
    assert run.data.metrics["share_drifted"] == 0.0
    arts = {a.path for a in client.list_artifacts(run.info.run_id, "monitoring")}
    assert arts == {"monitoring/drift_report.html", "monitoring/drift_summary.json"}

    from evidently.ui.workspace import Workspace

    ws = Workspace(str(env / "evidently"))
    (project,) = ws.search_project(f"crmscore {MODEL}")
    assert [str(s) for s in ws.list_runs(project.id)] == [summary["evidently_workspace"]["snapshot_id"]]
    panels = {p.title for p in ws.get_dashboard(project.id).panels}
    assert panels == {
        "Share of drifted columns",
        "Share of drifted columns (last run)",
        "Prediction drift (probability)",
    }


def test_drift_exit_3_names_features_webhook_failure_not_fatal_and_retrains(
    env: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    import training.train

    calls = []
    monkeypatch.setattr(training.train, "train_crm", lambda data_dir, cfg: calls.append((data_dir, cfg)) or _Trained())
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text(f"retrain_on_alert: true\nretrain_data_dir: {tmp_path / 'data'}\n", encoding="utf-8")
    write_records(env, feature_rows(1200, seed=2, shift=0.5), spread(1200, "2025-06-02", 5))

    closed = "http://127.0.0.1:9/hook"  # discard port: nothing listens
    res = invoke("--from", "2025-06-02", "--to", "2025-06-08", "--config", str(cfg), "--webhook", closed)
    assert res.exit_code == 3, res.output
    assert "ALERT" in res.output and "PSI" in res.output
    assert "webhook: failed" in res.output
    latest = json.loads((env / "drift" / MODEL / "latest.json").read_text(encoding="utf-8"))
    assert latest["status"] == "drift"
    assert set(latest["data_drift"]["drifted_features"]) == {"age", "spend_90d", "n_visit_30d"}
    assert latest["prediction_drift"]["psi"] > 0.2
    assert len(calls) == 1 and str(calls[0][0]) == str(tmp_path / "data")
    assert calls[0][1].model_name == MODEL and calls[0][1].task == "lead"
    assert "retrain: trained v2 (run r), champion kept: AUC gain below margin" in res.output


class _Trained:
    version, promoted, decision, run_id = "2", False, "AUC gain below margin", "r"


def test_late_labels_give_weekly_performance(env: Path, tmp_path: Path):
    rows = feature_rows(1400, seed=3)
    ts = spread(1400, "2025-06-02", 13)  # ISO weeks 23 and 24
    write_records(env, rows, ts)
    r = np.random.default_rng(4)
    label = (rows["probability"] + r.normal(0, 0.05, len(rows)) > 0.3).astype(int)
    outcomes = pd.DataFrame(
        {
            "customer_id": [f"C{i:05d}" for i in range(len(rows))],
            "outcome_ts": ts + pd.Timedelta(days=3),
            "label": label,
        }
    )
    # the horizon of every row has passed by this last outcome
    outcomes.loc[len(outcomes)] = ["X", pd.Timestamp("2025-08-31", tz="UTC"), 0]
    path = tmp_path / "outcomes.csv"
    outcomes.to_csv(path, index=False)
    out = tmp_path / "out"
    res = invoke("--from", "2025-06-01", "--to", "2025-06-15", "--outcomes", str(path), "--out", str(out))
    assert res.exit_code == 0, res.output
    perf = json.loads((out / "drift_summary.json").read_text(encoding="utf-8"))["performance"]
    assert perf["join"]["labelled"] == 1400 and perf["join"]["pending"] == 0
    assert [w["week"] for w in perf["weeks"]] == ["2025-W23", "2025-W24"]
    assert sum(w["rows"] for w in perf["weeks"]) == 1400
    assert perf["overall"]["roc_auc"] > 0.9 and perf["training_roc_auc"] == 0.8
    assert perf["overall"]["observed_rate"] == pytest.approx(label.mean())
    assert "2025-W24" in res.output and "ROC-AUC" in res.output


def test_empty_window_exit_2_clear_message(env: Path):
    write_records(env, feature_rows(100, seed=5), spread(100, "2025-06-02", 1))
    res = invoke("--from", "2025-07-01", "--to", "2025-07-07")
    assert res.exit_code == 2
    assert "no recorded rows for lead_scoring v1" in res.stderr and "Traceback" not in res.output
    assert not (env / "drift" / MODEL / "latest.json").exists()
    # rows of another version only: named in the message
    write_records(env, feature_rows(100, seed=6), spread(100, "2025-07-02", 1), version="7")
    res = invoke("--from", "2025-07-01", "--to", "2025-07-07")
    assert res.exit_code == 2 and "other versions in the window: v7: 100" in res.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--since", "7d", "--from", "2025-06-01"), "not both"),
        (("--since", "a week"), "--since"),
        (("--version", "9"), "no version 9"),
        (("--outcomes", "missing.csv"), "outcomes file not found"),
        (("--webhook", "ftp://example.org"), "--webhook"),
        (("--config", "nope.yaml"), "config file not found"),
    ],
)
def test_bad_input_exit_2(env: Path, args: tuple[str, ...], message: str):
    res = invoke(*args)
    assert res.exit_code == 2, res.output
    assert message in res.stderr and "Traceback" not in res.output


def test_window_reader_matches_serving_records(tmp_path: Path):
    """The Arrow reader returns what ``serving.http.records.read_records`` returns, also across differing files."""
    from serving.http.records import read_records
    from serving.monitoring.drift import read_window_records

    home = tmp_path / "home"
    write_records(home, feature_rows(300, seed=8), spread(300, "2025-06-02", 3))
    older = feature_rows(50, seed=9).drop(columns=["province"])  # a file without one feature
    write_records(home, older, spread(50, "2025-06-03 12:00", 0.2), version="2")
    since, until = pd.Timestamp("2025-06-02 12:00", tz="UTC"), pd.Timestamp("2025-06-04 06:00", tz="UTC")
    expected = read_records(home, MODEL, since=since, until=until)
    cols = ["age", "province", "days_since_visit"]
    got, counts = read_window_records(home, MODEL, since, until, features=cols, with_customer_id=True)
    assert len(got) == len(expected) > 0 and counts == {"1": len(got) - 50, "2": 50}
    got = got.sort_values(["ts", "customer_id"]).reset_index(drop=True)
    expected = expected.sort_values(["ts", "customer_id"], kind="stable").reset_index(drop=True)
    assert (got["ts"] == expected["ts"]).all()
    for c in ("model_version", "source", "customer_id", "province"):
        assert (
            got[c].astype(object).where(got[c].notna(), None).tolist()
            == expected[c].astype(object).where(expected[c].notna(), None).tolist()
        )
    np.testing.assert_allclose(got[["probability", "age"]], expected[["probability", "age"]])
    assert got["province"].isna().sum() == 50 and set(got["model_version"].astype(str)) == {"1", "2"}
    v2, _ = read_window_records(home, MODEL, since, until, features=cols, version="2")
    assert len(v2) == 50 and v2["province"].isna().all()
    empty, counts = read_window_records(home, MODEL, "2024-01-01", "2024-02-01", features=cols)
    assert len(empty) == 0 and "model_version" in empty.columns and counts == {}


def test_retention_prunes_old_records_and_reports_and_says_so(env: Path, tmp_path: Path):
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("records_retention_days: 30\nreports_retention_days: 10\nlog_to_mlflow: false\n", encoding="utf-8")
    now = pd.Timestamp.now(tz="UTC")
    write_records(env, feature_rows(300, seed=5), spread(300, (now - pd.Timedelta(days=2)).isoformat(), 1))
    old_day = (now - pd.Timedelta(days=45)).strftime("%Y-%m-%d")
    write_records(env, feature_rows(50, seed=6), spread(50, old_day, 0.5))
    edge_day = (now - pd.Timedelta(days=30)).strftime("%Y-%m-%d")  # partly inside the 30 days: kept
    write_records(env, feature_rows(50, seed=7), spread(50, edge_day, 0.5))
    reports = env / "drift" / MODEL / "reports"
    old_report = reports / (now - pd.Timedelta(days=20)).strftime("%Y%m%dT%H%M%SZ")
    new_report = reports / (now - pd.Timedelta(days=2)).strftime("%Y%m%dT%H%M%SZ")
    for d in (old_report, new_report):
        d.mkdir(parents=True)
        (d / "drift_summary.json").write_text("{}", encoding="utf-8")
    (reports / "by-hand").mkdir()  # not a run's folder: never touched

    res = invoke("--since", "7d", "--config", str(cfg))
    assert res.exit_code == 0, res.output
    assert "retention: pruned 1 record day partition(s) older than 30 days (1 files" in res.output
    assert "pruned 1 report folder(s) older than 10 days (1 files" in res.output
    days = sorted(p.name for p in (env / "records" / MODEL).iterdir())
    assert f"date={old_day}" not in days and f"date={edge_day}" in days
    assert not old_report.exists() and new_report.exists() and (reports / "by-hand").exists()
    latest = json.loads((env / "drift" / MODEL / "latest.json").read_text(encoding="utf-8"))
    assert latest["retention"]["records"]["pruned"] == [f"date={old_day}"]
    assert latest["retention"]["reports"]["pruned"] == [old_report.name]
    assert latest["rows"]["current"] == 300  # the window's rows were read before anything was pruned


def test_full_disk_for_mlflow_artifacts_keeps_the_verdict_and_the_files_whole(
    env: Path, tmp_path: Path, small_tmpfs: Path
):
    """MLflow's artifact store on a real, full tmpfs: the run is not logged (a note says why), the verdict and
    exit code stand, and the summary files the command writes are whole."""
    from mlflow import MlflowClient

    from tests.integration.conftest import fill_disk

    exp = MlflowClient().create_experiment("full-disk", artifact_location=(small_tmpfs / "artifacts").as_uri())
    cfg = tmp_path / "monitor.yaml"
    cfg.write_text("experiment: full-disk\n", encoding="utf-8")
    now = pd.Timestamp.now(tz="UTC")
    write_records(env, feature_rows(1500, seed=1), spread(1500, (now - pd.Timedelta(hours=20)).isoformat(), 0.5))
    fill_disk(small_tmpfs)
    out = tmp_path / "out"
    res = invoke("--since", "1d", "--out", str(out), "--config", str(cfg))
    assert res.exit_code == 0, res.output
    assert "note: MLflow run not logged: OSError" in res.output and "No space left on device" in res.output
    summary = json.loads((out / "drift_summary.json").read_text(encoding="utf-8"))
    assert summary["status"] == "ok" and "mlflow_run_id" not in summary
    assert json.loads((env / "drift" / MODEL / "latest.json").read_text(encoding="utf-8")) == summary
    (run,) = MlflowClient().search_runs([exp])
    assert run.info.status == "FAILED"


def test_full_disk_for_the_report_is_a_clear_error_without_partial_files(env: Path, small_tmpfs: Path):
    """The report folder on a full disk: exit 2 with one line naming the folder, no partial file in it."""
    from tests.integration.conftest import fill_disk

    now = pd.Timestamp.now(tz="UTC")
    write_records(env, feature_rows(1500, seed=1), spread(1500, (now - pd.Timedelta(hours=20)).isoformat(), 0.5))
    out = small_tmpfs / "out"
    fill_disk(small_tmpfs)
    res = invoke("--since", "1d", "--out", str(out))
    assert res.exit_code == 2, res.output
    assert f"cannot write the monitor's output to {out}: " in res.output and "No space left" in res.output
    assert not out.exists() or not [p for p in out.rglob("*") if p.is_file()]
