"""Where a training process stands among its peers, and the DeepSpeed config built from a stage config.

The SFT function does not know who started it: one CPU process (`codedance train sft`), a Ray Train
worker (the training stages, codedance_core/stages/training.py), or torchrun. It reads `torch.distributed`
through `DistContext`: Ray Train initialises it for its workers, a torchrun script with
`init_process_group`; a lone process is world size 1 and every collective is a no-op.

The DeepSpeed config is derived, never written by hand: micro-batch size, clipping, ZeRO stage,
offload and precision come from the stage config (SFT or GRPO), and precision follows the device the
worker trains on (bf16 on a GPU, float32 on a CPU worker over gloo), so the YAML cannot disagree with
what the optimizer does.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.distributed as torch_dist

from codedance_core.config.train import GRPOConfig, SFTConfig, TrainerSettings


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


def autocast_dtype(config: TrainerSettings, device: torch.device) -> torch.dtype | None:
    """The autocast dtype, or None for plain float32 (CPU bf16 autocast is slow and adds nothing here)."""
    if config.dtype == "bfloat16" or (config.dtype == "auto" and device.type == "cuda"):
        return torch.bfloat16
    return None


def deepspeed_bf16(config: TrainerSettings, device: torch.device) -> bool:
    """Whether DeepSpeed keeps bf16 weights (with float32 master weights in the optimizer): on a GPU
    unless the config asks for float32; never on a CPU worker, where float32 is both faster and exact."""
    return device.type == "cuda" and config.dtype != "float32"


def deepspeed_config(
    config: SFTConfig | GRPOConfig, world_size: int, device: torch.device
) -> dict[str, Any]:
    """A DeepSpeed config for ZeRO-2/3 from the stage config; the optimizer and schedule stay ours.

    Gradient accumulation is the caller's (`managed_gradient_accumulation` off): each backward adds
    into the sharded gradients and every `step()` is an optimizer step, however many micro-batches
    an update has (GRPO's vary with their token budget)."""
    if config.deepspeed_stage == 0:
        raise ValueError("deepspeed_config needs deepspeed_stage 2 or 3")
    zero: dict[str, Any] = {
        "stage": config.deepspeed_stage,
        "overlap_comm": device.type == "cuda",
        "contiguous_gradients": True,
        "reduce_bucket_size": 5e8,
    }
    if config.deepspeed_stage == 3:
        zero.update({"stage3_prefetch_bucket_size": 5e8, "stage3_param_persistence_threshold": 1e6})
    if config.offload_optimizer:
        zero["offload_optimizer"] = {"device": "cpu", "pin_memory": device.type == "cuda"}
    micro_batch = config.batch_size if isinstance(config, SFTConfig) else config.micro_batch_size
    return {
        "train_micro_batch_size_per_gpu": micro_batch,
        "gradient_accumulation_steps": 1,
        "train_batch_size": micro_batch * world_size,
        "managed_gradient_accumulation": False,
        "gradient_clipping": config.max_grad_norm,
        "bf16": {"enabled": deepspeed_bf16(config, device)},
        "zero_optimization": zero,
        # torch's AdamW on the offloaded states: DeepSpeedCPUAdam needs compiled ops.
        "zero_force_ds_cpu_optimizer": False,
        "steps_per_print": 10**9,
        "wall_clock_breakdown": False,
    }
