"""How a trainer optimises its model, the same for SFT and GRPO: plain PyTorch, DDP, or DeepSpeed ZeRO.

`Optimization` owns the model the loop calls, the AdamW optimizer and the learning-rate schedule,
and gives both trainers one interface whatever runs underneath:

- `no_sync(last)` around a micro-batch, `backward(loss)` after it, `step()` once per update (the
  gradient norm before clipping comes back), `lr`;
- `save_model(bundle, directory)` writes a loadable model directory with the full weights;
- `save_state(directory, position)` / `load_state(directory)` write and restore everything an exact
  resume needs: the optimizer and schedule (DeepSpeed's own per-rank shards under ZeRO), the RNG
  states and the data position.

Three ways underneath, chosen by `deepspeed_stage` and the number of workers:
- one process: the model itself, torch's AdamW and LambdaLR;
- several workers, stage 0: DDP, gradients synchronised on the last micro-batch of an update;
- stage 2 or 3: a DeepSpeed engine. Stage 3 shards weights, gradients and optimizer states over the
  workers, stage 2 gradients and optimizer states; `offload_optimizer` keeps the optimizer states in
  CPU memory. On a GPU the weights are bf16 and the optimizer keeps float32 master weights; on a CPU
  worker (gloo) everything stays float32. The optimizer is still torch's AdamW (DeepSpeed's own
  Adam kernels need compiled ops), the schedule is still ours, and accumulation is ours too: each
  backward adds into the sharded gradients and each `step()` is one optimizer step, however many
  micro-batches an update had.

Under ZeRO-3 the model is sharded from the moment it is loaded (`load_sharded`): transformers
builds it under `deepspeed.zero.Init` and each rank keeps only its slice, so a 7B model is never
materialised whole on a GPU. Every forward then gathers weights from all ranks -- a collective -- so every rank must run
as many forwards (and LM-head calls) as the others; a generation engine cannot share such a model
(GRPO gives its hf engine a plain copy, `grpo.py`).

Gradients: each rank's `loss` is its share of a loss whose gradient is the SUM over ranks (the
trainers divide by the global token count). DDP and DeepSpeed both average gradients over ranks, so
`backward` multiplies by the world size, and one process, DDP and ZeRO give the same update.
Nothing here imports DeepSpeed unless a stage asks for it.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import torch
import torch.distributed as torch_dist

from codedance_core.config.train import GRPOConfig, SFTConfig
from codedance_core.train.checkpoint import DataPosition, read_trainer_state, write_trainer_state
from codedance_core.train.distributed import DistContext, deepspeed_bf16, deepspeed_config
from codedance_core.train.model_setup import save_model_dir, trainable_parameter_groups

DEEPSPEED_DIR = "deepspeed"
_DEEPSPEED_TAG = "state"

TrainConfig = SFTConfig | GRPOConfig
Bundle = TypeVar("Bundle")


def weight_dtype(config: TrainConfig, device: torch.device) -> str:
    """The dtype the model is loaded in: bf16 under DeepSpeed on a GPU, else float32 (plain PyTorch
    keeps float32 weights and runs its forward under autocast)."""
    return "bfloat16" if config.deepspeed_stage and deepspeed_bf16(config, device) else "float32"


def init_deepspeed_distributed(dist: DistContext) -> None:
    """DeepSpeed's communication on top of the process group Ray Train or torchrun set up (NCCL on
    GPUs, gloo on CPUs); a lone process gets a group of one on loopback."""
    import deepspeed

    if dist.device.type == "cuda":
        torch.cuda.set_device(dist.device)
    # DeepSpeed reads its place from the environment (zero.Init needs LOCAL_RANK), which a
    # launcher does not always set (torch.multiprocessing.spawn, a lone process).
    for key, value in {"RANK": dist.rank, "LOCAL_RANK": dist.local_rank, "WORLD_SIZE": dist.world_size}.items():
        os.environ.setdefault(key, str(value))
    if not torch_dist.is_initialized():
        os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
        os.environ.setdefault("MASTER_PORT", str(_free_port()))
    deepspeed.init_distributed(dist_backend="nccl" if dist.device.type == "cuda" else "gloo")


def load_sharded(config: TrainConfig, dist: DistContext, load: Callable[[], Bundle]) -> Bundle:
    """`load()` a model bundle; under ZeRO-3 transformers builds the model under
    `deepspeed.zero.Init` and loads only this rank's slice of every weight.

    transformers finds the DeepSpeed config through a module-level weak reference; it is dropped
    right after loading, because while it lives `generate` syncs every rank on every token
    (`synced_gpus`), which would hang GRPO's per-rank rollouts."""
    if config.deepspeed_stage != 3:
        return load()
    from transformers.integrations import HfDeepSpeedConfig
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    init_deepspeed_distributed(dist)
    hf_config = HfDeepSpeedConfig(deepspeed_config(config, dist.world_size, dist.device))
    try:
        bundle = load()
    finally:
        unset_hf_deepspeed_config()
        del hf_config
    _keep_used_weight_renamings(bundle.model)
    return bundle


def _keep_used_weight_renamings(model: Any) -> None:
    """transformers' ZeRO-3 loading path remembers every checkpoint renaming it knows, where the
    plain path keeps those that matched; `save_pretrained` reverses what is remembered, and the
    unused legacy ones then mangle the names (`model.model.layers...`). Keep the used ones."""
    conversions = getattr(model, "_weight_conversions", None)
    if conversions:
        model._weight_conversions = [conversion for conversion in conversions if conversion.was_used()]


