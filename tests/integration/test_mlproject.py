"""Every entry point of ``mlproject/MLproject`` through ``mlflow run`` (a subprocess, ``--env-manager local``).

Real MLflow, real files: ``synth`` writes a small demo data dir, the training entry points log into throwaway
SQLite tracking stores and registries (``MLFLOW_TRACKING_URI`` of the subprocess), and the run tree is read back
with ``MlflowClient``: one parent run per job (the run ``mlflow run`` opened, in the ``--experiment-name``
experiment), the candidates as its child runs, metrics and artifacts, the registered versions and aliases.
``train_lead`` runs once from the repository root and once from inside ``mlproject/``, with relative paths.

The runs are small (a thousand customers, two candidates) and start together when the module does
(:class:`Runs`): two at a time, so both cores work while a subprocess imports or waits, each entry point with a
SQLite store of its own (SQLite serialises writers; the two ``train_lead`` runs share theirs and run one after
the other), each a copy of one empty store (MLflow migrates the schema once, not nine times). ``synth`` runs
first and its data dir feeds ``train_lead``, ``train_churn``, ``segment_fit``, ``train_uplift`` (the demo's
randomised coupon campaign) and ``forecast``. Each test waits for its own entry
point's runs and checks them; a failed run fails its test.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from mlflow import MlflowClient
from mlflow.entities import Run

from tests.conftest import ROOT
from training.uplift import LEARNERS

pytestmark = pytest.mark.slow

MLFLOW = Path(sys.executable).parent / "mlflow"
PROJECT = ROOT / "mlproject"
SMALL = {
    "candidates": ["logreg", "xgboost"],
    "xgb_search": {"n_trials": 1, "n_estimators": [60], "max_depth": [3]},
    "reference_rows": 500,
}
LABELS = {"horizon_days": 30, "n_cutoffs": 3, "cutoff_step_days": 30}
#: entry point (as the tests name it) → its experiment; each has a store of its own
EXPERIMENTS = {
    "synth": "mlp-synth",
    "lead": "mlp-lead",
    "churn": "mlp-churn",
    "table": "mlp-table",
    "segments": "mlp-segments",
    "xsell": "mlp-xsell",
    "uplift": "mlp-uplift",
    "uplift_crm": "mlp-uplift-crm",
    "forecast": "mlp-forecast",
}
#: the demo data dir of ``synth``: customers, days of history, seed
DEMO = {"customers": "1000", "days": "200", "seed": "7"}


@dataclass
class Project:
    """A throwaway tracking store and the ``mlflow run`` runner pointed at it."""

    tmp: Path
    uri: str
    env: dict[str, str]
    logs: list[str] = field(default_factory=list)

    @property
    def client(self) -> MlflowClient:
        """A client of this store (no process-wide MLflow state is touched)."""
        return MlflowClient(tracking_uri=self.uri, registry_uri=self.uri)

    def run(self, entry: str, params: dict[str, str], experiment: str, cwd: Path = ROOT) -> str:
        """``mlflow run`` one entry point from ``cwd``; returns the id of the run MLflow opened."""
        uri = "." if cwd == PROJECT else os.path.relpath(PROJECT, cwd)
        cmd = [str(MLFLOW), "run", uri, "-e", entry, "--env-manager", "local", "--experiment-name", experiment]
        for k, v in params.items():
            cmd += ["-P", f"{k}={v}"]
        proc = subprocess.run(cmd, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=900)
        out = proc.stdout + proc.stderr
        self.logs.append(out)
        assert proc.returncode == 0, f"mlflow run -e {entry} failed:\n{out[-4000:]}"
        m = re.search(r"=== Run \(ID '([0-9a-f]+)'\) succeeded ===", out)
        assert m, out[-2000:]
        return m.group(1)

    def parents(self, experiment: str) -> list[Run]:
        """Top-level runs of an experiment."""
        exp = self.client.get_experiment_by_name(experiment)
        runs = self.client.search_runs([exp.experiment_id])
        return [r for r in runs if "mlflow.parentRunId" not in r.data.tags]

    def children(self, run: Run) -> list[Run]:
        """Child runs of ``run``."""
        return self.client.search_runs(
            [run.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{run.info.run_id}'"
        )


def _yaml(path: Path, body: dict) -> Path:
    path.write_text(json.dumps(body), encoding="utf-8")  # JSON is YAML
    return path


def _empty_store(tmp: Path) -> Path:
    """An empty SQLite store with MLflow's schema, made once: a new store runs every schema migration (seconds of
    SQLite commits each), a copy of this file is the same empty store."""
    db = tmp / "empty-store" / "mlflow.db"
    db.parent.mkdir()
    uri = f"sqlite:///{db}"
    MlflowClient(tracking_uri=uri, registry_uri=uri).search_experiments()
    return db


def _project(tmp: Path, key: str, empty: Path) -> Project:
    """A SQLite store for one entry point (a copy of ``empty``) whose experiment keeps its artifacts in the
    temporary folder."""
    root = tmp / key
    root.mkdir()
    shutil.copy2(empty, root / "mlflow.db")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_experiment(EXPERIMENTS[key], artifact_location=(root / "artifacts").as_uri())
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env |= {
        "MLFLOW_TRACKING_URI": uri,
        "MLFLOW_REGISTRY_URI": uri,
        # the project's venv "activated": run.py's `python` is this interpreter
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")]),
        "OMP_WAIT_POLICY": "PASSIVE",
        "MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR": "false",
    }
    env.pop("PYTHONPATH", None)
    return Project(root, uri, env)


@dataclass
class Runs:
    """The entry points' runs, started in the background when the module starts: ``result(key)`` waits for one
    and returns what its job returned (run ids), or raises what made it fail."""

    tmp: Path
    projects: dict[str, Project]
    futures: dict[str, Future] = field(default_factory=dict)

    def result(self, key: str) -> dict[str, str]:
        """What the job of ``key`` returned, once it is done."""
        return self.futures[key].result()


def _jobs(tmp: Path, demo: Path, projects: dict[str, Project], synth: Callable[[], Path]) -> dict[str, Callable]:
    """Each entry point's job: prepare its inputs, ``mlflow run`` it (after ``synth`` when it reads the demo)."""

    def synth_job() -> dict[str, str]:
        run_id = projects["synth"].run("synth", {**DEMO, "out": str(demo)}, "mlp-synth")
        return {"run": run_id}

    def lead_job() -> dict[str, str]:
        data = synth()
        config = _yaml(tmp / "lead.yaml", {**SMALL, "labels": LABELS})
        lead = projects["lead"]
        # from the root: relative data dir (MLflow resolves `path` against the caller's directory), config relative
        # to the repository root (run.py resolves it)
        first = lead.run(
            "train_lead", {"data": os.path.relpath(data, ROOT), "config": os.path.relpath(config, ROOT)}, "mlp-lead"
        )
        # from inside mlproject/: the data dir relative to mlproject/, the config absolute
        second = lead.run(
            "train_lead", {"data": os.path.relpath(data, PROJECT), "config": str(config)}, "mlp-lead", cwd=PROJECT
        )
        return {"first": first, "second": second}

    def churn_job() -> dict[str, str]:
        data = synth()
        config = _yaml(tmp / "churn.yaml", {**SMALL, "labels": {**LABELS, "churn_lookback_days": 120}})
        return {"run": projects["churn"].run("train_churn", {"data": str(data), "config": str(config)}, "mlp-churn")}

    def table_job() -> dict[str, str]:
        table = _account_table(tmp / "accounts.csv")
        config = _yaml(tmp / "table.yaml", {**SMALL, "task": "table"})
        params = {
            "table": str(table),
            "target": "Churn",
            "name": "account_churn",
            "id": "account",
            "config": str(config),
        }
        return {"run": projects["table"].run("train_table", params, "mlp-table")}

    def segments_job() -> dict[str, str]:
        data = synth()
        return {"run": projects["segments"].run("segment_fit", {"data": os.path.relpath(data, ROOT)}, "mlp-segments")}

    def xsell_job() -> dict[str, str]:
        from tests.integration.test_cross_sell_job import _data_dir

        root = tmp / "xsell-data"
        root.mkdir()
        data = _data_dir(root)
        params = {"data": str(data), "as_of": "2025-05-01"}
        return {"run": projects["xsell"].run("train_cross_sell", params, "mlp-xsell")}

    def uplift_job() -> dict[str, str]:
        from tests.unit.test_uplift import _planted

        table = tmp / "campaign.csv"
        _planted(1200).to_csv(table, index=False)
        params = {"table": str(table), "treatment": "arm", "outcome": "bought", "bootstrap": "0"}
        return {"run": projects["uplift"].run("train_uplift_table", params, "mlp-uplift")}

    def uplift_crm_job() -> dict[str, str]:
        data = synth()
        params = {"data": str(data), "bootstrap": "0"}
        return {"run": projects["uplift_crm"].run("train_uplift", params, "mlp-uplift-crm")}

    def forecast_job() -> dict[str, str]:
        data = synth()
        out = tmp / "forecast-out"
        params = {"data": str(data), "as_of": "2025-03-31", "horizon": "8w", "origins": "2", "out": str(out)}
        return {"run": projects["forecast"].run("forecast", params, "mlp-forecast"), "out": str(out)}

    # in the order they are started, two at a time: synth with table (which needs no demo data), then the
    # longest chain (two lead runs) and the rest
    return {
        "synth": synth_job,
        "table": table_job,
        "lead": lead_job,
        "churn": churn_job,
        "xsell": xsell_job,
        "segments": segments_job,
        "uplift": uplift_job,
        "uplift_crm": uplift_crm_job,
        "forecast": forecast_job,
    }


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    """Every entry point's runs, two at a time in the background (module teardown waits for all of them)."""
    tmp = tmp_path_factory.mktemp("mlproject")
    empty = _empty_store(tmp)
    projects = {key: _project(tmp, key, empty) for key in EXPERIMENTS}
    result = Runs(tmp, projects)
    demo = tmp / "demo" / "data"  # an absolute output folder that does not exist yet

    def synth() -> Path:
        result.futures["synth"].result()
        return demo

    pool = ThreadPoolExecutor(2, thread_name_prefix="mlflow-run")
    try:
        for key, job in _jobs(tmp, demo, projects, synth).items():
            result.futures[key] = pool.submit(job)
        yield result
    finally:
        pool.shutdown(wait=True, cancel_futures=False)


