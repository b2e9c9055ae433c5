"""Where a training process stands among its peers, and the DeepSpeed config built from a stage config.

The SFT function does not know who started it: one CPU process (`codedance train sft`), a Ray Train
worker (the training stages, codedance_core/stages/training.py), or torchrun. It reads `torch.distributed`, which Ray Train and torchrun both
initialise, through `DistContext`; a lone process is world size 1 and every collective is a no-op.

The DeepSpeed config is derived, never written by hand: batch sizes, accumulation, clipping and
precision come from `SFTConfig`, so the YAML cannot disagree with what the optimizer does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as torch_dist

from codedance_core.config.train import SFTConfig


@dataclass(frozen=True)
class DistContext:
    """Rank and world size of this process and the device it trains on."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    @classmethod
    def current(cls, use_gpu: bool | None = None) -> DistContext:
        """From `torch.distributed` when initialised (Ray Train, torchrun), else a single process."""
        gpu = torch.cuda.is_available() if use_gpu is None else use_gpu
        if not (torch_dist.is_available() and torch_dist.is_initialized()):
            return cls(device=torch.device("cuda", 0) if gpu else torch.device("cpu"))
        rank, world = torch_dist.get_rank(), torch_dist.get_world_size()
        local_rank = int(os.environ.get("LOCAL_RANK", rank % max(torch.cuda.device_count(), 1)))
        device = torch.device("cuda", local_rank) if gpu else torch.device("cpu")
        return cls(rank=rank, world_size=world, local_rank=local_rank, device=device)

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1

    def barrier(self) -> None:
        if self.distributed:
            torch_dist.barrier()

    def gather_objects(self, value: Any) -> list[Any]:
        """Every rank's `value`, in rank order, on every rank."""
        if not self.distributed:
            return [value]
        gathered: list[Any] = [None] * self.world_size
        torch_dist.all_gather_object(gathered, value)
        return gathered

    def sum_scalar(self, value: float) -> float:
        """The sum of a number over ranks (token counts for the loss normalisation and throughput)."""
        if not self.distributed:
            return value
        tensor = torch.tensor([value], dtype=torch.float64, device=self.device)
        torch_dist.all_reduce(tensor)
        return float(tensor.item())


def autocast_dtype(config: SFTConfig, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain float32 (CPU bf16 autocast is slow and adds nothing here)."""
    if config.dtype == "bfloat16" or (config.dtype == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def deepspeed_config(config: SFTConfig, world_size: int) -> dict[str, Any]:
    """A DeepSpeed config for ZeRO-2/3 from the stage config (bf16 on, the optimizer stays ours)."""
    if config.deepspeed_stage == 0:
        raise ValueError("deepspeed_config needs deepspeed_stage 2 or 3")
    zero: dict[str, Any] = {
        "stage": config.deepspeed_stage,
        "overlap_comm": True,
        "contiguous_gradients": True,
        "reduce_bucket_size": 5e8,
    }
    if config.deepspeed_stage == 3:
        zero.update(
            {
                "stage3_prefetch_bucket_size": 5e8,
                "stage3_param_persistence_threshold": 1e6,
                # save_pretrained needs whole weights: gather them on save.
                "stage3_gather_16bit_weights_on_model_save": True,
            }
        )
    if config.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": True}
    return {
        "train_micro_batch_size_per_gpu": config.batch_size,
        "gradient_accumulation_steps": config.grad_accumulation,
        "train_batch_size": config.batch_size * config.grad_accumulation * world_size,
        "gradient_clipping": config.max_grad_norm,
        "bf16": {"enabled": autocast_dtype(config, torch.device("cuda")) is torch.bfloat16},
        "zero_optimization": zero,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
