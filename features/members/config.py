"""``configs/members.yaml`` (member levels) and ``configs/tags.yaml`` (tags) as pydantic models.

Both load inside the commands (:func:`load_members_config`, :func:`load_tags_config`); ``None`` gives the
embedded defaults, which equal the shipped YAML files. Errors name the file, the level or tag, and the field.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal, TypeVar

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from features.config import ConfigError, read_yaml_mapping
from features.messages import M_
from features.rules import RuleError, parse_rule

MAX_LEVELS = 4
MAX_TAGS = 100
MAX_PRODUCT_CATEGORIES = 10
BASES = ("spend", "orders")

M = TypeVar("M", bound=BaseModel)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class LevelSpec(_Strict):
    """One member level: its id, Chinese and English names, and the paid spend / order count that reaches it."""

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="lower-case id used in rules (member_level>=gold)")
    zh: str = Field(min_length=1, description="中文名, e.g. 金卡")
    en: str = Field(min_length=1, description="English name, e.g. Gold")
    reach: dict[str, float] = Field(
        default_factory=dict,
        description="basis → threshold; any one reached is enough. spend: paid amount, orders: paid orders",
    )

    @field_validator("reach")
    @classmethod
    def _bases(cls, v: dict[str, float]) -> dict[str, float]:
        for basis, threshold in v.items():
            if basis not in BASES:
                raise ValueError(M_(
                    "field 'reach.{basis}': unknown basis (use {value})",
                    basis=basis, value=' or '.join(BASES),
                ))
            if not threshold > 0:
                raise ValueError(M_(
                    "field 'reach.{basis}': threshold must be above 0, got {threshold}",
                    basis=basis, threshold=threshold,
                ))
            if basis == "orders" and float(threshold) != int(threshold):
                raise ValueError(M_(
                    "field 'reach.orders': an order count must be whole, got {threshold}",
                    threshold=threshold,
                ))
        return v


def _default_levels() -> list[LevelSpec]:
    return [
        LevelSpec(id="none", zh="普通会员", en="Member"),
        LevelSpec(id="silver", zh="银卡", en="Silver", reach={"spend": 500, "orders": 3}),
        LevelSpec(id="gold", zh="金卡", en="Gold", reach={"spend": 2000, "orders": 8}),
        LevelSpec(id="platinum", zh="铂金卡", en="Platinum", reach={"spend": 8000, "orders": 20}),
    ]


class MembersConfig(_Strict):
    """Member levels (``configs/members.yaml``): at most 4, the first held by everyone, thresholds increasing."""

    window_months: int | None = Field(
        default=12, ge=1, le=120, description="paid orders of the last N months count; null = all time"
    )
    currency: str = Field(default="¥", description="shown before amounts in the progress text")
    levels: list[LevelSpec] = Field(default_factory=_default_levels)

    @model_validator(mode="after")
    def _ladder(self) -> MembersConfig:
        lv = self.levels
        if not 2 <= len(lv) <= MAX_LEVELS:
            raise ValueError(M_(
                "levels: between 2 and {MAX_LEVELS} levels (the first is the entry level), got {value}",
                MAX_LEVELS=MAX_LEVELS, value=len(lv),
            ))
        ids = [x.id for x in lv]
        dup = sorted({i for i in ids if ids.count(i) > 1})
        if dup:
            raise ValueError(M_("levels: id(s) {value} used twice", value=", ".join(dup)))
        if lv[0].reach:
            raise ValueError(M_(
                "level {id!r}: field 'reach': the first level is held by everyone, no threshold",
                id=lv[0].id,
            ))
        last: dict[str, tuple[str, float]] = {}
        for x in lv[1:]:
            if not x.reach:
                raise ValueError(M_("level {id!r}: field 'reach': needs a spend and/or orders threshold", id=x.id))
            for basis, v in x.reach.items():
                if basis in last and v <= last[basis][1]:
                    prev_id, prev_v = last[basis]
                    raise ValueError(
                        M_(
                            "level {id!r}: field 'reach.{basis}': {v:g} must be above level {prev_id!r}'s {prev_v:g}",
                            id=x.id, basis=basis, v=v, prev_id=prev_id, prev_v=prev_v,
                        )
                    )
                last[basis] = (x.id, v)
        return self

    @property
    def order(self) -> tuple[str, ...]:
        """Level ids, lowest first (the order ``member_level >= gold`` compares by)."""
        return tuple(x.id for x in self.levels)


class TagSpec(_Strict):
    """One tag: a rule over the context, a product purchase within a window, or manual."""

    name: str = Field(min_length=1, max_length=64, description="display name, e.g. 高价值流失风险; used in tag:NAME")
    kind: Literal["rule", "product", "manual"]
    en: str | None = Field(default=None, description="English name")
    description: str = ""
    rule: str | None = Field(default=None, description="kind rule: the condition (features.rules language)")
    categories: list[str] | None = Field(default=None, description=f"kind product: up to {MAX_PRODUCT_CATEGORIES}")
    window_days: int | None = Field(default=None, ge=1, le=3650, description="kind product: (T - N days, T]")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if re.search(r"[\s,\[\]()'\"]", v):
            raise ValueError(M_("a tag name may not contain spaces, commas, brackets or quotes"))
        return v

    @model_validator(mode="after")
    def _kind_fields(self) -> TagSpec:
        want = {"rule": {"rule"}, "product": {"categories", "window_days"}, "manual": set()}[self.kind]
        for f in ("rule", "categories", "window_days"):
            given = getattr(self, f) is not None
            if f in want and not given:
                raise ValueError(M_("field {f!r}: a {kind} tag needs it", f=f, kind=self.kind))
            if f not in want and given:
                raise ValueError(M_("field {f!r}: not used by a {kind} tag", f=f, kind=self.kind))
        if self.categories is not None:
            if not 1 <= len(self.categories) <= MAX_PRODUCT_CATEGORIES:
                raise ValueError(
                    M_(
                        "field 'categories': 1 to {MAX_PRODUCT_CATEGORIES} categories, got {value}",
                        MAX_PRODUCT_CATEGORIES=MAX_PRODUCT_CATEGORIES, value=len(self.categories),
                    )
                )
        if self.rule is not None:
            try:
                parse_rule(self.rule, M_("tag {name!r}", name=self.name))
            except RuleError as e:
                raise ValueError(M_("field 'rule': {e}", e=e)) from None
        return self


def _default_tags() -> list[TagSpec]:
    return [TagSpec.model_validate(t) for t in yaml.safe_load(DEFAULT_TAGS_YAML)["tags"]]


class TagsConfig(_Strict):
    """Tags (``configs/tags.yaml``): at most 100, names unique."""

    tags: list[TagSpec] = Field(default_factory=_default_tags)

    @model_validator(mode="after")
    def _limits(self) -> TagsConfig:
        if len(self.tags) > MAX_TAGS:
            raise ValueError(M_("tags: at most {MAX_TAGS} tags, got {value}", MAX_TAGS=MAX_TAGS, value=len(self.tags)))
        names = [t.name for t in self.tags]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ValueError(M_("tags: name(s) {value} used twice", value=", ".join(dup)))
        return self

    def by_kind(self, kind: str) -> list[TagSpec]:
        """The tags of one kind, in config order."""
        return [t for t in self.tags if t.kind == kind]


#: The embedded default tags (equal to configs/tags.yaml's ``tags``).
DEFAULT_TAGS_YAML = """
tags:
  - {name: 高价值流失风险, en: High-value churn risk, kind: rule,
     rule: "rfm_segment in [Champions, Loyal, 'Cannot lose them', 'At risk'] and (p_alive < 0.6 or recency_days > 60)"}
  - {name: 高价值客户, en: High value, kind: rule, rule: "value_tier == important or member_level >= gold"}
  - {name: 新客, en: New buyer, kind: rule, rule: "tenure_days <= 30"}
  - {name: 沉睡客户, en: Dormant, kind: rule, rule: "rfm_segment in [Hibernating, Lost, 'About to sleep']"}
  - {name: 未购线索, en: Lead without purchase, kind: rule, rule: "rfm_segment == 'No purchase'"}
  - {name: 银卡以上, en: Silver or above, kind: rule, rule: "member_level >= silver"}
  - {name: 临近升级, en: Close to next level, kind: rule, rule: "level_progress >= 0.8 and level_progress < 1"}
  - {name: 母婴人群, en: Mother and baby, kind: product, categories: [母婴用品], window_days: 90}
  - {name: 美妆爱好者, en: Beauty lover, kind: product, categories: [美妆个护], window_days: 180}
  - {name: 数码达人, en: Electronics, kind: product, categories: [数码电器, 办公用品, 软件服务], window_days: 365}
  - {name: 运动户外, en: Outdoor, kind: product, categories: [运动户外], window_days: 365}
  - {name: 母婴高价值, en: High-value mother and baby, kind: rule, rule: "tag:母婴人群 and tag:高价值客户"}
  - {name: VIP关怀, en: VIP care, kind: manual}
  - {name: 投诉跟进, en: Complaint follow-up, kind: manual}
