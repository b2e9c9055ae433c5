"""Configs of the training stages: supervised fine-tuning (`SFTConfig`) and GRPO (`GRPOConfig`).

Both share `TrainerSettings`, how a stage trains: one CPU process for the `tiny` profile, Ray Train
workers with DeepSpeed ZeRO for the `paper` profile. Those fields are plain values here, so a
paper config validates and plans its resources and memory on a CPU machine without DeepSpeed
ever being imported.

The original SFT hyperparameters were not published (docs/method.md §1); the SFT defaults
suit the tiny model, the paper profile sets its own. The GRPO defaults ARE the original's
(docs/method.md §6): a tiny model needs a far larger learning rate, which the tiny profile sets.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from codedance_core.config.agent import InheritsRollout, RolloutOverrides
from codedance_core.config.base import StrictModel

ObservationMode = Literal["reformat", "replay", "keep"]


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


class TrainerSettings(StrictModel):
    """How a training stage runs, shared by SFT and GRPO: precision, sharding, workers, memory."""

    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Compute dtype: auto is bfloat16 on CUDA and float32 on CPU. Without DeepSpeed the "
        "weights stay float32 under autocast; under DeepSpeed they are bfloat16 with float32 master "
        "weights in the optimizer.",
    )
    gradient_checkpointing: bool = Field(False, description="Recompute activations in backward (less memory).")
    freeze_vision: bool = Field(True, description="Keep the vision tower's weights fixed.")
    train_merger: bool = Field(
        True, description="Train the patch merger (vision-to-text projector) even when the tower is frozen."
    )
    lora: LoRAConfig = Field(default_factory=LoRAConfig, description="LoRA instead of full fine-tuning.")
    deepspeed_stage: Literal[0, 2, 3] = Field(
        0,
        description="DeepSpeed ZeRO stage: 3 shards weights, gradients and optimizer states over the "
        "workers, 2 gradients and optimizer states; 0 runs plain PyTorch (DDP when several workers). "
        "Runs on GPU workers (NCCL) and on CPU workers (gloo).",
    )
    offload_optimizer: bool = Field(False, description="ZeRO: keep optimizer states in CPU memory.")
    num_workers: int = Field(1, ge=1, description="Trainer workers (Ray Train; one per GPU on the paper profile).")
    gpus_per_worker: float = Field(0, ge=0, description="GPUs per worker; 0 trains on CPU.")
    cpus_per_worker: float = Field(1, gt=0, description="CPUs reserved per worker.")
    gpu_memory_gb: float = Field(
        80.0, gt=0, description="Memory of one worker's GPU in GB: the memory planner refuses a plan that exceeds it."
    )
    logprob_chunk_tokens: int = Field(
        1024,
        ge=16,
        description="Sequence positions whose vocabulary logits exist at once when log-probs or the loss "
        "are computed (memory, not math).",
    )
    image_min_pixels: int | None = Field(None, ge=1, description="Override of the model's smallest image area.")
    image_max_pixels: int | None = Field(None, ge=1, description="Override of the model's largest image area.")

    @model_validator(mode="after")
    def _lora_is_not_sharded(self) -> TrainerSettings:
        if self.deepspeed_stage == 3 and self.lora.enabled:
            raise ValueError(
                "lora.enabled with deepspeed_stage 3 is not supported: the adapters' optimizer states are "
                "small, so use deepspeed_stage 2 (or 0) with LoRA"
            )
        return self


class SFTConfig(TrainerSettings):
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
    observations: ObservationMode = Field(
        "reformat",
        description="How tool observations of rows written in another format (the released SFT set's) are "
        "shown: `reformat` maps their text onto our one formatter's; `replay` re-runs the row's code in the "
        "sandbox and formats the real result (falling back to `reformat` where the replay does not succeed "
        "as the original did); `keep` trains on the row's text as is, which then differs from what RL and "
        "evaluation show (a warning says so).",
    )


class GRPOConfig(TrainerSettings, InheritsRollout):
    """GRPO with the BAT reward on multi-turn tool rollouts; defaults are the original's 7B run.

    The tool loop is the profile's `rollout` section (whose defaults are the original's training
    rollouts: 6 turns at temperature 1.0) with this section's `rollout` overrides applied; the
    group size n is GRPO's own (`samples_per_prompt`).
    """

    learning_rate: float = Field(1e-6, gt=0, description="AdamW learning rate (the original: 1e-6).")
    weight_decay: float = Field(0.01, ge=0, description="AdamW decoupled weight decay (the original: 0.01).")
    adam_betas: tuple[float, float] = Field((0.9, 0.999), description="AdamW (beta1, beta2).")
    max_grad_norm: float = Field(1.0, ge=0, description="Gradient clipping norm; 0 disables clipping.")
    warmup_steps: int = Field(0, ge=0, description="Linear warmup steps, then a constant rate (the original: 0).")
    prompts_per_step: int = Field(256, ge=1, description="Prompts sampled per step, over all workers (the original: 256).")
    samples_per_prompt: int = Field(8, ge=2, description="Rollouts per prompt, GRPO's group size n (the original: 8).")
    rollout: RolloutOverrides = Field(
        default_factory=RolloutOverrides,
        description="RL's changes to the profile's rollout section (e.g. max_turns, temperature: the loss "
        "re-scores tokens at the sampling temperature, so it must stay above 0).",
    )
    epochs: int = Field(2, ge=1, description="Passes over the prompts (ignored when max_steps is set; the original: 2).")
    max_steps: int | None = Field(None, ge=1, description="Steps to run; None: as many as `epochs` give.")
    ppo_epochs: int = Field(1, ge=1, description="Passes over one step's trajectories (the original: 1).")
    mini_batches_per_step: int = Field(
        1, ge=1, description="Optimizer updates per pass, each on a slice of the groups (the original: 1)."
    )
    micro_batch_size: int = Field(4, ge=1, description="Trajectories per forward/backward pass (memory, not math).")
    max_tokens_per_micro_batch: int | None = Field(
        None,
        ge=64,
        description="Padded tokens per forward/backward pass: micro-batches are filled with trajectories "
        "of similar length up to this budget (at most micro_batch_size of them); None: micro_batch_size "
        "trajectories (memory, not math).",
    )
    clip_low: float = Field(0.2, ge=0, lt=1, description="PPO clip: ratio floor is 1 - clip_low.")
    clip_high: float = Field(0.2, ge=0, description="PPO clip: ratio ceiling is 1 + clip_high.")
    dual_clip: float | None = Field(
        3.0, gt=1, description="Dual-clip bound c on negative advantages (verl's clip_ratio_c); None disables."
    )
    loss_aggregation: Literal["token-mean", "seq-mean-token-mean"] = Field(
        "token-mean", description="token-mean: every model token of the mini-batch weighs the same (the original)."
    )
    old_logprobs: Literal["recompute", "rollout"] = Field(
        "recompute",
        description="Denominator of the ratio: recomputed by the trainer before the update (robust to "
        "engine numerics, as verl does) or the engine's sampling log-probs.",
    )
    kl_coef: float = Field(0.0, ge=0, description="Weight of the k3 KL to the frozen initial policy; 0: no reference model.")
    entropy_coef: float = Field(0.0, ge=0, description="Entropy bonus weight (the original: none; entropy is always logged).")
    filter_equal_reward_groups: bool = Field(
        False, description="Drop groups whose rewards are all equal (they carry no GRPO signal)."
    )
    dynamic_sampling: bool = Field(
        False,
        description="DAPO's dynamic sampling: a step draws further batches of prompts until it holds "
        "prompts_per_step groups whose rewards are not all equal, and trains on those only (the original: off).",
    )
    max_sampling_rounds: int = Field(
        3, ge=1, description="Dynamic sampling: batches of prompts_per_step prompts one step draws at most; "
        "when they are spent the step trains on the informative groups found (logged as sampling/cap_hit)."
    )
    prompt_order: Literal["shuffle", "buckets_first"] = Field(
        "shuffle",
        description="Each epoch's prompt order: a seeded shuffle, or (buckets_first) the same shuffle with the "
        "rows weak-to-strong filtering put in the medium and hard buckets first, the others (no bucket) after.",
    )
    eval_every_steps: int | None = Field(
        None, ge=1, description="Greedy held-out accuracy every K steps (heldout/* metrics); None: never."
    )
    eval_data: str | None = Field(
        None,
        description="RL rows (parquet URI: local or s3://) of the held-out evaluation; None: eval_items rows "
        "of the RL data are held out (a seeded choice) and never trained on.",
    )
    eval_items: int = Field(64, ge=1, description="Held-out items evaluated at most (the first ones of eval_data).")
    deterministic_rollout: bool = Field(
        True,
        description="Turns advance in lockstep and engine batches are ordered by content, so a seeded step "
        "samples the same trajectories however the sandbox timing falls (exact resume on CPU).",
    )
    checkpoint_every: int = Field(20, ge=1, description="Checkpoint every K steps and at the end (the original: 20).")
    keep_checkpoints: int = Field(2, ge=1, description="Most recent checkpoints kept.")
    log_every: int = Field(1, ge=1, description="Log metrics every K steps.")
    trajectories_every: int = Field(10, ge=1, description="Save sampled trajectories as JSON every K steps.")
    trajectories_per_save: int = Field(4, ge=0, description="Trajectories written per save.")
    seed: int = Field(0, description="Seed of prompt order, rollout sampling (seed + step) and every RNG.")
    rollout_gpu_share: float = Field(
        0.5, gt=0, lt=1, description="Colocated rollout: share of each worker's GPU memory the vLLM engine takes."
    )

    @model_validator(mode="after")
    def _groups_split_evenly(self) -> GRPOConfig:
        if self.prompts_per_step % self.num_workers:
            raise ValueError(
                f"prompts_per_step ({self.prompts_per_step}) must be a multiple of num_workers ({self.num_workers})"
            )
        if (self.prompts_per_step // self.num_workers) % self.mini_batches_per_step:
            raise ValueError("each worker's prompts must split evenly into mini_batches_per_step")
        return self
