"""The training stages: SFT (the cold start) and one RL round (GRPO + BAT).

Each is planned from its config (`sft_plan`, `rl_plan`): a Ray Train run of `num_workers` workers
when it has more than one or any GPU, else one Ray task. Every worker runs the same entry point,
which calls the very trainer a CPU process runs (`train_sft`, `train_grpo`); those read their rank
from `torch.distributed`, which Ray Train sets up. Checkpoints go to the artifact store beside the
output (`<out>-checkpoints`), so a retried stage resumes wherever it lands; rank 0 stores the final
model and the run's per-step metrics; every rank logs its own figures to the stage's MLflow run.
"""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codedance_core.config.agent import RolloutSettings
from codedance_core.config.model import EngineConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.config.train import GRPOConfig, SFTConfig
from codedance_core.stages.context import RunAddress, StageContext, log_outputs
from codedance_core.stages.keys import stage
from codedance_core.stages.launch import LaunchPlan
from codedance_core.stages.results import TrainedModel
from codedance_core.storage import ArtifactRef, ArtifactStore, ref_uri
from codedance_core.train.memory_plan import MemoryPlan, grpo_memory, sft_memory
from codedance_core.train.model_shape import ModelShape, model_shape

METRICS_SUFFIX = "-metrics.jsonl"
QUARANTINE_SUFFIX = "-quarantine.parquet"
TRAINING_LOCK_WAIT_S = 30.0  # a retried worker may start while the failed attempt is still exiting


# -- plans ---------------------------------------------------------------------------------------
def sft_plan(config: SFTConfig) -> LaunchPlan:
    return LaunchPlan.for_training(
        "sft", "codedance_core.stages.training:sft_worker", config.num_workers, config.cpus_per_worker,
        config.gpus_per_worker,
        details={
            "global batch": config.batch_size * config.grad_accumulation * config.num_workers,
            "deepspeed stage": config.deepspeed_stage,
        },
    )


def rl_plan(config: GRPOConfig, engine: EngineConfig) -> LaunchPlan:
    """Trainer workers, each hosting its own rollout engine (colocated, as verl's hybrid engine):
    a vLLM engine takes `rollout_gpu_share` of its worker's GPU and gets the new weights in place
    after every update; the hf engine shares the trainer's model object."""
    tensor_parallel = engine.tensor_parallel_size if engine.kind == "vllm" else 1
    if engine.kind == "vllm" and config.gpus_per_worker and tensor_parallel > config.gpus_per_worker:
        raise ValueError(
            f"a colocated vLLM engine with tensor_parallel_size={tensor_parallel} needs "
            f"gpus_per_worker >= {tensor_parallel} (has {config.gpus_per_worker})"
        )
    per_worker = config.prompts_per_step // config.num_workers
    return LaunchPlan.for_training(
        "rl", "codedance_core.stages.training:rl_worker", config.num_workers, config.cpus_per_worker,
        config.gpus_per_worker, engine=engine.kind,
        details={
            "rollout": "colocated, one engine per worker"
            + (f" ({config.rollout_gpu_share:.0%} of its GPU, weights synced after every update)"
               if engine.kind == "vllm" else " (shares the trainer's model)"),
            "trajectories per step": config.prompts_per_step * config.samples_per_prompt,
            "prompts per worker": per_worker,
            "updates per step": config.ppo_epochs * config.mini_batches_per_step,
            "deepspeed stage": config.deepspeed_stage,
        },
    )


# -- stages --------------------------------------------------------------------------------------
@stage("sft")
def train_sft(
    config: SFTConfig, data: ArtifactRef, model: ArtifactRef, ctx: StageContext, force: bool = False
) -> TrainedModel:
    """Supervised fine-tuning on trajectory rows (loss on assistant tokens only). Its checkpoints'
    folder is named by the whole config, so they hold its settings; `force` is the trainer's
    (train/run_start.py), kept for symmetry with `train_rl`."""
    refuse_what_cannot_fit(config.gpus_per_worker, lambda shape: sft_memory(config, shape), model, ctx)
    out = f"models/sft-{data.short_digest}-{model.short_digest}-{config.digest()[:8]}"
    params = config.model_dump(mode="json")
    with ctx.stage_run("sft", params=params, inputs={"sft-data": data, "base-model": model}) as run:
        call = TrainingCall(config, data, model, ctx.store_root, out, RunAddress.of(ctx, run), force=force)
        trained: TrainedModel = ctx.launch(sft_plan(config), call)
        log_outputs(run, {"sft-model": trained.model, "sft-metrics": trained.metrics})
    return trained


