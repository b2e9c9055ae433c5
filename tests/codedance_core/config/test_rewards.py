"""The reward config: the paper's defaults, strict keys, and the switches the experiment arms need."""

from __future__ import annotations

import pydantic
import pytest

from codedance_core.config.rewards import JudgeConfig, RewardConfig


def test_defaults_are_the_papers() -> None:
    config = RewardConfig()
    assert (config.accuracy_weight, config.math_accuracy_weight) == (1.0, 1.2)
    assert (config.format_weight, config.math_format_weight) == (0.2, 0.4)
    assert (config.gamma, config.beta, config.turn_discount, config.turn_weight) == (4.0, 0.2, 0.2, 0.2)
    assert config.fail_penalty == -0.5 and config.relaxed_tolerance == 0.05
    assert config.use_bat and config.use_turn_level
    assert config.judge.base_url_env == "LLM_AS_A_JUDGE_BASE"


def test_unknown_keys_and_bad_values_fail() -> None:
    with pytest.raises(pydantic.ValidationError):
        RewardConfig(gama=4.0)
    with pytest.raises(pydantic.ValidationError):
        RewardConfig(judge={"concurrency": 0})


def test_arms_differ_in_digest() -> None:
    assert RewardConfig().digest() != RewardConfig(use_bat=False).digest()
    assert RewardConfig(judge=JudgeConfig(concurrency=4)).judge.concurrency == 4
