"""The lead model's out-of-time ROC-AUC on demo data with and without the BANT answers as features (issue 17).

    .venv/bin/python bench/bant_auc.py [--customers 20000] [--days 365] [--seed 7] [--json-out PATH]

Generates the demo data (``features.synth``, the same as ``crmscore demo``: 40% of customers carry BANT answers
with a planted effect), then trains the lead model twice with the same training config, once with
``features.bant_features: false`` and once with ``true``, each into a throwaway MLflow store, and prints
``{"benchmark": "bant_auc", "params": {...}, "figures": {...}}`` with both test ROC-AUCs (out of time: the
latest cutoff), their difference and the oracle AUC of the data. Not a speed benchmark: a quality figure.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()

    from features.config import FeatureConfig
    from features.synth import generate_crm_data, write_crm_data
    from training.config import TrainConfig
    from training.train import train_crm

    figures: dict[str, float] = {}
    with tempfile.TemporaryDirectory(prefix="bant_auc_") as tmp:
        data = Path(tmp) / "data"
        info = write_crm_data(generate_crm_data(args.customers, args.days, args.seed), data)
        figures["oracle_auc_convert"] = float(info["oracle_auc_convert"])
        for use in (False, True):
            uri = f"sqlite:///{Path(tmp) / f'mlflow_{use}.db'}"
            os.environ["MLFLOW_TRACKING_URI"] = uri
            os.environ["MLFLOW_REGISTRY_URI"] = uri
            r = train_crm(data, TrainConfig(task="lead", features=FeatureConfig(bant_features=use)))
            key = "with_bant" if use else "without_bant"
            figures[f"test_roc_auc_{key}"] = float(r.test_metrics["roc_auc"])
            figures[f"capture_top20_{key}"] = float(r.test_metrics["capture_top20"])
    figures["roc_auc_gain"] = figures["test_roc_auc_with_bant"] - figures["test_roc_auc_without_bant"]
    out = {"benchmark": "bant_auc", "params": vars(args) | {"json_out": str(args.json_out)}, "figures": figures}
    text = json.dumps(out, indent=1, default=str)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
