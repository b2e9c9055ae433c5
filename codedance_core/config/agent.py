"""Configuration of the multi-turn tool loop (rollouts for synthesis checks, RL and evaluation)."""

from __future__ import annotations

from pydantic import Field

from codedance_core.config.base import StrictModel


class RolloutConfig(StrictModel):
    """How one batch of trajectories is generated."""

    max_turns: int = Field(6, ge=1, description="Assistant turns at most (6 in the original's training).")
    max_new_tokens: int = Field(512, ge=1, description="Tokens one assistant turn may generate.")
    max_context_tokens: int = Field(
        20480, ge=64, description="Prompt + response tokens at most; a trajectory that would exceed it ends."
    )
    temperature: float = Field(1.0, ge=0, description="Sampling temperature (0 = greedy, as in validation).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass.")
    samples_per_prompt: int = Field(1, ge=1, description="Trajectories per prompt (GRPO's n).")
    seed: int | None = Field(None, description="Sampling seed (None: not seeded).")
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
