"""The member levels + tags path gives the same outputs as before its speed work (issue 17's benchmark).

Two as-of runs (month by month, with ``--previous``) over data made by ``bench/bench_members.py``'s generator
(2,000 customers, 5 interactions each) with its 100-tag config, manual level changes, manual tags and a
removal file: levels, level history, the tag context, the long tag table and the per-tag counts are reduced to
a canonical text (every column's dtype, then the rows of the columns that are not floats) and compared with
digests recorded from the code before the refactor (commit 32a1431, and 9ca81fa shown equal to it; see EXPECTED).
Float columns are compared with a relative tolerance of 1e-6 against the values 9ca81fa wrote, kept in
``tests/fixtures/members_floats/``: their last digits move with the CPU (OpenBLAS picks its kernels by CPU,
numpy its SIMD sums, and ``p_alive`` comes from an optimiser), so no rounding of them gives one digest on every
machine. Levels and tag counts are also compared in clear, so a failure shows what moved. The same comparison
was run at 200,000 customers (see docs/members.md, Speed).
"""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.contract import drop_pii
from features.io import load_tables
from features.members.config import MembersConfig, TagsConfig, load_members_config
from features.members.levels import compute_levels, read_manual_changes
from features.members.outputs import read_levels, read_previous_levels, read_previous_tags, write_summary, write_table
from features.members.tags import apply_tags, read_manual_tags, read_tag_removals, rule_fields
from serving.members.context import MISSING_HINT, build_context, context_fields, input_columns

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "bench"))
import bench_members  # noqa: E402 - the benchmark's own generator and 100-tag config

LEVEL_INPUT = {"customers": ("customer_id", "created_at"), "orders": ("customer_id", "ts", "amount", "status")}


def float_columns(df: pd.DataFrame) -> list[str]:
    """The float columns of an output: compared with a tolerance, not digested."""
    return [c for c in df.columns if pd.api.types.is_float_dtype(df[c].dtype)]


def canonical(df: pd.DataFrame) -> str:
    """Every column's dtype, then the rows of the columns that are not floats as text (missing values as one
    marker)."""
    parts = [",".join(f"{c}:{t}" for c, t in df.dtypes.astype(str).items())]
    exact = df.drop(columns=float_columns(df))
    cols = [["NA" if pd.isna(v) else str(v) for v in exact[c].astype(object)] for c in exact.columns]
    parts += ["\x1f".join(row) for row in zip(*cols, strict=True)]
    return "\n".join(parts)


def digest(df: pd.DataFrame) -> str:
    return hashlib.sha256(canonical(df).encode("utf-8")).hexdigest()[:16]


#: the float columns of 9ca81fa's outputs, one file per output that has any (``<as of>_<output>.csv.gz``)
FLOATS = ROOT / "tests" / "fixtures" / "members_floats"


def assert_equals_recorded(df: pd.DataFrame, key: str) -> None:
    """``df`` equals the recorded output ``key`` (``<as of>/<output>``): the digest of its dtypes and other columns
    (:data:`EXPECTED`), and its float columns to a relative 1e-6, missing values in the same places."""
    assert digest(df) == EXPECTED[key], key
    cols = float_columns(df)
    path = FLOATS / (key.replace("/", "_") + ".csv.gz")
    if not cols:
        assert not path.exists(), f"{key} has no float column, yet {path.name} records some"
        return
    want = pd.read_csv(path, dtype="float64")
    assert list(want.columns) == cols, key
    assert len(want) == len(df), key
    for c in cols:
        got = df[c].to_numpy(dtype="float64", na_value=np.nan)
        np.testing.assert_allclose(got, want[c].to_numpy(), rtol=1e-6, atol=0, equal_nan=True, err_msg=f"{key}: {c}")


