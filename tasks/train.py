"""Training tasks: SFT (and RL rounds) submitted to Ray with the stage's resources."""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from prefect import task

from codedance_core.config.agent import RolloutConfig
from codedance_core.config.model import EngineConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.config.train import GRPOConfig, SFTConfig
from codedance_core.storage import ArtifactRef, ArtifactStore
from tasks.common import retry_on_infrastructure, run_on_ray, stage_cache_key
from tasks.tracking import Tracking, log_outputs, stage_run


def sft_on_worker(
    config: SFTConfig, data: ArtifactRef, model: ArtifactRef, store_root: str, out_relpath: str,
    tracking_uri: str | None, run_id: str | None,
) -> ArtifactRef:
    """Runs on a Ray worker: fetch the model, train, store the result (imports codedance_core only)."""
    from codedance_core.tracking import RunTracker
    from codedance_core.train.sft import train_sft

    store = ArtifactStore(store_root)
    model_dir = store.local_directory(model)
    tracker = RunTracker(tracking_uri, run_id) if tracking_uri and run_id else None
    callback = (lambda metrics, step: tracker.log_metrics(metrics, step)) if tracker else None
    # The run folder is keyed by the output path, so a retried task resumes from its checkpoints.
    run_dir = Path(tempfile.gettempdir()) / "codedance-runs" / out_relpath.replace("/", "_")
    result = train_sft(config, data.uri, model_dir, run_dir, checkpoint_uri=store.uri(f"{out_relpath}-checkpoints"),
                       metrics_callback=callback, progress=False)
    if tracker:
        tracker.log_metrics({"final_loss": result.final_loss, "tokens_per_s": result.tokens_per_s}, result.steps)
        tracker.log_dict(result.data, "sft_data_stats.json")
    return store.write_directory(out_relpath, result.model_dir)


@task(cache_key_fn=stage_cache_key, persist_result=True, retries=2, retry_condition_fn=retry_on_infrastructure)
def train_sft_stage(
    config: SFTConfig, data: ArtifactRef, model: ArtifactRef, store_root: str, tracking: Tracking | None = None
) -> ArtifactRef:
    """Supervised fine-tuning on trajectory rows; the trained model folder as an artifact."""
    out = f"models/sft-{data.short_digest}-{model.short_digest}-{config.digest()[:8]}"
    with stage_run(tracking, "sft", params=config.model_dump(mode="json"), inputs={"sft-data": data, "base-model": model}) as run:
        ref = run_on_ray(
            sft_on_worker, config, data, model, store_root, out,
            tracking.tracking_uri if tracking else None, run.run_id if run else None,
            name="sft", num_cpus=1, num_gpus=config.gpus_per_worker,
        )
        log_outputs(run, {"sft-model": ref})
    return ref


@dataclass
class RLSections:
    """The profile sections an RL round reads (what travels to the Ray worker)."""

    grpo: GRPOConfig
    rollout: RolloutConfig
    rewards: RewardConfig
    sandbox: SandboxConfig
    engine: EngineConfig


def grpo_on_worker(
    rl: RLSections, data: ArtifactRef, model: ArtifactRef, store_root: str, out_relpath: str,
    tracking_uri: str | None, run_id: str | None,
) -> ArtifactRef:
    """Runs on a Ray worker: one RL round from `model` on the RL rows, the result stored."""
    from codedance_core.tracking import RunTracker
    from codedance_core.train.grpo import train_grpo

    store = ArtifactStore(store_root)
    tracker = RunTracker(tracking_uri, run_id) if tracking_uri and run_id else None
    callback = (lambda metrics, step: tracker.log_metrics(metrics, step)) if tracker else None
    run_dir = Path(tempfile.gettempdir()) / "codedance-runs" / out_relpath.replace("/", "_")
    result = train_grpo(
        rl.grpo, data.uri, store.local_directory(model), run_dir,
        rollout=rl.rollout, rewards=rl.rewards, sandbox=rl.sandbox, engine=rl.engine,
        checkpoint_uri=store.uri(f"{out_relpath}-checkpoints"), metrics_callback=callback, progress=False,
    )
    if tracker:
        for sample in sorted(run_dir.glob("**/*.json"))[-3:]:
            tracker.log_artifact(sample, "trajectories")
    return store.write_directory(out_relpath, result.model_dir)


@task(cache_key_fn=stage_cache_key, persist_result=True, retries=2, retry_condition_fn=retry_on_infrastructure)
def train_rl_round(
    grpo: GRPOConfig, rollout: RolloutConfig, rewards: RewardConfig, sandbox: SandboxConfig, engine: EngineConfig,
    round_index: int, data: ArtifactRef, model: ArtifactRef, store_root: str, tracking: Tracking | None = None,
) -> ArtifactRef:
    """One RL round (GRPO + BAT) starting from `model`; the trained model folder as an artifact."""
    rl = RLSections(grpo, rollout, rewards, sandbox, engine)
    out = f"models/rl-{round_index}-{data.short_digest}-{model.short_digest}-{grpo.digest()[:8]}"
    params = {"round": round_index, "grpo": grpo.model_dump(mode="json"), "rewards": rewards.model_dump(mode="json")}
    with stage_run(tracking, f"rl-round-{round_index}", params=params, inputs={"rl-data": data, "policy": model}) as run:
        ref = run_on_ray(
            grpo_on_worker, rl, data, model, store_root, out,
            tracking.tracking_uri if tracking else None, run.run_id if run else None,
            name=f"rl-round-{round_index}", num_cpus=1, num_gpus=grpo.gpus_per_worker,
        )
        log_outputs(run, {"rl-model": ref})
    return ref