@dataclass
class Optimization:
    """The model a training loop calls, and how it is optimised (see the module docstring)."""

    model: Any  # what the loop calls: a DeepSpeed engine, a DDP wrapper, or the model itself
    module: Any  # the model itself (a peft model under LoRA)
    optimizer: Any
    scheduler: Any
    dist: DistContext
    max_grad_norm: float
    engine: Any = None  # the DeepSpeed engine under ZeRO
    stage: int = 0

    @classmethod
    def build(
        cls, model: Any, config: TrainConfig, dist: DistContext, schedule: Callable[[int], float]
    ) -> Optimization:
        """AdamW over the trainable parameters (decay on matrices only), `schedule` as the LR
        multiplier per optimizer step, wrapped as `config.deepspeed_stage` and the world size ask."""
        optimizer = torch.optim.AdamW(
            trainable_parameter_groups(model, config.weight_decay), lr=config.learning_rate, betas=config.adam_betas
        )
        scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
        if config.deepspeed_stage:
            import deepspeed

            init_deepspeed_distributed(dist)
            engine, optimizer, _, scheduler = deepspeed.initialize(
                model=model,
                optimizer=optimizer,
                lr_scheduler=scheduler,
                config=deepspeed_config(config, dist.world_size, dist.device),
            )
            return cls(engine, model, optimizer, scheduler, dist, config.max_grad_norm, engine, config.deepspeed_stage)
        wrapped = model
        if dist.distributed:
            device_ids = [dist.device.index] if dist.device.type == "cuda" else None
            # A text-only micro-batch leaves a trainable vision merger without a gradient: DDP must
            # expect unused parameters then, or it skips averaging the merger's whole bucket.
            vision_trains = any(p.requires_grad for name, p in model.named_parameters() if "visual." in name)
            wrapped = torch.nn.parallel.DistributedDataParallel(
                model, device_ids=device_ids, find_unused_parameters=vision_trains
            )
        return cls(wrapped, model, optimizer, scheduler, dist, config.max_grad_norm)

    @property
    def shards_weights(self) -> bool:
        """ZeRO-3: no rank holds whole weights, every forward is a collective."""
        return self.engine is not None and self.stage == 3

    @property
    def lr(self) -> float:
        return float(self.scheduler.get_last_lr()[0])

    def no_sync(self, last: bool) -> Any:
        """Around a micro-batch's forward and backward: DDP skips its all-reduce except on the last
        micro-batch of an update (ZeRO reduces its gradient shards on every backward)."""
        if last or self.engine is not None or not self.dist.distributed:
            return nullcontext()
        return self.model.no_sync()

    def backward(self, loss: torch.Tensor) -> None:
        """Backward of this rank's share of a loss whose gradients sum over ranks."""
        scaled = loss * self.dist.world_size  # DDP and ZeRO average gradients over ranks
        if self.engine is not None:
            self.engine.backward(scaled, scale_wrt_gas=False)
        else:
            scaled.backward()

    def step(self) -> float:
        """One optimizer step on the accumulated gradients: clip, update, advance the schedule,
        clear; the global gradient norm before clipping."""
        if self.engine is not None:
            self.engine.step()
            return float(self.engine.get_global_grad_norm() or 0.0)
        parameters = [p for p in self.module.parameters() if p.requires_grad]
        if self.max_grad_norm > 0:
            norm = float(torch.nn.utils.clip_grad_norm_(parameters, self.max_grad_norm))
        else:
            grads = [p.grad.norm() for p in parameters if p.grad is not None]
            norm = float(torch.norm(torch.stack(grads))) if grads else 0.0
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return norm

    def full_state_dict(self) -> dict[str, torch.Tensor] | None:
        """Under ZeRO-3 the whole weights on the main rank's CPU, gathered one module at a time (a
        collective: every rank calls it); None otherwise, where the module holds them already."""
        if not self.shards_weights:
            return None
        return self.engine._zero3_consolidated_16bit_state_dict()

    def save_model(self, bundle: Any, directory: Path, merge_lora: bool = False) -> None:
        """A loadable model directory with the full weights, written by the main rank; every rank
        calls it (under ZeRO-3 the weights are gathered)."""
        state_dict = self.full_state_dict()
        if self.dist.is_main:
            save_model_dir(self.module, bundle, directory, merge_lora=merge_lora, state_dict=state_dict)

    def save_state(self, directory: Path, position: DataPosition) -> None:
        """Optimizer, schedule, RNG states and data position into a checkpoint directory; every
        rank calls it (under ZeRO each writes its own shards of weights and optimizer states)."""
        if self.engine is not None:
            target = directory / DEEPSPEED_DIR
            (target / _DEEPSPEED_TAG).mkdir(parents=True, exist_ok=True)
            self.engine.save_checkpoint(str(target), tag=_DEEPSPEED_TAG, save_latest=False)
        if self.dist.is_main:
            own = self.engine is None
            write_trainer_state(
                directory, self.optimizer if own else None, self.scheduler if own else None, position
            )

    def load_state(self, directory: Path) -> DataPosition:
        """Restore what `save_state` wrote (under ZeRO also the weights); the data position."""
        if self.engine is not None:
            loaded, _ = self.engine.load_checkpoint(str(directory / DEEPSPEED_DIR), tag=_DEEPSPEED_TAG)
            if loaded is None:
                raise FileNotFoundError(f"{directory} holds no DeepSpeed state for this run")
            return read_trainer_state(directory, None, None)
        return read_trainer_state(directory, self.optimizer, self.scheduler)


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]
