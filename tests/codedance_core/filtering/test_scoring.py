"""The loop config each shard is scored with: the profile's rollout section, the filter's overrides,
k samples per item and a seed that moves with the shard."""

from __future__ import annotations

from codedance_core.config.filtering import FilterConfig
from codedance_core.config.loader import load_profile
from codedance_core.filtering.scoring import rollout_config


def test_a_shard_runs_with_the_profiles_loop_settings_and_the_filters_own() -> None:
    profile = load_profile("tiny", ["rollout.max_context_tokens=4096", "rollout.observation_max_chars=1000"])
    config = rollout_config(profile.filter, 2, profile.rollout)
    assert (config.max_context_tokens, config.observation_max_chars) == (4096, 1000)  # inherited
    assert (config.max_turns, config.max_new_tokens) == (1, 48)  # the tiny filter's overrides
    assert config.samples_per_prompt == profile.filter.k
    assert config.seed == profile.filter.seed + 2


def test_resolved_settings_give_the_same_config_as_the_section() -> None:
    profile = load_profile("tiny", ["rollout.top_p=0.9"])
    assert rollout_config(profile.filter, 0, profile.rollout_for("filter")) == rollout_config(
        profile.filter, 0, profile.rollout
    )


def test_without_a_profile_the_library_defaults_are_inherited() -> None:
    config = rollout_config(FilterConfig(seed=None), 5)
    assert (config.max_turns, config.max_context_tokens, config.seed) == (6, 20480, None)