"""


def _located(e: ValidationError, raw: dict, list_key: str, id_key: str, what: str) -> str:
    """The first pydantic error, with ``levels.2.zh`` written as ``level 'gold': field 'zh'``."""
    first = e.errors()[0]
    loc = list(first["loc"])
    msg = first["msg"].removeprefix("Value error, ")
    if len(loc) >= 2 and loc[0] == list_key and isinstance(loc[1], int):
        items = raw.get(list_key) or []
        item = items[loc[1]] if loc[1] < len(items) else {}
        ident = item.get(id_key) if isinstance(item, dict) else None
        label = f"{what} {ident!r}" if ident is not None else f"{what} #{loc[1] + 1}"
        rest = ".".join(str(x) for x in loc[2:])
        return f"{label}: {msg}" if not rest or msg.startswith("field ") else f"{label}: field {rest!r}: {msg}"
    where = ".".join(str(x) for x in loc)
    return f"field {where!r}: {msg}" if where else msg


def _load(path: str | Path | None, model: type[M], list_key: str, id_key: str, what: str) -> M:
    if path is None:
        return model()
    p = Path(path)
    raw = read_yaml_mapping(p)
    try:
        return model.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(M_("{p}: {value}", p=p, value=_located(e, raw, list_key, id_key, what))) from e


def load_members_config(path: str | Path | None = None) -> MembersConfig:
    """``configs/members.yaml`` validated; None → the embedded defaults."""
    return _load(path, MembersConfig, "levels", "id", "level")


def load_tags_config(path: str | Path | None = None) -> TagsConfig:
    """``configs/tags.yaml`` validated; None → the embedded defaults."""
    return _load(path, TagsConfig, "tags", "name", "tag")
