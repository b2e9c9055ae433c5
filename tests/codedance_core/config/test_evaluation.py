"""The evaluation configs' loop defaults: the original script's for the harness, greedy for the lifecycle."""

from __future__ import annotations

from codedance_core.config.agent import RolloutOverrides, RolloutSettings
from codedance_core.config.evaluation import EvalConfig, EvalStageConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig


def harness(**fields) -> EvalConfig:
    return EvalConfig(data_path="bench.parquet", api_urls=["http://127.0.0.1:9/v1"], **fields)


def test_the_harness_defaults_to_the_original_scripts_loop() -> None:
    loop = harness().rollout
    assert (loop.max_turns, loop.max_new_tokens, loop.temperature) == (7, 2048, 0.0)
    partial = harness(rollout={"max_turns": 3}).rollout  # as a YAML or JSON config would give it
    assert (partial.max_turns, partial.max_new_tokens, partial.temperature) == (3, 2048, 0.0)
    assert harness(rollout=RolloutSettings()).rollout == RolloutSettings()  # settings given whole are kept


def test_the_lifecycles_evaluation_is_greedy_unless_told_otherwise() -> None:
    assert EvalStageConfig().rollout == RolloutOverrides(temperature=0.0)
    assert EvalStageConfig(rollout={"max_turns": 2}).rollout == RolloutOverrides(max_turns=2, temperature=0.0)
    assert EvalStageConfig(rollout={"temperature": None}).rollout_settings().temperature == 1.0


def test_a_checkpoint_is_evaluated_with_the_sections_overrides_over_the_inherited_settings() -> None:
    stage = EvalStageConfig(samples=2, rollout={"max_new_tokens": 64})
    config = stage.for_checkpoint(
        "bench.parquet", "model", "out", RewardConfig(), SandboxConfig(), 784, 784 * 16,
        rollout=RolloutSettings(max_turns=4, observation_max_chars=1000),
    )
    expected = RolloutSettings(max_turns=4, observation_max_chars=1000, max_new_tokens=64, temperature=0.0)
    assert config.rollout == expected
    assert config.samples == 2