@stage("rl")
def train_rl(
    grpo: GRPOConfig, rollout: RolloutSettings, rewards: RewardConfig, sandbox: SandboxConfig, engine: EngineConfig,
    round_index: int, data: ArtifactRef, model: ArtifactRef, heldout: ArtifactRef | None, ctx: StageContext,
    force: bool = False,
) -> TrainedModel:
    """One RL round (GRPO + BAT) starting from `model` on the RL rows. Its output and checkpoints
    are named by everything that shapes what it learns (the grpo, rollout and reward sections), so
    two arms differing only in their reward (BAT or not) never share checkpoints; the sandbox and
    engine sections are how it runs, and a rerun with other such settings resumes.

    `heldout`: rows the policy is evaluated on every `grpo.eval_every_steps` steps (e.g. the test
    split); None: `grpo.eval_data`, or else `grpo.eval_items` RL rows held out of training."""
    refuse_what_cannot_fit(grpo.gpus_per_worker,
                           lambda shape: grpo_memory(grpo, engine, shape, rollout.max_context_tokens), model, ctx)
    heldout = heldout if grpo.eval_every_steps is not None else None
    evaluated_on = heldout.digest if heldout is not None else ""
    learning = hashlib.sha256(f"{grpo.digest()}:{rollout.digest()}:{rewards.digest()}:{evaluated_on}".encode()).hexdigest()
    out = f"models/rl-{round_index}-{data.short_digest}-{model.short_digest}-{learning[:8]}"
    params = {"round": round_index, "grpo": grpo.model_dump(mode="json"), "rollout": rollout.model_dump(mode="json"),
              "rewards": rewards.model_dump(mode="json")}
    name = f"rl-round-{round_index}"
    inputs = {"rl-data": data, "policy": model, **({"heldout": heldout} if heldout is not None else {})}
    with ctx.stage_run(name, params=params, inputs=inputs) as run:
        call = TrainingCall(grpo, data, model, ctx.store_root, out, RunAddress.of(ctx, run),
                            rl=RLSections(rollout, rewards, sandbox, engine), force=force, heldout=heldout)
        trained: TrainedModel = ctx.launch(rl_plan(grpo, engine), call)
        log_outputs(run, {"rl-model": trained.model, "rl-metrics": trained.metrics})
    return trained


def refuse_what_cannot_fit(gpus_per_worker: float, plan_of: Callable[[ModelShape | None], MemoryPlan],
                           model: ArtifactRef, ctx: StageContext) -> None:
    """Before a GPU stage starts anything: one GPU's memory plan in the log, and `MemoryPlanError`
    naming what to change when it exceeds gpu_memory_gb (train/memory_plan.py). The shape comes from
    the model's config.json in the store; CPU stages have nothing to plan."""
    if gpus_per_worker == 0:
        return
    plan = plan_of(model_shape(model.uri))
    ctx.log(f"{plan.section} memory: {plan.summary()}")
    plan.check()


# -- what runs on the workers --------------------------------------------------------------------
@dataclass(frozen=True)
class RLSections:
    """The profile sections an RL round reads besides its own."""

    rollout: RolloutSettings
    rewards: RewardConfig
    sandbox: SandboxConfig
    engine: EngineConfig


@dataclass(frozen=True)
class TrainingCall:
    """What every training worker needs: plain values Ray ships to each rank."""

    config: Any  # SFTConfig or GRPOConfig
    data: ArtifactRef
    model: ArtifactRef
    store_root: str
    out: str
    run: RunAddress | None
    rl: RLSections | None = None
    force: bool = False  # resume checkpoints written with other settings
    heldout: ArtifactRef | None = None  # RL only: the held-out rows evaluated during training


def sft_worker(call: TrainingCall) -> TrainedModel | None:
    """One SFT worker (every rank runs it); rank 0 returns the stored model."""
    from codedance_core.train.distributed import DistContext
    from codedance_core.train.sft import train_sft as run_sft

    dist = DistContext.current(use_gpu=call.config.gpus_per_worker > 0)
    store, run_dir = ArtifactStore(call.store_root), local_run_dir(call.store_root, call.out)
    with training_lock(store, call.out, dist.is_main):
        result = run_sft(
            call.config, ref_uri(call.data), store.local_directory(call.model), run_dir,
            checkpoint_uri=store.uri(f"{call.out}-checkpoints"), metrics_callback=metrics_logger(call.run),
            dist=dist, progress=False, force=call.force,
        )
    if not dist.is_main:
        return None
    if call.run is not None:
        tracker = call.run.tracker()
        tracker.log_metrics({"final_loss": result.final_loss, "tokens_per_s": result.tokens_per_s}, result.steps)
        tracker.log_dict(result.data, "sft_data_stats.json")
        log_quarantine(tracker, result.data)
    return store_trained(store, call.out, result, run_dir)


