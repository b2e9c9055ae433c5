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


def test_the_judges_limits_are_set_from_the_profile_like_any_field() -> None:
    from codedance_core.config.loader import load_profile

    overrides = ["rewards.judge.request_timeout_s=5", "rewards.judge.max_retries=1", "rewards.judge.budget_s=30"]
    judge = load_profile("tiny", overrides).rewards.judge
    assert (judge.request_timeout_s, judge.max_retries, judge.budget_s) == (5.0, 1, 30.0)


def test_command_line_limits_keep_what_they_do_not_set() -> None:
    from codedance_core.config.rewards import judge_limits

    base = JudgeConfig(base_urls=["http://judge/v1"], max_retries=2)
    limited = judge_limits(base, timeout_s=3.0, max_retries=None, budget_s=10.0)
    assert (limited.request_timeout_s, limited.max_retries, limited.budget_s) == (3.0, 2, 10.0)
    assert limited.base_urls == ["http://judge/v1"]
    with pytest.raises(pydantic.ValidationError):
        judge_limits(base, timeout_s=0.0, max_retries=None, budget_s=None)
