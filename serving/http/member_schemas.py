"""Response models of the member programme's fields in ``POST /segment`` results (see :mod:`serving.members.online`)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from serving.http.openapi import Answer


class TagHit(Answer):
    """One tag a customer carries, and why."""

    tag: str = Field(description="tag name (configs/tags.yaml), e.g. 高价值客户", examples=["高价值客户"])
    en: str | None = Field(default=None, description="English name")
    kind: Literal["rule", "product", "manual"]
    why: str = Field(description="the rule and this customer's values, or the product window that applies")


class MemberCard(Answer):
    """Member level, progress to the next level and tags of one customer, from the events sent."""

    member_level: str = Field(description="level id (configs/members.yaml), e.g. gold", examples=["gold"])
    member_level_zh: str | None = Field(default=None, description="中文名, e.g. 金卡")
    next_level: str | None = Field(default=None, description="the next level's id; null at the top level")
    level_progress: float | None = Field(
        default=None, description="0–1: the larger of spend / threshold and orders / threshold of the next level"
    )
    progress: str | None = Field(default=None, description="what is missing, e.g. ¥1,240 or 2 orders to 金卡")
    tags: list[TagHit] = Field(default_factory=list, description="rule and product tags, in config order")
    tags_not_evaluated: dict[str, str] = Field(
        default_factory=dict, description="tags a request cannot give (manual tags, batch-only fields) and why"
    )