def run_path(data: Path, out: Path, as_of: str, mcfg: MembersConfig, tcfg: TagsConfig, previous: str | None) -> dict:
    """What ``members apply`` then ``tags apply --members`` do, through the same functions and files."""
    t = pd.Timestamp(as_of)
    tables = load_tables(data, required=("orders",), columns=LEVEL_INPUT)
    prev = read_previous_levels(out / previous / "members") if previous else None
    changes = read_manual_changes(data / "level_changes.csv", mcfg)
    res = compute_levels(tables, t, mcfg, prev, changes)
    write_table(res.levels, out / as_of / "members", "levels")
    write_table(res.history, out / as_of / "members", "history")
    write_summary(res.summary, out / as_of / "members")

    tables = {k: drop_pii(v) for k, v in load_tables(data, required=("orders",), columns=input_columns()).items()}
    levels, _ = read_levels(out / as_of / "members")
    prev_long, prev_removed, _ = read_previous_tags(out / previous / "tags") if previous else (None, None, None)
    removed = read_tag_removals(data / "tag_removals.csv", tcfg)
    if prev_removed is not None:
        removed = pd.concat([prev_removed, removed], ignore_index=True)
    ctx, _ = build_context(tables, t, levels, rule_fields(tcfg))
    fields = context_fields(ctx, mcfg.order)
    tags = apply_tags(
        ctx, tables.get("orders"), t, tcfg, fields, prev_long, read_manual_tags(data / "manual_tags.csv", tcfg),
        removed, hint=MISSING_HINT,
    )
    write_table(tags.long, out / as_of / "tags", "tags", csv=False)
    write_table(tags.counts, out / as_of / "tags", "tag_counts")
    if tags.removals is not None:
        write_table(tags.removals, out / as_of / "tags", "manual_removals", csv=False)
    write_summary(tags.summary, out / as_of / "tags")
    return {"levels": res.levels, "history": res.history, "context": ctx, "long": tags.long, "counts": tags.counts,
            "level_summary": res.summary, "tag_summary": tags.summary}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    root = tmp_path_factory.mktemp("members-equal")
    data = root / "data"
    bench_members.generate(2000, data, interactions=5, seed=7)
    ids = [f"C{i:08d}" for i in (3, 17, 256, 1024, 1999)]
    pd.DataFrame(
        {
            "customer_id": ids,
            "level": ["platinum", "none", "gold", "silver", "gold"],
            "changed_by": "ops",
            "changed_at": ["2025-02-01", "2025-03-15", "2025-05-20", "2025-06-10", "2025-07-30"],
            "reason": "test",
        }
    ).to_csv(data / "level_changes.csv", index=False)
    manual = pd.read_csv(data / "manual_tags.csv", dtype=str)
    manual.iloc[:5].rename(columns={"added_by": "removed_by", "added_at": "removed_at"}).assign(
        removed_at="2025-06-15"
    ).to_csv(data / "tag_removals.csv", index=False)
    mcfg = load_members_config(ROOT / "configs" / "members.yaml")
    tcfg = TagsConfig.model_validate(bench_members.tags_config())
    out = root / "out"
    first = run_path(data, out, "2025-03-31", mcfg, tcfg, None)
    second = run_path(data, out, "2025-06-30", mcfg, tcfg, "2025-03-31")
    return {"2025-03-31": first, "2025-06-30": second, "data": {"dir": data, "tags": tcfg, "members": mcfg}}


#: digests (dtypes and the columns that are not floats) of the outputs of the code before the speed work (commit
#: 32a1431). Its outputs matched 9ca81fa's on the machine of 3 Dec; these were recorded from 9ca81fa's outputs on
#: the host of 4 Dec afternoon (Intel, AVX-512), where today's code gives the same digests and the same floats.
EXPECTED = {
    "2025-03-31/levels": "7033d20e5ece7062",
    "2025-03-31/history": "ae88537f04355d8b",
    "2025-03-31/context": "6b518f5b8610fe02",
    "2025-03-31/long": "0e0c51fc7502c170",
    "2025-03-31/counts": "b0f324bcf8b5d63a",
    "2025-06-30/levels": "feba327abed5fdd8",
    "2025-06-30/history": "23d9f962fe4e49db",
    "2025-06-30/context": "9af587abc7567571",
    "2025-06-30/long": "e63c850121cfe616",
    "2025-06-30/counts": "1e8a1edd3560f7e8",
}
#: the same runs in clear: level counts, manual changes applied, tag rows, tagged customers, history rows
EXPECTED_COUNTS = {
    "2025-03-31": ({"none": 1628, "silver": 246, "gold": 25, "platinum": 5}, 2, 15566, 1132, 277),
    "2025-06-30": ({"none": 1660, "silver": 302, "gold": 33, "platinum": 5}, 2, 17466, 1500, 417),
}


@pytest.mark.parametrize("as_of", ["2025-03-31", "2025-06-30"])
def test_counts_equal_the_recorded_ones(runs: dict, as_of: str) -> None:
    r = runs[as_of]
    got = (
        r["level_summary"]["levels"],
        r["level_summary"]["manual_applied"],
        r["tag_summary"]["rows"],
        r["tag_summary"]["customers_with_a_tag"],
        len(r["history"]),
    )
    assert got == EXPECTED_COUNTS[as_of]


@pytest.mark.parametrize("as_of", ["2025-03-31", "2025-06-30"])
@pytest.mark.parametrize("name", ["levels", "history", "context", "long", "counts"])
def test_outputs_equal_the_recorded_ones(runs: dict, as_of: str, name: str) -> None:
    assert_equals_recorded(runs[as_of][name], f"{as_of}/{name}")


def test_event_tables_are_not_read_when_no_rule_needs_them(runs: dict) -> None:
    d = runs["data"]
    needed = rule_fields(d["tags"])
    cols = input_columns(needed)
    assert cols["interactions"] == () and cols["marketing_touches"] == ()
    assert input_columns([*needed, "interactions_90d"])["interactions"] == input_columns()["interactions"]
    assert input_columns([*needed, "lead_grade"])["interactions"] != ()  # a --scores column: kept, to be safe
    lean = load_tables(d["dir"], required=("orders",), columns=cols)
    assert lean["interactions"].shape == (10_000, 0)  # the row count only
    t = pd.Timestamp("2025-06-30")
    ctx, _ = build_context(lean, t, runs["2025-06-30"]["levels"], needed)
    assert_equals_recorded(ctx, "2025-06-30/context")
