"""The churn model's out-of-time ROC-AUC on demo data without and with the feedback features (issue 19).

    .venv/bin/python bench/feedback_auc.py [--customers 20000] [--days 365] [--seed 7] [--candidates xgboost,logreg]
                                           [--json-out PATH]

Generates the demo data (``features.synth``, the same as ``crmscore demo``, which writes the optional feedback
table: unhappy customers churn more), then trains the churn model twice with the same training config, once with
``features.feedback_features: false`` and once with ``true``, each into a throwaway MLflow store, and prints
``{"benchmark": "feedback_auc", "params": {...}, "figures": {...}}`` with both test ROC-AUCs (out of time: the
latest cutoff), their difference and the process CPU time. Not a speed benchmark: a quality figure.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--customers", type=int, default=20_000)
    ap.add_argument("--days", type=int, default=365)
    ap.add_argument("--seed", type=int, default=7)
    ap.add_argument("--candidates", default=None, help="comma-separated; default the churn config's candidates")
    ap.add_argument("--json-out", type=Path, default=None)
    args = ap.parse_args()

    from features.config import FeatureConfig
    from features.synth import generate_crm_data, write_crm_data
    from training.config import TrainConfig
    from training.train import train_crm

    extra = {"candidates": args.candidates.split(",")} if args.candidates else {}
    figures: dict[str, float] = {}
    cpu0 = time.process_time()
    with tempfile.TemporaryDirectory(prefix="feedback_auc_") as tmp:
        data = Path(tmp) / "data"
        write_crm_data(generate_crm_data(args.customers, args.days, args.seed), data)
        figures["has_feedback_table"] = float((data / "feedback.parquet").is_file())
        for use in (False, True):
            uri = f"sqlite:///{Path(tmp) / f'mlflow_{use}.db'}"
            os.environ["MLFLOW_TRACKING_URI"] = uri
            os.environ["MLFLOW_REGISTRY_URI"] = uri
            c = time.process_time()
            cfg = TrainConfig(task="churn", features=FeatureConfig(feedback_features=use), **extra)
            r = train_crm(data, cfg)
            key = "with_feedback" if use else "without_feedback"
            figures[f"test_roc_auc_{key}"] = float(r.test_metrics["roc_auc"])
            figures[f"cpu_s_{key}"] = round(time.process_time() - c, 1)
            print(key, r.best_candidate, flush=True)
    figures["roc_auc_gain"] = figures["test_roc_auc_with_feedback"] - figures["test_roc_auc_without_feedback"]
    figures["cpu_s_total"] = round(time.process_time() - cpu0, 1)
    out = {"benchmark": "feedback_auc", "params": vars(args) | {"json_out": str(args.json_out)}, "figures": figures}
    text = json.dumps(out, indent=1, default=str)
    print(text)
    if args.json_out:
        args.json_out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
