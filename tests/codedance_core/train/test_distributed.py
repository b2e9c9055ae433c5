"""The DeepSpeed config derived from a stage config, never written by hand; precision follows the device."""

from __future__ import annotations

import json

import pytest
import torch

from codedance_core.config import load_profile
from codedance_core.config.train import GRPOConfig, SFTConfig
from codedance_core.train.distributed import deepspeed_config

GPU, CPU = torch.device("cuda", 0), torch.device("cpu")


def test_the_paper_profile_gives_zero3_in_bf16_on_gpus():
    paper = load_profile("paper")
    for config in (paper.sft, paper.grpo):
        ds = deepspeed_config(config, world_size=16, device=GPU)
        assert ds["zero_optimization"]["stage"] == 3 and ds["bf16"]["enabled"] is True
        assert ds["gradient_clipping"] == config.max_grad_norm
        json.dumps(ds)  # DeepSpeed takes it as JSON
    assert deepspeed_config(paper.sft, 16, GPU)["train_micro_batch_size_per_gpu"] == paper.sft.batch_size
    assert deepspeed_config(paper.grpo, 16, GPU)["train_micro_batch_size_per_gpu"] == paper.grpo.micro_batch_size


def test_a_cpu_worker_trains_in_float32_and_float32_can_be_asked_for_on_a_gpu():
    config = SFTConfig(deepspeed_stage=3, dtype="bfloat16")
    assert deepspeed_config(config, world_size=2, device=CPU)["bf16"]["enabled"] is False
    assert deepspeed_config(config, world_size=2, device=GPU)["bf16"]["enabled"] is True
    float32 = GRPOConfig(deepspeed_stage=2, dtype="float32", prompts_per_step=2)
    assert deepspeed_config(float32, world_size=2, device=GPU)["bf16"]["enabled"] is False


def test_accumulation_is_the_trainers_and_offload_keeps_torch_adamw():
    config = SFTConfig(deepspeed_stage=2, offload_optimizer=True, batch_size=2, grad_accumulation=8)
    ds = deepspeed_config(config, world_size=4, device=GPU)
    # the trainer calls step() once per update, however many micro-batches it had
    assert ds["managed_gradient_accumulation"] is False and ds["gradient_accumulation_steps"] == 1
    assert ds["train_batch_size"] == 2 * 4
    assert ds["zero_optimization"]["offload_optimizer"]["device"] == "cpu"
    assert ds["zero_force_ds_cpu_optimizer"] is False


def test_lora_with_zero3_is_refused_when_the_config_is_read():
    with pytest.raises(ValueError, match="deepspeed_stage 2"):
        SFTConfig(deepspeed_stage=3, lora={"enabled": True})
