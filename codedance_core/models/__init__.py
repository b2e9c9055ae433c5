"""Models: the tiny Qwen2.5-VL built locally, and loading any Qwen2.5-VL directory into a `ModelBundle`.

The public names resolve lazily (PEP 562 module `__getattr__`): most of them live in modules that
import torch and transformers (~450 MB resident), and a process that only talks to a served model
(the evaluation harness, the judge) must not pay for them just because it touched
`codedance_core.models.images` or `codedance_core.models.tokenizer`'s constants.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from codedance_core.lazy_exports import lazy_getattr

# public name -> the submodule that defines it
_SOURCES = {
    "ModelBundle": "bundle",
    "load_model_bundle": "bundle",
    "decode_image": "images",
    "encode_data_url": "images",
    "resize_for_model": "images",
    "smart_resize": "images",
    "EncodedPrompt": "inputs",
    "collate_prompts": "inputs",
    "expand_image_pads": "inputs",
    "build_tiny_model": "tiny",
}

if TYPE_CHECKING:
    from codedance_core.models.bundle import ModelBundle, load_model_bundle
    from codedance_core.models.images import decode_image, encode_data_url, resize_for_model, smart_resize
    from codedance_core.models.inputs import EncodedPrompt, collate_prompts, expand_image_pads
    from codedance_core.models.tiny import build_tiny_model


__getattr__ = lazy_getattr(__name__, globals(), _SOURCES)


def __dir__() -> list[str]:
    return sorted([*globals(), *_SOURCES])


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
