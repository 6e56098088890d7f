"""Options, summary, errors and the flat-rows mapping of a batch run."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from features.messages import M_
from serving.access.exports import ExportPolicy

#: output columns added to the caller's id and pass-through columns, in order
RESULT_COLUMNS = ("probability", "score", "grade", "rank", "decile")
#: the row-number column a spilled chunk carries (dropped before writing)
_ROW = "__row"
#: columns of a rejects frame (the file names the id column after the run's id)
REJECT_COLUMNS = ("row", "id", "column", "value", "reason")


class BatchError(ValueError):
    """Input, model or output a batch run cannot use; the one-line message names the file, column or model."""



@dataclass
class BatchOptions:
    """Everything one batch run needs (the ``crmscore score`` options)."""

    model: str
    input: str
    output: str
    mapping: str | None = None
    reasons: int = 0
    reason_method: str = "exact"
    as_of: str | None = None
    #: None: the id column the model was trained with (``train table --id``), else ``customer_id``
    id_col: str | None = None
    keep: Sequence[str] = ()
    sort: bool = False
    rejects: str | None = None
    chunk_size: int = 100_000
    query: str | None = None
    output_table: str | None = None
    bom: bool = False
    threads: int | None = None
    records: bool = True
    #: formula neutralisation of CSV cells and PII masking of the outputs (serving.access.exports)
    export_policy: ExportPolicy = ExportPolicy()


class BatchSummary(BaseModel):
    """What one run read, scored, rejected and wrote; ``rows_in == scored + rejected + duplicates``."""

    model_uri: str
    model_name: str | None
    model_version: str | None
    engine: str = "local"
    input: str
    output: str
    rejects_file: str
    summary_file: str
    as_of: str | None = None
    rows_in: int
    scored: int
    rejected: int
    duplicates: int
    blank_rows: int = Field(default=0, description="entirely blank lines, skipped (not counted in rows_in)")
    reject_reasons: dict[str, int] = Field(default_factory=dict)
    grades: dict[str, int] = Field(default_factory=dict)
    score_quantiles: dict[str, float] = Field(default_factory=dict)
    mean_probability: float | None = None
    ignored_columns: list[str] = Field(default_factory=list)
    encoding: str | None = None
    delimiter: str | None = None
    reasons: int = 0
    reason_method: str | None = None
    sorted: bool = False
    seconds: float = Field(description="wall time of the whole run, model loading included")
    model_load_seconds: float | None = None
    rows_per_second: float
    records: str = Field(default="off", description="drift records: written / off / unavailable / failed: …")
    ingest_summary: str | None = Field(default=None, description="ingestion summary of raw CRM exports")
    _written_ids: list[str] | None = PrivateAttr(default=None)

    @property
    def written_ids(self) -> list[str] | None:
        """The ids of the rows written, in output order, when the run kept them (the local engine: for the
        audit line, without reading the output back); None otherwise. Not part of the summary file."""
        return self._written_ids

    def keep_written_ids(self, ids: list[str]) -> None:
        """Record :attr:`written_ids`."""
        self._written_ids = ids


class FeatureMapping(BaseModel):
    """``--mapping`` for flat feature rows: source header → feature, id or pass-through column name."""

    model_config = ConfigDict(extra="forbid")

    columns: dict[str, str] = Field(default_factory=dict, description="source column → target column")


def load_feature_mapping(path: str | Path | None) -> FeatureMapping:
    """Load and validate a flat-rows mapping YAML (``columns: {客户编号: customer_id, …}``)."""
    if path is None:
        return FeatureMapping()
    from features.config import ConfigError, load_config

    try:
        return load_config(path, FeatureMapping)
    except ConfigError as e:
        raise BatchError(M_(
            "{error} (a mapping for flat rows has one key, columns)",
            error=' '.join(str(e).split()),
        )) from None