def _load_run_py():
    spec = importlib.util.spec_from_file_location("mlproject_run", PROJECT / "run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_run_py_resolves_project_files_against_the_repository_root(tmp_path: Path) -> None:
    run = _load_run_py()
    assert run.ROOT == ROOT
    args = ["train", "table", "--table", "/abs/t.csv", "--id", "", "--config", "configs/table.yaml", "--drop-leaks"]
    assert run.resolve_args(args, tmp_path) == [
        "train",
        "table",
        "--table",
        "/abs/t.csv",
        "--config",
        str(tmp_path / "configs" / "table.yaml"),
        "--drop-leaks",
    ]
    assert run.resolve_args(["synth", "--out", "data/demo", "--seed", "7"], tmp_path) == [
        "synth",
        "--out",
        str(tmp_path / "data" / "demo"),
        "--seed",
        "7",
    ]
    assert run.resolve_args(["segment", "fit", "--config", "/etc/x.yaml"], tmp_path)[-1] == "/etc/x.yaml"
    # every default config names a file of the repository; inputs are required path parameters
    spec = yaml.safe_load((PROJECT / "MLproject").read_text(encoding="utf-8"))
    for name, entry in spec["entry_points"].items():
        for pname, p in entry["parameters"].items():
            if isinstance(p, dict) and pname == "config":
                assert (ROOT / p["default"]).is_file(), f"{name}: default config {p['default']} is missing"
            if pname in ("data", "table"):
                assert p == "path", f"{name}: input {pname} must be a required path parameter"


def test_synth_writes_a_new_data_dir(runs: Runs) -> None:
    run_id = runs.result("synth")["run"]
    project = runs.projects["synth"]
    demo = runs.tmp / "demo" / "data"
    for table in ("customers", "orders", "interactions", "marketing_touches"):
        assert (demo / f"{table}.parquet").is_file()
    (run,) = project.parents("mlp-synth")
    assert run.info.run_id == run_id and run.info.status == "FINISHED"
    assert run.data.tags["mlflow.project.entryPoint"] == "synth"


def _check_training_run(project: Project, run_id: str, entry: str, experiment: str) -> Run:
    """The run MLflow opened is the job's parent run: params, test metrics, evaluation artifacts, children."""
    run = project.client.get_run(run_id)
    assert run.info.status == "FINISHED"
    assert run.info.experiment_id == project.client.get_experiment_by_name(experiment).experiment_id
    assert run.data.tags["mlflow.project.entryPoint"] == entry
    assert "mlflow.parentRunId" not in run.data.tags
    for key in ("rows_train", "rows_test", "data_hash", "best_candidate", "model_name"):
        assert key in run.data.params, key
    for key in ("test_roc_auc", "test_pr_auc", "test_ece", "test_capture_top20", "train_seconds"):
        assert key in run.data.metrics, key
    arts = {a.path for a in project.client.list_artifacts(run_id, "evaluation")}
    for name in ("gain_chart.png", "calibration.png", "candidates.csv", "reference.parquet"):
        assert f"evaluation/{name}" in arts
    assert "promotion_decision.json" in {a.path for a in project.client.list_artifacts(run_id)}
    children = project.children(run)
    assert {c.data.params["candidate"] for c in children} == {"logreg", "xgboost_1"}
    for c in children:
        assert c.info.experiment_id == run.info.experiment_id
        assert "val_roc_auc" in c.data.metrics and "val_log_loss" in c.data.metrics
    return run


def _check_version(project: Project, name: str, version: str, run_id: str) -> None:
    """Version ``version`` of ``name`` holds the model logged by the parent run ``run_id``."""
    mv = project.client.get_model_version(name, version)
    assert mv.run_id == run_id and mv.status == "READY"


def test_train_lead_from_the_repository_root_and_from_inside_mlproject(runs: Runs) -> None:
    ids = runs.result("lead")
    project = runs.projects["lead"]
    first, second = ids["first"], ids["second"]
    for run_id in (first, second):
        _check_training_run(project, run_id, "train_lead", "mlp-lead")
    # one parent per job: the jobs logged into the runs mlflow run opened, none of their own
    assert {r.info.run_id for r in project.parents("mlp-lead")} == {first, second}

    client = project.client
    _check_version(project, "lead_scoring", "1", first)
    _check_version(project, "lead_scoring", "2", second)
    assert client.get_model_version("lead_scoring", "1").tags["crmscore.gate.promote"] == "true"
    assert str(client.get_model_version_by_alias("lead_scoring", "challenger").version) == "2"
    gate = client.get_model_version("lead_scoring", "2").tags
    assert gate["crmscore.gate.champion_version"] == "1"
    champion = "2" if gate["crmscore.gate.promote"] == "true" else "1"
    assert str(client.get_model_version_by_alias("lead_scoring", "champion").version) == champion
    assert client.get_run(second).data.tags["crmscore.promoted"] == gate["crmscore.gate.promote"]


def test_train_churn(runs: Runs) -> None:
    run_id = runs.result("churn")["run"]
    project = runs.projects["churn"]
    run = _check_training_run(project, run_id, "train_churn", "mlp-churn")
    assert run.data.params["task"] == "churn"
    assert [r.info.run_id for r in project.parents("mlp-churn")] == [run_id]
    _check_version(project, "churn_risk", "1", run_id)
    for alias in ("champion", "challenger"):
        assert str(project.client.get_model_version_by_alias("churn_risk", alias).version) == "1"


ACCOUNTS = 1500


def _emails(n: int = ACCOUNTS) -> list[str]:
    return [f"person{i}@example.com" for i in range(n)]


def _account_table(path: Path) -> Path:
    """A raw account table (id, an e-mail column, two numbers, a plan) with a churn column that depends on them."""
    rng = np.random.default_rng(0)
    n = ACCOUNTS
    usage, tickets = rng.normal(size=n), rng.normal(size=n)
    plan = rng.choice(["basic", "pro", "team"], size=n)
    p = 1 / (1 + np.exp(-(usage - 0.5 * tickets + 0.8 * (plan == "pro") - 1)))
    pd.DataFrame(
        {
            "account": [f"A{i:05d}" for i in range(n)],
            "email": _emails(n),
            "usage": usage.round(3),
            "tickets": tickets.round(3),
            "plan": plan,
            "Churn": np.where(rng.random(n) < p, "Yes", "No"),
        }
    ).to_csv(path, index=False)
    return path


def test_train_table(runs: Runs) -> None:
    run_id = runs.result("table")["run"]
    project = runs.projects["table"]
    run = _check_training_run(project, run_id, "train_table", "mlp-table")
    assert run.data.params["target_column"] == "Churn" and run.data.params["id_column"] == "account"
    assert "email" in run.data.tags["crmscore.dropped_columns"]
    logged = json.dumps([run.data.params, run.data.tags])
    assert not any(e in logged for e in _emails()[:50]), "an e-mail address was logged"
    _check_version(project, "account_churn", "1", run_id)
    assert str(project.client.get_model_version_by_alias("account_churn", "champion").version) == "1"


def test_segment_fit_with_the_default_config(runs: Runs) -> None:
    run_id = runs.result("segments")["run"]
    project = runs.projects["segments"]
    run = project.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.project.entryPoint"] == "segment_fit"
    assert [r.info.run_id for r in project.parents("mlp-segments")] == [run_id]
    assert run.data.params["config"] == "configs/segment.yaml"  # the default, resolved by run.py
    for key in ("silhouette", "bgnbd_r", "gg_p", "total_expected_value_90d"):
        assert key in run.data.metrics, key
    arts = {a.path for a in project.client.list_artifacts(run_id, "segments")}
    assert {"segments/segment_profiles.csv", "segments/segment_sizes.png", "segments/segment_config.json"} <= arts
    _check_version(project, "customer_segments", "1", run_id)
    assert str(project.client.get_model_version_by_alias("customer_segments", "champion").version) == "1"


def test_train_cross_sell(runs: Runs) -> None:
    run_id = runs.result("xsell")["run"]
    project = runs.projects["xsell"]
    run = project.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.project.entryPoint"] == "train_cross_sell"
    assert [r.info.run_id for r in project.parents("mlp-xsell")] == [run_id]  # the job logged into MLflow's run
    assert "test_item_item.ndcg_at_10_all" in run.data.metrics, sorted(run.data.metrics)
    version = project.client.search_model_versions("name='cross_sell'")
    assert [v.run_id for v in version] == [run_id]


def test_train_uplift_table(runs: Runs) -> None:
    run_id = runs.result("uplift")["run"]
    project = runs.projects["uplift"]
    run = project.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.project.entryPoint"] == "train_uplift_table"
    assert [r.info.run_id for r in project.parents("mlp-uplift")] == [run_id]
    learners = {r.data.tags["mlflow.runName"] for r in project.children(run)}
    assert learners >= {"t_learner", "class_transform"}
    assert str(project.client.get_model_version_by_alias("coupon_uplift", "champion").version) == "1"


def test_train_uplift_from_the_demo_campaign(runs: Runs) -> None:
    run_id = runs.result("uplift_crm")["run"]
    project = runs.projects["uplift_crm"]
    run = project.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.project.entryPoint"] == "train_uplift"
    assert [r.info.run_id for r in project.parents("mlp-uplift-crm")] == [run_id]  # the job logged into MLflow's run
    params = run.data.params
    assert params["task"] == "uplift" and params["campaign_id"] == "CMP-RCT-COUPON", params
    assert params["window_days"] == "14" and params["model_name"] == "coupon_uplift"
    children = project.children(run)
    assert {r.data.tags["mlflow.runName"] for r in children} == set(LEARNERS)
    assert all(c.info.status == "FINISHED" and "val_qini_area" in c.data.metrics for c in children)
    assert params["best_learner"] in LEARNERS
    assert "test_qini_area" in run.data.metrics and "test_uplift_top10" in run.data.metrics
    arts = {a.path for a in project.client.list_artifacts(run_id, "evaluation")}
    assert {"evaluation/qini_curve.png", "evaluation/uplift_curve.png"} <= arts
    _check_version(project, "coupon_uplift", "1", run_id)
    assert str(project.client.get_model_version_by_alias("coupon_uplift", "champion").version) == "1"
    assert project.client.get_model_version("coupon_uplift", "1").tags["crmscore.task"] == "uplift"


def test_forecast(runs: Runs) -> None:
    done = runs.result("forecast")
    run_id = done["run"]
    project = runs.projects["forecast"]
    run = project.client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.data.tags["mlflow.project.entryPoint"] == "forecast"
    assert [r.info.run_id for r in project.parents("mlp-forecast")] == [run_id]
    assert (Path(done["out"]) / "forecast.csv").exists()
    assert run.data.params["horizon_weeks"] == "8"
