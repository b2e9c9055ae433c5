"""Model and engine configs: defaults that work, and mistakes caught at load time."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from codedance_core.config.model import EngineConfig, ModelConfig, TinyModelConfig


def test_tiny_defaults_are_valid_and_tiny():
    config = TinyModelConfig()
    assert config.head_dim >= 16 and 2000 <= config.vocab_size <= 4000
    assert config.max_pixels == 256 * 28 * 28 and config.min_pixels == 4 * 28 * 28


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"hidden_size": 64, "attention_heads": 8}, "head_dim"),
        ({"hidden_size": 66}, "divisible"),
        ({"attention_heads": 4, "kv_heads": 3}, "multiple of kv_heads"),
        ({"min_pixels": 10 * 784, "max_pixels": 5 * 784}, "min_pixels"),
        ({"vocab_sise": 3000}, "Extra inputs"),
    ],
)
def test_tiny_config_mistakes_are_caught(fields, message):
    with pytest.raises(ValidationError, match=message):
        TinyModelConfig(**fields)


def test_engine_kinds_need_their_target():
    with pytest.raises(ValidationError, match="base_url"):
        EngineConfig(kind="openai")
    with pytest.raises(ValidationError, match="model"):
        EngineConfig(kind="hf")
    assert EngineConfig(kind="openai", base_urls=["http://127.0.0.1:8000/v1"]).max_retries == 5


def test_model_config_requires_a_path_and_known_dtype():
    assert ModelConfig(path="models/tiny").dtype == "auto"
    with pytest.raises(ValidationError):
        ModelConfig(path="x", dtype="float8")


def test_every_field_is_described():
    for model in (TinyModelConfig, ModelConfig, EngineConfig):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name}"
