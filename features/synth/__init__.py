"""Demo CRM data generator (``crmscore synth``): the simulator, its exact truth and the messy-export writer.

What lives here:

- ``generate``: the public API — ``generate_crm_data`` (tables + truth), ``realise_labels``,
  ``compute_oracle_aucs``, ``write_crm_data`` (clean Parquet data dir or messy exports, plus ``truth/``).
- ``simulate``: the CRM simulator (static attributes, per-period hazards, events, the truth snapshot);
  its docstring explains the model.
- ``params``: constants, fake vocabularies, process parameters and the seasonal time line.
- ``tables``: the simulator's arrays assembled into the four contract tables and the truth frame.
- ``messy``: the messy-export writer (GB18030 / BOM / UTF-8 CSVs, xlsx, mixed date styles, faults,
  ``messy_manifest.json``).

May import ``features.contract`` and third-party libraries only; nothing from ``training`` or ``serving``.
"""

from features.synth.generate import (
    SynthResult,
    compute_oracle_aucs,
    generate_crm_data,
    realise_labels,
    write_crm_data,
)
from features.synth.params import CHURN_LOOKBACK_DAYS, DEFAULT_END, DEFAULT_HORIZON_DAYS

__all__ = [
    "CHURN_LOOKBACK_DAYS",
    "DEFAULT_END",
    "DEFAULT_HORIZON_DAYS",
    "SynthResult",
    "compute_oracle_aucs",
    "generate_crm_data",
    "realise_labels",
    "write_crm_data",
]
