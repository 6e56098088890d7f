"""The BANT fit grade in ``POST /score_leads``: leads sent as a profile with BANT answers get ``fit_score``,
``fit_grade`` and ``fit_intent`` (the fit × intent cell) beside the model's grade, by the same rules as batch
(:mod:`features.members.bant`, ``$CRMSCORE_BANT_CONFIG`` or the embedded defaults = ``configs/bant.yaml``)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import pandas as pd

from features.contract import BANT_COLUMNS, PII_COLUMNS
from features.members.bant import BantConfig, bant_frame, fit_intent, fit_scores, load_bant_config

BANT_CONFIG_ENV = "CRMSCORE_BANT_CONFIG"


def load_service_bant() -> BantConfig:
    """The BANT config a worker serves: ``$CRMSCORE_BANT_CONFIG``, else the embedded defaults."""
    return load_bant_config(os.environ.get(BANT_CONFIG_ENV) or None)


def add_fit_grades(results: list[dict[str, Any]], leads: Sequence[Any], cfg: BantConfig) -> int:
    """Add the fit fields to the results of leads whose profile carries a BANT answer; how many got them."""
    todo = [
        i
        for i, lead in enumerate(leads)
        if lead.profile is not None and any(getattr(lead.profile, c, None) is not None for c in BANT_COLUMNS)
    ]
    if not todo:
        return 0
    rows = [leads[i].profile.model_dump(exclude=set(PII_COLUMNS)) for i in todo]
    frame = pd.DataFrame(rows)
    frame[list(BANT_COLUMNS)] = bant_frame(frame)
    fit = fit_scores(frame, cfg)
    for i, score, grade in zip(todo, fit["fit_score"].tolist(), fit["fit_grade"].tolist(), strict=True):
        g = None if grade is pd.NA else str(grade)
        results[i]["fit_score"] = float(score)
        results[i]["fit_grade"] = g
        results[i]["fit_intent"] = fit_intent(g, results[i].get("grade"))
    return len(todo)
