"""GRPO with the BAT reward: roll out, score, update -- one function for a CPU process and Ray workers.

`train_grpo` is the whole RL recipe (docs/method.md §4 and §6). Each step:
1. takes the next `prompts_per_step` prompts of a seeded per-epoch order (this worker's share;
   with dynamic sampling, further batches until enough groups are informative);
2. rolls out `samples_per_prompt` trajectories per prompt with the multi-turn tool loop and the
   sandbox, sampling seeded by `seed + step` (see `grpo_rollout` for why that is reproducible);
3. scores them: accuracy + format + BAT (d(mu) from the group's mean accuracy), group-normalised
   advantages plus the turn-level correction on each assistant turn's tokens, z-normalised over
   the whole step's batch, every worker's trajectories together (`grpo_step`);
4. updates the policy with the clipped, token-mean policy-gradient loss (`grpo_loss`).

The engine generates with the current weights: the hf engine shares the trainer's model object,
except under ZeRO-3, where every forward is a collective that ranks generating different lengths
could not keep in step, so it has its own plain copy, loaded with the gathered weights after every
update; a colocated vLLM engine (GPU) is refreshed after every update. How the policy is optimised
(plain, DDP, DeepSpeed ZeRO-2/3) is `sharded.Optimization`, shared with SFT. Under several workers
(Ray Train, torchrun) each rolls out and scores its own prompts -- groups never straddle
workers -- and the token-mean loss is normalised by the global token count, as in SFT.

Which prompts a step draws -- each epoch's order (optionally the filter's medium and hard buckets
first) and DAPO's dynamic sampling, which draws again until the step holds `prompts_per_step`
groups whose rewards differ -- is `grpo_sampling`; the greedy held-out accuracy measured every
`eval_every_steps` steps is `grpo_heldout`.

Logged every step: reward parts, accuracy, tool calls, execution success, d(mu), response
length, clip fraction, entropy, KL, time split into rollout / scoring / update, the sampling's
figures (`sampling/*`: groups drawn, informative share, prompts consumed) and, at evaluation
steps (and once before the first, as step 0), `heldout/*` (metrics.jsonl and the callback); a few
trajectories as JSON every K steps (`trajectories/`). Checkpoints (model, optimizer, scheduler,
RNG states, data position: the prompts drawn so far) every K steps and at the end; running again
with the same run directory resumes from the last complete one, exactly on CPU (tested with SIGKILL).
"""

from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from codedance_core.agent.items import item_from_rl_row
from codedance_core.agent.trajectory import RolloutItem, Trajectory
from codedance_core.config.agent import RolloutSettings
from codedance_core.config.model import EngineConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.config.train import GRPOConfig
from codedance_core.rewards.judge import LLMJudge
from codedance_core.rewards.score import score_trajectories
from codedance_core.train.checkpoint import (
    MODEL_DIR,
    CheckpointManager,
    DataPosition,
)
from codedance_core.train.distributed import DistContext
from codedance_core.train.grpo_heldout import evaluate_heldout, evaluation_due, heldout_split
from codedance_core.train.grpo_metrics import batch_metrics, combine_ranks, trajectory_samples
from codedance_core.train.grpo_rollout import (
    CanonicalOrderEngine,
    RolloutRunner,
    canonical_group_order,
    engine_released,
    load_prompt_rows,
    step_rollout_config,
    sync_vllm_weights,
)
from codedance_core.train.grpo_sampling import (
    Group,
    PromptSchedule,
    sample_step,
    score_groups,
    total_steps_of,
)
from codedance_core.train.grpo_step import Policy, scored_batch, update_policy
from codedance_core.train.run_start import (
    FINAL_MODEL_DIR,
    MetricsCallback,
    RunStart,
    append_metrics,
    run_settings,
)
from codedance_core.train.sharded import Optimization, weight_dtype
from codedance_core.train.weight_sync import load_buckets, weight_buckets

TRAJECTORY_DIR = "trajectories"
_RANK_SEED_STRIDE = 1_000_003  # workers sample different streams for different prompts
_ROUND_SEED_STRIDE = 100_003  # and a step's further draws (dynamic sampling) other streams again


@dataclass
class GRPOResult:
    """What a run did: where its model is, how far it got, what it measured."""

    model_dir: Path
    steps: int
    resumed_from: str | None
    history: list[dict[str, float]] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)  # rows used, quarantined (by reason), quarantine file


