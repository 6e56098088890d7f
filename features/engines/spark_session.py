"""The Spark session of crm-scoring's Spark jobs (features, scoring, segments).

``spark_session(master)`` reuses an active session (spark-submit, Databricks) and otherwise starts one with
the settings the jobs rely on: UTC session time zone, Arrow for pandas exchange, and Parquet nanosecond
timestamps (what pandas writes) read as their int64 nanoseconds, which the feature engine turns into the
same float epoch seconds as the NumPy core.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Any

from features.messages import M_


class SparkUnavailable(RuntimeError):
    """pyspark or a Java runtime is missing."""


def check_spark() -> None:
    """Raise :class:`SparkUnavailable` when pyspark or a Java runtime is missing."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        raise SparkUnavailable(M_("the Spark engine needs pyspark: pip install 'crm-scoring[spark]'")) from None
    java_home = os.environ.get("JAVA_HOME")
    if not (shutil.which("java") or (java_home and (Path(java_home) / "bin" / "java").exists())):
        raise SparkUnavailable(
            M_("the Spark engine needs a Java runtime (17 or later): java not found on PATH or JAVA_HOME")
        )


#: settings every crm-scoring Spark job needs (applied to a reused session too)
SESSION_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.sql.execution.arrow.pyspark.enabled": "true",
    "spark.sql.legacy.parquet.nanosAsLong": "true",
}


def spark_session(
    master: str = "local[*]", app_name: str = "crmscore", conf: dict[str, str] | None = None
) -> Any:
    """The active Spark session, or a new one on ``master``; Python workers run this interpreter.

    ``conf`` adds Spark settings for a new session (e.g. ``spark.driver.memory``); a reused session keeps
    its own, apart from :data:`SESSION_CONF`.
    """
    check_spark()
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        for k, v in SESSION_CONF.items():
            active.conf.set(k, v)
        return active
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    os.environ.setdefault("PYSPARK_DRIVER_PYTHON", sys.executable)
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "8")
        .config("spark.executorEnv.OMP_WAIT_POLICY", "PASSIVE")
    )
    for k, v in {**SESSION_CONF, **(conf or {})}.items():
        builder = builder.config(k, v)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark
