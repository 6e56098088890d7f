"""`crmscore segment apply`: the registered customer_segments model applied to every customer of a data dir.

One small registry for the module (300 generated customers plus a few awkward rows, ``segment fit`` once);
the local engine is checked against the registered pyfunc on ``summarise_customers`` (what ``/segment`` and
``segment fit`` run), its accounting, its files and its errors; the Spark engine (the session's ``local[2]``
session, marked slow) against the local one: the summary value for value, the output row by row, the same rejects,
counts and errors.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from tests.conftest import keep_mlflow_globals
from tests.fixtures.crm import make_tables

FIT_AS_OF = "2025-06-30"
AS_OF = "2025-05-31"
LATE_ROW = 301  # the customer created after AS_OF (1-based row of the customers table)


def _awkward(tables: dict[str, pd.DataFrame]) -> dict[str, pd.DataFrame]:
    """The generated tables plus: a repeated customer row, a customer created after AS_OF, one without created_at,
    one without an id, a buyer absent from the customers table, an id that looks like a formula, and several
    paid orders on one day whose amounts add differently in another order."""
    cust = tables["customers"]
    first = cust.iloc[[0]]
    extra = pd.DataFrame({
        "customer_id": ["LATE-1", "NO-DATE", None, "=HYPERLINK(1)"],
        "created_at": [pd.Timestamp("2025-06-10"), pd.NaT, pd.Timestamp("2025-01-01"), pd.Timestamp("2025-01-02")],
    })
    customers = pd.concat([cust, extra, first], ignore_index=True)
    orders = tables["orders"]
    day = pd.Timestamp("2025-05-20")
    amounts = [0.1, 0.2, 0.3, 1e-3, 1234.56, 0.7, 1e6 + 0.01, 0.07]
    same_day = pd.DataFrame({
        "order_id": [f"SD{i}" for i in range(len(amounts))],
        "customer_id": ["C0005"] * 4 + ["C0006"] * 4,
        "ts": [day + pd.Timedelta(hours=i + 1) for i in range(len(amounts))],
        "amount": amounts, "status": "paid", "items": 1, "category": "a",
    })
    order_only = pd.DataFrame({"order_id": ["OO1", "OO2"], "customer_id": ["ORDER-ONLY", "=HYPERLINK(1)"],
                               "ts": [pd.Timestamp("2025-03-03 10:00"), pd.Timestamp("2025-04-04 11:00")],
                               "amount": [55.5, 20.0], "status": "paid", "items": 1, "category": "b"})
    orders = pd.concat([orders, same_day, order_only], ignore_index=True)
    return {**tables, "customers": customers, "orders": orders}


def _write(tables: dict[str, pd.DataFrame], d: Path) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, df in tables.items():
        df.to_parquet(d / f"{name}.parquet", index=False)
    return d


@pytest.fixture(scope="module")
def seg_registry(tmp_path_factory: pytest.TempPathFactory):
    """(data dir, its tables) with ``customer_segments`` v1 fitted at FIT_AS_OF in a module SQLite registry."""
    from training.segment import fit_segments

    root = tmp_path_factory.mktemp("segapply")
    tables = _awkward(make_tables(n=300, seed=11))
    data = _write(tables, root / "data")
    uri = f"sqlite:///{root / 'mlflow.db'}"
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", uri)
        mp.setenv("MLFLOW_REGISTRY_URI", uri)
        mp.setenv("MLFLOW_REQUIREMENTS_INFERENCE_TIMEOUT", "1")
        mp.setenv("CRMSCORE_HOME", str(root / "home"))
        mp.chdir(root)
        fit_segments(data, FIT_AS_OF)
        yield data, tables, mp


def _cli(*args: str):
    from serving.cli.main import app

    return CliRunner().invoke(app, list(args))


def _read(p: Path) -> pd.DataFrame:
    return pd.read_csv(p, dtype=str, keep_default_na=False, encoding="utf-8-sig")


def _floats(col: pd.Series) -> np.ndarray:
    """CSV text as the exact doubles written (``float``; read_csv's fast parser may be off by one bit)."""
    return np.array([float(v) if v else np.nan for v in col], dtype="float64")


def test_apply_local_is_the_registered_model_on_the_summary(seg_registry, tmp_path: Path):
    import mlflow

    from features.io import load_tables
    from training.segment import output_columns, summarise_customers

    data, _, _ = seg_registry
    out = tmp_path / "segments.parquet"
    res = _cli("segment", "apply", "--data", str(data), "--as-of", AS_OF, "--out", str(out), "--json")
    assert res.exit_code == 0, res.output
    got = pd.read_parquet(out)
    assert list(got.columns) == output_columns(90)
    # what /segment and segment fit run: summarise_customers, then the registered pyfunc
    summary = summarise_customers(load_tables(data), AS_OF)
    expected = mlflow.pyfunc.load_model("models:/customer_segments@champion").predict(summary)
    pd.testing.assert_frame_equal(got, expected.reset_index(drop=True), check_dtype=False)
    ids = got["customer_id"].tolist()
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert "ORDER-ONLY" in ids and "LATE-1" not in ids and "NO-DATE" not in ids
    assert got["r_score"].between(0, 5).all() and got["cluster"].notna().all()
    buyers = got["p_alive"].notna()
    assert buyers.sum() > 100 and (got.loc[~buyers, "rfm_segment"] == "No purchase").all()

    summary_json = json.loads(res.stdout)
    assert summary_json == json.loads(Path(f"{out}.summary.json").read_text(encoding="utf-8"))
    s = summary_json
    assert s["rows_in"] == s["segmented"] + s["rejected"] + s["duplicates"]
    assert s["customer_rows"] == 305 and s["buyers_without_customer_row"] == 1 and s["duplicates"] == 1
    assert s["segmented"] == len(got) and sum(s["rfm_segments"].values()) == len(got)
    assert sum(s["value_tiers"].values()) == sum(s["clusters"].values()) == len(got)
    assert s["buyers"] == int(buyers.sum()) and s["model_version"] == "1" and s["as_of"] == AS_OF
    rej = _read(Path(f"{out}.rejects.csv"))
    by_id = {r["customer_id"]: r for r in rej.to_dict("records")}
    assert by_id["LATE-1"]["row"] == str(LATE_ROW) and by_id["LATE-1"]["value"] == "2025-06-10 00:00:00"
    assert by_id["LATE-1"]["reason"] == f"created after --as-of {AS_OF}"
    assert by_id["NO-DATE"]["reason"] == "created_at is missing"
    assert by_id[""]["reason"] == "customer_id is missing" and by_id[""]["column"] == "customer_id"
    assert len(rej) == s["rejected"] and sum(s["reject_reasons"].values()) == s["rejected"]
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        [out.name, f"{out.name}.rejects.csv", f"{out.name}.summary.json"])