def load_rows(data: str | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """RL rows from a parquet URI (local or s3://) or as given; decoded into items step by step."""
    if not isinstance(data, str):
        return list(data)
    from codedance_core.data.io import iter_batches

    return [row for batch in iter_batches(data) for row in batch.to_pylist()]


@dataclass
class _Run:
    """State of a run shared by the helpers below."""

    config: GRPOConfig
    dist: DistContext
    policy: Policy
    runner: RolloutRunner
    rollout: RolloutSettings  # RL's effective loop settings
    rewards: RewardConfig
    judge: LLMJudge | None
    rows: list[dict[str, Any]]
    checkpoints: CheckpointManager
    run_dir: Path
    position: DataPosition
    total_steps: int
    vllm_engine: Any = None
    rollout_model: Any = None  # the hf engine's own copy of the weights under ZeRO-3
    weight_sync_bytes: int = 512 << 20
    skipped_rows: int = 0
    schedule: PromptSchedule | None = None
    heldout: list[RolloutItem] = field(default_factory=list)  # this run's held-out items (all workers')


def train_grpo(
    config: GRPOConfig,
    data: str | Sequence[dict[str, Any]],
    model_dir: str | Path,
    run_dir: str | Path,
    *,
    rollout: RolloutSettings | None = None,
    rewards: RewardConfig | None = None,
    sandbox: SandboxConfig | None = None,
    engine: EngineConfig | None = None,
    judge: LLMJudge | None = None,
    checkpoint_uri: str | None = None,
    metrics_callback: MetricsCallback | None = None,
    dist: DistContext | None = None,
    progress: bool = True,
    force: bool = False,
    eval_data: str | Sequence[dict[str, Any]] | None = None,
) -> GRPOResult:
    """Train the policy in `model_dir` with GRPO + BAT on RL rows; resumable from `run_dir`'s checkpoints.

    `rollout` is the loop settings RL inherits (the profile's rollout section, or
    `profile.rollout_for("rl")`: `config.rollout` is applied either way); `rewards`, `sandbox`,
    `engine` are the profile's sections (defaults if omitted); `engine.kind` must be hf (CPU/GPU,
    shares the trainer's model, or a synced copy under ZeRO-3) or vllm (GPU, synced each step).
    A resume keeps the settings the run started with -- this config, the effective rollout and the
    rewards: others raise `SettingsMismatchError` unless `force` (see `run_start.RESUMABLE_CHANGES`).
    `eval_data` (rows or a URI) replaces `config.eval_data` as the held-out rows.
    """
    rollout = config.rollout_settings(rollout)
    if rollout.temperature <= 0:
        raise ValueError("GRPO samples its rollouts: the rollout temperature must be above 0")
    dist = dist or DistContext.current(use_gpu=config.gpus_per_worker > 0 or None)
    if config.prompts_per_step % dist.world_size:
        raise ValueError(f"prompts_per_step={config.prompts_per_step} does not split over {dist.world_size} workers")
    torch.manual_seed(config.seed)
    settings = run_settings(config, rollout=rollout, rewards=rewards or RewardConfig())
    start = RunStart.open(run_dir, checkpoint_uri, config.keep_checkpoints, settings, force, dist)
    try:
        # Under DeepSpeed the weights come back with the engine's own state (`Optimization.load_state`).
        bundle = start.load_bundle(config, model_dir, dist, model_in_checkpoint=not config.deepspeed_stage)
        model, checkpoints, resume_dir, run_dir = bundle.model, start.checkpoints, start.resume_dir, start.run_dir
        rows, data_stats = load_prompt_rows(data, run_dir, write=dist.is_main)
        rows, heldout_rows = heldout_split(config, rows, eval_data if eval_data is not None else config.eval_data)
        run = _setup(config, dist, bundle, model, model_dir, rows, rollout, rewards, sandbox, engine, judge)
        run.schedule = PromptSchedule(config, rows, dist)
        run.heldout = _items(run, heldout_rows, range(len(heldout_rows)))
    except BaseException:
        start.close()  # the local copy of a remote checkpoint
        raise
    run.checkpoints, run.run_dir = checkpoints, run_dir
    try:
        if resume_dir is not None:
            run.position = run.policy.optimization.load_state(resume_dir)
        start.close()
        if run.rollout_model is not None:
            _refresh_rollout_model(run)
        if run.vllm_engine is not None:
            sync_vllm_weights(run.vllm_engine, model)
        history = _train_loop(run, metrics_callback, progress)
        if start.needs_checkpoint_at(run.position.step):
            _save_checkpoint(run)
    finally:
        run.runner.close()
        start.close()
    final_dir = run_dir / FINAL_MODEL_DIR
    run.policy.optimization.save_model(bundle, final_dir, merge_lora=config.lora.merge_on_save)
    dist.barrier()
    return GRPOResult(final_dir, run.position.step, start.resume_name, history, data_stats)


def _setup(
    config: GRPOConfig,
    dist: DistContext,
    bundle: Any,
    model: Any,
    model_dir: str | Path,
    rows: list[dict[str, Any]],
    rollout: RolloutSettings,
    rewards: RewardConfig | None,
    sandbox: SandboxConfig | None,
    engine_config: EngineConfig | None,
    judge: LLMJudge | None,
) -> _Run:
    from codedance_core.engines.hf import HFEngine
    from codedance_core.models import load_model_bundle

    warmup = config.warmup_steps
    optimization = Optimization.build(
        model, config, dist, lambda s: min(1.0, (s + 1) / warmup) if warmup else 1.0
    )
    dtype = weight_dtype(config, dist.device)
    reference = None
    if config.kl_coef > 0:
        reference = load_model_bundle(model_dir, device=str(dist.device), dtype=dtype).model
        reference.requires_grad_(False)
    policy = Policy(optimization.model, bundle, optimization, config, dist, rollout.temperature, reference)
    kind = engine_config.kind if engine_config is not None else "hf"
    vllm_engine = rollout_model = None
    if kind == "hf":
        rollout_bundle = bundle
        if optimization.shards_weights:
            # A ZeRO-3 forward is a collective and ranks generate different lengths: the engine
            # gets a plain copy, refreshed with the gathered weights after every update.
            rollout_model = load_model_bundle(model_dir, device=str(dist.device), dtype=dtype).model
            rollout_bundle = replace(bundle, model=rollout_model.requires_grad_(False))
        engine: Any = HFEngine(rollout_bundle, max_batch_size=engine_config.max_batch_size if engine_config else 64)
    elif kind == "vllm":
        from codedance_core.engines.vllm import VLLMEngine

        local = engine_config.model_copy(  # type: ignore[union-attr]
            update={"model": str(model_dir), "gpu_memory_utilization": config.rollout_gpu_share}
        )
        engine = vllm_engine = VLLMEngine(local, seed=config.seed + dist.rank)
    else:
        raise ValueError(f"GRPO needs token-level rollouts from a local engine (hf or vllm), not {kind!r}")
    if config.deterministic_rollout:
        engine = CanonicalOrderEngine(engine)
    runner = RolloutRunner(engine, sandbox or SandboxConfig(), bundle)
    total = total_steps_of(config, len(rows))
    return _Run(
        config, dist, policy, runner, rollout, rewards or RewardConfig(), judge, rows,
        None, None, DataPosition(), total, vllm_engine, rollout_model,  # type: ignore[arg-type]  # set by the caller
        (engine_config.weight_sync_bucket_mb if engine_config else 512) << 20,
    )


def _items(run: _Run, rows: Sequence[dict[str, Any]], indices: Sequence[int]) -> list[RolloutItem]:
    from codedance_core.models.images import pixel_bounds

    min_pixels, max_pixels = pixel_bounds(run.policy.bundle.image_processor)
    items = []
    for index in indices:
        try:
            items.append(item_from_rl_row(rows[index], index, min_pixels, max_pixels))
        except (ValueError, KeyError, TypeError, OSError):  # a bad row skips its group, never the run
            run.skipped_rows += 1
    return items


def _train_loop(run: _Run, callback: MetricsCallback | None, progress: bool) -> list[dict[str, float]]:
    config, position = run.config, run.position
    history: list[dict[str, float]] = []
    bar = tqdm(total=run.total_steps, initial=position.step, desc="grpo", disable=not (progress and run.dist.is_main))
    if run.heldout and config.eval_every_steps is not None and position.step == 0:
        start = {"step": 0, "epoch": 0, **_evaluate(run)}  # where the held-out curve starts: the initial policy
        append_metrics(run.run_dir, start, callback, run.dist, start)
    while position.step < run.total_steps:
        metrics, rank_metrics, scored = _step(run)  # moves the data position past the prompts it drew
        position.step += 1
        bar.update(1)
        if position.step % config.trajectories_every == 0 and run.dist.is_main:
            _save_trajectories(run, scored)
        evaluated = bool(run.heldout) and evaluation_due(config, position.step)
        if evaluated:  # before the checkpoint, so a resumed run never evaluates this step again
            heldout = _evaluate(run)
            metrics, rank_metrics = {**metrics, **heldout}, {**rank_metrics, **heldout}
        if evaluated or position.step % config.log_every == 0 or position.step == run.total_steps:
            history.append(_log(run, metrics, rank_metrics, callback, bar))
        if position.step % config.checkpoint_every == 0 and position.step < run.total_steps:
            _save_checkpoint(run)
    bar.close()
    return history


def _step(run: _Run) -> tuple[dict[str, float], dict[str, float], Any]:
    """Roll out, score and update once: the step's figures over all workers, this worker's own, and
    the scored batch."""
    config, dist, position = run.config, run.dist, run.position
    started = time.perf_counter()
    times = dict.fromkeys(("rollout_s", "scoring_s", "engine_s", "sandbox_s"), 0.0)

    def roll(indices: list[int], round_index: int) -> list[Group]:
        began = time.perf_counter()
        trajectories, stats = _rollout(run, indices, round_index)
        rolled = time.perf_counter()
        inputs = [t.scoring_input() for t in trajectories]
        scores = run.runner.run(score_trajectories(inputs, run.rewards, run.judge))
        times["rollout_s"] += rolled - began
        times["scoring_s"] += time.perf_counter() - rolled
        times["engine_s"] += stats.engine_s
        times["sandbox_s"] += stats.sandbox_s
        return score_groups(trajectories, scores, config.samples_per_prompt, run.rewards)

    assert run.schedule is not None
    sampled = sample_step(run.schedule, position, config, dist, roll)
    scoring_started = time.perf_counter()
    # Dynamic sampling trains on informative groups only: any uninformative one (a worker's
    # filler) is filtered out of the loss.
    drop_equal = config.filter_equal_reward_groups or config.dynamic_sampling
    scored = scored_batch(
        sampled.trajectories, sampled.scores, config.samples_per_prompt, run.rewards, drop_equal, dist
    )
    scored_at = time.perf_counter()
    with engine_released(run.vllm_engine, run.policy.bundle.model):  # vLLM sleeps, wakes synced
        update = update_policy(run.policy, scored)
    if run.rollout_model is not None:
        _refresh_rollout_model(run)
    finished = time.perf_counter()
    metrics = {
        **batch_metrics(scored),
        **update,
        **sampled.metrics,
        **times,
        "scoring_s": times["scoring_s"] + scored_at - scoring_started,
        "update_s": finished - scored_at,
        "step_s": finished - started,
        "skipped_rows": float(run.skipped_rows),
    }
    return combine_ranks(metrics, dist), metrics, scored


def _rollout(run: _Run, indices: list[int], round_index: int) -> tuple[list[Trajectory], Any]:
    """The groups of `indices`, sampled with a seed of the step, this worker and the step's draw."""
    config, dist = run.config, run.dist
    items = _items(run, run.rows, indices)
    seed = config.seed + run.position.step + dist.rank * _RANK_SEED_STRIDE + round_index * _ROUND_SEED_STRIDE
    rollout_config = step_rollout_config(run.rollout, config.samples_per_prompt, seed, config.deterministic_rollout)
    run.policy.model.eval()
    trajectories, stats = run.runner.rollout(items, rollout_config)
    if config.deterministic_rollout:
        trajectories = canonical_group_order(trajectories, config.samples_per_prompt)
    return trajectories, stats


def _evaluate(run: _Run) -> dict[str, float]:
    """Greedy held-out accuracy (`grpo_heldout`), timed."""
    started = time.perf_counter()
    run.policy.model.eval()
    metrics = evaluate_heldout(
        run.runner, run.heldout, run.rollout, run.rewards, run.judge, run.config.seed,
        run.config.deterministic_rollout, run.dist,
    )
    return {**metrics, "heldout_s": time.perf_counter() - started}


def _log(
    run: _Run, metrics: dict[str, float], rank_metrics: dict[str, float], callback: MetricsCallback | None, bar: Any
) -> dict[str, float]:
    row = {"step": run.position.step, "epoch": run.position.epoch, **metrics}
    append_metrics(run.run_dir, row, callback, run.dist, rank_metrics)
    if run.dist.is_main:
        bar.set_postfix(reward=f"{metrics['reward_mean']:.3f}", acc=f"{metrics['accuracy']:.2f}")
    return row


def _save_trajectories(run: _Run, scored: Any) -> Path:
    directory = run.run_dir / TRAJECTORY_DIR
    directory.mkdir(exist_ok=True)
    path = directory / f"step-{run.position.step:08d}.json"
    path.write_text(json.dumps(trajectory_samples(scored, run.config.trajectories_per_save), indent=1))
    return path


def _refresh_rollout_model(run: _Run) -> None:
    """The trainer's current weights into the hf engine's own copy: ZeRO-3 shards gathered a bucket
    at a time (a collective: every rank runs this, after every update)."""
    load_buckets(run.rollout_model, weight_buckets(run.policy.bundle.model, run.weight_sync_bytes))


def _save_checkpoint(run: _Run) -> str:
    def write(directory: Path) -> None:
        run.policy.optimization.save_model(run.policy.bundle, directory / MODEL_DIR)
        run.policy.optimization.save_state(directory, run.position)

    return run.checkpoints.save(run.position.step, write, run.dist)
