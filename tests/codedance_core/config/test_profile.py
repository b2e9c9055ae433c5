"""One rollout section for every stage: what each stage runs with, and what re-runs it."""

from __future__ import annotations

import pytest

from codedance_core.config import ConfigError, load_profile
from codedance_core.config.agent import RolloutSettings
from codedance_core.config.profile import ROLLOUT_STAGE_SECTIONS, STAGE_SECTIONS
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig

LOOP_STAGES = tuple(ROLLOUT_STAGE_SECTIONS)


def digests(profile) -> dict[str, str]:
    return {stage: profile.stage_digest(stage) for stage in STAGE_SECTIONS}


def test_the_tiny_profiles_stages_run_with_their_own_changes_to_the_shared_section() -> None:
    profile = load_profile("tiny")
    assert profile.rollout.max_new_tokens == 1024
    filtering, rl, evaluation = (profile.rollout_for(stage) for stage in ("filter", "rl", "evaluation"))
    assert (filtering.max_turns, filtering.max_new_tokens) == (1, 48)  # a weak model without tools
    assert (rl.max_turns, rl.max_new_tokens, rl.temperature) == (3, 1024, 1.0)
    assert (evaluation.max_turns, evaluation.max_new_tokens, evaluation.temperature) == (6, 1024, 0.0)
    assert profile.rollout_for("synthesis") == profile.rollout


def test_the_paper_profile_loads_with_the_originals_training_rollouts() -> None:
    profile = load_profile("paper")
    rl = profile.rollout_for("rl")
    assert (rl.max_turns, rl.temperature, profile.grpo.samples_per_prompt) == (6, 1.0, 8)
    assert profile.rollout_for("evaluation").temperature == 0.0


@pytest.mark.parametrize(
    ("stage", "override", "field", "value"),
    [
        ("filter", "filter.rollout.top_p=0.5", "top_p", 0.5),
        ("synthesis", "synthesis.rollout.observation_max_chars=1000", "observation_max_chars", 1000),
        ("rl", "grpo.rollout.max_turns=2", "max_turns", 2),
        ("evaluation", "evaluation.rollout.max_context_tokens=4096", "max_context_tokens", 4096),
    ],
)
def test_a_stage_override_changes_that_stage_and_no_other(stage: str, override: str, field: str, value) -> None:
    before = load_profile("tiny")
    after = load_profile("tiny", [override])
    assert getattr(after.rollout_for(stage), field) == value
    for other in LOOP_STAGES:
        if other != stage:
            assert after.rollout_for(other) == before.rollout_for(other)
    changed = {name for name, digest in digests(after).items() if digest != digests(before)[name]}
    assert changed == {stage}


def test_a_shared_change_reaches_every_stage_that_does_not_override_it() -> None:
    before = load_profile("tiny")
    after = load_profile("tiny", ["rollout.max_turns=4"])  # the lifecycle form's example override
    assert after.rollout_for("evaluation").max_turns == 4
    assert after.rollout_for("synthesis").max_turns == 4
    assert after.synthesis_config().loop_settings.max_turns == 4
    assert after.rollout_for("filter").max_turns == 1 and after.rollout_for("rl").max_turns == 3  # their own
    changed = {name for name, digest in digests(after).items() if digest != digests(before)[name]}
    assert changed == {"evaluation", "synthesis"}


def test_a_shared_change_no_stage_overrides_re_runs_every_loop_stage() -> None:
    before, after = load_profile("tiny"), load_profile("tiny", ["rollout.observation_max_chars=1000"])
    changed = {name for name, digest in digests(after).items() if digest != digests(before)[name]}
    assert changed == set(LOOP_STAGES)
    assert all(after.rollout_for(stage).observation_max_chars == 1000 for stage in LOOP_STAGES)


def test_an_unknown_key_in_a_stage_rollout_fails_with_its_dotted_path() -> None:
    with pytest.raises(ConfigError) as caught:
        load_profile("tiny", ["filter.rollout.max_turn=2"])
    assert "filter.rollout.max_turn: unknown key" in str(caught.value)
    with pytest.raises(ConfigError, match="grpo.max_turns: unknown key"):
        load_profile("tiny", ["grpo.max_turns=2"])


def test_evaluation_stays_greedy_when_other_fields_are_overridden() -> None:
    assert load_profile("tiny", ["evaluation.rollout.max_turns=2"]).rollout_for("evaluation").temperature == 0.0
    inherited = load_profile("tiny", ["evaluation.rollout.temperature=null", "rollout.temperature=0.7"])
    assert inherited.rollout_for("evaluation").temperature == 0.7


def test_rl_must_sample() -> None:
    with pytest.raises(ConfigError, match="grpo.rollout.temperature"):
        load_profile("tiny", ["rollout.temperature=0"])
    profile = load_profile("tiny", ["rollout.temperature=0", "grpo.rollout.temperature=0.7"])
    assert profile.rollout_for("rl").temperature == 0.7 and profile.rollout_for("filter").temperature == 0.0


def test_the_synthesis_config_carries_the_profiles_loop_settings() -> None:
    profile = load_profile("tiny", ["rollout.observation_max_chars=1000", "synthesis.rollout.max_turns=5"])
    loop = profile.synthesis_config().loop_settings
    assert (loop.max_turns, loop.observation_max_chars) == (5, 1000)
    assert loop == profile.rollout_for("synthesis")


def test_evaluation_gets_its_effective_settings_for_each_checkpoint() -> None:
    profile = load_profile("tiny", ["rollout.observation_max_chars=1000"])
    args = ("bench.parquet", "model", "out", RewardConfig(), SandboxConfig(), *profile.pixel_bounds())
    config = profile.evaluation.for_checkpoint(*args, rollout=profile.rollout_for("evaluation"))
    assert config.rollout == profile.rollout_for("evaluation")
    # The section itself may be passed: evaluation's overrides are applied either way.
    assert profile.evaluation.for_checkpoint(*args, rollout=profile.rollout).rollout == config.rollout
    assert config.rollout.observation_max_chars == 1000 and config.rollout.temperature == 0.0


def test_only_loop_stages_have_rollout_settings() -> None:
    with pytest.raises(KeyError, match="runs no tool loop"):
        load_profile("tiny").rollout_for("sft")  # type: ignore[arg-type]
    assert isinstance(load_profile("tiny").rollout_for("rl"), RolloutSettings)


def test_the_paper_profile_reads_the_released_sets_and_the_tiny_profile_the_suite() -> None:
    paper, tiny = load_profile("paper"), load_profile("tiny")
    assert paper.filter.sources == ["hf://datasets/Peterwatwec/CodeDance-RL@main/data/*.parquet"]
    assert paper.synthesis.sources == ["hf://datasets/Peterwatwec/CodeDance-SFT@main/**/*.parquet"]
    assert (tiny.filter.sources, tiny.synthesis.sources) == (["suite://train"], ["stage://synthesize"])


def test_changing_the_sources_changes_no_stage_digest() -> None:
    overrides = ["filter.sources=[suite://train, /data/rl.parquet]", "synthesis.sources=[stage://synthesize, /data/sft]"]
    assert digests(load_profile("tiny", overrides)) == digests(load_profile("tiny"))


def test_a_bad_source_in_a_profile_names_the_field() -> None:
    with pytest.raises(ConfigError, match=r"filter\.sources: .*no source"):
        load_profile("tiny", ["filter.sources=[]"])
    with pytest.raises(ConfigError, match=r"synthesis\.sources: .*unknown scheme 'ftp'"):
        load_profile("tiny", ["synthesis.sources=[ftp://host/sft.parquet]"])
