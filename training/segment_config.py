"""Configuration of the customer segmentation (``configs/segment.yaml``), validated with pydantic.

``SegmentConfig`` and its parts: the R × FM grid of named RFM segments (``RFMConfig``), the ordered value-tier
rules (``ValueTierConfig``, ``TierRule``), k-means settings (``ClusterConfig``) and the BG/NBD / Gamma-Gamma
settings (``BTYDConfig``). Unknown keys are errors; every default equals ``configs/segment.yaml``. The
estimators that use it are in :mod:`training.segment`. Imports only pydantic (and the message marker).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from features.messages import M_

NO_PURCHASE = "No purchase"
#: Display order of the standard segments (custom names from a config follow, alphabetically).
SEGMENT_ORDER = (
    "Champions",
    "Loyal",
    "Potential loyalist",
    "New",
    "Promising",
    "Need attention",
    "About to sleep",
    "At risk",
    "Cannot lose them",
    "Hibernating",
    "Lost",
    NO_PURCHASE,
)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


DEFAULT_GRID: dict[int, list[str]] = {
    # R score → segment for FM score 1..5, FM = round-half-up((F + M) / 2)
    5: ["New", "Potential loyalist", "Potential loyalist", "Champions", "Champions"],
    4: ["Promising", "Potential loyalist", "Potential loyalist", "Loyal", "Loyal"],
    3: ["About to sleep", "About to sleep", "Need attention", "Loyal", "Loyal"],
    2: ["Hibernating", "Hibernating", "At risk", "At risk", "Cannot lose them"],
    1: ["Lost", "Hibernating", "At risk", "At risk", "Cannot lose them"],
}


class RFMConfig(_Strict):
    """How scores map to named segments."""

    grid: dict[int, list[str]] = Field(default_factory=lambda: {k: list(v) for k, v in DEFAULT_GRID.items()})
    no_purchase_segment: str = NO_PURCHASE

    @field_validator("grid")
    @classmethod
    def _full_grid(cls, v: dict[int, list[str]]) -> dict[int, list[str]]:
        if sorted(v) != [1, 2, 3, 4, 5] or any(len(row) != 5 for row in v.values()):
            raise ValueError(M_("grid needs rows for R scores 1..5, each with 5 segment names (FM score 1..5)"))
        return v


class TierRule(_Strict):
    """One value-tier rule: every condition given must hold (missing P(alive) fails a P(alive) condition)."""

    tier: str
    min_r_score: int | None = Field(default=None, ge=1, le=5)
    min_f_score: int | None = Field(default=None, ge=1, le=5)
    min_m_score: int | None = Field(default=None, ge=1, le=5)
    min_p_alive: float | None = Field(default=None, ge=0, le=1)
    segments: list[str] | None = Field(default=None, description="rfm_segment must be one of these")


class ValueTierConfig(_Strict):
    """Ordered value-tier rules: the first matching rule gives the tier, else ``default``."""

    labels: dict[str, str] = Field(
        default_factory=lambda: {"important": "重要客户", "potential": "潜在客户", "ordinary": "普通客户"}
    )
    default: str = "ordinary"
    rules: list[TierRule] = Field(
        default_factory=lambda: [
            TierRule(tier="important", min_r_score=3, min_f_score=4, min_m_score=4, min_p_alive=0.5),
            TierRule(tier="potential", min_m_score=4),
            TierRule(tier="potential", min_r_score=4, min_p_alive=0.5),
        ]
    )

    @model_validator(mode="after")
    def _known_tiers(self) -> ValueTierConfig:
        unknown = sorted({r.tier for r in self.rules} - set(self.labels) | ({self.default} - set(self.labels)))
        if unknown:
            raise ValueError(M_("tier(s) {unknown} have no entry in labels", unknown=unknown))
        return self


class ClusterConfig(_Strict):
    """Behavioural clustering: k-means with k chosen by silhouette on a sample."""

    k_min: int = Field(default=3, ge=2)
    k_max: int = Field(default=8, ge=2)
    silhouette_sample: int = Field(default=3000, ge=100, description="customers sampled for the silhouette")
    n_init: int = Field(default=4, ge=1)
    random_state: int = 0
    describe_threshold: float = Field(default=0.5, gt=0, description="|z| of a centre that gets a word")
    strong_threshold: float = Field(default=1.5, gt=0, description="|z| from which the stronger word is used")
    max_terms: int = Field(default=3, ge=1)
    n_threads: int | None = Field(default=1, ge=1, description="k-means OpenMP threads; null = all cores")

    @model_validator(mode="after")
    def _range(self) -> ClusterConfig:
        if self.k_max < self.k_min:
            raise ValueError(M_("k_max ({k_max}) must be >= k_min ({k_min})", k_max=self.k_max, k_min=self.k_min))
        return self


class BTYDConfig(_Strict):
    """BG/NBD and Gamma-Gamma settings."""

    time_unit_days: float = Field(default=7.0, gt=0, description="model time unit (7 = weeks)")
    penalizer: float = Field(default=0.0, ge=0)
    min_holdout_buyers: int = Field(default=20, ge=2, description="fewer buyers → no holdout metric")


class SegmentConfig(_Strict):
    """Everything ``crmscore segment fit`` needs besides the data (``configs/segment.yaml``)."""

    horizon_days: int = Field(default=90, gt=0, description="N of expected_purchases_{N}d / expected_value_{N}d")
    window_days: int = Field(default=90, gt=0, description="W of the engagement and marketing features")
    rfm: RFMConfig = Field(default_factory=RFMConfig)
    value_tiers: ValueTierConfig = Field(default_factory=ValueTierConfig)
    clustering: ClusterConfig = Field(default_factory=ClusterConfig)
    btyd: BTYDConfig = Field(default_factory=BTYDConfig)
    experiment: str = "crmscore-segments"
    model_name: str = "customer_segments"
