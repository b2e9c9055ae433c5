"""A training model's full weights, bucket by bucket, under the names its checkpoint uses.

Whoever serves the policy from its own copy of the weights (a vLLM engine, a plain transformers
model beside a ZeRO-3 trainer) needs them after every update: whole tensors, by the names of the
model directory it was loaded from. `weight_buckets` yields them a bounded bucket at a time, so
the extra memory is one bucket however large the model:
- under DeepSpeed ZeRO-3 each rank holds a shard of every parameter; a bucket's parameters are
  gathered together (`deepspeed.zero.GatheredParameters`, a collective: EVERY rank must iterate
  the buckets in step, even one that discards them) and copied out before the shards are freed;
- a peft LoRA model yields its merged weights (base + scaled B @ A) under the base model's names,
  and never the adapter matrices themselves;
- plain and DDP-wrapped models just yield copies.

Names are checkpoint names, the keys `save_pretrained` writes for Qwen2.5-VL: transformers'
modules `model.language_model.*` and `model.visual.*` are stored as `model.*` and `visual.*`
(`lm_head.*` unchanged). vLLM's Qwen2.5-VL loader takes exactly these (its `hf_to_vllm_mapper`
maps `model.` -> `language_model.model.`, `lm_head.` -> `language_model.lm_head.`, and `visual.`
is its own module's name), and `load_buckets` maps them back onto a transformers model.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

import torch

Bucket = list[tuple[str, torch.Tensor]]

# transformers module prefix -> checkpoint prefix (the first that matches applies)
CHECKPOINT_PREFIXES = (("model.language_model.", "model."), ("model.visual.", "visual."))


def checkpoint_name(module_name: str) -> str:
    """The name a parameter of a transformers Qwen2.5-VL model has in its saved checkpoint."""
    for module_prefix, stored_prefix in CHECKPOINT_PREFIXES:
        if module_name.startswith(module_prefix):
            return stored_prefix + module_name[len(module_prefix) :]
    return module_name


def unwrap(model: Any) -> torch.nn.Module:
    """The module inside a DDP or DeepSpeed engine wrapper (itself otherwise)."""
    while (
        isinstance(model, torch.nn.parallel.DistributedDataParallel)
        or type(model).__name__ == "DeepSpeedEngine"
    ):
        model = model.module
    return model


@dataclass(frozen=True)
class _Weight:
    """One checkpoint tensor: the parameters it is computed from, and how."""

    name: str
    params: tuple[torch.nn.Parameter, ...]
    build: Callable[[], torch.Tensor]  # runs while `params` are whole
    numel: int


def _full_numel(param: torch.nn.Parameter) -> int:
    return int(getattr(param, "ds_numel", param.numel()))  # ZeRO-3 keeps the full size in ds_numel


def _plain(name: str, param: torch.nn.Parameter) -> _Weight:
    return _Weight(name, (param,), lambda: param.detach(), _full_numel(param))


def _merged_lora(name: str, layer: Any, adapters: list[str]) -> _Weight:
    """base weight + each active adapter's delta (peft's own scaling and fan-in/fan-out layout)."""
    base = layer.get_base_layer().weight
    params = [base] + [
        p
        for adapter in adapters
        for p in (*layer.lora_A[adapter].parameters(), *layer.lora_B[adapter].parameters())
    ]

    def build() -> torch.Tensor:
        weight = base.detach().clone()
        for adapter in adapters:
            weight += layer.get_delta_weight(adapter).to(weight.dtype)
        return weight

    return _Weight(name, tuple(params), build, _full_numel(base))


def _weights(model: Any) -> list[_Weight]:
    """Every checkpoint tensor of `model`, in parameter order; the same list on every rank."""
    model = unwrap(model)
    lora_layers: dict[str, Any] = {}
    adapters: list[str] = []
    if hasattr(model, "peft_config") and hasattr(model, "base_model"):
        from peft.tuners.lora import LoraLayer

        model = model.base_model.model
        for module_name, module in model.named_modules():
            if isinstance(module, LoraLayer):
                lora_layers[module_name] = module
                active = [a for a in module.active_adapters if a in module.lora_A]
                adapters = sorted(set(adapters) | set(active))
    weights: list[_Weight] = []
    for name, param in model.named_parameters():
        if ".lora_" in name:
            continue  # adapter matrices: folded into their base weight below
        owner, _, leaf = name.rpartition(".")
        if owner.endswith(".base_layer"):
            layer_name = owner.removesuffix(".base_layer")
            clean = checkpoint_name(f"{layer_name}.{leaf}")
            layer = lora_layers.get(layer_name)
            if layer is not None and leaf == "weight":
                active = [
                    a
                    for a in adapters
                    if a in layer.lora_A and a not in getattr(layer, "merged_adapters", [])
                ]
                weights.append(_merged_lora(clean, layer, active))
                continue
            weights.append(_plain(clean, param))
        else:
            weights.append(_plain(checkpoint_name(name), param))
    return weights


def _buckets_of(
    weights: list[_Weight], bucket_bytes: int, itemsize: Callable[[_Weight], int]
) -> list[list[_Weight]]:
    """Consecutive groups of at most `bucket_bytes` (a tensor larger than that is a bucket alone)."""
    buckets: list[list[_Weight]] = []
    current: list[_Weight] = []
    size = 0
    for weight in weights:
        nbytes = weight.numel * itemsize(weight)
        if current and size + nbytes > bucket_bytes:
            buckets.append(current)
            current, size = [], 0
        current.append(weight)
        size += nbytes
    if current:
        buckets.append(current)
    return buckets


def _gathered(params: Iterable[torch.nn.Parameter]) -> Any:
    """Whole parameters for the duration of the block: a ZeRO-3 all-gather, else nothing to do."""
    sharded = [p for p in params if hasattr(p, "ds_id")]
    if not sharded:
        return nullcontext()
    import deepspeed

    return deepspeed.zero.GatheredParameters(sharded, modifier_rank=None)


def weight_buckets(model: Any, bucket_bytes: int, dtype: torch.dtype | None = None) -> Iterator[Bucket]:
    """The model's full weights as (checkpoint name, tensor) lists of at most `bucket_bytes` each
    (counted in the output dtype), in `dtype` when given.

    Each tensor is a fresh copy on the parameters' device, the caller's to keep. Under ZeRO-3 every
    rank must consume the iterator to the end, in step: each bucket is one collective gather.
    """

    def itemsize(weight: _Weight) -> int:
        return (dtype or weight.params[0].dtype).itemsize

    for bucket in _buckets_of(_weights(model), bucket_bytes, itemsize):
        with _gathered(p for weight in bucket for p in weight.params), torch.no_grad():
            tensors = [(w.name, w.build().to(dtype=dtype or w.params[0].dtype, copy=True)) for w in bucket]
        yield tensors


def load_buckets(target: torch.nn.Module, buckets: Iterable[Bucket]) -> int:
    """Copy bucketed checkpoint weights into a plain transformers model, by name (casting dtype and
    device); returns how many tensors were loaded. Every parameter of `target` must be covered."""
    by_name = {checkpoint_name(name): param for name, param in target.named_parameters()}
    loaded: set[str] = set()
    with torch.no_grad():
        for bucket in buckets:
            for name, tensor in bucket:
                if name not in by_name:
                    raise KeyError(f"no parameter of the target model is stored as {name!r}")
                by_name[name].copy_(tensor)
                loaded.add(name)
    missing = sorted(set(by_name) - loaded)
    if missing:
        raise ValueError(f"{len(missing)} parameters were not in the buckets, e.g. {missing[:3]}")
    return len(loaded)
