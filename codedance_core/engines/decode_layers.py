"""The per-token math of the static decode loop (`decode.py`): Qwen2.5-VL's decoder layers as a
few tensor ops against the model's own weights, and sampling.

Each function does what the transformers module does, in the same order and dtype (RMSNorm's
float32 statistics, rotary halves, grouped-query attention), so greedy decoding gives the tokens
`generate` gives.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import TopPLogitsWarper

# Below this many bytes of attention and MLP weights the decoder concatenates q/k/v and gate/up into
# one matrix each per call (fewer, larger ops: per-op overhead is most of a small model's step);
# a large model's matmuls dominate instead, and a copy would double its weights' memory.
FUSE_MAX_BYTES = 256 << 20


def _rms_norm(x: torch.Tensor, norm: torch.nn.Module) -> torch.Tensor:
    # Qwen2_5_VLRMSNorm: float32 statistics, the weight applied in the input dtype.
    normed = F.rms_norm(x.float(), (x.shape[-1],), eps=norm.variance_epsilon)
    return norm.weight * normed.to(x.dtype)


def _rotate(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    half = x.shape[-1] // 2
    return x * cos + torch.cat((-x[..., half:], x[..., :half]), dim=-1) * sin


@dataclass
class LayerWeights:
    """One decoder layer's weights as the step uses them."""

    input_norm: torch.nn.Module
    qkv: list[tuple[torch.Tensor, torch.Tensor | None]]  # one fused (weight, bias), or q, k, v
    o_proj: torch.Tensor
    post_norm: torch.nn.Module
    gate_up: list[torch.Tensor]  # one fused weight, or gate, up
    down: torch.Tensor
    scaling: float


def layer_weights(language: torch.nn.Module, fuse: bool) -> list[LayerWeights]:
    layers = []
    for layer in language.layers:
        attention, mlp = layer.self_attn, layer.mlp
        projections = [attention.q_proj, attention.k_proj, attention.v_proj]
        qkv = [(p.weight, p.bias) for p in projections]
        gate_up = [mlp.gate_proj.weight, mlp.up_proj.weight]
        if fuse:
            biases = [b for _, b in qkv]
            bias = torch.cat(biases) if all(b is not None for b in biases) else None  # type: ignore[arg-type]
            if bias is not None or all(b is None for b in biases):
                qkv = [(torch.cat([w for w, _ in qkv]), bias)]
            gate_up = [torch.cat(gate_up)]
        layers.append(
            LayerWeights(
                layer.input_layernorm,
                qkv,
                attention.o_proj.weight,
                layer.post_attention_layernorm,
                gate_up,
                mlp.down_proj.weight,
                attention.scaling,
            )
        )
    return layers


def forward(
    language: torch.nn.Module,
    lm_head: torch.nn.Module,
    shape: tuple[int, int, int],
    tokens: torch.Tensor,
    keys: list[torch.Tensor],
    values: list[torch.Tensor],
    mask: torch.Tensor,
    cos: torch.Tensor,
    sin: torch.Tensor,
    slot: int,
    layers: list[LayerWeights],
) -> torch.Tensor:
    """Run (rows, n) tokens whose keys and values go to slots [slot, slot + n) through the
    layers, attending to slots [0, slot + n) under `mask` (rows, 1, n, slots); the logits
    after the last token, (rows, vocab)."""
    (rows, count), (heads, kv_heads, head_dim) = tokens.shape, shape
    end = slot + count
    cos, sin = cos[:, None], sin[:, None]  # (rows, 1, n, head_dim): broadcast over heads
    hidden = language.embed_tokens(tokens)  # (rows, n, hidden)
    for layer, layer_keys, layer_values in zip(layers, keys, values, strict=True):
        x = _rms_norm(hidden, layer.input_norm)
        projected = (
            torch.cat([F.linear(x, w, b) for w, b in layer.qkv], dim=-1)
            if len(layer.qkv) > 1
            else F.linear(x, *layer.qkv[0])
        )
        projected = projected.view(rows, count, heads + 2 * kv_heads, head_dim).transpose(1, 2)
        # Queries and keys are adjacent: one rotation for both.
        rotated = _rotate(projected[:, : heads + kv_heads], cos, sin)
        layer_keys[:, :, slot:end] = rotated[:, heads:]
        layer_values[:, :, slot:end] = projected[:, heads + kv_heads :]
        query = rotated[:, :heads]
        if count == 1:
            # The query heads sharing a key/value head attend as that head's "positions": no
            # copy of the cache per query head (what repeat_kv does), the same softmax per head.
            query = query.reshape(rows, kv_heads, heads // kv_heads, head_dim)
        out = F.scaled_dot_product_attention(
            query,
            layer_keys[:, :, :end],
            layer_values[:, :, :end],
            attn_mask=mask,
            scale=layer.scaling,
            enable_gqa=count > 1,
        )
        out = out.reshape(rows, heads, count, head_dim).transpose(1, 2).reshape(rows, count, heads * head_dim)
        hidden = hidden + F.linear(out, layer.o_proj)
        x = _rms_norm(hidden, layer.post_norm)
        if len(layer.gate_up) == 1:
            gate, up = F.linear(x, layer.gate_up[0]).chunk(2, dim=-1)
        else:
            gate, up = (F.linear(x, w) for w in layer.gate_up)
        hidden = hidden + F.linear(F.silu(gate) * up, layer.down)
    hidden = _rms_norm(hidden[:, -1], language.norm)
    return F.linear(hidden, lm_head.weight, lm_head.bias)


def sample(
    logits: torch.Tensor, temperature: float, warper: TopPLogitsWarper | None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The next token of each row and its log-prob under softmax(logits / temperature).

    A draw is one uniform number per row through the inverse of the distribution's CDF: the
    same distribution as `torch.multinomial`, without its one exponential draw per vocabulary
    entry (on a small model, that was a sixth of a step)."""
    scores = logits.float()
    if temperature == 0:
        tokens = torch.argmax(scores, dim=-1)
        return tokens, torch.log_softmax(scores, dim=-1).gather(1, tokens[:, None]).squeeze(1)
    logprobs = torch.log_softmax(scores / temperature, dim=-1)
    probs = logprobs.exp() if warper is None else torch.softmax(warper(None, scores / temperature), dim=-1)
    cdf = probs.cumsum(dim=-1)
    draw = torch.rand((cdf.shape[0], 1), device=cdf.device, dtype=cdf.dtype) * cdf[:, -1:]
    tokens = torch.searchsorted(cdf, draw, right=True).squeeze(1).clamp_(max=cdf.shape[1] - 1)
    return tokens, logprobs.gather(1, tokens[:, None]).squeeze(1)