def rl_worker(call: TrainingCall) -> TrainedModel | None:
    """One GRPO worker (every rank rolls out its share of prompts); rank 0 returns the stored model."""
    from codedance_core.rewards.judge import judge_if_configured
    from codedance_core.train.distributed import DistContext
    from codedance_core.train.grpo import train_grpo

    assert call.rl is not None
    sections = call.rl
    dist = DistContext.current(use_gpu=call.config.gpus_per_worker > 0)
    store, run_dir = ArtifactStore(call.store_root), local_run_dir(call.store_root, call.out)
    with training_lock(store, call.out, dist.is_main):
        result = train_grpo(
            call.config, ref_uri(call.data), store.local_directory(call.model), run_dir,
            rollout=sections.rollout, rewards=sections.rewards, sandbox=sections.sandbox, engine=sections.engine,
            judge=judge_if_configured(sections.rewards.judge), checkpoint_uri=store.uri(f"{call.out}-checkpoints"),
            metrics_callback=metrics_logger(call.run), dist=dist, progress=False, force=call.force,
            eval_data=ref_uri(call.heldout) if call.heldout is not None else None,
        )
    if not dist.is_main:
        return None
    if call.run is not None:
        tracker = call.run.tracker()
        for sample in sorted(run_dir.glob("trajectories/*.json"))[-3:]:
            tracker.log_artifact(sample, "trajectories")
        log_quarantine(tracker, result.data)
    return store_trained(store, call.out, result, run_dir)


def training_lock(store: ArtifactStore, out: str, main: bool) -> AbstractContextManager[Any]:
    """The main worker's hold on a run's outputs (its checkpoints in the store, and with them the
    local run folder named after them): a second identical call waits, then is refused naming the first."""
    if not main:
        return nullcontext()
    from codedance_core.storage.locks import exclusive

    return exclusive(store.uri(f"{out}-checkpoints"), wait_s=TRAINING_LOCK_WAIT_S)


def log_quarantine(tracker: Any, data: dict[str, Any]) -> None:
    """The run's quarantined rows: counted (`quarantined_rows`) and the file attached, when there is one."""
    tracker.log_metrics({"quarantined_rows": float(data.get("quarantined_rows", 0))})
    if data.get("quarantine_file"):
        tracker.log_artifact(data["quarantine_file"], "quarantine")


def local_run_dir(store_root: str, out: str) -> Path:
    """The worker's scratch folder for a run, named by its store and output so a retry on the same
    node finds it and a run into another store never does (its checkpoints live in the store)."""
    store = hashlib.sha256(store_root.encode()).hexdigest()[:8]
    return Path(tempfile.gettempdir()) / "codedance-runs" / f"{store}-{out.replace('/', '_')}"


def metrics_logger(run: RunAddress | None) -> Any:
    """The per-step metrics callback of a worker: every rank logs into the stage's run."""
    if run is None:
        return None
    tracker = run.tracker()
    return lambda metrics, step: tracker.log_metrics(metrics, step)


def store_trained(store: ArtifactStore, out: str, result: Any, run_dir: Path) -> TrainedModel:
    """A trainer's result (SFTResult, GRPOResult) stored: the final model and the run's metrics.jsonl."""
    from codedance_core.train.run_start import METRICS_FILE

    metrics_file = run_dir / METRICS_FILE
    metrics = store.write_bytes(f"{out}{METRICS_SUFFIX}", metrics_file.read_bytes()) if metrics_file.exists() else None
    data = getattr(result, "data", None) or {}
    bad_rows = Path(data["quarantine_file"]) if data.get("quarantine_file") else None
    quarantine = store.write_bytes(f"{out}{QUARANTINE_SUFFIX}", bad_rows.read_bytes()) if bad_rows else None
    return TrainedModel(model=store.write_directory(out, result.model_dir), metrics=metrics, steps=result.steps,
                        resumed_from=result.resumed_from, quarantine=quarantine,
                        quarantined_rows=int(data.get("quarantined_rows", 0)))
