"""Models: the tiny Qwen2.5-VL built locally, and loading any Qwen2.5-VL directory into a `ModelBundle`."""

from __future__ import annotations

from codedance_core.models.bundle import ModelBundle, load_model_bundle
from codedance_core.models.images import decode_image, encode_data_url, resize_for_model, smart_resize
from codedance_core.models.inputs import EncodedPrompt, collate_prompts, expand_image_pads
from codedance_core.models.tiny import build_tiny_model

__all__ = [
    "EncodedPrompt",
    "ModelBundle",
    "build_tiny_model",
    "collate_prompts",
    "decode_image",
    "encode_data_url",
    "expand_image_pads",
    "load_model_bundle",
    "resize_for_model",
    "smart_resize",
]
