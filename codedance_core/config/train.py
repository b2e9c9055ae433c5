"""Configs of the training stages: supervised fine-tuning now, room for the RL config beside it.

One `SFTConfig` drives both ways of running SFT: one CPU process for the `tiny` profile and Ray
Train workers with DeepSpeed for the `paper` profile. The fields that only matter on GPUs
(`deepspeed_stage`, `num_workers`, `gpus_per_worker`) are plain values here, so a paper config
validates and plans its resources on a CPU machine without DeepSpeed ever being imported.

The original SFT hyperparameters were not published (method.md section 3); the defaults below
suit the tiny model, the paper profile sets its own.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from codedance_core.config.base import StrictModel


class LoRAConfig(StrictModel):
    """Low-rank adapters on the language model's projections (peft)."""

    enabled: bool = Field(False, description="Train LoRA adapters instead of every weight.")
    rank: int = Field(16, ge=1, description="Rank r of the adapters.")
    alpha: int = Field(32, ge=1, description="Scaling numerator: adapters are scaled by alpha / rank.")
    dropout: float = Field(0.05, ge=0.0, lt=1.0, description="Dropout on the adapters' input.")
    target_modules: list[str] = Field(
        default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        description="Projection names inside the LANGUAGE model that get adapters (the vision tower never does).",
    )
    merge_on_save: bool = Field(
        True, description="Write the final model with adapters merged, so later stages load a plain model."
    )


class SFTConfig(StrictModel):
    """Multi-turn supervised fine-tuning on trajectory rows (loss on assistant tokens only)."""

    learning_rate: float = Field(1e-3, gt=0, description="Peak AdamW learning rate.")
    weight_decay: float = Field(0.0, ge=0, description="AdamW decoupled weight decay.")
    adam_betas: tuple[float, float] = Field((0.9, 0.95), description="AdamW (beta1, beta2).")
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping norm; 0 disables clipping.")
    warmup_ratio: float = Field(
        0.05, ge=0, lt=1, description="Fraction of the optimizer steps with a linear warmup from 0."
    )
    min_lr_ratio: float = Field(
        0.0, ge=0, le=1, description="Floor of the cosine decay, as a fraction of the peak."
    )
    epochs: int = Field(1, ge=1, description="Passes over the data (ignored when max_steps is set).")
    max_steps: int | None = Field(
        None, ge=1, description="Optimizer steps to run; None: as many as `epochs` give."
    )
    batch_size: int = Field(4, ge=1, description="Sequences per micro-batch on each worker.")
    grad_accumulation: int = Field(1, ge=1, description="Micro-batches per optimizer step.")
    max_length: int = Field(2048, ge=16, description="Longest sequence in tokens; longer ones are truncated.")
    group_by_length: bool = Field(
        True, description="Batch sequences of similar length together (less padding) in a seeded order."
    )
    length_group_batches: int = Field(
        16, ge=1, description="How many batches' worth of rows are sorted by length together before batching."
    )
    checkpoint_every: int = Field(
        50, ge=1, description="Write a checkpoint every K optimizer steps (and at the end)."
    )
    keep_checkpoints: int = Field(
        2, ge=1, description="Most recent checkpoints kept; older ones are deleted."
    )
    log_every: int = Field(1, ge=1, description="Log loss, lr and tokens/s every K optimizer steps.")
    seed: int = Field(0, description="Seed of data order and of every RNG (python, numpy, torch).")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Autocast dtype: auto is bfloat16 on CUDA and float32 on CPU; weights stay float32.",
    )
    gradient_checkpointing: bool = Field(
        False, description="Recompute activations in backward (less memory)."
    )
    freeze_vision: bool = Field(True, description="Keep the vision tower's weights fixed.")
    train_merger: bool = Field(
        True, description="Train the patch merger (vision-to-text projector) even when the tower is frozen."
    )
    lora: LoRAConfig = Field(default_factory=LoRAConfig, description="LoRA instead of full fine-tuning.")
    deepspeed_stage: Literal[0, 2, 3] = Field(
        0, description="DeepSpeed ZeRO stage on GPU workers; 0 runs plain PyTorch (DDP when several workers)."
    )
    offload_optimizer: bool = Field(False, description="ZeRO: keep optimizer states in CPU memory.")
    num_workers: int = Field(1, ge=1, description="Ray Train workers (one per GPU on the paper profile).")
    gpus_per_worker: float = Field(0, ge=0, description="GPUs per Ray worker; 0 trains on CPU.")
    cpus_per_worker: float = Field(1, gt=0, description="CPUs reserved per Ray worker.")
    image_min_pixels: int | None = Field(
        None, ge=1, description="Override of the model's smallest image area."
    )
    image_max_pixels: int | None = Field(
        None, ge=1, description="Override of the model's largest image area."
    )

    @model_validator(mode="after")
    def _deepspeed_needs_gpus(self) -> SFTConfig:
        if self.deepspeed_stage and self.gpus_per_worker <= 0:
            raise ValueError(
                "deepspeed_stage > 0 needs gpus_per_worker > 0 (DeepSpeed ZeRO runs on GPU workers)"
            )
        return self
