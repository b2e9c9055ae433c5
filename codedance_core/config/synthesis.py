"""Configuration of verified trajectory synthesis (`codedance data synthesize`).

Synthesis turns RL items into SFT trajectories and keeps only those whose code really ran and
whose final answer really scores correct. What varies between runs is gathered here: which
families get program-written trajectories, how often a first attempt fails on purpose (the
model must see errors and recover from them), the teacher endpoint for items no program can
write, and the image bounds, which MUST be the policy's (the sandbox's `input_image` is the
image the model sees, so the coordinates in the code are the model's coordinates).

Of the tool loop's settings synthesis reads two: how many assistant turns a trajectory may take
and how long an observation may be before it is cut (an SFT row must show the model exactly the
observations it will see at rollout time). Like the sandbox, rewards and pixels, they come from
the profile (`ProfileConfig.synthesis_config()` pins every field of `rollout` to the profile's
effective settings); a config built on its own applies its overrides to the library defaults.

`sources` names the SFT rows SFT trains on: the trajectories written here (stage://synthesize),
the released CodeDance-SFT rows, or both (see `codedance_core.config.data`).
"""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from codedance_core.config.agent import InheritsRollout, RolloutOverrides, RolloutSettings
from codedance_core.config.base import StrictModel
from codedance_core.config.data import SYNTHESIZED, TakesSources, check_sources
from codedance_core.config.model import PIXELS_PER_CELL, EngineConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig

PROGRAM_FAMILIES = ("count", "search", "chart", "math", "direct")


class TeacherConfig(StrictModel):
    """The open-ended path: a teacher model behind an OpenAI-compatible endpoint writes the turns."""

    engine: EngineConfig = Field(
        default_factory=lambda: EngineConfig(kind="openai", base_urls=["http://127.0.0.1:8000/v1"]),
        description="The teacher's endpoint (kind must be 'openai').",
    )
    families: list[str] = Field(
        default_factory=list,
        description="Families sent to the teacher even though a program writer exists for them. "
        "Items of families with no program writer always go to the teacher when one is configured.",
    )
    temperature: float = Field(0.0, ge=0, description="Teacher sampling temperature (0: greedy).")
    max_new_tokens: int = Field(1024, ge=16, description="Longest teacher turn in tokens.")
    attempts: int = Field(
        1, ge=1, description="Trajectories asked of the teacher per item; the first verified one is kept."
    )

    @model_validator(mode="after")
    def _openai_only(self) -> TeacherConfig:
        if self.engine.kind != "openai":
            raise ValueError("the teacher is reached over HTTP: engine.kind must be 'openai'")
        return self


class SynthesisConfig(TakesSources, StrictModel, InheritsRollout):
    """How RL items become verified SFT trajectories, and which SFT rows SFT trains on."""

    sources: list[str] = Field(
        default_factory=lambda: [SYNTHESIZED],
        description=f"The SFT rows SFT trains on, merged into one file in the store: {SYNTHESIZED} (the "
        "trajectories this section writes from the filtered rows; without it nothing is synthesised), local "
        "paths, s3:// or hf://datasets/<org>/<name>@<revision>/<path glob> (e.g. the released CodeDance-SFT rows).",
    )
    families: list[str] = Field(
        default_factory=lambda: list(PROGRAM_FAMILIES),
        description="Families whose trajectories are written by programs (count, search, chart, math, direct).",
    )
    failure_rate: float = Field(
        0.2,
        ge=0,
        le=1,
        description="Share of tool trajectories whose first attempt fails (a typo) and is then corrected; "
        "drawn per item from the seed.",
    )
    needless_tool_rate: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of tool-free (direct) items whose trajectory prints its answer with a needless code "
        "call first: a cold start that over-uses the tool, for BAT to correct.",
    )
    seed: int = Field(0, description="Seed of every random choice (failure draws, phrasing); same seed, same rows.")
    rollout: RolloutOverrides = Field(
        default_factory=RolloutOverrides,
        description="Synthesis's changes to the profile's rollout section; it reads max_turns (most assistant "
        "turns in one trajectory) and observation_max_chars (where a tool message is cut).",
    )
    min_pixels: int = Field(
        4 * PIXELS_PER_CELL, ge=PIXELS_PER_CELL, description="Smallest image area after Qwen-style resizing."
    )
    max_pixels: int = Field(
        256 * PIXELS_PER_CELL,
        ge=PIXELS_PER_CELL,
        description="Largest image area after resizing; must equal the policy's (tiny profile: 144 cells, paper: 16384).",
    )
    concurrency: int = Field(8, ge=1, description="Trajectories synthesised at once (sandbox sessions open).")
    batch_rows: int = Field(64, ge=1, description="Input rows read per batch; bounds memory on large inputs.")
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="The sandbox the code runs in.")
    rewards: RewardConfig = Field(
        default_factory=RewardConfig, description="Scorers that decide whether a final answer is correct."
    )
    teacher: TeacherConfig | None = Field(
        None, description="The teacher for open-ended trajectories; None: items without a program are rejected."
    )

    @property
    def loop_settings(self) -> RolloutSettings:
        """The loop settings trajectories are written under: the overrides over the library defaults
        (from a profile, the overrides pin every field to the profile's effective settings)."""
        return self.rollout_settings()

    @field_validator("sources")
    @classmethod
    def _known_sources(cls, sources: list[str]) -> list[str]:
        return check_sources(sources, (SYNTHESIZED,), "SFT")

    @model_validator(mode="after")
    def _check(self) -> SynthesisConfig:
        unknown = sorted(set(self.families) - set(PROGRAM_FAMILIES))
        if unknown:
            raise ValueError(f"no program writer for families {unknown}; known: {', '.join(PROGRAM_FAMILIES)}")
        if self.min_pixels > self.max_pixels:
            raise ValueError("min_pixels must not exceed max_pixels")
        return self
