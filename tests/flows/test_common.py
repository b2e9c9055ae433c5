"""The flows' form: its example overrides do what they say, and a bad one fails before any work."""

from __future__ import annotations

import pytest

from codedance_core.config import ConfigError
from flows.common import EXAMPLE_OVERRIDES, LifecycleParameters, ProfileParameters


def test_the_forms_example_overrides_change_the_stages_they_name() -> None:
    plain = ProfileParameters().load()
    example = ProfileParameters(overrides=EXAMPLE_OVERRIDES).load()
    # rollout.max_turns reaches every stage that does not set its own (the tiny profile's evaluation
    # and synthesis; its filter answers in one turn and RL sets 3), sft.epochs reaches SFT.
    for stage in ("evaluation", "synthesis", "sft"):
        assert example.stage_digest(stage) != plain.stage_digest(stage), stage
    assert example.rollout_for("evaluation").max_turns == 4
    assert example.stage_digest("filter") == plain.stage_digest("filter")
    assert ProfileParameters.model_json_schema()["properties"]["overrides"]["examples"] == [EXAMPLE_OVERRIDES]


def test_a_bad_override_fails_when_the_form_is_loaded() -> None:
    with pytest.raises(ConfigError, match="sft.epochz"):
        LifecycleParameters(overrides=["sft.epochz=2"]).load()
