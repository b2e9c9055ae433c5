"""SynthesisConfig: defaults are the tiny profile's, and mistakes fail at load time."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codedance_core.config.model import EngineConfig
from codedance_core.config.synthesis import SynthesisConfig, TeacherConfig


def test_defaults_write_every_family_at_the_tiny_resolution():
    config = SynthesisConfig()
    assert config.families == ["count", "search", "chart", "math", "direct"]
    assert config.max_pixels == 256 * 28 * 28 and config.teacher is None


def test_unknown_family_and_non_http_teacher_are_rejected():
    with pytest.raises(ValidationError, match="no program writer"):
        SynthesisConfig(families=["count", "poetry"])
    with pytest.raises(ValidationError, match="openai"):
        TeacherConfig(engine=EngineConfig(kind="hf", model="some/dir"))
    with pytest.raises(ValidationError):
        SynthesisConfig(failure_rate=1.5)
