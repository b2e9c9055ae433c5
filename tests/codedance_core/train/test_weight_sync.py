"""Bucketed full weights of the tiny model: complete, by checkpoint name, bounded, merged under LoRA,
and gathered whole from ZeRO-3 shards on two CPU processes."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from codedance_core.config.train import LoRAConfig
from codedance_core.models import load_model_bundle
from codedance_core.train.model_setup import add_lora
from codedance_core.train.weight_sync import checkpoint_name, load_buckets, weight_buckets
from tests.codedance_core.train.ranks import zero3_engine
from tests.conftest import free_port

# The prefixes vLLM's Qwen2.5-VL loader maps (hf_to_vllm_mapper: `model.` -> `language_model.model.`,
# `lm_head.` -> `language_model.lm_head.`) or takes as its own module name (`visual.`).
VLLM_CHECKPOINT_PREFIXES = ("model.", "visual.", "lm_head.")


def saved_names(model_dir: Path) -> set[str]:
    names: set[str] = set()
    for path in model_dir.glob("*.safetensors"):
        with safe_open(path, "pt") as handle:
            names |= set(handle.keys())
    return names


def flatten(buckets) -> dict[str, torch.Tensor]:
    weights: dict[str, torch.Tensor] = {}
    for bucket in buckets:
        for name, tensor in bucket:
            assert name not in weights, f"{name} sent twice"
            weights[name] = tensor
    return weights


def test_buckets_hold_every_parameter_once_in_bf16_within_the_bucket_size(tiny_bundle):
    model = tiny_bundle.model
    bucket_bytes = 16_384
    buckets = list(weight_buckets(model, bucket_bytes, dtype=torch.bfloat16))
    assert len(buckets) > 3
    for bucket in buckets:
        sizes = [t.numel() * t.element_size() for _, t in bucket]
        assert len(bucket) == 1 or sum(sizes) <= bucket_bytes
    weights = flatten(buckets)
    params = {checkpoint_name(name): p for name, p in model.named_parameters()}
    assert weights.keys() == params.keys()
    for name, tensor in weights.items():
        assert tensor.dtype == torch.bfloat16
        assert tensor.shape == params[name].shape
        assert torch.equal(tensor, params[name].detach().to(torch.bfloat16))
        assert tensor.data_ptr() != params[name].data_ptr()


def test_names_are_the_checkpoint_names_save_pretrained_writes(tiny_model_dir, tiny_bundle):
    names = set(flatten(weight_buckets(tiny_bundle.model, 1 << 20)))
    assert names == saved_names(tiny_model_dir)
    assert all(name.startswith(VLLM_CHECKPOINT_PREFIXES) for name in names)
    assert (
        checkpoint_name("model.language_model.layers.0.mlp.up_proj.weight")
        == "model.layers.0.mlp.up_proj.weight"
    )
    assert checkpoint_name("model.visual.blocks.0.attn.qkv.bias") == "visual.blocks.0.attn.qkv.bias"
    assert checkpoint_name("lm_head.weight") == "lm_head.weight"


def test_a_lora_model_yields_merged_weights_under_the_base_names(tiny_model_dir, tiny_bundle):
    peft_model = add_lora(copy.deepcopy(tiny_bundle.model), LoRAConfig(enabled=True, rank=4, alpha=8))
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in peft_model.named_parameters():
            if "lora_B" in name:  # peft starts B at zero, where merged == base would prove nothing
                param.copy_(torch.randn(param.shape, generator=generator) * 0.1)
    weights = flatten(weight_buckets(peft_model, 8_192))
    merged = copy.deepcopy(peft_model).merge_and_unload()
    expected = {checkpoint_name(name): p.detach() for name, p in merged.named_parameters()}
    assert weights.keys() == expected.keys() == saved_names(tiny_model_dir)
    for name, tensor in weights.items():
        torch.testing.assert_close(tensor, expected[name], rtol=1e-6, atol=1e-6)
    base = {checkpoint_name(name): p.detach() for name, p in tiny_bundle.model.named_parameters()}
    assert not torch.equal(
        weights["model.layers.0.self_attn.q_proj.weight"], base["model.layers.0.self_attn.q_proj.weight"]
    )
    assert torch.equal(weights["visual.blocks.0.attn.qkv.weight"], base["visual.blocks.0.attn.qkv.weight"])


def test_load_buckets_copies_a_model_into_another_by_name(tiny_model_dir, tiny_bundle):
    target = load_model_bundle(tiny_model_dir, device="cpu", dtype="bfloat16").model
    with torch.no_grad():
        for param in target.parameters():
            param.zero_()
    count = load_buckets(target, weight_buckets(tiny_bundle.model, 4_096))
    source = dict(tiny_bundle.model.named_parameters())
    assert count == len(source)
    for name, param in target.named_parameters():
        assert torch.equal(param, source[name].detach().to(torch.bfloat16))
    partial = list(weight_buckets(tiny_bundle.model, 4_096))[1:]
    with pytest.raises(ValueError, match="not in the buckets"):
        load_buckets(target, partial)


def _zero3_rank(rank: int, world_size: int, port: int, model_dir: str, out_dir: str) -> None:
    engine = zero3_engine(rank, world_size, port, model_dir)
    shard_sizes = [p.numel() for p in engine.module.parameters()]
    weights = flatten(weight_buckets(engine, 8_192, dtype=torch.bfloat16))
    torch.save({"weights": weights, "shard_numel": sum(shard_sizes)}, Path(out_dir) / f"rank{rank}.pt")
    torch.distributed.barrier()


def test_zero3_shards_are_gathered_into_full_tensors_on_every_rank(tiny_model_dir, tiny_bundle, tmp_path):
    world_size = 2
    torch.multiprocessing.spawn(
        _zero3_rank, args=(world_size, free_port(), str(tiny_model_dir), str(tmp_path)), nprocs=world_size
    )
    expected = {
        checkpoint_name(n): p.detach().to(torch.bfloat16) for n, p in tiny_bundle.model.named_parameters()
    }
    total = sum(p.numel() for p in tiny_bundle.model.parameters())
    for rank in range(world_size):
        result = torch.load(tmp_path / f"rank{rank}.pt")
        assert result["shard_numel"] < total  # the parameters really were partitioned
        assert result["weights"].keys() == expected.keys()
        for name, tensor in result["weights"].items():
            assert torch.equal(tensor, expected[name]), name
