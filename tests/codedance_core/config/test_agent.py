"""The tool loop's settings: one shared set, a stage's overrides over it, and the loop's full config."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codedance_core.config.agent import RolloutConfig, RolloutOverrides, RolloutSettings
from codedance_core.config.filtering import FilterConfig


def test_overrides_replace_the_fields_they_set_and_inherit_the_rest() -> None:
    shared = RolloutSettings(max_new_tokens=1024, observation_max_chars=1000)
    effective = shared.with_overrides(RolloutOverrides(max_turns=1, max_new_tokens=48))
    assert (effective.max_turns, effective.max_new_tokens) == (1, 48)
    assert effective.observation_max_chars == 1000 and effective.temperature == shared.temperature
    assert shared.with_overrides(RolloutOverrides()) == shared


def test_applying_the_same_overrides_twice_changes_nothing() -> None:
    overrides = RolloutOverrides(temperature=0.0, max_turns=2)
    once = RolloutSettings().with_overrides(overrides)
    assert once.with_overrides(overrides) == once


def test_the_loop_config_adds_what_the_stage_sets_itself() -> None:
    settings = RolloutSettings(max_turns=3, prompt_version="suite-v1", early_sessions=False)
    config = settings.for_stage(samples_per_prompt=8, seed=11)
    assert isinstance(config, RolloutConfig)
    assert config.model_dump(exclude={"samples_per_prompt", "seed", "lockstep"}) == settings.model_dump()
    assert (config.samples_per_prompt, config.seed, config.lockstep) == (8, 11, False)
    # and back: a full config resolves to plain settings, without the stage's own fields
    assert type(config.with_overrides(RolloutOverrides())) is RolloutSettings


def test_every_setting_can_be_overridden() -> None:
    assert set(RolloutOverrides.model_fields) == set(RolloutSettings.model_fields)
    assert not {"samples_per_prompt", "seed"} & set(RolloutSettings.model_fields)


def test_pinning_overrides_give_their_settings_over_any_others() -> None:
    settings = RolloutSettings(max_turns=2, top_p=0.9, batch_wait_ms=5.0)
    assert RolloutSettings(max_turns=9, max_new_tokens=7).with_overrides(RolloutOverrides.pinning(settings)) == settings


def test_overrides_are_strict_and_checked_like_the_settings() -> None:
    with pytest.raises(ValidationError, match="max_turn"):
        RolloutOverrides(max_turn=2)  # type: ignore[call-arg]
    with pytest.raises(ValidationError, match="greater than or equal to 1"):
        RolloutOverrides(max_turns=0)
    with pytest.raises(ValidationError):
        RolloutOverrides(top_p=1.5)


def test_a_section_without_a_profile_inherits_the_library_defaults() -> None:
    config = FilterConfig(rollout=RolloutOverrides(max_turns=1))
    assert config.rollout_settings() == RolloutSettings(max_turns=1)
    assert config.rollout_settings(RolloutSettings(top_p=0.5)) == RolloutSettings(max_turns=1, top_p=0.5)
