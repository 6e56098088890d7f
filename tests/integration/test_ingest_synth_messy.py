"""The ingestion invariant on the demo generator's messy exports, against its manifest of injected faults."""

from __future__ import annotations

import json
from pathlib import Path

from features.contract import get_table
from features.ingest import ingest
from features.synth import generate_crm_data, write_crm_data


def test_messy_export_ingests_with_every_row_accounted_for(tmp_path: Path):
    write_crm_data(generate_crm_data(800, 200, 3), tmp_path / "exports", messy=True)
    manifest = json.loads((tmp_path / "exports" / "messy_manifest.json").read_text())["tables"]
    summary = ingest(str(tmp_path / "exports"), tmp_path / "clean", day_first=True)
    assert set(summary.tables) == {"customers", "interactions", "orders", "marketing_touches"}
    for table, counts in summary.tables.items():
        m = manifest[table]
        required = set(get_table(table).required)
        injected = (
            sum(m.get("blank_required", {}).values())
            + sum(m.get("malformed", {}).values())
            + sum(m.get("out_of_range", {}).values())
            + sum(v for col, v in m.get("na_token", {}).items() if col in required)
        )
        duplicates = sum(v for v in m.get("duplicates", {}).values() if isinstance(v, int))
        assert counts.read == m["rows_written"], table
        assert counts.read == counts.accepted + counts.rejected + counts.duplicates, table
        assert counts.rejected == injected, table
        assert counts.duplicates == duplicates, table
        assert (tmp_path / "clean" / f"{table}.parquet").is_file()
        if counts.rejected:
            assert (tmp_path / "clean" / "rejects" / f"{table}.csv").is_file()
