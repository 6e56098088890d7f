"""The logged ``customer_segments`` MLflow model: a models-from-code pyfunc over the segmenter's JSON state.

``CustomerSegmentsModel`` (the pyfunc), ``_MODEL_CODE`` (the Python file stored with the model, which the
service and batch loader compare byte for byte before running it, see ``check_segments_code``) and
:func:`log_segments_model`, which logs a fitted :class:`training.segment.CustomerSegmenter` in the active
run. ``_MODEL_CODE`` imports the class from ``training.segment``, which re-exports it: the file stays the same
as in earlier releases, so their registered models still load. Imports MLflow and :mod:`training.segment`.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import mlflow.pyfunc
import numpy as np
import pandas as pd
from mlflow.pyfunc import PythonModel

from training.segment import CustomerSegmenter
from training.segment_config import SegmentConfig


class CustomerSegmentsModel(PythonModel):
    """The logged ``customer_segments`` model: loads the segmenter JSON artifact, predicts per customer.

    Input: the summary frame (:data:`training.segment.INPUT_DOC`, build it with
    :func:`training.segment.summarise_customers`); output: the columns of :func:`training.segment.output_columns`.
    """

    def load_context(self, context) -> None:
        """Read the fitted segmenter from the ``segmenter`` artifact."""
        self.segmenter = CustomerSegmenter.load_json(context.artifacts["segmenter"])

    def predict(self, context, model_input: pd.DataFrame, params: dict[str, Any] | None = None) -> pd.DataFrame:
        """Score a DataFrame of customer summaries."""
        return self.segmenter.predict(pd.DataFrame(model_input))


_MODEL_CODE = """\
# models-from-code entry of the customer_segments pyfunc: no pickled object, the state is segmenter.json
from mlflow.models import set_model

from training.segment import CustomerSegmentsModel

set_model(CustomerSegmentsModel())
"""


def example_input(window_days: int) -> pd.DataFrame:
    """Made-up rows for the model signature and input example (no real customer)."""
    w = int(window_days)
    return pd.DataFrame(
        {
            "customer_id": pd.Series(
                ["example-repeat-buyer", "example-one-time-buyer", "example-lead"], dtype="string"
            ),
            "recency_days": [12.0, 80.0, np.nan],
            "frequency": [4.0, 0.0, 0.0],
            "monetary": [520.0, 60.0, 0.0],
            "avg_repeat_value": [105.0, 0.0, 0.0],
            "tenure_days": [300.0, 80.0, np.nan],
            f"interactions_{w}d": [25.0, 3.0, 7.0],
            f"touches_{w}d": [6.0, 2.0, 0.0],
            f"open_rate_{w}d": [0.5, 0.0, np.nan],
            f"click_rate_{w}d": [0.17, 0.0, np.nan],
            f"coupon_claims_{w}d": [1.0, 0.0, 0.0],
        }
    )


def log_segments_model(seg: CustomerSegmenter, cfg: SegmentConfig, workdir: str | Path) -> Any:
    """Log ``seg`` as the ``cfg.model_name`` pyfunc in the active run; returns MLflow's ``ModelInfo``.

    The state goes in as the ``segmenter`` artifact (``segmenter.json``), the code as ``_MODEL_CODE``; both are
    written to ``workdir`` first. The signature comes from :func:`example_input`.
    """
    from training.train import model_requirements

    workdir = Path(workdir)
    state = seg.save_json(workdir / "segmenter.json")
    code = workdir / "customer_segments_model.py"
    code.write_text(_MODEL_CODE, encoding="utf-8")
    example = example_input(cfg.window_days)
    with warnings.catch_warnings():
        # the integer outputs (scores, cluster) are never missing, so mlflow's hint does not apply
        warnings.filterwarnings("ignore", message=".*integer column", category=UserWarning)
        signature = mlflow.models.infer_signature(example, seg.predict(example))
    return mlflow.pyfunc.log_model(
        name=cfg.model_name,
        python_model=str(code),
        artifacts={"segmenter": str(state)},
        signature=signature,
        input_example=example,
        pip_requirements=model_requirements(),
    )
