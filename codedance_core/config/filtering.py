"""Configuration of weak-to-strong filtering (method.md section 1, step 1).

The paper published neither k nor the bucket edges, so both are configuration with the defaults
method.md fixes: k = 8 sampled answers, trivial = pass rate 1.0, hard = pass rate <= 0.25.

Two digests matter for reuse: `scoring_digest()` covers every field that changes which answers
the weak model gives or how they are scored (and the shard size, which decides which rows a
shard file holds), and nothing else. Transport settings of the engine (timeouts, concurrency)
live in `EngineConfig`, outside this model, so tuning them never throws away scored shards.
"""

from __future__ import annotations

import hashlib

from pydantic import Field, model_validator

from codedance_core.config.base import StrictModel, canonical_json
from codedance_core.config.model import PIXELS_PER_CELL

# The bucket names a kept row can carry, and the two a row leaves the stage with.
BUCKET_MEDIUM = "medium"
BUCKET_HARD = "hard"
BUCKET_TRIVIAL = "trivial"
BUCKET_QUARANTINED = "quarantined"
BUCKETS = (BUCKET_TRIVIAL, BUCKET_MEDIUM, BUCKET_HARD, BUCKET_QUARANTINED)


class FilterConfig(StrictModel):
    """How the weak model answers each candidate and how pass rates become buckets."""

    k: int = Field(8, ge=1, description="Sampled answers of the weak model per item.")
    temperature: float = Field(1.0, ge=0, description="Sampling temperature of the weak model (0 = greedy).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    max_new_tokens: int = Field(512, ge=1, description="Tokens one weak-model turn may generate.")
    max_context_tokens: int = Field(20480, ge=64, description="Prompt + response tokens at most (local engines).")
    allow_tools: bool = Field(
        True,
        description="Let the weak model run code (multi-turn, up to max_turns). False: one turn, no tools "
        "(the tiny profile's weak model is trained without tools).",
    )
    max_turns: int = Field(6, ge=1, description="Assistant turns at most when tools are allowed.")
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
    batch_wait_ms: float = Field(
        20.0, ge=0, description="How long a generation batch waits for trajectories still running code."
    )
    weak_train_steps: int = Field(
        300, ge=1, description="Tiny profile: training steps of the weak model (answers without tools)."
    )

    @model_validator(mode="after")
    def _check_edges(self) -> FilterConfig:
        if self.hard_max_pass_rate >= self.trivial_threshold:
            raise ValueError(
                f"hard_max_pass_rate ({self.hard_max_pass_rate}) must be below trivial_threshold "
                f"({self.trivial_threshold}), or nothing could be medium"
            )
        return self

    @property
    def turns(self) -> int:
        """Assistant turns the rollout may take: one without tools."""
        return self.max_turns if self.allow_tools else 1

    def scoring_digest(self) -> str:
        """Digest of the fields that decide a shard's scores (bucket edges excluded: buckets are
        recomputed from pass rates, so changing an edge reuses every scored shard)."""
        fields = self.model_dump(mode="json", exclude={"trivial_threshold", "hard_max_pass_rate", "batch_wait_ms"})
        return hashlib.sha256(canonical_json(fields).encode()).hexdigest()