def test_apply_rows_equal_the_service_segment_path(seg_registry, tmp_path: Path):
    """The rows of ``segment apply`` for some customers equal what ``/segment`` computes from their profile and
    events (``serving.http.postprocess.segment_inputs``, then the registered pyfunc)."""
    import mlflow

    from serving.http.postprocess import segment_inputs
    from serving.http.schemas import Customer
    from training.segment import output_columns

    data, tables, _ = seg_registry
    out = tmp_path / "s.parquet"
    assert _cli("segment", "apply", "--data", str(data), "--as-of", AS_OF, "--out", str(out)).exit_code == 0
    ids = ["C0001", "C0005", "C0006", "C0042", "C0077"]  # C0005, C0006: several paid orders on one day

    def rows(name: str, cid: str, cols: list[str]) -> list[dict]:
        df = tables[name]
        part = df.loc[df["customer_id"] == cid, cols]
        return [{k: (None if pd.isna(v) else v.isoformat() if isinstance(v, pd.Timestamp) else v)
                 for k, v in r.items()} for r in part.to_dict("records")]

    customers = [Customer.model_validate({
        "profile": {"customer_id": cid, "created_at": tables["customers"].set_index("customer_id")
                    .loc[cid, "created_at"].isoformat()},
        "events": {
            "orders": rows("orders", cid, ["ts", "amount", "status"]),
            "interactions": rows("interactions", cid, ["ts", "channel", "event_type"]),
            "marketing_touches": rows("marketing_touches", cid, ["channel", "sent_at", "opened_at", "clicked_at",
                                                                 "coupon_claimed"]),
        },
        "as_of": AS_OF,
    }) for cid in ids]
    inputs = segment_inputs(customers, pd.Timestamp(AS_OF), 90)
    service = mlflow.pyfunc.load_model("models:/customer_segments@champion").predict(inputs)
    got = pd.read_parquet(out).set_index("customer_id").loc[ids].reset_index()
    pd.testing.assert_frame_equal(got[output_columns(90)], service.reset_index(drop=True), check_dtype=False,
                                  check_exact=True)


