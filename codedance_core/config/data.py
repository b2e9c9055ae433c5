"""Configuration of the data stage: the procedural task suite and the row validator.

Two things are configured here and they are kept apart on purpose:
- `SuiteSpec` says *which items* one `synth` call makes (families, count, seed, split,
  difficulty). It is what a dataset's identity depends on, so it is small and exact.
- `ImageLimits` and the batch/worker knobs say *how* rows are checked and written; changing
  them never changes an item.

`DataConfig` bundles both with the sizes of the train and held-out test splits. The split is
part of every item's seed derivation (see `codedance_core.data.suite.generator`), so the same
`seed` gives disjoint train and test sets.

Below them: what a stage's `sources` may name (the suite is one source among row files on disk,
S3 or the Hugging Face hub) and how such a list is checked; `codedance_core.data.sources` reads them.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from codedance_core.config.base import StrictModel, canonical_json

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


# -- where a stage's rows come from ---------------------------------------------------------------
# A source is a URI. Two name what the lifecycle makes itself: the suite's train split, and the
# trajectories its synthesis stage writes. The rest are row files: a local path (file, folder or
# glob), `s3://bucket/key` (the same), or `hf://datasets/<org>/<name>@<revision>/<path glob>`.
SUITE_TRAIN = "suite://train"
SYNTHESIZED = "stage://synthesize"
MADE_BY_LIFECYCLE = (SUITE_TRAIN, SYNTHESIZED)
SOURCE_FORMS = (
    "a local path, s3://bucket/key, hf://datasets/<org>/<name>@<revision>/<path glob>, "
    f"{SUITE_TRAIN} or {SYNTHESIZED}"
)
_HF_SOURCE = re.compile(r"^hf://datasets/(?P<repo>[^/@]+/[^/@]+)@(?P<revision>[^/]+)/(?P<path>.+)$")
_GLOB_CHARS = ("*", "?", "[")


@dataclass(frozen=True)
class SourceURI:
    """A parsed source: `scheme` is file, s3, hf, suite or stage; hf sources also name their
    repository, revision and path glob within it."""

    text: str
    scheme: str
    repo: str = ""
    revision: str = ""
    path: str = ""

    @property
    def label(self) -> str:
        """A short name: the dataset's name on the hub, else the file or folder name."""
        if self.text == SUITE_TRAIN:
            return "suite-train"
        if self.text == SYNTHESIZED:
            return "synthesized"
        if self.scheme == "hf":
            return self.repo.rsplit("/", 1)[-1]
        parts = [p for p in self.text.split("://", 1)[-1].split("/") if p and not any(c in p for c in _GLOB_CHARS)]
        return parts[-1].removesuffix(".parquet") if parts else self.text

    @property
    def is_glob(self) -> bool:
        return any(char in self.text for char in _GLOB_CHARS)


def parse_source(text: str) -> SourceURI:
    """The parsed source, or ValueError saying which forms a source may take."""
    if not text.strip():
        raise ValueError(f"an empty source; a source is {SOURCE_FORMS}")
    scheme = text.split("://", 1)[0].lower() if "://" in text else "file"
    if scheme in ("suite", "stage"):
        if text not in MADE_BY_LIFECYCLE:
            raise ValueError(f"unknown source {text!r}: the lifecycle makes only {SUITE_TRAIN} and {SYNTHESIZED}")
        return SourceURI(text, scheme)
    if scheme == "hf":
        return _parse_hf(text)
    if scheme in ("file", "s3"):
        return SourceURI(text, scheme, path=text)
    raise ValueError(f"source {text!r} has the unknown scheme {scheme!r}; a source is {SOURCE_FORMS}")


def _parse_hf(text: str) -> SourceURI:
    if not text.startswith("hf://datasets/"):
        raise ValueError(f"source {text!r}: only datasets are read from the hub (hf://datasets/<org>/<name>@<revision>/<path glob>)")
    if (found := _HF_SOURCE.match(text)) is None:
        repo_part = text.removeprefix("hf://datasets/").split("/")
        if len(repo_part) < 2 or "@" not in "/".join(repo_part[:2]):
            raise ValueError(
                f"source {text!r} names no revision: write hf://datasets/<org>/<name>@<revision>/<path glob> "
                "(a commit, tag or branch; a branch is pinned to its commit when the source is read)"
            )
        raise ValueError(f"source {text!r} names no file: add a path glob after the revision, e.g. /data/*.parquet")
    return SourceURI(text, "hf", repo=found["repo"], revision=found["revision"], path=found["path"])


def check_sources(sources: list[str], allowed: tuple[str, ...], role: str) -> list[str]:
    """Validate a stage's source list: not empty, each parseable and of a kind the stage reads, none twice."""
    if not sources:
        raise ValueError(f"no source: {role} needs at least one ({SOURCE_FORMS})")
    for text in sources:
        parsed = parse_source(text)
        if parsed.scheme in ("suite", "stage") and text not in allowed:
            raise ValueError(f"{text!r} is not a source of {role}; besides row files it takes {' or '.join(allowed) or 'none'}")
    if repeated := sorted({text for text in sources if sources.count(text) > 1}):
        raise ValueError(f"sources are repeated: {repeated}")
    return sources


class TakesSources:
    """A section whose `sources` name its stage's input rows. They are inputs, not settings: what
    they hold reaches a stage's cache key through the digest of the rows merged from them, so the
    section's digest leaves the list out (a renamed copy of the same file reruns nothing)."""

    INPUT_FIELDS: ClassVar[set[str]] = {"sources"}

    def digest(self) -> str:
        payload = canonical_json(self.model_dump(mode="json", exclude=self.INPUT_FIELDS))  # type: ignore[attr-defined]
        return hashlib.sha256(payload.encode()).hexdigest()
