"""The demo data generator: determinism, contract conformance, exact truth, messy exports, CLI."""

from __future__ import annotations

import json
import re
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from features.contract import PANDAS_DTYPES, TABLES
from features.synth import (
    DEFAULT_END,
    compute_oracle_aucs,
    generate_crm_data,
    realise_labels,
    write_crm_data,
)

DATA_END = pd.Timestamp(DEFAULT_END) + pd.Timedelta(days=1)  # exclusive


@pytest.fixture(scope="module")
def small():
    return generate_crm_data(3000, 365, seed=11)


@pytest.fixture(scope="module")
def large():
    """20k customers: the size at which the oracle AUCs are stable to about ±0.01."""
    return generate_crm_data(20_000, 365, seed=5)


def test_same_seed_gives_identical_frames():
    a = generate_crm_data(800, 120, seed=3)
    b = generate_crm_data(800, 120, seed=3)
    for name, df in a.tables().items():
        pd.testing.assert_frame_equal(df, b.tables()[name], obj=name)
    pd.testing.assert_frame_equal(a.truth, b.truth)
    assert a.meta == b.meta


def test_different_seeds_differ():
    a = generate_crm_data(800, 120, seed=3)
    b = generate_crm_data(800, 120, seed=4)
    assert not a.customers["created_at"].equals(b.customers["created_at"])
    assert len(a.interactions) != len(b.interactions) or not a.interactions["ts"].equals(b.interactions["ts"])


def test_tables_follow_the_contract(small):
    for name, df in small.tables().items():
        spec = TABLES[name]
        assert list(df.columns) == spec.column_names, name
        for col in spec.columns:
            assert str(df[col.name].dtype) == PANDAS_DTYPES[col.dtype], (name, col.name, df[col.name].dtype)
            values = df[col.name].dropna()
            if col.required:
                assert df[col.name].notna().all(), (name, col.name)
            if col.allowed is not None:
                assert set(values.unique()) <= set(col.allowed), (name, col.name)
            if col.min is not None and len(values):
                assert values.min() >= col.min, (name, col.name)
            if col.max is not None and len(values):
                assert values.max() <= col.max, (name, col.name)
        assert not df.duplicated(list(spec.key)).any(), f"{name}: duplicate key"
    assert len(small.customers) == 3000


def test_events_lie_inside_the_data_window_and_after_sign_up(small):
    start = pd.Timestamp(small.meta["data_start"])
    created = small.customers.set_index("customer_id")["created_at"]
    for name, col in (
        ("interactions", "ts"),
        ("orders", "ts"),
        ("marketing_touches", "sent_at"),
        ("marketing_touches", "opened_at"),
        ("marketing_touches", "clicked_at"),
    ):
        df = getattr(small, name)
        ts = df[col].dropna()
        assert ts.max() < DATA_END and ts.min() >= start, (name, col)
        assert (ts >= df.loc[ts.index, "customer_id"].map(created).to_numpy()).all(), (name, col)
    assert small.customers["created_at"].max() < DATA_END
    t = small.marketing_touches
    assert (t["opened_at"].dropna() > t.loc[t["opened_at"].notna(), "sent_at"]).all()
    assert t.loc[t["clicked_at"].notna(), "opened_at"].notna().all()
    assert t.loc[t["coupon_claimed"], "clicked_at"].notna().all()


def test_child_rows_belong_to_existing_customers(small):
    ids = set(small.customers["customer_id"])
    for name in ("interactions", "orders", "marketing_touches"):
        assert set(getattr(small, name)["customer_id"]) <= ids, name


