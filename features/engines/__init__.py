"""Feature engines beside the NumPy core: the same point-in-time features computed on Spark.

* :mod:`features.engines.inputs` checks the input tables' columns and types once, for every engine, so a
  missing table or a wrong type gives the same error whichever engine reads it;
* :mod:`features.engines.spark_session` starts (or reuses) the Spark session;
* :mod:`features.engines.spark_tables` reads the contract tables from Parquet paths or catalog tables;
* :mod:`features.engines.spark_features` builds the features of ``features.build.CRMFeatureBuilder`` with the
  Spark DataFrame API (no Python UDF), and writes them as partitioned Parquet.
* :mod:`features.engines.spark_segments` computes the segmenter's per-customer summary (``training.segment``'s
  ``summarise_customers``) with the Spark DataFrame API, equal to it value for value.

Nothing here imports pyspark at import time.
"""
