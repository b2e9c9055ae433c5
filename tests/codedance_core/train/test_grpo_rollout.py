"""A GRPO step's loop config: RL's effective settings, the group size, the step's seed, the lockstep wait."""

from __future__ import annotations

import pytest

from codedance_core.config.agent import RolloutSettings
from codedance_core.config.loader import load_profile
from codedance_core.config.train import GRPOConfig
from codedance_core.train.grpo import train_grpo
from codedance_core.train.grpo_rollout import LOCKSTEP_WAIT_MS, step_rollout_config


def test_a_step_adds_only_its_seed_group_size_and_lockstep_to_rls_settings() -> None:
    profile = load_profile("tiny", ["rollout.observation_max_chars=1000", "grpo.rollout.temperature=0.7"])
    settings = profile.rollout_for("rl")
    config = step_rollout_config(settings, samples_per_prompt=4, seed=12, lockstep=False)
    assert config.model_dump(exclude={"samples_per_prompt", "seed"}) == settings.model_dump()
    assert (config.max_turns, config.temperature, config.observation_max_chars) == (3, 0.7, 1000)
    assert (config.samples_per_prompt, config.seed) == (4, 12)
    assert step_rollout_config(settings, 4, 12, lockstep=True).batch_wait_ms == LOCKSTEP_WAIT_MS


def test_training_refuses_greedy_rollouts(tmp_path) -> None:
    with pytest.raises(ValueError, match="temperature must be above 0"):
        train_grpo(GRPOConfig(), [], tmp_path / "model", tmp_path / "run", rollout=RolloutSettings(temperature=0))
