"""BANT fit score and fit grade (``configs/bant.yaml``): points per answer, rules in :mod:`features.rules`.

A lead's BANT answers (``budget_range``, ``decision_maker``, ``product_interest``, ``purchase_timeline``: optional
columns of the customers table) are scored by rules; each rule that holds adds its points, and the sum gives a
fit grade A–D by the config's minimums. A lead without any answer has no fit grade (missing, not D): "not
qualified yet" is not "qualified and poor". The fit grade sits beside the model's intent grade (the lead score's
grade): :func:`fit_intent` names the cell of the fit × intent matrix a CRM team sorts leads by.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.config import ConfigError, read_yaml_mapping
from features.contract import BANT_COLUMNS
from features.messages import M_
from features.rules import FieldSpec, RuleError, compile_rule, fields_of_frame, parse_rule

GRADES = ("A", "B", "C", "D")
FIT_COLUMNS = ("fit_score", "fit_grade")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class PointRule(_Strict):
    """One rule of the fit score: when ``rule`` holds, the lead gets ``points``."""

    name: str = Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="id, e.g. budget_200k_plus")
    rule: str = Field(min_length=1, description="condition in the rule language")
    points: float = Field(ge=-100, le=100, description="points added when the rule holds")

    @field_validator("rule")
    @classmethod
    def _parses(cls, v: str) -> str:
        try:
            parse_rule(v, "points rule")
        except RuleError as e:
            raise ValueError(str(e)) from None
        return v


class BantConfig(_Strict):
    """``configs/bant.yaml``: point rules and the minimum score of grades A, B and C (D below)."""

    points: list[PointRule] = Field(min_length=1, max_length=100)
    grades: dict[str, float] = Field(description="minimum fit score of A, B and C")

    @model_validator(mode="after")
    def _check(self) -> BantConfig:
        names = [p.name for p in self.points]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(M_("points: name(s) {value} used twice", value=", ".join(dup)))
        if set(self.grades) != {"A", "B", "C"}:
            raise ValueError(M_(
                "grades: give exactly A, B and C (D is below C), got {value}",
                value=", ".join(self.grades) or "none",
            ))
        if not self.grades["A"] > self.grades["B"] > self.grades["C"]:
            raise ValueError(M_("grades: minimums must decrease from A to B to C"))
        return self


DEFAULT_BANT_YAML = """
points:
  - {name: budget_200k_plus, rule: "budget_range == '200k+'", points: 35}
  - {name: budget_50k_200k, rule: "budget_range == '50k-200k'", points: 25}
  - {name: budget_10k_50k, rule: "budget_range == '10k-50k'", points: 10}
  - {name: authority, rule: "decision_maker", points: 25}
  - {name: need, rule: "product_interest in [会员服务, 企业采购, 定制方案]", points: 15}
  - {name: timeline_1m, rule: "purchase_timeline == '0-1m'", points: 25}
  - {name: timeline_3m, rule: "purchase_timeline == '1-3m'", points: 15}
  - {name: timeline_6m, rule: "purchase_timeline == '3-6m'", points: 5}
grades: {A: 70, B: 45, C: 20}
"""


def load_bant_config(path: str | Path | None = None) -> BantConfig:
    """``configs/bant.yaml`` validated (errors name the file, the rule and the field); None → the defaults."""
    if path is None:
        return BantConfig.model_validate(yaml.safe_load(DEFAULT_BANT_YAML))
    p = Path(path)
    raw = read_yaml_mapping(p)
    try:
        return BantConfig.model_validate(raw)
    except ValidationError as e:
        first = e.errors()[0]
        loc = list(first["loc"])
        where = ".".join(map(str, loc))
        if len(loc) >= 2 and loc[0] == "points" and isinstance(loc[1], int):
            items = raw.get("points") or []
            item = items[loc[1]] if loc[1] < len(items) and isinstance(items[loc[1]], dict) else {}
            where = f"rule {item.get('name', '#' + str(loc[1] + 1))!r}: field {'.'.join(map(str, loc[2:])) or '-'}"
        raise ConfigError(M_(
            "{p}: {where}: {value}",
            p=p, where=where, value=first['msg'].removeprefix('Value error, '),
        )) from e


def bant_frame(customers: pd.DataFrame) -> pd.DataFrame:
    """The BANT columns of ``customers`` with contract dtypes (absent ones all missing), same index."""
    out = pd.DataFrame(index=customers.index)
    for c in BANT_COLUMNS:
        if c == "decision_maker":
            col = customers[c] if c in customers.columns else pd.Series(pd.NA, index=customers.index)
            out[c] = col.astype("boolean")
        else:
            col = customers[c] if c in customers.columns else pd.Series(pd.NA, index=customers.index)
            out[c] = col.astype("string")
    return out


def fit_scores(frame: pd.DataFrame, cfg: BantConfig, fields: dict[str, FieldSpec] | None = None) -> pd.DataFrame:
    """``fit_score`` (float) and ``fit_grade`` (A–D, missing without any BANT answer) for each row of ``frame``.

    ``frame`` holds the BANT columns (:func:`bant_frame`) and any other fields the rules read; ``fields``
    overrides the field kinds (default: from the frame's dtypes).
    """
    spec = fields if fields is not None else fields_of_frame(frame)
    score = np.zeros(len(frame), dtype="float64")
    cache: dict = {}
    df = frame.reset_index(drop=True)
    for p in cfg.points:
        rule = compile_rule(p.rule, spec, None, name=M_("BANT rule {name!r}", name=p.name))
        score += np.where(rule.evaluate(df, None, cache), p.points, 0.0)
    present = [c for c in BANT_COLUMNS if c in frame.columns]
    answered = frame[present].notna().any(axis=1).to_numpy() if present else np.zeros(len(frame), bool)
    g = cfg.grades
    grade = np.select([score >= g["A"], score >= g["B"], score >= g["C"]], ["A", "B", "C"], "D").astype(object)
    grade[~answered] = None
    return pd.DataFrame(
        {"fit_score": np.where(answered, score, np.nan), "fit_grade": pd.array(grade, dtype="string")},
        index=frame.index,
    )


def fit_intent(fit_grade: str | None, intent_grade: str | None) -> str | None:
    """The fit × intent cell, e.g. ``"B×A"`` (fit B, intent A); None when either grade is missing."""
    if fit_grade not in GRADES or intent_grade not in GRADES:
        return None
    return f"{fit_grade}×{intent_grade}"