def test_realistic_shape(small):
    c = small.customers
    assert c["source_channel"].nunique() >= 6
    assert {"广东省", "浙江省"} <= set(c["province"])
    pairs = set(zip(c["province"], c["city"], strict=True))
    assert ("广东省", "广州市") in pairs and ("浙江省", "杭州市") in pairs
    assert ("广东省", "杭州市") not in pairs
    names = c["name"].dropna()
    chinese = names.str.fullmatch(r"[\u4e00-\u9fff]{2,4}")
    assert 0.75 < chinese.mean() < 0.95 and names[~chinese].str.fullmatch(r"[A-Za-z]+ [A-Za-z]+").all()
    assert c["phone"].dropna().str.fullmatch(r"1[3-9]\d{9}").all()
    assert c["email"].dropna().str.fullmatch(r"[a-z0-9.]+@example\.(com|net|org)").all()
    amount = small.orders["amount"]
    assert amount.quantile(0.99) > 5 * amount.median()  # heavy right tail
    weekday = small.orders["ts"].dt.dayofweek.value_counts(normalize=True)
    assert weekday[5] > weekday[0]  # Saturdays busier than Mondays
    events = set(small.interactions["event_type"])
    assert {"coupon_claim", "add_to_cart", "checkout_page", "complaint", "refund"} <= events
    assert small.marketing_touches["coupon_claimed"].any()
    reached = small.marketing_touches.groupby("campaign_id")["customer_id"].nunique()
    assert (reached < 0.7 * len(c)).all()  # campaigns reach only some customers


def test_truth_population_matches_the_label_definition(small):
    labels = realise_labels(small.customers, small.orders, small.meta["as_of"])
    m = small.truth.merge(labels, on="customer_id", suffixes=("", "_label"), validate="one_to_one")
    assert len(m) == len(small.truth) == len(labels)
    assert (m["is_lead"] == m["is_lead_label"]).all()
    assert (m["is_active"] == m["is_active_label"]).all()
    assert (
        m.loc[m["is_lead"], "p_convert"].between(0, 1).all()
        and m.loc[~m["is_lead"], "p_convert"].isna().all()
    )
    assert (
        m.loc[m["is_active"], "p_churn"].between(0, 1).all()
        and m.loc[~m["is_active"], "p_churn"].isna().all()
    )
    t = pd.Timestamp(small.meta["as_of"])
    assert (small.customers.set_index("customer_id").loc[small.truth["customer_id"], "created_at"] <= t).all()


def test_oracle_auc_and_base_rates_in_band(large):
    meta = large.meta
    assert 0.80 <= meta["oracle_auc_convert"] <= 0.92
    assert 0.80 <= meta["oracle_auc_churn"] <= 0.92
    assert 0.05 <= meta["convert_rate"] <= 0.20
    assert 0.20 <= meta["churn_rate"] <= 0.50
    labels = realise_labels(large.customers, large.orders, meta["as_of"])
    assert compute_oracle_aucs(large.truth, labels) == {
        "convert": meta["oracle_auc_convert"],
        "churn": meta["oracle_auc_churn"],
    }


def test_truth_is_calibrated_against_realised_labels(large):
    """Exact truth: the mean probability matches the realised rate within sampling error."""
    labels = realise_labels(large.customers, large.orders, large.meta["as_of"])
    m = large.truth.merge(labels, on="customer_id", suffixes=("", "_label"))
    for pop, p_col, y_col in (("is_lead", "p_convert", "converted"), ("is_active", "p_churn", "churned")):
        sub = m[m[pop]]
        p, y = sub[p_col].to_numpy(), sub[y_col].to_numpy(dtype=float)
        se = np.sqrt((p * (1 - p)).sum()) / len(p)
        assert abs(p.mean() - y.mean()) < 4 * se, (pop, p.mean(), y.mean())
        # and by decile of p, so the ranking is right too, not just the average
        dec = pd.qcut(p, 5, labels=False, duplicates="drop")
        by = pd.DataFrame({"p": p, "y": y, "d": dec}).groupby("d").mean()
        assert (by["y"].diff().dropna() > 0).all()


def test_cart_leads_convert_much_more_often(large):
    t = pd.Timestamp(large.meta["as_of"])
    inter = large.interactions
    carted = set(inter.loc[(inter["ts"] <= t) & (inter["event_type"] == "add_to_cart"), "customer_id"])
    labels = realise_labels(large.customers, large.orders, t)
    leads = labels[labels["is_lead"]]
    cart = leads["customer_id"].isin(carted)
    assert cart.sum() >= 50
    assert leads.loc[cart, "converted"].mean() > 4 * leads.loc[~cart, "converted"].mean()


