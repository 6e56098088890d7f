"""`crmscore score` end to end against the session's trained registry (``crm_registry``, a small XGBoost).

Checks the numbers (identical to ``mlflow.pyfunc`` predictions), the accounting invariant
(rows in = scored + rejected + duplicates), rejects with row numbers and reasons, dedupe keeping the last
occurrence, sorting, Parquet / SQL round trips, mapping + GB18030 + semicolons, CRM tables as input, bad
input (one-line error, exit 2, nothing written) and a run killed with SIGKILL (no output file, rerun works).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import typer
from typer.testing import CliRunner

from tests.integration.conftest import Registry, keep_mlflow_globals

AS_OF = "2025-06-01"
MODEL = "lead_scoring@champion"


@pytest.fixture(scope="module")
def reg(crm_registry: Registry, tmp_path_factory: pytest.TempPathFactory) -> Registry:
    """The session registry, with MLflow and the records home pointed at it for this module."""
    home = tmp_path_factory.mktemp("batch_home")
    with pytest.MonkeyPatch.context() as mp:
        keep_mlflow_globals(mp)
        mp.setenv("MLFLOW_TRACKING_URI", crm_registry.uri)
        mp.setenv("MLFLOW_REGISTRY_URI", crm_registry.uri)
        mp.setenv("CRMSCORE_HOME", str(home))
        yield crm_registry


@pytest.fixture(scope="module")
def scorer(reg: Registry):
    import mlflow

    return mlflow.sklearn.load_model(f"models:/{MODEL}")


@pytest.fixture(scope="module")
def feats(reg: Registry, scorer) -> pd.DataFrame:
    """Feature rows of the registry's customers (customer_id first), plus a pass-through column ``owner``."""
    from features.build import CRMSnapshot
    from features.io import load_tables

    f = scorer.builder.transform(CRMSnapshot(load_tables(reg.data), pd.Timestamp(AS_OF))).reset_index()
    f["owner"] = [f"销售{i % 7}" for i in range(len(f))]
    return f


def _app() -> typer.Typer:
    from serving.cli.score import register

    app = typer.Typer()
    app.callback()(lambda: None)
    register(app)
    return app


def run_score(*args: str) -> object:
    """`crmscore score ARGS` in-process; returns the click Result."""
    return CliRunner().invoke(_app(), ["score", "--model", MODEL, *args], catch_exceptions=False)


def pyfunc_proba(frame: pd.DataFrame) -> np.ndarray:
    import mlflow

    model = mlflow.pyfunc.load_model(f"models:/{MODEL}")
    return np.asarray(model.predict(frame))[:, 1].astype("float64")


def read_out(path: Path) -> pd.DataFrame:
    return pd.read_csv(path, dtype={"customer_id": str, "owner": str}, keep_default_na=False,
                       float_precision="round_trip")


def summary_of(out: Path) -> dict:
    return json.loads(out.with_name(out.name + ".summary.json").read_text(encoding="utf-8"))


