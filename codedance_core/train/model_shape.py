"""The shape of a Qwen2.5-VL model, known without loading it: what the memory planner counts.

A plan is made where the model is not (a laptop planning a cluster run), so the shape comes from
the first of these that answers:

1. the model directory's `config.json` (a local folder, or a stored one on s3://: one small file);
2. a published size matched in the model's name ("Qwen2.5-VL-7B-Instruct", "qwen2_5_vl_72b"): the
   dimensions of the `config.json` files of Qwen/Qwen2.5-VL-{3,7,32,72}B-Instruct on the Hugging Face
   Hub, from which the parameter counts below follow exactly (7B: 8,292,166,656, the count the Hub
   shows for its weights);
3. the `tiny` profile's own model config (`TinyModelConfig`).

Parameter counts follow transformers' Qwen2.5-VL modules: decoder layers with biased q/k/v, an
unbiased o_proj and a SwiGLU MLP; a vision tower of pre-norm blocks (RMSNorm, fused biased qkv,
SwiGLU MLP with biases) behind a Conv3d patch embedding without bias; and a patch merger (RMSNorm,
then two biased linears over 2x2 merged patches). Only `model_type: qwen2_5_vl` is read: another
architecture would be counted wrongly, so its config.json is passed over.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, replace
from typing import Any

from codedance_core.config.model import TinyModelConfig

# in_channels x temporal_patch_size x patch_size^2 of every published Qwen2.5-VL (3 x 2 x 14 x 14).
QWEN_PATCH_VOLUME = 3 * 2 * 14 * 14
# Linear layers of a decoder layer by name: (input width, output width) as functions of the shape.
_PROJECTIONS = {
    "q_proj": lambda s: (s.hidden_size, s.hidden_size),
    "k_proj": lambda s: (s.hidden_size, s.kv_width),
    "v_proj": lambda s: (s.hidden_size, s.kv_width),
    "o_proj": lambda s: (s.hidden_size, s.hidden_size),
    "gate_proj": lambda s: (s.hidden_size, s.intermediate_size),
    "up_proj": lambda s: (s.hidden_size, s.intermediate_size),
    "down_proj": lambda s: (s.intermediate_size, s.hidden_size),
}


@dataclass(frozen=True)
class ModelShape:
    """Widths and depths of a Qwen2.5-VL model, and the parameter counts they imply."""

    name: str
    source: str  # where the shape was read, for the plan's reader
    hidden_size: int
    intermediate_size: int
    layers: int
    attention_heads: int
    kv_heads: int
    vocab_size: int
    tie_word_embeddings: bool
    vision_depth: int
    vision_hidden_size: int
    vision_intermediate_size: int
    patch_volume: int = QWEN_PATCH_VOLUME
    spatial_merge_size: int = 2

    @property
    def head_dim(self) -> int:
        return self.hidden_size // self.attention_heads

    @property
    def kv_width(self) -> int:
        """Width of the key (and of the value) projection: grouped-query attention shares kv heads."""
        return self.kv_heads * self.head_dim

    @property
    def decoder_layer_params(self) -> int:
        h, kv, inner = self.hidden_size, self.kv_width, self.intermediate_size
        attention = 2 * h * h + 2 * h * kv + h + 2 * kv  # q, k, v biased; o not
        return attention + 3 * h * inner + 2 * h  # SwiGLU MLP without biases, two RMSNorms

    @property
    def embedding_params(self) -> int:
        return self.vocab_size * self.hidden_size

    @property
    def lm_head_params(self) -> int:
        return 0 if self.tie_word_embeddings else self.vocab_size * self.hidden_size

    @property
    def language_params(self) -> int:
        """The language model: decoder layers, final norm, token embeddings and the LM head."""
        return self.layers * self.decoder_layer_params + self.hidden_size + self.embedding_params + self.lm_head_params

    @property
    def vision_block_params(self) -> int:
        vh, vi = self.vision_hidden_size, self.vision_intermediate_size
        return 2 * vh + (3 * vh * vh + 3 * vh) + (vh * vh + vh) + 2 * (vh * vi + vi) + (vi * vh + vh)

    @property
    def vision_tower_params(self) -> int:
        """Patch embedding and vision blocks: what `freeze_vision` freezes (the merger aside)."""
        return self.patch_volume * self.vision_hidden_size + self.vision_depth * self.vision_block_params

    @property
    def merger_params(self) -> int:
        merged = self.vision_hidden_size * self.spatial_merge_size**2
        return self.vision_hidden_size + (merged * merged + merged) + (merged * self.hidden_size + self.hidden_size)

    @property
    def total_params(self) -> int:
        return self.language_params + self.vision_tower_params + self.merger_params

    @property
    def largest_module_params(self) -> int:
        """The largest module ZeRO-3 gathers whole: the embeddings, the LM head or one decoder layer."""
        return max(self.embedding_params, self.lm_head_params, self.decoder_layer_params)

    def lora_params(self, rank: int, target_modules: list[str]) -> int:
        """Adapter parameters: r x (in + out) per targeted projection of every decoder layer."""
        per_layer = sum(rank * sum(_PROJECTIONS[name](self)) for name in target_modules if name in _PROJECTIONS)
        return self.layers * per_layer

    def kv_bytes_per_token(self, bytes_per_value: int = 2) -> int:
        """KV cache of one token: a key and a value per layer, kv_heads x head_dim wide."""
        return 2 * self.layers * self.kv_width * bytes_per_value


def _qwen(name: str, hidden: int, inner: int, layers: int, heads: int, kv_heads: int, vocab: int, tied: bool) -> ModelShape:
    # Every published Qwen2.5-VL has the same vision tower: 32 blocks, width 1280, MLP 3420.
    return ModelShape(
        name=name, source="published dimensions", hidden_size=hidden, intermediate_size=inner,
        layers=layers, attention_heads=heads, kv_heads=kv_heads, vocab_size=vocab, tie_word_embeddings=tied,
        vision_depth=32, vision_hidden_size=1280, vision_intermediate_size=3420,
    )


KNOWN_SHAPES: dict[str, ModelShape] = {
    "3b": _qwen("Qwen2.5-VL-3B", 2048, 11008, 36, 16, 2, 151936, True),
    "7b": _qwen("Qwen2.5-VL-7B", 3584, 18944, 28, 28, 4, 152064, False),
    "32b": _qwen("Qwen2.5-VL-32B", 5120, 27648, 64, 40, 8, 152064, False),
    "72b": _qwen("Qwen2.5-VL-72B", 8192, 29568, 80, 64, 8, 152064, False),
}
_KNOWN_NAME = re.compile(r"qwen2[._-]?5[._-]?vl[._-]?(72|32|7|3)b")


def known_shape(name: str) -> ModelShape | None:
    """The published shape whose size a model name or path names ("…/Qwen2.5-VL-7B-Instruct"), if any."""
    match = _KNOWN_NAME.search(name.lower())
    if match is None:
        return None
    shape = KNOWN_SHAPES[f"{match.group(1)}b"]
    return replace(shape, source=f"{shape.source}, matched in {name!r}")


def shape_from_config(config: dict[str, Any], name: str, source: str) -> ModelShape:
    """The shape a Qwen2.5-VL `config.json` describes; its text fields may sit at the top level (the
    Hub's files) or under `text_config` (as transformers 5 writes them)."""
    if config.get("model_type") != "qwen2_5_vl":
        raise ValueError(f"{source}: the memory plan counts Qwen2.5-VL models only, not {config.get('model_type')!r}")
    text = {**config, **config.get("text_config", {})}
    vision = config["vision_config"]
    return ModelShape(
        name=name, source=source,
        hidden_size=text["hidden_size"], intermediate_size=text["intermediate_size"],
        layers=text["num_hidden_layers"], attention_heads=text["num_attention_heads"],
        kv_heads=text.get("num_key_value_heads", text["num_attention_heads"]), vocab_size=text["vocab_size"],
        tie_word_embeddings=bool(text.get("tie_word_embeddings", config.get("tie_word_embeddings", False))),
        vision_depth=vision["depth"], vision_hidden_size=vision["hidden_size"],
        vision_intermediate_size=vision["intermediate_size"],
        patch_volume=vision.get("in_channels", vision.get("in_chans", 3)) * vision.get("temporal_patch_size", 2)
        * vision.get("patch_size", 14) ** 2,
        spatial_merge_size=vision.get("spatial_merge_size", 2),
    )


def tiny_shape(config: TinyModelConfig) -> ModelShape:
    """The tiny profile's model, from its config (its vocabulary at most the configured size)."""
    return ModelShape(
        name="tiny", source="the profile's tiny_model section", hidden_size=config.hidden_size,
        intermediate_size=config.intermediate_size, layers=config.text_layers, attention_heads=config.attention_heads,
        kv_heads=config.kv_heads, vocab_size=config.vocab_size, tie_word_embeddings=config.tie_word_embeddings,
        vision_depth=config.vision_depth, vision_hidden_size=config.vision_hidden_size,
        vision_intermediate_size=config.vision_intermediate_size,
    )


def read_config_json(location: str) -> dict[str, Any] | None:
    """A model directory's config.json (local or stored, e.g. s3://), or None when there is none."""
    from codedance_core.storage.store import resolve_uri
    from codedance_core.storage.uris import filesystem, join_uri

    try:
        fs, path = filesystem(join_uri(resolve_uri(location), "config.json"))
        with fs.open(path, "rb") as handle:
            return json.loads(handle.read())
    except (OSError, ValueError):  # absent, unreachable, or not JSON: the other sources answer
        return None


def model_shape(*locations: str | None, tiny: TinyModelConfig | None = None) -> ModelShape | None:
    """The shape of the first location with a Qwen2.5-VL config.json, else of the first whose name
    names a published size, else the tiny model's (when given), else None."""
    named = [location for location in locations if location]
    for location in named:
        config = read_config_json(location)
        if config is not None and config.get("model_type") == "qwen2_5_vl":
            return shape_from_config(config, location.rstrip("/").rsplit("/", 1)[-1], f"{location}/config.json")
    for location in named:
        shape = known_shape(location)
        if shape is not None:
            return shape
    return tiny_shape(tiny) if tiny is not None else None
