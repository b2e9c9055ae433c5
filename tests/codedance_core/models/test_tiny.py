"""The tiny model: real Qwen2.5-VL architecture, tiny, saved and loaded the from_pretrained way."""

from __future__ import annotations

import json

import pytest
import torch
from PIL import Image
from transformers import Qwen2_5_VLForConditionalGeneration

from codedance_core.config.model import TinyModelConfig
from codedance_core.models import build_tiny_model, load_model_bundle
from codedance_core.models.tiny import code_snippets, mrope_sections, parameter_count


def test_directory_holds_a_qwen2_5_vl_checkpoint(tiny_model_dir):
    config = json.loads((tiny_model_dir / "config.json").read_text())
    assert config["model_type"] == "qwen2_5_vl"
    assert config["architectures"] == ["Qwen2_5_VLForConditionalGeneration"]
    for name in ("model.safetensors", "tokenizer.json", "chat_template.jinja", "preprocessor_config.json"):
        assert (tiny_model_dir / name).is_file(), name


def test_tiny_model_is_tiny_and_round_trips(tiny_model_dir, tiny_bundle):
    assert isinstance(tiny_bundle.model, Qwen2_5_VLForConditionalGeneration)
    assert 100_000 < parameter_count(tiny_bundle.model) < 2_000_000
    again = Qwen2_5_VLForConditionalGeneration.from_pretrained(tiny_model_dir)
    for (name, saved), loaded in zip(tiny_bundle.model.state_dict().items(), again.state_dict().values()):
        assert torch.equal(saved, loaded), name
    assert tiny_bundle.model.config.image_token_id == tiny_bundle.tokenizer.convert_tokens_to_ids(
        "<|image_pad|>"
    )


def test_forward_with_an_image_gives_finite_logits(tiny_bundle):
    image = Image.effect_noise((120, 90), 40).convert("RGB")
    prompt = tiny_bundle.encode_messages(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "How many circles?"}]}],
        [image],
    )
    with torch.no_grad():
        logits = tiny_bundle.model(**tiny_bundle.model_inputs([prompt])).logits
    assert logits.shape == (1, len(prompt.token_ids), len(tiny_bundle.tokenizer))
    assert torch.isfinite(logits).all()


def test_the_image_changes_the_prediction(tiny_bundle):
    """The vision tower is wired in: different pixels, different next-token distribution."""
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "What is it?"}]}]
    outputs = []
    for colour in ((255, 0, 0), (0, 0, 255)):
        prompt = tiny_bundle.encode_messages(messages, [Image.new("RGB", (56, 56), colour)])
        with torch.no_grad():
            outputs.append(tiny_bundle.model(**tiny_bundle.model_inputs([prompt])).logits[0, -1])
    assert not torch.allclose(outputs[0], outputs[1])


def test_same_seed_same_weights(tmp_path):
    config = TinyModelConfig(vocab_size=600, seed=5)
    first = load_model_bundle(build_tiny_model(tmp_path / "a", code_snippets(50), config), device="cpu")
    second = load_model_bundle(build_tiny_model(tmp_path / "b", code_snippets(50), config), device="cpu")
    for left, right in zip(first.model.parameters(), second.model.parameters()):
        assert torch.equal(left, right)


@pytest.mark.parametrize("head_dim", [16, 32, 128])
def test_mrope_sections_cover_half_the_head(head_dim):
    sections = mrope_sections(head_dim)
    assert sum(sections) == head_dim // 2 and min(sections) > 0
    assert mrope_sections(128) == [16, 24, 24]  # Qwen2.5-VL-7B's split


def test_load_refuses_a_directory_without_a_model(tmp_path):
    with pytest.raises(FileNotFoundError, match="no config.json"):
        load_model_bundle(tmp_path)


def test_checkpoint_template_can_be_kept(tiny_model_dir):
    bundle = load_model_bundle(tiny_model_dir, device="cpu", chat_template="checkpoint")
    assert bundle.chat_template == bundle.tokenizer.chat_template
    assert bundle.eos_token_ids == sorted(
        {
            bundle.tokenizer.convert_tokens_to_ids("<|im_end|>"),
            bundle.tokenizer.convert_tokens_to_ids("<|endoftext|>"),
        }
    )
