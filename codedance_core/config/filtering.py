"""Configuration of weak-to-strong filtering (docs/method.md §1, step 1).

The paper published neither k nor the bucket edges, so both are configuration with the defaults
docs/method.md fixes: k = 8 sampled answers, trivial = pass rate 1.0, hard = pass rate <= 0.25.

Which rows are candidates is `sources` (the suite, the released CodeDance-RL files, any row file;
see `codedance_core.config.data`). How the weak model answers is the profile's `rollout` section
with this section's `rollout` overrides applied (a weak model without tools:
`filter.rollout.max_turns: 1`).

Two digests matter for reuse: `scoring_digest()` covers every value that changes which answers
the weak model gives or how they are scored (the effective loop settings included, and the shard
size, which decides which rows a shard file holds), and nothing else. Transport settings of the
engine (timeouts, concurrency) live in `EngineConfig`, outside this model, so tuning them never
throws away scored shards.
"""

from __future__ import annotations

import hashlib

from pydantic import Field, field_validator, model_validator

from codedance_core.config.agent import InheritsRollout, RolloutOverrides, RolloutSettings
from codedance_core.config.base import StrictModel, canonical_json
from codedance_core.config.data import SUITE_TRAIN, TakesSources, check_sources
from codedance_core.config.model import PIXELS_PER_CELL

# The bucket names a kept row can carry, and the two a row leaves the stage with.
BUCKET_MEDIUM = "medium"
BUCKET_HARD = "hard"
BUCKET_TRIVIAL = "trivial"
BUCKET_QUARANTINED = "quarantined"
BUCKETS = (BUCKET_TRIVIAL, BUCKET_MEDIUM, BUCKET_HARD, BUCKET_QUARANTINED)


class FilterConfig(TakesSources, StrictModel, InheritsRollout):
    """Which rows are candidates, how the weak model answers each and how pass rates become buckets."""

    sources: list[str] = Field(
        default_factory=lambda: [SUITE_TRAIN],
        description="The RL rows filtered (the kept ones feed synthesis and RL), merged into one file in the "
        f"store: {SUITE_TRAIN} (the procedural suite), local paths, s3:// or "
        "hf://datasets/<org>/<name>@<revision>/<path glob> (e.g. the released CodeDance-RL parquet files).",
    )
    k: int = Field(8, ge=1, description="Sampled answers of the weak model per item.")
    rollout: RolloutOverrides = Field(
        default_factory=RolloutOverrides,
        description="The weak model's changes to the profile's rollout section (max_turns: 1 answers in one "
        "turn, without tools: the tiny profile's weak model is trained without them).",
    )
    trivial_threshold: float = Field(
        1.0, ge=0, le=1, description="Items with pass rate >= this are trivial and dropped."
    )
    hard_max_pass_rate: float = Field(
        0.25, ge=0, le=1, description="Kept items with pass rate <= this are 'hard'; the rest 'medium'."
    )
    shard_rows: int = Field(
        256, ge=1, description="Rows scored (and checkpointed to the work dir) together."
    )
    seed: int | None = Field(
        0, description="Sampling seed; shard i samples with seed + i, so a resumed run equals an unbroken one."
    )
    min_pixels: int = Field(
        4 * PIXELS_PER_CELL, ge=PIXELS_PER_CELL, description="Smallest image area (HTTP engines; local ones use the model's)."
    )
    max_pixels: int = Field(
        16384 * PIXELS_PER_CELL, ge=PIXELS_PER_CELL, description="Largest image area (HTTP engines; local ones use the model's)."
    )
    weak_train_steps: int = Field(
        300, ge=1, description="Tiny profile: training steps of the weak model (answers without tools)."
    )
    cpus: float = Field(1.0, gt=0, description="CPUs of the filter's Ray task.")
    gpus: float = Field(0.0, ge=0, description="GPUs of the filter's Ray task (the weak model's engine runs there).")

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, sources: list[str]) -> list[str]:
        return check_sources(sources, (SUITE_TRAIN,), "filtering")

    @model_validator(mode="after")
    def _check_edges(self) -> FilterConfig:
        if self.hard_max_pass_rate >= self.trivial_threshold:
            raise ValueError(
                f"hard_max_pass_rate ({self.hard_max_pass_rate}) must be below trivial_threshold "
                f"({self.trivial_threshold}), or nothing could be medium"
            )
        return self

    def scoring_digest(self, inherited: RolloutSettings | None = None) -> str:
        """Digest of the values that decide a shard's scores: this section and the effective loop
        settings. Left out: the bucket edges (buckets are recomputed from pass rates, so changing an
        edge reuses every scored shard), the sources (the rows' own digest stands for them), how long
        a batch waits and when sandbox processes start (timing, not answers), the task's resources,
        and the overrides as written (their effect is in the settings)."""
        left_out = {"trivial_threshold", "hard_max_pass_rate", "rollout", "cpus", "gpus", *self.INPUT_FIELDS}
        fields = self.model_dump(mode="json", exclude=left_out)
        loop = self.rollout_settings(inherited).model_dump(mode="json", exclude={"batch_wait_ms", "early_sessions"})
        return hashlib.sha256(canonical_json({**fields, "loop": loop}).encode()).hexdigest()
