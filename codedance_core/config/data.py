"""Configuration of the data stage: the procedural task suite and the row validator.

Two things are configured here and they are kept apart on purpose:
- `SuiteSpec` says *which items* one `synth` call makes (families, count, seed, split,
  difficulty). It is what a dataset's identity depends on, so it is small and exact.
- `ImageLimits` and the batch/worker knobs say *how* rows are checked and written; changing
  them never changes an item.

`DataConfig` bundles both with the sizes of the train and held-out test splits. The split is
part of every item's seed derivation (see `codedance_core.data.suite.generator`), so the same
`seed` gives disjoint train and test sets.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from codedance_core.config.base import StrictModel

FamilyName = Literal["count", "search", "chart", "math", "direct"]
SplitName = Literal["train", "test"]
Difficulty = Literal["easy", "hard", "mixed"]
ALL_FAMILIES: tuple[str, ...] = ("count", "search", "chart", "math", "direct")


class ImageLimits(StrictModel):
    """What an image must satisfy to be accepted by the validator."""

    max_pixels: int = Field(
        8192 * 8192,
        gt=0,
        description="Largest width*height accepted; bigger headers are treated as decompression bombs "
        "(8192^2 keeps 8K benchmark images such as HR-Bench).",
    )
    max_side: int = Field(32768, gt=0, description="Largest width or height in pixels.")
    min_side: int = Field(1, ge=1, description="Smallest width or height in pixels.")
    max_bytes: int = Field(64 * 1024 * 1024, gt=0, description="Largest encoded image size in bytes.")


class SuiteSpec(StrictModel):
    """Which procedural items one `codedance data synth` call produces."""

    families: list[FamilyName] = Field(
        default_factory=lambda: list(ALL_FAMILIES),
        min_length=1,
        description="Task families; item i belongs to families[i % len(families)].",
    )
    n: int = Field(100, ge=1, description="Number of items.")
    seed: int = Field(0, ge=0, description="Dataset seed; with the split it determines every item exactly.")
    split: SplitName = Field("train", description="train or test; part of each item's seed derivation.")
    difficulty: Difficulty = Field("mixed", description="easy, hard, or mixed (hard with hard_fraction).")
    hard_fraction: float = Field(0.5, ge=0.0, le=1.0, description="Share of hard items when mixed.")

    @field_validator("families")
    @classmethod
    def _no_repeated_family(cls, families: list[str]) -> list[str]:
        if len(set(families)) != len(families):
            raise ValueError(f"families are repeated: {families}")
        return families


class DataConfig(StrictModel):
    """The `data` section of a profile."""

    families: list[FamilyName] = Field(
        default_factory=lambda: list(ALL_FAMILIES), min_length=1, description="Suite families to synthesise."
    )
    seed: int = Field(0, ge=0, description="Seed of the suite; train and test derive disjoint item seeds from it.")
    train_size: int = Field(200, ge=1, description="Items in the synthetic train split.")
    test_size: int = Field(50, ge=1, description="Items in the held-out synthetic test split.")
    difficulty: Difficulty = Field("mixed", description="easy, hard or mixed items.")
    hard_fraction: float = Field(0.5, ge=0.0, le=1.0, description="Share of hard items when difficulty is mixed.")
    image_limits: ImageLimits = Field(default_factory=ImageLimits, description="Limits the validator enforces.")
    check_image_tokens: bool = Field(
        True, description="Require as many `<image>` markers in the messages as there are images in a row."
    )
    shard_rows: int = Field(256, ge=1, description="Rows per parquet row group when writing (bounds memory).")
    batch_rows: int = Field(256, ge=1, description="Rows read per batch when validating (bounds memory).")
    validate_workers: int = Field(2, ge=1, description="Threads decoding images while validating.")
    synth_workers: int = Field(2, ge=1, description="Processes rendering suite items (1 = in-process).")

    def suite_spec(self, split: SplitName) -> SuiteSpec:
        """The exact items of one split."""
        return SuiteSpec(
            families=list(self.families),
            n=self.train_size if split == "train" else self.test_size,
            seed=self.seed,
            split=split,
            difficulty=self.difficulty,
            hard_fraction=self.hard_fraction,
        )
