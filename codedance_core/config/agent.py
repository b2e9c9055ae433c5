"""Configuration of the multi-turn tool loop, shared by filtering, synthesis, RL and evaluation.

A profile has ONE `rollout` section (`RolloutSettings`) that every stage inherits; a stage that
needs other values says so in its own section's `rollout` (`RolloutOverrides`: every field
optional, None = inherit), the way verl pairs `rollout` with `val_kwargs`. `with_overrides`
resolves the two, and `for_stage` adds what only the stage itself can say (how many samples per
prompt, which seed), giving the loop's full `RolloutConfig`.

Overrides are absolute values, so applying a stage's overrides to settings that already carry
them changes nothing: a library entry point may take either the profile's section or the
stage's resolved settings and apply the stage's overrides itself.
"""

from __future__ import annotations

from pydantic import Field

from codedance_core.config.base import StrictModel


class RolloutSettings(StrictModel):
    """How the tool loop generates and runs code: the settings every stage shares."""

    max_turns: int = Field(6, ge=1, description="Assistant turns at most (6 in the original's training).")
    max_new_tokens: int = Field(512, ge=1, description="Tokens one assistant turn may generate.")
    max_context_tokens: int = Field(
        20480, ge=64, description="Prompt + response tokens at most; a trajectory that would exceed it ends."
    )
    max_response_tokens: int | None = Field(
        None,
        ge=1,
        description="Model tokens one trajectory may generate over all its turns (the paper: 10,240); a turn "
        "that would pass it ends the trajectory. None: only max_context_tokens bounds it.",
    )
    temperature: float = Field(1.0, ge=0, description="Sampling temperature (0 = greedy, as in validation).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    observation_max_chars: int = Field(
        4000, ge=200, description="Longest observation text; longer outputs are cut with a marker."
    )
    prompt_version: str = Field("suite-v1", description="Prompt set for rows without a system prompt.")
    early_sessions: bool = Field(
        True,
        description="Start each trajectory's sandbox process while its first turn generates, hiding the fork "
        "behind local generation; False starts it at the first code block (fewer live processes: suits remote, "
        "latency-bound engines).",
    )
    batch_wait_ms: float = Field(
        20.0, ge=0, description="How long a generation batch waits for trajectories still running code."
    )

    def with_overrides(self, overrides: RolloutOverrides) -> RolloutSettings:
        """These settings with every field the overrides set replaced (a stage's effective settings)."""
        values = self.model_dump(include=set(RolloutSettings.model_fields))
        values.update(overrides.model_dump(exclude_none=True))
        return RolloutSettings.model_validate(values)

    def for_stage(self, samples_per_prompt: int, seed: int | None) -> RolloutConfig:
        """The loop's full config: these settings, the stage's samples per prompt and its sampling seed."""
        values = self.model_dump(include=set(RolloutSettings.model_fields))
        return RolloutConfig(**values, samples_per_prompt=samples_per_prompt, seed=seed)


class RolloutConfig(RolloutSettings):
    """How one batch of trajectories is generated: the shared settings plus what each stage sets itself."""

    samples_per_prompt: int = Field(1, ge=1, description="Trajectories per prompt (GRPO's n, the filter's k).")
    seed: int | None = Field(None, description="Sampling seed (None: not seeded).")
    lockstep: bool = Field(
        False,
        description="Every generation batch waits for all live trajectories, so turns advance together and "
        "a batch's requests do not depend on sandbox timing (GRPO's deterministic_rollout). False: a "
        "trajectory's next turn goes to the engine as soon as its tool result is back.",
    )


class RolloutOverrides(StrictModel):
    """A stage's changes to the profile's `rollout` section; a field left None is inherited."""

    max_turns: int | None = Field(None, ge=1, description="Assistant turns at most (1: answer without tools).")
    max_new_tokens: int | None = Field(None, ge=1, description="Tokens one assistant turn may generate.")
    max_context_tokens: int | None = Field(None, ge=64, description="Prompt + response tokens at most.")
    max_response_tokens: int | None = Field(None, ge=1, description="Model tokens one trajectory may generate.")
    temperature: float | None = Field(None, ge=0, description="Sampling temperature (0 = greedy).")
    top_p: float | None = Field(None, gt=0, le=1, description="Nucleus sampling mass.")
    observation_max_chars: int | None = Field(None, ge=200, description="Longest observation text.")
    prompt_version: str | None = Field(None, description="Prompt set for rows without a system prompt.")
    early_sessions: bool | None = Field(None, description="Start sandbox processes behind the first turn.")
    batch_wait_ms: float | None = Field(
        None, ge=0, description="How long a generation batch waits for trajectories still running code."
    )

    @classmethod
    def pinning(cls, settings: RolloutSettings) -> RolloutOverrides:
        """Overrides that set every field to `settings`' value: resolved over anything, they give `settings`."""
        return cls.model_validate(settings.model_dump(include=set(RolloutSettings.model_fields)))


class InheritsRollout:
    """What a stage section with a `rollout: RolloutOverrides` field can say about its loop settings."""

    def rollout_settings(self, inherited: RolloutSettings | None = None) -> RolloutSettings:
        """The stage's effective loop settings: `inherited` (the profile's rollout section; the library
        defaults when None) with this section's overrides applied."""
        overrides: RolloutOverrides = self.rollout  # type: ignore[attr-defined]
        return (inherited or RolloutSettings()).with_overrides(overrides)
