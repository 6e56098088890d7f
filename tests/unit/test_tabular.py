"""Flat-table mode: column-type inference, PII and id-like drops, target encoding, splits, leak guard,
and one small end-to-end run from a SQL source through the CLI into a throwaway MLflow store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from sklearn.base import clone
from typer.testing import CliRunner

from training.tabular import (
    TableError,
    TableFeaturizer,
    encode_target,
    is_pii_column,
    single_column_auc,
    split_table,
)


def _hand_made(n: int = 120, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    amounts = [f"{v:,.2f}" for v in rng.uniform(10, 5000, n)]
    amounts[3] = " "  # blank, like Telco's TotalCharges for new customers
    amounts[7] = ""
    dates = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    signup = [d.strftime("%Y-%m-%d") for d in dates]
    signup[5] = ""
    return pd.DataFrame(
        {
            "cust_id": [f"C{i:05d}" for i in range(n)],
            "amount_text": amounts,
            "active": rng.choice(["Yes", "No"], n),
            "signup": signup,
            "plan": rng.choice(["basic", "pro", "team"], n),
            "ticket_ref": [f"T-{i * 7919 % 100000:06d}" for i in range(n)],
            "order_no": np.arange(1000, 1000 + n),
            "score": rng.normal(size=n),
            "flag": rng.integers(0, 2, n).astype(bool),
            "customer_name": [f"Name {i}" for i in range(n)],
            "手机": [f"138{i:08d}" for i in range(n)],
            "E-mail": [f"u{i}@example.com" for i in range(n)],
            "contact": [f"user{i}@mail.example.org" for i in range(n)],  # e-mail by content, not by name
            "PhoneService": rng.choice(["Yes", "No"], n),  # a Telco feature, not PII
            "constant": "x",
            "empty": "",
        }
    )


def test_featurizer_infers_kinds_and_drops_id_like_and_pii() -> None:
    X = _hand_made()
    f = TableFeaturizer(id_column="cust_id").fit(X)
    assert f.column_kinds_ == {
        "cust_id": "id",
        "amount_text": "numeric",
        "active": "bool",
        "signup": "date",
        "plan": "categorical",
        "ticket_ref": "id_like",
        "order_no": "id_like",
        "score": "numeric",
        "flag": "bool",
        "customer_name": "pii",
        "手机": "pii",
        "E-mail": "pii",
        "contact": "pii",
        "PhoneService": "bool",
        "constant": "constant",
        "empty": "empty",
    }
    assert set(f.dropped_) == {
        "cust_id",
        "ticket_ref",
        "order_no",
        "customer_name",
        "手机",
        "E-mail",
        "contact",
        "constant",
        "empty",
    }
    assert f.unparsed_ == {}  # blanks are missing, not unreadable
    names = list(f.get_feature_names_out())
    assert {"signup_year", "signup_month", "signup_dayofweek", "signup_age_days"} <= set(names)
    assert not any(c in " ".join(names) for c in ("name", "手机", "mail", "contact", "ticket"))


def test_featurizer_transform_parses_values_and_tolerates_new_rows() -> None:
    X = _hand_made()
    f = TableFeaturizer(id_column="cust_id").fit(X)
    F = f.transform(X)
    assert F["amount_text"].dtype == "float64"
    assert np.isnan(F.loc[3, "amount_text"]) and np.isnan(F.loc[7, "amount_text"])
    assert F.loc[0, "amount_text"] == pytest.approx(float(X.loc[0, "amount_text"].replace(",", "")))
    assert set(F["active"].unique()) == {0.0, 1.0}
    assert F.loc[0, "active"] == (1.0 if X.loc[0, "active"] == "Yes" else 0.0)
    d0 = pd.Timestamp(X.loc[0, "signup"])
    latest = pd.to_datetime(X["signup"].replace("", None)).max()
    assert (F.loc[0, "signup_year"], F.loc[0, "signup_month"], F.loc[0, "signup_dayofweek"]) == (
        d0.year,
        d0.month,
        d0.dayofweek,
    )
    assert F.loc[0, "signup_age_days"] == pytest.approx((latest - d0).days)
    assert F.loc[5, ["signup_year", "signup_age_days"]].isna().all()

    # scoring-time rows: typed values, an unseen category, missing values, a missing id, extra columns
    new = X.head(3).drop(columns=["cust_id", "customer_name"]).copy()
    new["amount_text"] = [12.5, None, "¥1,000"]
    new["plan"] = ["enterprise", None, "pro"]
    new["active"] = [True, None, "no"]
    G = f.transform(new)
    assert G["amount_text"].tolist()[0] == 12.5 and np.isnan(G["amount_text"].tolist()[1])
    assert G["amount_text"].tolist()[2] == 1000.0
    assert G["plan"].tolist() == ["enterprise", None, "pro"]
    assert G["active"].tolist()[0] == 1.0 and np.isnan(G["active"].tolist()[1]) and G["active"].tolist()[2] == 0.0
    with pytest.raises(KeyError, match="plan"):
        f.transform(new.drop(columns=["plan"]))


def test_featurizer_follows_the_estimator_contract() -> None:
    X = _hand_made()
    f = TableFeaturizer(id_column="cust_id", exclude=("score",))
    assert f.fit(X) is f
    assert f.column_kinds_["score"] == "excluded"
    g = clone(f)
    assert not hasattr(g, "column_kinds_") and g.get_params() == f.get_params()
    fixed = TableFeaturizer(column_kinds={"plan": "categorical", "amount_text": "numeric"}).fit(X)
    assert fixed.input_columns_ == ["amount_text", "plan"]
    assert fixed.column_kinds_["active"] == "excluded"  # not listed → not used
    assert list(fixed.transform(X).columns) == ["amount_text", "plan"]
    logged = TableFeaturizer(column_kinds={"amount_text": "numeric"}, log_numeric=True).fit(X)
    assert list(logged.get_feature_names_out()) == ["amount_text", "amount_text=log1p"]


def test_numbers_with_a_few_unreadable_values_are_counted() -> None:
    X = pd.DataFrame({"v": [str(i) for i in range(98)] + ["n.a.", "??"]})
    f = TableFeaturizer().fit(X)
    assert f.column_kinds_["v"] == "numeric"
    assert f.unparsed_ == {"v": 2}


@pytest.mark.parametrize(
    "column",
    [
        "name",
        "Name",
        "customer_name",
        "CustomerName",
        "first_name",
        "phone",
        "phone_number",
        "mobile",
        "Mobile_No",
        "contact_phone",
        "tel",
        "email",
        "E-mail",
        "e_mail",
        "EmailAddress",
        "address",
        "home_address",
        "street",
        "姓名",
        "电话",
        "手机",
        "客户手机号",
        "邮箱",
        "地址",
        "wechat_id",
    ],
)
def test_pii_column_names(column: str) -> None:
    assert is_pii_column(column)


@pytest.mark.parametrize(
    "column",
    [
        "PhoneService",
        "MultipleLines",
        "product_name",
        "company_name",
        "is_mobile",
        "n_ch_phone_30d",
        "PaymentMethod",
        "hotel",
        "landing_page_id",
        "origin",
        "tenure",
    ],
)
def test_not_pii_column_names(column: str) -> None:
    assert not is_pii_column(column)


def test_encode_target() -> None:
    assert encode_target(pd.Series(["Yes", "no", " YES ", "No"])).tolist() == [1, 0, 1, 0]
    assert encode_target(pd.Series([True, False, True])).tolist() == [1, 0, 1]
    assert encode_target(pd.Series([1, 0, 0])).tolist() == [1, 0, 0]
    y = encode_target(pd.Series(["1", "", "0"]))
    assert y[0] == 1 and np.isnan(y[1]) and y[2] == 0
    assert encode_target(pd.Series(["won", "lost", "open"]), positive="Won").tolist() == [1, 0, 0]
    with pytest.raises(TableError, match="--positive"):
        encode_target(pd.Series(["won", "lost", "open"]), column="stage")
    with pytest.raises(TableError, match="'x' does not occur"):
        encode_target(pd.Series(["won", "lost"]), positive="x")
    with pytest.raises(TableError, match="single class"):
        encode_target(pd.Series(["yes", "yes", ""]))


def test_split_stratified_and_out_of_time() -> None:
    rng = np.random.default_rng(1)
    n = 1000
    X = pd.DataFrame({"a": rng.normal(size=n)})
    y = (rng.random(n) < 0.2).astype(int)
    s = split_table(X, y, seed=3)
    assert (len(s.y_train), len(s.y_val), len(s.y_test)) == (600, 200, 200)
    assert abs(s.y_test.mean() - y.mean()) < 0.01 and abs(s.y_val.mean() - y.mean()) < 0.01
    assert not set(s.X_train.index) & set(s.X_test.index)

    times = pd.Series(pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 100, n), unit="D"))
    t = split_table(X, y, times)
    tr, va, te = (times[d.index] for d in (t.X_train, t.X_val, t.X_test))
    assert tr.max() < va.min() and va.max() < te.min()  # equal dates never straddle a boundary
    assert 0.15 < len(te) / n < 0.25 and t.description["method"] == "out_of_time"


def test_leak_guard_flags_copied_target_columns() -> None:
    rng = np.random.default_rng(2)
    n = 600
    y = (rng.random(n) < 0.3).astype(int)
    X = pd.DataFrame(
        {
            "copied": np.where(y == 1, "Yes", "No"),
            "stage_text": np.where(y == 1, "won", "lost"),
            "noisy_copy": y * 10 + rng.normal(size=n),
            "honest": y * 0.3 + rng.normal(size=n),
            "many_levels": rng.choice([f"L{i}" for i in range(40)], n),
        }
    )
    f = TableFeaturizer().fit(X)
    auc = single_column_auc(f, X, y)
    assert auc["copied"] == 1.0 and auc["stage_text"] == 1.0 and auc["noisy_copy"] >= 0.99
    assert 0.5 <= auc["honest"] < 0.8
    assert auc["many_levels"] < 0.65  # out-of-fold rates: 40 random levels do not look predictive


# ------------------------------------------------------------------------------ end to end, small


def _synthetic_table(n: int = 1500, seed: int = 5) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, n)
    plan = rng.choice(["monthly", "yearly", "two-year"], n, p=[0.5, 0.3, 0.2])
    paperless = rng.choice(["Yes", "No"], n)
    signup = pd.Timestamp("2022-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")
    logit = -1.0 - 0.04 * tenure + np.where(plan == "monthly", 1.2, -0.6) + np.where(paperless == "Yes", 0.4, 0)
    churn = rng.random(n) < 1 / (1 + np.exp(-logit))
    charges = [
        f"{v:.2f}" if t > 0 else " "
        for v, t in zip(rng.uniform(20, 120, n) * np.maximum(tenure, 1), tenure, strict=True)
    ]
    return pd.DataFrame(
        {
            "customer_id": [f"C{i:06d}" for i in range(n)],
            "full_name": [f"Person {i}" for i in range(n)],
            "phone": [f"1390000{i:04d}" for i in range(n)],
            "tenure": tenure,
            "plan": plan,
            "paperless": paperless,
            "total_charges": charges,
            "signup_date": signup.strftime("%Y-%m-%d"),
            "cancel_reason_filled": np.where(churn, "price", ""),  # only known after churn: a leak
            "churned": np.where(churn, "Yes", "No"),
        }
    )


def _cli() -> typer.Typer:
    from serving.cli.table import register

    app = typer.Typer()
    train = typer.Typer()
    register(train)
    app.add_typer(train, name="train")
    return app


def test_train_table_from_sql_with_pii_leak_guard_and_gate(tracking_uri: str, tmp_path: Path) -> None:
    import mlflow
    from mlflow import MlflowClient
    from sqlalchemy import create_engine

    df = _synthetic_table()
    db = tmp_path / "crm.db"
    engine = create_engine(f"sqlite:///{db}")
    df.to_sql("customers", engine, index=False)
    engine.dispose()
    cfg = tmp_path / "table.yaml"
    cfg.write_text("candidates: [logreg]\nreference_rows: 200\n")
    args = ["train", "table", "--table", f"sqlite:///{db}", "--query", "SELECT * FROM customers",
            "--target", "churned", "--id", "customer_id", "--name", "synthetic_churn", "--config", str(cfg),
            "--drop-leaks"]  # fmt: skip
    runner = CliRunner()
    first = runner.invoke(_cli(), args)
    assert first.exit_code == 0, first.output
    assert "PII column(s) dropped, never features: full_name, phone" in first.output
    assert "possible target leak: 'cancel_reason_filled'" in first.output
    assert "synthetic_churn v1" in first.output and "promoted" in first.output

    client = MlflowClient()
    mv = client.get_model_version_by_alias("synthetic_churn", "champion")
    run = client.get_run(mv.run_id)
    assert run.data.tags["crmscore.leak_suspects"] == "cancel_reason_filled"
    assert float(run.data.metrics["test_roc_auc"]) > 0.7
    kinds = json.loads(Path(client.download_artifacts(mv.run_id, "column_kinds.json", str(tmp_path))).read_text())
    assert kinds["column_kinds"]["full_name"] == "pii" and kinds["column_kinds"]["cancel_reason_filled"] == "leak"
    assert kinds["column_kinds"]["signup_date"] == "date" and kinds["column_kinds"]["total_charges"] == "numeric"

    model = mlflow.sklearn.load_model(f"models:/synthetic_churn/{mv.version}")
    used = set(model.feature_names_in_)
    assert used == {"tenure", "plan", "paperless", "total_charges", "signup_date"}  # no PII, id or leak
    local = mlflow.artifacts.download_artifacts(f"models:/synthetic_churn/{mv.version}", dst_path=str(tmp_path / "m"))
    example = mlflow.models.Model.load(local).load_input_example(local)
    assert set(example.columns) == used  # the input example holds no PII, id or leak column

    rows = df.head(3).copy()
    rows.loc[0, "plan"] = "lifetime"  # unseen category
    rows.loc[1, "total_charges"] = None
    p = mlflow.pyfunc.load_model(f"models:/synthetic_churn/{mv.version}").predict(rows)
    assert p.shape == (3, 2) and np.all((p >= 0) & (p <= 1))
    reasons = model.explain(rows)
    assert len(reasons) == 3 and all(
        r["feature"] in used or r["feature"].startswith("signup_date_")
        for row in reasons
        for r in row["positive"] + row["negative"]
    )

    # the same data again: the challenger does not beat the champion by the margin → champion kept
    second = runner.invoke(_cli(), args)
    assert second.exit_code == 0, second.output
    assert "synthetic_churn v2" in second.output and "kept" in second.output
    assert client.get_model_version_by_alias("synthetic_churn", "champion").version == mv.version


def test_cli_reports_bad_input_in_one_line(tracking_uri: str, tmp_path: Path) -> None:
    path = tmp_path / "t.csv"
    _synthetic_table(50).to_csv(path, index=False)
    runner = CliRunner()
    res = runner.invoke(_cli(), ["train", "table", "--table", str(path), "--target", "churn", "--name", "m"])
    assert res.exit_code == 2
    assert "--target: column(s) churn not in the table" in res.output
    res = runner.invoke(
        _cli(), ["train", "table", "--table", str(tmp_path / "nope.csv"), "--target", "churned", "--name", "m"]
    )
    assert res.exit_code == 2 and "file not found" in res.output
    res = runner.invoke(_cli(), ["train", "table", "--table", str(path), "--target", "plan", "--name", "m"])
    assert res.exit_code == 2 and "give --positive VALUE" in res.output
    assert "Traceback" not in res.output


def test_one_value_and_blanks_is_kept_as_presence() -> None:
    X = pd.DataFrame({"reason": ["price", "", "", "price"] * 10, "same": ["a"] * 40})
    f = TableFeaturizer().fit(X)
    assert f.column_kinds_ == {"reason": "categorical", "same": "constant"}
    assert f.transform(X)["reason"].tolist()[:3] == ["price", None, None]


def test_split_time_column_keeps_only_seasonal_parts() -> None:
    X = _hand_made()[["signup", "plan"]]
    f = TableFeaturizer(seasonal_only=("signup",)).fit(X)
    assert list(f.get_feature_names_out()) == ["signup_month", "signup_dayofweek", "plan"]
    F = f.transform(X)
    assert F.loc[0, "signup_month"] == pd.Timestamp(X.loc[0, "signup"]).month and np.isnan(F.loc[5, "signup_month"])
