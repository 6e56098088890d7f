"""One encoder, one explainer: the same rows scored through all five paths give bit-identical probabilities.

Two champions of a temporary MLflow store: ``lead_scoring`` (XGBoost, ordinal encoding, TreeSHAP reasons; the
session registry's, ``crm_registry``) and ``churn_risk`` (logistic regression, one-hot encoding, linear reasons;
trained here into a private copy of that registry). They score the same customers through

1. training: ``CRMScorer.predict_proba`` / ``CRMScorer.explain`` of the registered model;
2. the HTTP service: a real ``crmscore serve`` on a free port, ``/score_leads`` and ``/predict_churn``;
3. batch: ``serving.batch.score_batch`` on a CSV of the rows;
4. Spark: ``serving.batch.spark.score_batch_spark`` on the session's ``local[2]`` session (skipped, with the
   reason, without Java);
5. the profile page: ``POST /ui/api/profile`` of the same server. The page builds its rows online from the
   customer's record and events (``features.build.build_online_features``) at the page's ``as_of``; the test
   builds the same rows the same way and scores them with ``CRMScorer.predict_proba``/``explain``. (Online and
   batch feature rows agree only to the last bits for some customers, which a linear model's probability
   shows; that is the feature builder's contract, not the encoder's, so it is checked with a tolerance.)

Probabilities must be equal bit for bit; reasons equal where the path gives them (service and page as
objects, batch and Spark as texts).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest

from tests.integration.conftest import Registry, copy_registry, keep_mlflow_globals, running_server

pytestmark = pytest.mark.slow

AS_OF = "2025-06-01"
N_ROWS = 40
#: registered name → (route of the service, candidate trained, the page's result key)
MODELS = {
    "lead_scoring": ("/score_leads", "xgboost", "lead", "lead"),
    "churn_risk": ("/predict_churn", "logreg", "churn", "churn"),
}


def _py(v: Any) -> Any:
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


@pytest.fixture(scope="module")
def reg(crm_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The session registry's XGBoost lead champion, and a logistic-regression churn model made champion.

    The lead model is the session's own (``crm_registry``: XGBoost, ordinal encoding, same data); only the
    logistic-regression churn model (one-hot encoding) is trained here, into a private copy of the registry
    database whose experiment keeps its artifacts in this module's folder (the session's stay untouched)."""
    from mlflow import MlflowClient

    from features.config import LabelConfig
    from training.config import TrainConfig
    from training.registry import set_champion
    from training.train import train_crm

    reg = copy_registry(crm_registry, tmp_path_factory.mktemp("one_encoder"))
    experiment = "one-encoder-churn"
    MlflowClient(reg.uri, reg.uri).create_experiment(experiment, (reg.root / "artifacts").as_uri())
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", reg.uri)
        mp.setenv("MLFLOW_REGISTRY_URI", reg.uri)
        mp.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
        mp.chdir(reg.root)
        labels = LabelConfig(n_cutoffs=3, horizon_days=60, churn_lookback_days=365)
        cfg = TrainConfig(task="churn", candidates=["logreg"], labels=labels, experiment=experiment)
        result = train_crm(reg.data, cfg)
        set_champion(result.model_name, result.version, "one-encoder test: the logistic-regression champion")
        reg.versions[result.model_name] = result.version
    assert set(reg.versions) == set(MODELS)
    return reg


