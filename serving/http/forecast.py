"""``GET /forecast``: the latest ``crmscore forecast`` run's table, read from the MLflow tracking store.

The run is the newest finished run of the forecast experiment (``ForecastConfig.experiment``, default
``crmscore-forecast``) in the tracking store the service uses for its models. Its ``forecast/forecast.csv`` and
``forecast/summary.json`` artifacts are downloaded once per run id and kept in memory (a new run is picked up
on the next request). No customer data is involved: weekly revenue per group.
"""

from __future__ import annotations

import json
import math
import tempfile
import threading
from pathlib import Path
from typing import Any

from features.messages import M_

#: artifacts of a forecast run (training.forecast_run.run_forecast logs them under forecast/)
TABLE_ARTIFACT = "forecast/forecast.csv"
SUMMARY_ARTIFACT = "forecast/summary.json"


class ForecastUnavailable(LookupError):
    """No forecast run, or one whose artifacts cannot be read; the message says which."""


def _clean(v: Any) -> Any:
    if isinstance(v, float) and not math.isfinite(v):
        return None
    return v


class LatestForecast:
    """The newest forecast run's table and summary, cached by run id."""

    def __init__(self, tracking_uri: str | None, experiment: str | None = None) -> None:
        from training.forecast import ForecastConfig

        self.tracking_uri = tracking_uri
        self.experiment = experiment or ForecastConfig().experiment
        self._lock = threading.Lock()
        self._cached: tuple[str, dict[str, Any]] | None = None

    def _latest_run(self) -> Any:
        from mlflow.tracking import MlflowClient

        client = MlflowClient(tracking_uri=self.tracking_uri)
        exp = client.get_experiment_by_name(self.experiment)
        if exp is None:
            raise ForecastUnavailable(
                M_("no forecast yet: experiment {name!r} does not exist; run `crmscore forecast`", name=self.experiment)
            )
        runs = client.search_runs(
            [exp.experiment_id],
            filter_string="attributes.status = 'FINISHED'",
            order_by=["attributes.start_time DESC"],
            max_results=1,
        )
        if not runs:
            raise ForecastUnavailable(
                M_("no finished run in experiment {name!r}; run `crmscore forecast`", name=self.experiment)
            )
        return client, runs[0]

    def payload(self) -> dict[str, Any]:
        """What GET /forecast returns: run id, cutoff, selected method and the criterion it was chosen on, backtest
        metrics, the calibration (the total's; with ``--by`` each group's offsets as well) and the table rows."""
        import pandas as pd

        client, run = self._latest_run()
        run_id = run.info.run_id
        with self._lock:
            if self._cached is not None and self._cached[0] == run_id:
                return self._cached[1]
        with tempfile.TemporaryDirectory(prefix="crmscore-forecast-") as tmp:
            try:
                table_path = Path(client.download_artifacts(run_id, TABLE_ARTIFACT, tmp))
                summary_path = Path(client.download_artifacts(run_id, SUMMARY_ARTIFACT, tmp))
            except Exception as e:  # noqa: BLE001 - any store error becomes a clear 503
                raise ForecastUnavailable(
                    M_("forecast run {run_id}: its artifacts cannot be read ({error})", run_id=run_id,
                       error=type(e).__name__)
                ) from None
            table = pd.read_csv(table_path, encoding="utf-8")
            summary = json.loads(summary_path.read_text(encoding="utf-8"))
        rows = [{k: _clean(v) for k, v in r.items()} for r in table.to_dict("records")]
        backtest = summary.get("backtest") or {}
        body = {
            "run_id": run_id,
            "as_of": summary.get("as_of"),
            "horizon_weeks": summary.get("horizon_weeks"),
            "by": summary.get("by"),
            "selected": summary.get("selected"),
            "selected_on": summary.get("selected_on"),
            "backtest": {k: _clean(v) for k, v in (backtest.get("metrics") or {}).items()},
            "interval_calibration": summary.get("interval_calibration"),
            "groups_backtest": summary.get("groups_backtest"),
            "columns": list(table.columns),
            "rows": rows,
        }
        with self._lock:
            self._cached = (run_id, body)
        return body