def test_custom_as_of_and_horizon():
    r = generate_crm_data(1500, 200, seed=2, as_of=date(2025, 4, 10), horizon_days=14)
    assert r.meta["as_of"] == "2025-04-10" and r.meta["horizon_days"] == 14
    labels = realise_labels(r.customers, r.orders, "2025-04-10", horizon_days=14)
    m = r.truth.merge(labels, on="customer_id", suffixes=("", "_label"))
    assert len(m) == len(labels) and (m["is_lead"] == m["is_lead_label"]).all()


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_customers": 0}, "n_customers"),
        ({"horizon_days": 3}, "horizon_days"),
        ({"as_of": date(2025, 6, 15)}, "runs past the data end"),
        ({"as_of": date(2020, 1, 1)}, "after the data start"),
        ({"days": 20}, "days must be"),
    ],
)
def test_bad_arguments_are_named(kwargs, message):
    args = {"n_customers": 100, "days": 120, "seed": 0, **kwargs}
    with pytest.raises(ValueError, match=message):
        generate_crm_data(**args)


def test_clean_write_is_a_data_dir(small, tmp_path):
    summary = write_crm_data(small, tmp_path)
    assert summary["mode"] == "clean"
    for name, df in small.tables().items():
        back = pd.read_parquet(tmp_path / f"{name}.parquet")
        pd.testing.assert_frame_equal(back, df, obj=name)
    truth = pd.read_parquet(tmp_path / "truth" / "truth.parquet")
    assert list(truth.columns) == ["customer_id", "is_lead", "p_convert", "is_active", "p_churn"]
    meta = json.loads((tmp_path / "truth" / "truth.json").read_text(encoding="utf-8"))
    assert {
        "as_of",
        "horizon_days",
        "churn_lookback_days",
        "oracle_auc_convert",
        "oracle_auc_churn",
        "seed",
        "n_customers",
    } <= set(meta)
    assert meta["churn_lookback_days"] == 180 and meta["seed"] == 11 and meta["n_customers"] == 3000
    assert (tmp_path / "README.md").is_file()


# ---------------------------------------------------------------------------------------------
# messy exports
# ---------------------------------------------------------------------------------------------

_STYLE_FORMATS = {
    "iso": "%Y-%m-%d %H:%M:%S",
    "ymd_slash": "%Y/%m/%d %H:%M:%S",
    "dmy_slash": "%d/%m/%Y %H:%M:%S",
    "chinese": "%Y年%m月%d日 %H:%M:%S",
}
_STYLE_SHAPES = {
    "iso": r"\d{4}-\d{2}-\d{2} .*",
    "ymd_slash": r"\d{4}/\d{1,2}/\d{1,2} .*",
    "dmy_slash": r"\d{2}/\d{2}/\d{4} .*",
    "chinese": r"\d{4}年.*",
}


def _parse_styles(values: pd.Series) -> tuple[pd.Series, dict[str, int]]:
    """Parse mixed-style timestamps strictly; returns parsed values (NaT when malformed) and style counts."""
    parsed = pd.Series(pd.NaT, index=values.index, dtype="datetime64[ns]")
    counts = {}
    for style, fmt in _STYLE_FORMATS.items():
        shaped = values.str.fullmatch(_STYLE_SHAPES[style])
        p = pd.to_datetime(values.where(shaped), format=fmt, errors="coerce")
        counts[style] = int(p.notna().sum())
        parsed = parsed.fillna(p)
    days = pd.to_numeric(values[values.str.fullmatch(r"\d{5}\.\d{6}")])
    excel = (pd.Timestamp("1899-12-30") + pd.to_timedelta(days, unit="D")).dt.round("s")
    counts["excel_serial"] = len(excel)
    parsed[excel.index] = excel
    return parsed, counts


@pytest.fixture(scope="module")
def messy_dir(tmp_path_factory):
    out = tmp_path_factory.mktemp("messy")
    result = generate_crm_data(600, 150, seed=8)
    summary = write_crm_data(result, out, messy=True)
    return out, result, summary, json.loads((out / "messy_manifest.json").read_text(encoding="utf-8"))


def _read(path: Path, encoding: str) -> pd.DataFrame:
    return pd.read_csv(path, dtype=str, keep_default_na=False, encoding=encoding)


