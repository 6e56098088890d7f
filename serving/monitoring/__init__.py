"""Monitoring of served traffic: drift reports (Evidently) over the service's records, with alert rules.

May import ``features``, ``training`` and ``serving.settings``; never ``serving.http`` or ``serving.cli``.
"""
