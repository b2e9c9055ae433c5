"""Multi-turn SFT: one training function for a CPU process, Ray Train workers and DeepSpeed.

`train_sft` is the whole recipe: load the model, turn rows into examples (`sft_data`), plan
batches (`sft_batches`), run AdamW with a warmup + cosine schedule and gradient accumulation,
checkpoint every K steps and at the end, and resume from the last complete checkpoint when the
run directory already holds one. It reads its place among workers from `DistContext`, so the same
function runs alone, as every worker of a Ray Train run (the SFT stage, one worker per GPU) or
under torchrun. How the model is optimised -- plain PyTorch, DDP over several workers, or DeepSpeed
ZeRO-2/3 with `deepspeed_stage` -- is `sharded.Optimization`, which GRPO shares.

The loss is the token mean over every assistant token of an optimizer step -- across its
micro-batches and workers -- not a mean of per-batch means, so a long trajectory weighs as many
tokens as it has, whatever the batching.

Resume is exact on CPU: the batch plan is a function of (seed, epoch), the checkpoint holds the
data position, the optimizer, the scheduler and every RNG state, so a run killed and restarted
ends with the same parameters as one that never stopped (tested).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from codedance_core.config.train import SFTConfig
from codedance_core.train.checkpoint import (
    MODEL_DIR,
    CheckpointManager,
    DataPosition,
)
from codedance_core.train.distributed import DistContext, autocast_dtype
from codedance_core.train.run_start import (
    FINAL_MODEL_DIR,
    MetricsCallback,
    RunStart,
    append_metrics,
    run_settings,
)
from codedance_core.train.sft_batches import collate_examples, plan_epoch, shard_batches
from codedance_core.train.sft_data import IGNORE_INDEX, Encoder, SFTExample, load_training_examples
from codedance_core.train.sharded import Optimization
from codedance_core.train.token_logprobs import token_scores


@dataclass
class SFTResult:
    """What a run did: where its model is, how far it got, what it measured."""

    model_dir: Path
    steps: int
    resumed_from: str | None
    final_loss: float
    tokens_per_s: float
    data: dict[str, Any]
    history: list[dict[str, float]] = field(default_factory=list)


def warmup_cosine(total_steps: int, warmup_steps: int, min_ratio: float) -> Callable[[int], float]:
    """LR multiplier: linear from 1/warmup to 1, then cosine down to `min_ratio` at `total_steps`."""

    def factor(step: int) -> float:
        if step < warmup_steps:
            return (step + 1) / warmup_steps
        progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
        return min_ratio + (1 - min_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return factor


def token_loss_sum(
    model: Any,
    inputs: dict[str, torch.Tensor],
    labels: torch.Tensor,
    chunk_tokens: int,
    dist: DistContext | None = None,
) -> torch.Tensor:
    """Sum of next-token cross-entropy over labelled positions, in float32, with the LM head applied
    to `chunk_tokens` labelled positions at a time (`token_logprobs`): no logits for the whole batch."""
    targets = labels[:, 1:]
    scored = targets != IGNORE_INDEX
    return -token_scores(model, inputs, targets, scored, 1.0, chunk_tokens, dist=dist).logprobs.sum()


def total_steps_of(config: SFTConfig, batches_per_epoch: int) -> int:
    steps_per_epoch = math.ceil(batches_per_epoch / config.grad_accumulation)
    return config.max_steps if config.max_steps is not None else config.epochs * steps_per_epoch


@dataclass
class _Run:
    """Mutable state of a run shared by the helpers below."""

    config: SFTConfig
    dist: DistContext
    bundle: Any
    optimization: Optimization
    checkpoints: CheckpointManager
    run_dir: Path
    position: DataPosition
    total_steps: int


def train_sft(
    config: SFTConfig,
    data: str | Iterable[dict[str, Any]],
    model_dir: str | Path,
    run_dir: str | Path,
    checkpoint_uri: str | None = None,
    metrics_callback: MetricsCallback | None = None,
    dist: DistContext | None = None,
    progress: bool = True,
    force: bool = False,
) -> SFTResult:
    """Fine-tune the model in `model_dir` on SFT rows (a parquet URI or row dicts); resumable.

    `run_dir` (local) receives metrics.jsonl and the final model; checkpoints go to
    `checkpoint_uri` (a local folder or s3://..., default run_dir/checkpoints). Starting again with
    the same run directory resumes from its last complete checkpoint, with the settings it started
    with: others raise `SettingsMismatchError` unless `force` (see `run_start.RESUMABLE_CHANGES`).
    """
    dist = dist or DistContext.current(use_gpu=config.gpus_per_worker > 0 or None)
    torch.manual_seed(config.seed)
    start = RunStart.open(run_dir, checkpoint_uri, config.keep_checkpoints, run_settings(config), force, dist)
    try:
        # Under DeepSpeed the weights come back with the engine's own state (`Optimization.load_state`).
        bundle = start.load_bundle(config, model_dir, dist, model_in_checkpoint=not config.deepspeed_stage)
        examples, stats = load_training_examples(
            Encoder.from_bundle(bundle), data, config.max_length, start.run_dir, write=dist.is_main,
            observations=config.observations,
        )
        model, checkpoints, resume_dir = bundle.model, start.checkpoints, start.resume_dir
        run = _setup_optimization(config, dist, bundle, model, checkpoints, start.run_dir, examples)
        if resume_dir is not None:
            run.position = run.optimization.load_state(resume_dir)
    finally:
        start.close()
    history = _train_loop(run, examples, metrics_callback, progress)
    final_loss = history[-1]["loss"] if history else float("nan")
    if start.needs_checkpoint_at(run.position.step):
        _save_checkpoint(run)
    final_dir = _save_final_model(run)
    rate = _mean(row["tokens_per_s"] for row in history)
    return SFTResult(final_dir, run.position.step, start.resume_name, final_loss, rate, stats.as_dict(), history)


def _setup_optimization(
    config: SFTConfig,
    dist: DistContext,
    bundle: Any,
    model: Any,
    checkpoints: CheckpointManager,
    run_dir: Path,
    examples: list[SFTExample],
) -> _Run:
    batches = shard_batches(
        plan_epoch(
            [len(e) for e in examples],
            config.batch_size,
            config.seed,
            0,
            config.group_by_length,
            config.length_group_batches,
        ),
        dist.rank,
        dist.world_size,
    )
    total = total_steps_of(config, len(batches))
    schedule = warmup_cosine(total, round(config.warmup_ratio * total), config.min_lr_ratio)
    optimization = Optimization.build(model, config, dist, schedule)
    return _Run(config, dist, bundle, optimization, checkpoints, run_dir, DataPosition(), total)


def _train_loop(
    run: _Run, examples: list[SFTExample], callback: MetricsCallback | None, progress: bool
) -> list[dict[str, float]]:
    config, position, total = run.config, run.position, run.total_steps
    history: list[dict[str, float]] = []
    bar = tqdm(total=total, initial=position.step, desc="sft", disable=not (progress and run.dist.is_main))
    lengths = [len(example) for example in examples]
    while position.step < total:
        plan = shard_batches(
            plan_epoch(
                lengths,
                config.batch_size,
                config.seed,
                position.epoch,
                config.group_by_length,
                config.length_group_batches,
            ),
            run.dist.rank,
            run.dist.world_size,
        )
        while position.batch_in_epoch < len(plan) and position.step < total:
            window = plan[position.batch_in_epoch : position.batch_in_epoch + config.grad_accumulation]
            metrics, rank_metrics = _optimizer_step(run, [[examples[i] for i in batch] for batch in window])
            position.batch_in_epoch += len(window)
            position.step += 1
            position.tokens_seen += int(metrics["tokens"])
            bar.update(1)
            if position.step % config.log_every == 0 or position.step == total:
                history.append(_log(run, metrics, rank_metrics, callback, bar))
            if position.step % config.checkpoint_every == 0 and position.step < total:
                _save_checkpoint(run)
        if position.batch_in_epoch >= len(plan):
            position.epoch += 1
            position.batch_in_epoch = 0
    bar.close()
    return history


def _optimizer_step(run: _Run, window: list[list[SFTExample]]) -> tuple[dict[str, float], dict[str, float]]:
    """Forward/backward over the window's micro-batches, then one optimizer step; the step's
    figures over all workers, and this worker's own."""
    started = time.perf_counter()
    dist, config = run.dist, run.config
    own_label_tokens = float(sum(e.label_tokens for batch in window for e in batch))
    own_tokens = float(sum(len(e) for batch in window for e in batch))
    label_tokens = dist.sum_scalar(own_label_tokens)
    tokens = dist.sum_scalar(own_tokens)
    optimization = run.optimization
    amp = autocast_dtype(config, dist.device)
    loss_total = 0.0
    for index, batch in enumerate(window):
        inputs = collate_examples(batch, run.bundle)
        labels = inputs.pop("labels")
        last = index == len(window) - 1
        with optimization.no_sync(last), torch.autocast(dist.device.type, dtype=amp, enabled=amp is not None):
            loss_sum = token_loss_sum(optimization.model, inputs, labels, config.logprob_chunk_tokens, dist)
            # the step's loss is the token mean over every worker's labelled tokens
            optimization.backward(loss_sum / max(label_tokens, 1.0))
        loss_total += float(loss_sum.detach())
    grad_norm = optimization.step()
    seconds = time.perf_counter() - started
    own = {"loss": loss_total / max(own_label_tokens, 1.0), "tokens": own_tokens, "step_s": seconds}
    return {
        "loss": dist.sum_scalar(loss_total) / max(label_tokens, 1.0),
        "lr": optimization.lr,
        "grad_norm": grad_norm,
        "tokens": tokens,
        "label_tokens": label_tokens,
        "tokens_per_s": tokens / seconds,
        "step_s": seconds,
    }, own


def _log(
    run: _Run, metrics: dict[str, float], rank_metrics: dict[str, float], callback: MetricsCallback | None, bar: Any
) -> dict[str, float]:
    row = {"step": run.position.step, "epoch": run.position.epoch, **metrics}
    append_metrics(run.run_dir, row, callback, run.dist, rank_metrics)
    if run.dist.is_main:
        bar.set_postfix(loss=f"{metrics['loss']:.4f}", lr=f"{metrics['lr']:.2e}")
    return row


def _save_checkpoint(run: _Run) -> str:
    def write(directory: Path) -> None:
        run.optimization.save_model(run.bundle, directory / MODEL_DIR)
        run.optimization.save_state(directory, run.position)

    return run.checkpoints.save(run.position.step, write, run.dist)


def _save_final_model(run: _Run) -> Path:
    target = run.run_dir / FINAL_MODEL_DIR
    run.optimization.save_model(run.bundle, target, merge_lora=run.config.lora.merge_on_save)
    run.dist.barrier()
    return target


def _mean(values: Iterable[float]) -> float:
    values = list(values)
    return sum(values) / len(values) if values else 0.0
