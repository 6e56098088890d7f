"""The HTTP scoring service (BentoML): the service class, request/response schemas, model loading and
hot-swap, post-processing of scores into responses, and the served-traffic records.

May import ``features``, ``training``, ``serving.settings`` and ``serving.ui``; never ``serving.cli``.
"""