def test_apply_csv_neutralises_formulas_and_equals_the_parquet(seg_registry, tmp_path: Path):
    data, _, _ = seg_registry
    for name in ("a.csv", "a.parquet"):
        res = _cli("segment", "apply", "--data", str(data), "--as-of", AS_OF, "--out", str(tmp_path / name))
        assert res.exit_code == 0, res.output
    assert "segmented" in res.stdout and "rejected" in res.stdout
    csv = _read(tmp_path / "a.csv")
    pq = pd.read_parquet(tmp_path / "a.parquet")
    assert "'=HYPERLINK(1)" in csv["customer_id"].tolist()  # a spreadsheet formula is written as text
    assert csv["customer_id"].str.lstrip("'").tolist() == pq["customer_id"].tolist()
    for c in ("r_score", "rfm_segment", "value_tier", "cluster", "cluster_description"):
        assert csv[c].tolist() == pq[c].astype(str).tolist(), c
    np.testing.assert_array_equal(_floats(csv["p_alive"]), pq["p_alive"].to_numpy())


def test_apply_bad_input_is_refused_with_the_reason(seg_registry, tmp_path: Path):
    data, tables, _ = seg_registry
    no_orders = _write({k: v for k, v in tables.items() if k != "orders"}, tmp_path / "no_orders")
    cases = [
        (["--data", str(no_orders)], "missing table(s) orders"),
        (["--data", str(tmp_path / "nowhere")], "data dir not found"),
        (["--data", str(data), "--as-of", "soon"], "--as-of 'soon' is not a date"),
        (["--data", str(data), "--model", "nope@champion"], "cannot load model models:/nope@champion"),
        (["--data", str(data), "--engine", "dask"], "--engine 'dask': use local or spark"),
        (["--data", str(data), "--out", str(tmp_path / "x.xlsx")], "use a .csv or .parquet file"),
    ]
    for args, message in cases:
        argv = ["segment", "apply", "--as-of", AS_OF, "--out", str(tmp_path / "o.csv"), *args]
        res = _cli(*argv)
        assert res.exit_code == 2, (args, res.output)
        assert message in " ".join(res.output.split()), (args, res.output)
    assert not list(tmp_path.glob("o.csv*"))


# ------------------------------------------------------------------------------------------------- Spark
def _events_after(tables: dict[str, pd.DataFrame], at: pd.Timestamp) -> dict[str, pd.DataFrame]:
    """``tables`` plus a paid order, an interaction and an opened, clicked, coupon touch at ``at`` for C0001-C0003."""
    ids = ["C0001", "C0002", "C0003"]
    add = {
        "orders": pd.DataFrame({"order_id": ["L1", "L2", "L3"], "customer_id": ids, "ts": at, "amount": 10.0,
                                "status": "paid", "items": 1, "category": "a"}),
        "interactions": pd.DataFrame({"customer_id": ids, "ts": at, "channel": "web", "event_type": "coupon_claim"}),
        "marketing_touches": pd.DataFrame({"touch_id": ["T1", "T2", "T3"], "customer_id": ids, "campaign_id": "c",
                                           "channel": "sms", "sent_at": at, "opened_at": at, "clicked_at": at,
                                           "coupon_claimed": True, "responded": True}),
    }
    out = dict(tables)
    for name, df in add.items():
        out[name] = pd.concat([tables[name], df.astype({c: tables[name][c].dtype for c in df.columns})],
                              ignore_index=True)
    return out


