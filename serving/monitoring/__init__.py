"""Monitoring of served traffic: drift reports (Evidently) over the service's records, with alert rules.

Modules, by job: ``config`` (``configs/monitor.yaml``, exit codes, errors), ``sources`` (window, model version,
training reference, recorded rows), ``compare`` (sampling, PSI, profiles, Evidently's per-column tests),
``importance`` (the model's feature importance and the top-feature rule), ``outcomes`` (late labels),
``outputs`` (JSON, workspace, webhook, retraining, retention) and ``drift`` (the job, ``run_drift_monitor``,
and the alert rules; it re-exports the public names of the others).

May import ``features``, ``training``, ``serving.settings`` and the trusted model loader
``serving.http.loader.load_scorer_artifact`` (for the importance rule); never the service or ``serving.cli``.
"""