@pytest.fixture(scope="module")
def scored(reg: Registry, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    """Per model: the rows and what each path made of them (probabilities by customer id, reasons)."""
    import mlflow

    from features.build import CRMSnapshot
    from features.io import load_tables
    from serving.batch import BatchOptions, score_batch

    work = tmp_path_factory.mktemp("one_encoder_paths")
    tables = load_tables(reg.data)
    out: dict[str, dict[str, Any]] = {}
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", reg.uri)
        mp.setenv("MLFLOW_REGISTRY_URI", reg.uri)
        mp.setenv("CRMSCORE_HOME", str(work / "home"))
        for name in MODELS:
            scorer = mlflow.sklearn.load_model(f"models:/{name}@champion")
            feats = scorer.builder.transform(CRMSnapshot(tables, pd.Timestamp(AS_OF))).head(N_ROWS)
            ids = [str(c) for c in feats.index]
            csv = work / f"{name}.csv"
            feats.rename_axis("customer_id").reset_index().to_csv(csv, index=False)  # floats as repr: exact
            res: dict[str, Any] = {"scorer": scorer, "features": feats, "ids": ids, "csv": csv}
            # 1. training
            res["training"] = dict(zip(ids, scorer.predict_proba(feats)[:, 1].tolist(), strict=True))
            res["training_reasons"] = dict(zip(ids, scorer.explain(feats, top=3), strict=True))
            # 5. the profile page's rows, built as the page builds them, scored by training's path
            page_rows = _page_rows(reg, scorer, ids[:10])
            res["page_training"] = dict(zip(ids[:10], scorer.predict_proba(page_rows)[:, 1].tolist(), strict=True))
            res["page_training_reasons"] = dict(zip(ids[:10], scorer.explain(page_rows, top=3), strict=True))
            # 3. batch
            score_batch(BatchOptions(model=f"{name}@champion", input=str(csv), output=str(work / f"{name}.out.csv"),
                                     reasons=3, records=False))
            res["batch"] = _read_scored(work / f"{name}.out.csv")
            out[name] = res
        # 2. the HTTP service and 5. the profile page, one server for both
        env = {"CRMSCORE_DATA_DIR": str(reg.data), "CRMSCORE_AS_OF": AS_OF, "CRMSCORE_PIN_MODELS": "1"}
        with running_server(reg, work / "svc", env) as server, httpx.Client(
            base_url=server.url, headers=server.headers, timeout=120
        ) as client:
            for name, (route, _, _, page_key) in MODELS.items():
                res = out[name]
                leads = [{"customer_id": cid, "features": {k: _py(v) for k, v in row.items()}}
                         for cid, row in zip(res["ids"], res["features"].to_dict("records"), strict=True)]
                r = client.post(route, json={"leads": leads})
                assert r.status_code == 200, r.text
                body = r.json()["results"]
                res["http"] = {x["customer_id"]: x["probability"] for x in body}
                res["http_reasons"] = {x["customer_id"]: x["reasons"] for x in body}
                res["page"], res["page_reasons"] = {}, {}
                for cid in res["ids"][:10]:
                    r = client.post("/ui/api/profile", json={"customer_id": cid})
                    assert r.status_code == 200, r.text
                    got = r.json()[page_key]
                    assert "error" not in got, got
                    res["page"][cid] = got["probability"]
                    res["page_reasons"][cid] = got["reasons"]
    return out


def _page_rows(reg: Registry, scorer: Any, ids: list[str]) -> pd.DataFrame:
    """The feature rows the profile page scores for ``ids``: its index's record and events as a ``Lead``, through
    the service's online feature step (``serving.http.postprocess.online_feature_rows``)."""
    from serving.http.postprocess import online_feature_rows
    from serving.http.schemas import Lead
    from serving.ui.page import ProfileIndex

    index = ProfileIndex.load(reg.data, AS_OF)
    leads = []
    for cid in ids:
        row = index.row_of(cid)
        body = {"profile": index.profile_of(index.customer_record(row)), "events": index.events_of(row),
                "as_of": index.as_of_iso}
        leads.append(Lead.model_validate(body))
    rows = [online_feature_rows(scorer.builder, [lead], None)[0] for lead in leads]
    return pd.DataFrame.from_records(rows).reindex(columns=list(scorer.feature_names_in_))


def _read_scored(path: Path) -> dict[str, Any]:
    frame = pd.read_csv(path, dtype=str, keep_default_na=False)
    return {"probability": dict(zip(frame["customer_id"], frame["probability"].astype(float), strict=True)),
            "reasons": {cid: [row[c] or None for c in frame.columns if c.startswith("reason_")]
                        for cid, row in zip(frame["customer_id"], frame.to_dict("records"), strict=True)}}


def _reason_texts(reasons: dict[str, list[dict]], top: int = 3) -> list[str | None]:
    """A path's reason objects as batch writes them (``label = value (±c)``; None for no reason)."""
    from serving.batch.score import _number_text

    cells: list[str | None] = []
    for side in ("positive", "negative"):
        items = reasons[side]
        for k in range(top):
            if k >= len(items):
                cells.append(None)
                continue
            r = items[k]
            v = r["value"]
            value = "missing" if v is None else v if isinstance(v, str) else _number_text(float(v))
            cells.append(f"{r['label']} = {value} ({np.round(r['contribution'], 2):+.2f})")
    return cells


@pytest.mark.parametrize("name", list(MODELS))
def test_service_and_batch_probabilities_are_the_training_ones_bit_for_bit(scored, name: str) -> None:
    res = scored[name]
    want = res["training"]
    assert len(want) == N_ROWS
    assert res["http"] == want  # floats compared exactly (JSON carries the shortest round-trip text)
    assert res["batch"]["probability"] == want


@pytest.mark.parametrize("name", list(MODELS))
def test_service_batch_and_training_give_the_same_reasons(scored, name: str) -> None:
    res = scored[name]
    for cid in res["ids"]:
        assert res["http_reasons"][cid] == res["training_reasons"][cid], cid
        assert res["batch"]["reasons"][cid] == _reason_texts(res["training_reasons"][cid]), cid


@pytest.mark.parametrize("name", list(MODELS))
def test_profile_page_scores_the_customers_as_training_does(scored, name: str) -> None:
    """The page's probabilities and reasons are training's on the rows the page builds, bit for bit (and the
    batch rows' within float rounding of the online feature builder)."""
    res = scored[name]
    assert len(res["page"]) == 10
    for cid, p in res["page"].items():
        assert p == res["page_training"][cid], cid
        assert res["page_reasons"][cid] == res["page_training_reasons"][cid], cid
        assert p == pytest.approx(res["training"][cid], rel=1e-9, abs=1e-12), cid


@pytest.mark.parametrize("name", list(MODELS))
def test_spark_probabilities_and_reasons_are_the_training_ones(scored, reg: Registry, spark, tmp_path: Path,
                                                               name: str) -> None:
    from serving.batch import BatchOptions
    from serving.batch.spark import score_batch_spark

    res = scored[name]
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", reg.uri)
        mp.setenv("MLFLOW_REGISTRY_URI", reg.uri)
        mp.setenv("CRMSCORE_HOME", str(tmp_path / "home"))
        out = tmp_path / "spark.csv"
        score_batch_spark(BatchOptions(model=f"{name}@champion", input=str(res["csv"]), output=str(out), reasons=3,
                                       records=False), master="local[2]")
    spark = _read_scored(out)
    assert spark["probability"] == res["training"]
    for cid in res["ids"]:
        assert spark["reasons"][cid] == _reason_texts(res["training_reasons"][cid]), cid


def test_the_rows_cover_both_encodings(scored) -> None:
    encodings = {scored[n]["scorer"].preprocessor_.encoding for n in MODELS}
    kinds = {type(scored[n]["scorer"].estimator_).__name__ for n in MODELS}
    assert encodings == {"ordinal", "onehot"} and kinds == {"XGBClassifier", "LogisticRegression"}
    assert json.dumps(scored["lead_scoring"]["training_reasons"][scored["lead_scoring"]["ids"][0]])