@pytest.mark.slow
def test_spark_summary_equals_local_exactly(spark, seg_registry, tmp_path: Path):
    from features.engines.spark_segments import summarise_customers_spark
    from features.engines.spark_tables import read_tables
    from features.io import load_tables
    from training.segment import summarise_customers

    data, tables, _ = seg_registry

    def spark_summary(d: Path, as_of: str) -> pd.DataFrame:
        got = summarise_customers_spark(read_tables(spark, d), as_of).orderBy("customer_id").toPandas()
        return got.astype({"customer_id": "string"})

    def both(d: Path, as_of: str) -> tuple[pd.DataFrame, pd.DataFrame]:
        return summarise_customers(load_tables(d), as_of), spark_summary(d, as_of)

    base = None
    for as_of in ("2025-03-15 12:00:00", AS_OF):
        local, got = both(data, as_of)
        assert len(local) > 200 and local["frequency"].sum() > 0 and local["touches_90d"].sum() > 0
        pd.testing.assert_frame_equal(got, local, check_exact=True)  # spend summed as pandas sums it
        base = local
    # leakage: events one second after T change nothing; the same events at T do
    t = pd.Timestamp(AS_OF)
    later = _write(_events_after(tables, t + pd.Timedelta(seconds=1)), tmp_path / "later")
    pd.testing.assert_frame_equal(spark_summary(later, AS_OF), base, check_exact=True)
    at_t = _write(_events_after(tables, t), tmp_path / "at_t")
    local, got = both(at_t, AS_OF)
    pd.testing.assert_frame_equal(got, local, check_exact=True)
    ids = ["C0001", "C0002", "C0003"]
    now, before = local.set_index("customer_id").loc[ids], base.set_index("customer_id").loc[ids]
    assert (now["recency_days"] == 0).all() and np.allclose(now["monetary"], before["monetary"] + 10.0, rtol=1e-12)
    assert (now["coupon_claims_90d"] == before["coupon_claims_90d"] + 2).all()


@pytest.mark.slow
def test_spark_apply_equals_local_row_by_row(spark, seg_registry, tmp_path: Path):
    data, _, _ = seg_registry
    runs = {}
    for engine in ("local", "spark"):
        out = tmp_path / f"{engine}.csv"
        res = _cli("segment", "apply", "--data", str(data), "--as-of", AS_OF, "--out", str(out), "--engine", engine,
                   "--spark-master", "local[2]", "--json")
        assert res.exit_code == 0, (engine, res.output)
        runs[engine] = (_read(out), _read(Path(f"{out}.rejects.csv")), json.loads(res.stdout))
    (a, ra, sa), (b, rb, sb) = runs["local"], runs["spark"]
    assert list(a.columns) == list(b.columns) and len(a) == len(b) == sa["segmented"]
    for c in ("customer_id", "r_score", "f_score", "m_score", "rfm_segment", "value_tier", "value_tier_zh", "cluster",
              "cluster_description"):
        assert a[c].tolist() == b[c].tolist(), c
    for c in ("expected_purchases_90d", "p_alive", "expected_value_90d"):
        x, y = _floats(a[c]), _floats(b[c])
        np.testing.assert_array_equal(x, y, err_msg=c)  # same summary, same segmenter: the same numbers
    for c in ("row", "customer_id", "column", "value", "reason"):
        assert ra[c].tolist() == rb[c].tolist(), c
    for k in ("rows_in", "customer_rows", "buyers_without_customer_row", "segmented", "rejected", "duplicates",
              "reject_reasons", "buyers", "rfm_segments", "value_tiers", "clusters", "as_of", "model_version"):
        assert sa[k] == sb[k], k
    assert sb["engine"] == "spark (local[2])"
    assert sb["total_expected_value"] == pytest.approx(sa["total_expected_value"], rel=1e-12)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []


@pytest.mark.slow
def test_spark_bad_input_gives_the_same_error(spark, seg_registry, tmp_path: Path):
    _, tables, _ = seg_registry
    no_orders = _write({k: v for k, v in tables.items() if k != "orders"}, tmp_path / "no_orders")
    no_amount = _write({**tables, "orders": tables["orders"].drop(columns="amount")}, tmp_path / "no_amount")
    nan_amount = _write({**tables, "orders": tables["orders"].assign(amount=np.nan)}, tmp_path / "nan_amount")
    expected = {no_orders: "missing table(s) orders", no_amount: "table orders lacks column(s) amount",
                nan_amount: "row(s) have no amount"}
    for data, message in expected.items():
        errors = []
        for engine in ("local", "spark"):
            res = _cli("segment", "apply", "--data", str(data), "--as-of", AS_OF, "--out",
                       str(tmp_path / f"{data.name}-{engine}.csv"), "--engine", engine, "--spark-master", "local[2]")
            assert res.exit_code == 2, (data.name, engine, res.output)
            errors.append(res.output.strip())
        assert errors[0] == errors[1], data.name
        assert message in errors[0], errors[0]
        assert not list(tmp_path.glob(f"{data.name}-*"))