def leftovers(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# ------------------------------------------------------------------------------------------------ model


def test_model_is_found_through_mlflow_client_and_loads_as_mlflow_does(reg, scorer, feats, tmp_path):
    """`crmscore score` finds the version through MlflowClient (an alias pinned to its version once) and loads
    it with the trusted-types check: the same version and the same predictions as ``mlflow.sklearn``."""
    from mlflow import MlflowClient

    from serving.batch import load_scorer

    champion = str(MlflowClient().get_model_version_by_alias("lead_scoring", "champion").version)
    for spec in ("lead_scoring@champion", f"lead_scoring/{champion}", "lead_scoring"):
        m = load_scorer(spec)
        assert (m.name, m.version) == ("lead_scoring", champion), spec
        assert m.id_column is None  # the CRM models are keyed by customer_id: the default
        rows = feats.head(200)
        assert np.array_equal(m.scorer.predict_proba(rows)[:, 1], scorer.predict_proba(rows)[:, 1])


# ---------------------------------------------------------------------------------------------- numbers


def test_scores_equal_pyfunc_with_ranks_reasons_and_summary(reg, scorer, feats, tmp_path):
    from training.scores import to_grade, to_score

    src = tmp_path / "leads.csv"
    feats.to_csv(src, index=False)
    out = tmp_path / "scored.csv"
    r = run_score("--input", str(src), "--output", str(out), "--reasons", "2", "--keep", "owner",
                  "--chunk-size", "257", "--no-records")
    assert r.exit_code == 0, r.output
    assert "rows in" in r.output and "scored" in r.output
    got = read_out(out)
    assert list(got.columns) == ["customer_id", "owner", "probability", "score", "grade", "rank", "decile",
                                 "reason_pos_1", "reason_pos_2", "reason_neg_1", "reason_neg_2"]
    assert got["customer_id"].tolist() == feats["customer_id"].tolist()  # input order kept
    assert got["owner"].tolist() == feats["owner"].tolist()
    expected = pyfunc_proba(feats[list(scorer.feature_names_in_)])
    np.testing.assert_allclose(got["probability"].to_numpy(), expected, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(got["score"], to_score(expected))
    np.testing.assert_array_equal(got["grade"], to_grade(to_score(expected), scorer.grade_thresholds_))
    # rank: 1 = highest probability, ties by input order; deciles of (almost) equal size
    order = np.lexsort((np.arange(len(got)), -got["probability"].to_numpy()))
    np.testing.assert_array_equal(got["rank"].to_numpy()[order], np.arange(1, len(got) + 1))
    sizes = got["decile"].value_counts().sort_index()
    assert list(sizes.index) == list(range(1, 11)) and sizes.max() - sizes.min() <= 1
    assert (got.groupby("decile")["probability"].min().diff().dropna() <= 0).all()

    # reasons read "label = value (+0.12)" and agree with the scorer's own explain()
    X = feats[list(scorer.feature_names_in_)].head(25)
    for i, ex in enumerate(scorer.explain(X, top=2)):
        for kind, key in (("pos", "positive"), ("neg", "negative")):
            for k in range(2):
                cell = got.loc[i, f"reason_{kind}_{k + 1}"]
                if k >= len(ex[key]):
                    assert cell == ""
                    continue
                want = ex[key][k]
                m = re.fullmatch(r"(.+) = (.+) \(([+-]\d+\.\d\d)\)", cell)
                assert m, cell
                assert m.group(1) == want["label"]
                assert float(m.group(3)) == pytest.approx(round(want["contribution"], 2), abs=0.011)
                if want["value"] is None:
                    assert m.group(2) == "missing"
                elif isinstance(want["value"], str):
                    assert m.group(2) == want["value"]
                else:
                    assert float(m.group(2)) == pytest.approx(want["value"], abs=0.006)

    s = summary_of(out)
    assert s["rows_in"] == len(feats) == s["scored"] + s["rejected"] + s["duplicates"]
    assert s["rejected"] == 0 and s["duplicates"] == 0
    assert sum(s["grades"].values()) == s["scored"]
    assert s["score_quantiles"]["p50"] == pytest.approx(float(np.median(to_score(expected))))
    assert s["model_version"] == reg.versions["lead_scoring"]


def test_rejects_duplicates_and_row_numbers(reg, scorer, feats, tmp_path):
    names = list(scorer.feature_names_in_)
    df = feats.head(8).astype(object).copy()
    dup_id = df.loc[0, "customer_id"]
    df.loc[1, "customer_id"] = ""  # blank id
    df.loc[2, names[0]] = "abc"  # not a number
    df.loc[3, names[1]] = "inf"  # infinite
    df.loc[5, "customer_id"] = dup_id  # later duplicate of row 0: this one is kept
    lines = df.to_csv(index=False, lineterminator="\n").splitlines()
    # a blank line after the first data row, and a line with too many fields at the end
    lines = [lines[0], lines[1], "", *lines[2:], lines[4] + ",extra,fields"]
    src = tmp_path / "messy.csv"
    src.write_text("\n".join(lines) + "\n", encoding="utf-8")
    out = tmp_path / "scored.csv"
    r = run_score("--input", str(src), "--output", str(out), "--chunk-size", "3", "--no-records")
    assert r.exit_code == 0, r.output

    rej = pd.read_csv(out.with_name("scored.csv.rejects.csv"), dtype=str, keep_default_na=False,
                      encoding="utf-8-sig")
    # file lines: 1 header, 2 row0, 3 blank, 4 row1 (blank id), 5 row2 (abc), 6 row3 (inf), ..., 11 bad line
    by_row = dict(zip(rej["row"].astype(int), rej["reason"], strict=True))
    assert by_row[4] == "customer_id is blank"
    assert by_row[5] == f"{names[0]} is not a number"
    assert rej.loc[rej["row"] == "5", "value"].item() == "abc"
    assert by_row[6] == f"{names[1]} is infinite"
    assert by_row[11].startswith("row has ") and "the header has" in by_row[11]
    assert len(rej) == 4

    got = read_out(out)
    assert got["customer_id"].tolist().count(dup_id) == 1
    kept = got.loc[got["customer_id"] == dup_id, "probability"].item()
    row5 = feats.loc[[5], names].reset_index(drop=True)
    assert kept == pytest.approx(pyfunc_proba(row5)[0], abs=1e-9)
    s = summary_of(out)
    assert (s["rows_in"], s["scored"], s["rejected"], s["duplicates"], s["blank_rows"]) == (9, 4, 4, 1, 1)
    assert s["rows_in"] == s["scored"] + s["rejected"] + s["duplicates"]


def test_sorted_parquet_and_sql_outputs_agree(reg, scorer, feats, tmp_path, monkeypatch):
    import sqlalchemy as sa

    src = tmp_path / "leads.parquet"
    feats.to_parquet(src, index=False)
    out_csv = tmp_path / "sorted.csv"
    r = run_score("--input", str(src), "--output", str(out_csv), "--sort", "--chunk-size", "100", "--no-records")
    assert r.exit_code == 0, r.output
    got = read_out(out_csv)
    assert got["rank"].tolist() == list(range(1, len(feats) + 1))
    assert got["probability"].is_monotonic_decreasing

    out_pq = tmp_path / "scored.parquet"
    assert run_score("--input", str(src), "--output", str(out_pq), "--no-records").exit_code == 0
    pq = pd.read_parquet(out_pq)
    assert pq["customer_id"].tolist() == feats["customer_id"].tolist()
    merged = pq.merge(got, on="customer_id", suffixes=("", "_csv"))
    assert len(merged) == len(feats)
    np.testing.assert_array_equal(merged["probability"], merged["probability_csv"])
    np.testing.assert_array_equal(merged["rank"], merged["rank_csv"])

    # SQL in (a query) and SQL out (a table, replaced atomically on a second run)
    db = tmp_path / "crm.db"
    feats.to_sql("leads", sa.create_engine(f"sqlite:///{db}"), index=False)
    for _ in range(2):
        r = run_score("--input", f"sqlite:///{db}", "--query", "SELECT * FROM leads", "--output", f"sqlite:///{db}",
                      "--output-table", "scores", "--no-records")
        assert r.exit_code == 0, r.output
    sql = pd.read_sql("SELECT * FROM scores", sa.create_engine(f"sqlite:///{db}"))
    assert len(sql) == len(feats)
    np.testing.assert_allclose(sql["probability"].to_numpy(), pq["probability"].to_numpy(), rtol=0, atol=1e-12)
    assert (tmp_path / "crm.db.scores.summary.json").is_file()
    # the audit line of an export to a SQL table names every id written there
    from serving.access import audit

    trail = tmp_path / "audit.jsonl"
    monkeypatch.setenv("CRMSCORE_AUDIT_FILE", str(trail))
    r = run_score("--input", str(src), "--output", f"sqlite:///{db}", "--output-table", "scores2", "--no-records")
    assert r.exit_code == 0, r.output
    entries = [e for _, e in audit.read_entries(trail)]
    assert sorted(c for e in entries for c in e["customers"]) == sorted(feats["customer_id"].astype(str))
    assert entries[-1]["action"] == "export_scores" and audit.verify(trail).ok


def test_audit_names_the_written_ids_in_output_order(reg, scorer, feats, tmp_path, monkeypatch):
    """The audit lines of `crmscore score` list the ids of the rows written, in the output's order (input order,
    or by rank with --sort): not the rejected row, and a repeated id once."""
    from serving.access import audit

    df = feats.head(60).astype(object).copy()
    df.loc[df.index[5], list(scorer.feature_names_in_)[0]] = "abc"  # rejected: not a number
    df = pd.concat([df, df.iloc[[10]]])  # a repeated id: the last occurrence is kept
    src = tmp_path / "leads.csv"
    df.to_csv(src, index=False)
    trail = tmp_path / "audit.jsonl"
    monkeypatch.setenv("CRMSCORE_AUDIT_FILE", str(trail))
    for extra in ([], ["--sort"]):
        out = tmp_path / f"scored{len(extra)}.csv"
        r = run_score("--input", str(src), "--output", str(out), "--no-records", *extra)
        assert r.exit_code == 0, r.output
        written = pd.read_csv(out, dtype={"customer_id": str})["customer_id"].tolist()
        assert len(written) == 59 and len(set(written)) == 59
        entry = [e for _, e in audit.read_entries(trail)][-1]
        assert entry["action"] == "export_scores" and entry["customers"] == written
    assert audit.verify(trail).ok


def test_mapping_semicolons_and_gb18030(reg, scorer, feats, tmp_path):
    src = tmp_path / "线索.csv"
    df = feats.rename(columns={"customer_id": "客户编号", "province": "所在省份"})
    df.to_csv(src, index=False, sep=";", encoding="gb18030")
    mapping = tmp_path / "mapping.yaml"
    mapping.write_text("columns:\n  客户编号: customer_id\n  所在省份: province\n", encoding="utf-8")
    out = tmp_path / "scored.csv"
    r = run_score("--input", str(src), "--output", str(out), "--mapping", str(mapping), "--keep", "owner",
                  "--no-records")
    assert r.exit_code == 0, r.output
    got = read_out(out)
    expected = pyfunc_proba(feats[list(scorer.feature_names_in_)])
    np.testing.assert_allclose(got["probability"].to_numpy(), expected, rtol=0, atol=1e-9)
    assert got["owner"].tolist() == feats["owner"].tolist()  # Chinese text survives the round trip
    s = summary_of(out)
    assert s["encoding"] == "gb18030" and s["delimiter"] == ";"


def test_crm_tables_directory_and_raw_exports(reg, scorer, tmp_path):
    from features.build import CRMSnapshot
    from features.io import load_tables

    tables = load_tables(reg.data)
    expected_feats = scorer.builder.transform(CRMSnapshot(tables, pd.Timestamp(AS_OF)))
    expected = pd.Series(scorer.predict_proba(expected_feats)[:, 1], index=expected_feats.index)

    out = tmp_path / "from_tables.csv"
    r = run_score("--input", str(reg.data), "--as-of", AS_OF, "--output", str(out), "--no-records")
    assert r.exit_code == 0, r.output
    got = read_out(out).set_index("customer_id")
    np.testing.assert_allclose(got["probability"], expected.reindex(got.index).to_numpy(), rtol=0, atol=1e-12)
    s = summary_of(out)
    n_customers = len(tables["customers"])
    assert s["rows_in"] == n_customers == s["scored"] + s["rejected"] + s["duplicates"]
    assert s["scored"] == len(expected_feats)
    assert s["rejected"] == n_customers - len(expected_feats)  # created after the as-of date

    # raw exports (CSV) go through ingestion first; same scores
    raw = tmp_path / "exports"
    raw.mkdir()
    for name, df in tables.items():
        df.to_csv(raw / f"{name}.csv", index=False)
    out2 = tmp_path / "from_exports.csv"
    r = run_score("--input", str(raw), "--as-of", AS_OF, "--output", str(out2), "--no-records")
    assert r.exit_code == 0, r.output
    got2 = read_out(out2).set_index("customer_id")
    np.testing.assert_allclose(got2["probability"], got["probability"].reindex(got2.index), rtol=0, atol=1e-9)
    assert summary_of(out2)["ingest_summary"]


def test_records_are_written_for_drift_monitoring(reg, feats, tmp_path):
    import importlib.util

    if importlib.util.find_spec("serving.http.records") is None:
        pytest.skip("serving.http.records is not there yet")
    from serving.http.records import read_records

    src = tmp_path / "leads.csv"
    feats.head(50).to_csv(src, index=False)
    out = tmp_path / "scored.csv"
    r = run_score("--input", str(src), "--output", str(out))
    assert r.exit_code == 0, r.output
    assert summary_of(out)["records"] == "written"
    recs = read_records(os.environ["CRMSCORE_HOME"], "lead_scoring")
    batch = recs[recs["source"] == "batch"]
    assert set(feats.head(50)["customer_id"]) <= set(batch["customer_id"])


# -------------------------------------------------------------------------------------------- bad input


def _bad_inputs(tmp_path: Path, feats: pd.DataFrame) -> dict[str, tuple[list[str], str]]:
    d = tmp_path
    (d / "missing.csv").write_text(feats.drop(columns=["age", "province"]).head(3).to_csv(index=False))
    (d / "hash.csv").write_text(feats.head(3).to_csv(index=False, sep="#"))
    (d / "empty.csv").write_text("")
    (d / "header_only.csv").write_text(",".join(feats.columns) + "\n")
    good = d / "good.csv"
    feats.head(3).to_csv(good, index=False)
    return {
        "missing columns": (["--input", str(d / "missing.csv")], r"missing required .*age.*province"),
        "wrong delimiter": (["--input", str(d / "hash.csv")], r"missing required .*delimit"),
        "empty file": (["--input", str(d / "empty.csv")], r"empty"),
        "header only": (["--input", str(d / "header_only.csv")], r"no data rows"),
        "no such model": (["--input", str(good), "--model", "no_such_model@champion"], r"cannot load model"),
        "no such input": (["--input", str(d / "nope.csv")], r"file not found"),
    }


@pytest.mark.parametrize(
    "case", ["missing columns", "wrong delimiter", "empty file", "header only", "no such model", "no such input"]
)
def test_bad_input_is_one_line_exit_2_and_writes_nothing(reg, feats, tmp_path, case):
    args, pattern = _bad_inputs(tmp_path, feats)[case]
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    r = run_score(*args, "--output", str(out_dir / "scored.csv"), "--no-records")
    assert r.exit_code == 2
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert re.search(pattern, lines[0]), lines[0]
    assert leftovers(out_dir) == []


def test_unwritable_output_is_refused_before_scoring(reg, feats, tmp_path):
    src = tmp_path / "leads.csv"
    feats.head(3).to_csv(src, index=False)
    r = run_score("--input", str(src), "--output", str(tmp_path / "no" / "dir" / "scored.csv"))
    assert r.exit_code == 2 and "does not exist" in r.stderr
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o555)
    try:
        target = ro
        if os.access(ro, os.W_OK):  # root ignores permission bits: use a directory the kernel refuses
            target = Path("/sys")
            if not target.is_dir() or os.access(target, os.W_OK) and _can_create(target):
                pytest.skip("no read-only directory available to this user")
        r = run_score("--input", str(src), "--output", str(target / "crmscore-scored.csv"), "--no-records")
        assert r.exit_code == 2, r.output
        lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and re.search(r"not writable|Permission denied|Read-only", lines[0]), r.stderr
        assert not (target / "crmscore-scored.csv").exists()
    finally:
        ro.chmod(0o755)
    assert leftovers(ro) == []


def _can_create(directory: Path) -> bool:
    try:
        (directory / ".crmscore-probe").touch()
    except OSError:
        return False
    (directory / ".crmscore-probe").unlink()
    return True


# -------------------------------------------------------------------------------------------- killed run


def test_killed_run_leaves_no_output_and_rerun_succeeds(reg, feats, tmp_path):
    big = pd.concat([feats] * max(1, 40_000 // len(feats)), ignore_index=True)
    big["customer_id"] = [f"K{i:07d}" for i in range(len(big))]
    src = tmp_path / "big.csv"
    big.to_csv(src, index=False)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    out = out_dir / "scored.csv"
    exe = Path(sys.executable).parent / "crmscore"
    argv = [str(exe)] if exe.exists() else [sys.executable, "-c", "from serving.cli import main; main()"]
    argv += ["score", "--model", MODEL, "--input", str(src), "--output", str(out), "--chunk-size", "500",
             "--reasons", "3", "--no-records"]
    proc = subprocess.Popen(argv, env=dict(os.environ), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 240
        # wait until the run is scoring: its work directory holds spilled chunks
        while time.monotonic() < deadline and proc.poll() is None:
            work = [p for p in out_dir.iterdir() if p.name.endswith(".tmp") and p.is_dir()]
            if work and len(list(work[0].glob("chunk-*.arrow"))) >= 2:
                break
            time.sleep(0.05)
        assert proc.poll() is None, f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}"
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
    names = leftovers(out_dir)
    assert "scored.csv" not in names and "scored.csv.summary.json" not in names
    assert "scored.csv.rejects.csv" not in names
    assert all(n.startswith(".scored.csv.") and ".crmscore-" in n for n in names), names  # hidden work files only

    r = run_score("--input", str(src), "--output", str(out), "--chunk-size", "20000", "--no-records")
    assert r.exit_code == 0, r.output
    assert leftovers(out_dir) == ["scored.csv", "scored.csv.rejects.csv", "scored.csv.summary.json"]
    assert summary_of(out)["scored"] == len(big)


# ------------------------------------------------------------------------------------------------ full disk


@pytest.fixture
def small_disk(tmp_path: Path) -> Path:
    """A 1 MB tmpfs mounted for the test (and unmounted after): a real file system that runs out of space."""
    d = tmp_path / "small_disk"
    d.mkdir()
    if shutil.which("mount") is None:
        pytest.skip("a full disk needs a size-limited tmpfs: the mount command is not available")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(d)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"a full disk needs a size-limited tmpfs, and mounting one is not permitted here: "
                    f"{(r.stderr or r.stdout).strip()[:200]}")
    try:
        yield d
    finally:
        subprocess.run(["umount", str(d)], capture_output=True)
        if os.path.ismount(d):
            subprocess.run(["umount", "-l", str(d)], capture_output=True)


def _many_leads(feats: pd.DataFrame, tmp_path: Path, rows: int, bad_every: int = 0) -> Path:
    big = pd.concat([feats] * max(1, -(-rows // len(feats))), ignore_index=True).head(rows)
    big["customer_id"] = [f"D{i:07d}" for i in range(len(big))]
    if bad_every:
        big["age"] = big["age"].astype(object)
        big.loc[big.index % bad_every == 0, "age"] = "not a number " + "x" * 100
    src = tmp_path / "leads.csv"
    big.to_csv(src, index=False)
    return src


def test_full_disk_for_the_output_is_a_clear_error_and_leaves_nothing(reg, feats, tmp_path, small_disk):
    """ENOSPC while writing the scored output: exit 2 naming the file and the cause, no partial or temporary
    file, and an existing output from an earlier run is left as it was."""
    src = _many_leads(feats, tmp_path, 20_000)
    out = small_disk / "scored.csv"
    out.write_text("earlier run\n", encoding="utf-8")
    r = run_score("--input", str(src), "--output", str(out), "--reasons", "3", "--chunk-size", "2000",
                  "--no-records")
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    assert str(out) in lines[0] and "no space left on device" in lines[0], lines[0]
    assert leftovers(small_disk) == ["scored.csv"]
    assert out.read_text(encoding="utf-8") == "earlier run\n"
    # with room, the same run succeeds and nothing is lost: rows in = scored + rejected + duplicates
    ok = tmp_path / "scored.csv"
    r = run_score("--input", str(src), "--output", str(ok), "--chunk-size", "2000", "--no-records")
    assert r.exit_code == 0, r.output
    s = summary_of(ok)
    assert s["rows_in"] == 20_000 == s["scored"] + s["rejected"] + s["duplicates"]


def test_full_disk_for_the_rejects_file_is_a_clear_error_and_leaves_nothing(reg, feats, tmp_path, small_disk):
    """ENOSPC while writing the rejects file (the output itself has room): the same clear error and no file."""
    src = _many_leads(feats, tmp_path, 20_000, bad_every=2)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    rejects = small_disk / "rejects.csv"
    r = run_score("--input", str(src), "--output", str(out_dir / "scored.csv"), "--rejects", str(rejects),
                  "--chunk-size", "2000", "--no-records")
    assert r.exit_code == 2, r.output
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and str(rejects) in lines[0] and "no space left on device" in lines[0], r.stderr
    assert leftovers(small_disk) == []
    assert leftovers(out_dir) == []