def test_messy_files_and_encodings(messy_dir):
    out, _, summary, manifest = messy_dir
    assert summary["mode"] == "messy"
    for name in (
        "customers.csv",
        "orders.csv",
        "interactions.csv",
        "marketing_touches.xlsx",
        "messy_manifest.json",
        "truth/truth.parquet",
        "truth/truth.json",
        "README.md",
    ):
        assert (out / name).is_file(), name
    raw = (out / "customers.csv").read_bytes()
    raw.decode("gb18030")
    with pytest.raises(UnicodeDecodeError):
        raw.decode("utf-8")
    assert (out / "orders.csv").read_bytes().startswith(b"\xef\xbb\xbf")
    inter = (out / "interactions.csv").read_bytes()
    assert not inter.startswith(b"\xef\xbb\xbf")
    inter.decode("utf-8")
    assert manifest["tables"]["customers"]["encoding"] == "gb18030"
    assert "marketing_touches.xlsx" in (out / "README.md").read_text(encoding="utf-8")


def test_messy_output_is_deterministic_and_replaces_a_clean_write(messy_dir, tmp_path):
    out, result, _, _ = messy_dir
    write_crm_data(result, tmp_path)  # clean first, then messy into the same folder
    write_crm_data(result, tmp_path, messy=True)
    assert not list(tmp_path.glob("*.parquet"))
    for name in (
        "customers.csv",
        "orders.csv",
        "interactions.csv",
        "marketing_touches.xlsx",
        "messy_manifest.json",
    ):
        assert (tmp_path / name).read_bytes() == (out / name).read_bytes(), name


def test_messy_customers_match_manifest(messy_dir):
    out, result, _, manifest = messy_dir
    man = manifest["tables"]["customers"]
    df = _read(out / "customers.csv", "gb18030")
    assert list(df.columns) == [*TABLES["customers"].column_names, "updated_at"]
    assert (
        len(df)
        == man["rows_written"]
        == man["rows_clean"] + man["duplicates"]["exact"] + man["duplicates"]["stale_version"]
    )
    assert man["rows_clean"] == len(result.customers)
    assert df.duplicated().sum() == man["duplicates"]["exact"]
    assert (
        df["customer_id"].duplicated().sum()
        == man["duplicates"]["exact"] + man["duplicates"]["stale_version"]
    )
    # the latest updated_at row of each customer is the clean one
    latest = df.sort_values("updated_at").drop_duplicates("customer_id", keep="last").set_index("customer_id")
    clean = result.customers.set_index("customer_id")
    assert (latest.loc[clean.index, "member_level"].to_numpy() == clean["member_level"].to_numpy(str)).all()
    assert (latest.loc[clean.index, "phone"].to_numpy() == clean["phone"].fillna("").to_numpy(str)).all()
    assert (df["created_at"] == "").sum() == man["blank_required"]["created_at"]
    parsed, styles = _parse_styles(df["created_at"])
    assert styles == man["date_formats"]["created_at"]
    assert ((df["created_at"] != "") & parsed.isna()).sum() == man["malformed"]["created_at"]
    # every style keeps the second: parsed values equal the clean ones
    ok = parsed.notna()
    assert (parsed[ok].to_numpy() == clean.loc[df.loc[ok, "customer_id"], "created_at"].to_numpy()).all()
    age = df["age"]
    numeric = age.str.fullmatch(r"-?\d+")
    assert ((age != "") & (age != "N/A") & ~numeric).sum() == man["malformed"]["age"]
    assert (age == "N/A").sum() == man["na_token"]["age"]
    assert (numeric & ~age.where(numeric, "30").astype(int).between(14, 110)).sum() == man["out_of_range"][
        "age"
    ]
    padded = df["province"].ne(df["province"].str.strip()).sum()
    assert padded == man["whitespace_padded"]["province"]
    assert df["points_balance"].str.contains(",").sum() == man["thousands_separator"]["points_balance"]
    spell = df["marketing_consent"][df["marketing_consent"] != ""].value_counts().to_dict()
    assert spell == man["bool_spellings"]["marketing_consent"]


