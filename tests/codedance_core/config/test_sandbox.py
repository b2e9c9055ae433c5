"""SandboxConfig: isolation on by default, strict about unknown keys and bad values."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codedance_core.config.sandbox import SandboxConfig


def test_defaults_follow_the_method():
    config = SandboxConfig()
    assert config.isolation == "bwrap" and config.timeout_s == 15 and config.min_image_side == 56
    assert config.max_aspect_ratio == 200


def test_unknown_keys_and_bad_values_fail():
    with pytest.raises(ValidationError):
        SandboxConfig(isolation="docker")
    with pytest.raises(ValidationError):
        SandboxConfig(timeout_s=0)
    with pytest.raises(ValidationError):
        SandboxConfig(timeout=5)


def test_every_field_is_documented():
    assert all(field.description for field in SandboxConfig.model_fields.values())