def test_messy_orders_and_interactions_match_manifest(messy_dir):
    out, result, _, manifest = messy_dir
    mo = manifest["tables"]["orders"]
    o = _read(out / "orders.csv", "utf-8-sig")
    assert list(o.columns) == TABLES["orders"].column_names
    assert len(o) == mo["rows_written"] == len(result.orders) + mo["duplicates"]["exact"]
    assert o.duplicated().sum() == mo["duplicates"]["exact"]
    assert o["amount"].str.startswith("¥").sum() == mo["currency_symbol"]["amount_cny"]
    assert o["amount"].str.startswith("$").sum() == mo["currency_symbol"]["amount_usd"]
    assert (o["amount"] == "").sum() == mo["blank_required"]["amount"]
    parseable = (
        o["amount"].str.replace(r"^[¥$]", "", regex=True).str.replace(",", "").str.fullmatch(r"\d+\.\d{2}")
    )
    assert ((o["amount"] != "") & (o["amount"] != "N/A") & ~parseable).sum() == mo["malformed"]["amount"]
    assert (o["amount"] == "N/A").sum() == mo["na_token"]["amount"]
    assert (~o["status"].isin(["paid", "refunded", "cancelled"])).sum() == mo["case_or_whitespace"]["status"]
    assert (o["ts"] == "").sum() == mo["blank_required"]["ts"]
    parsed, styles = _parse_styles(o["ts"])
    assert styles == mo["date_formats"]["ts"]
    assert ((o["ts"] != "") & parsed.isna()).sum() == mo["malformed"]["ts"]
    clean_ts = result.orders.set_index("order_id")["ts"]
    ok = parsed.notna()
    assert (parsed[ok].to_numpy() == clean_ts.loc[o.loc[ok, "order_id"]].to_numpy()).all()

    mi = manifest["tables"]["interactions"]
    i = _read(out / "interactions.csv", "utf-8")
    assert len(i) == mi["rows_written"] == len(result.interactions) + mi["duplicates"]["exact"]
    assert (i["event_type"] == "").sum() == mi["blank_required"]["event_type"]
    parsed, styles = _parse_styles(i["ts"])
    assert styles == mi["date_formats"]["ts"]
    assert ((i["ts"] != "") & parsed.isna()).sum() == mi["malformed"]["ts"]
    assert i["channel"].ne(i["channel"].str.strip()).sum() == mi["whitespace_padded"]["channel"]


def test_messy_touches_xlsx_matches_manifest(messy_dir):
    out, result, _, manifest = messy_dir
    mt = manifest["tables"]["marketing_touches"]
    assert mt["format"] == "xlsx"
    x = pd.read_excel(out / "marketing_touches.xlsx", dtype=object)
    assert list(x.columns) == TABLES["marketing_touches"].column_names
    assert len(x) == mt["rows_written"] == len(result.marketing_touches)
    assert x["campaign_id"].isna().sum() == mt["blank_required"]["campaign_id"]
    kinds = x["sent_at"].map(lambda v: type(v).__name__).value_counts().to_dict()
    assert kinds.get("datetime", 0) == mt["date_formats"]["sent_at"]["excel_datetime"]
    assert kinds.get("float", 0) == mt["date_formats"]["sent_at"]["excel_serial"]
    native = x["sent_at"].map(lambda v: type(v).__name__ == "datetime")
    clean = result.marketing_touches["sent_at"]
    assert (pd.to_datetime(x.loc[native, "sent_at"]).dt.round("s") == clean[native]).all()


# ---------------------------------------------------------------------------------------------
# CLI
# ---------------------------------------------------------------------------------------------


def _app() -> typer.Typer:
    from serving.cli.synth import register

    app = typer.Typer()
    register(app)

    @app.command("noop")
    def _noop() -> None:  # a second command keeps `synth` a named sub-command
        pass

    return app


def test_cli_writes_a_data_dir(tmp_path):
    out = tmp_path / "demo"
    res = CliRunner().invoke(
        _app(), ["synth", "--customers", "300", "--days", "90", "--seed", "1", "--out", str(out)]
    )
    assert res.exit_code == 0, res.output
    assert "oracle AUC" in res.output
    assert (out / "customers.parquet").is_file() and (out / "truth" / "truth.json").is_file()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--customers", "0"], "n_customers must be >= 1"),
        (["--as-of", "2025-13-01"], "--as-of: '2025-13-01' is not a date"),
        (["--as-of", "2025-06-20"], "runs past the data end"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(tmp_path, args, message):
    res = CliRunner().invoke(_app(), ["synth", "--out", str(tmp_path / "x"), "--customers", "50", *args])
    assert res.exit_code == 2
    assert re.search(re.escape(message), res.output)
    assert "Traceback" not in res.output
