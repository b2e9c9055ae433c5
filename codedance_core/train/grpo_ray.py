"""GRPO under Ray Train, and the placement of trainers and rollout engines planned from the config.

As for SFT (`ray_train.py`), nothing here trains: a `TorchTrainer` starts `num_workers` workers,
sets up `torch.distributed`, and each calls the very `train_grpo` a CPU process runs. Placement
is colocated, as in verl's hybrid engine: every trainer worker hosts its own rollout engine on
its own GPU(s) (vLLM taking `rollout_gpu_share` of the memory), rolls out its share of the
step's prompts and, after each update, loads the new weights into that engine -- a copy within
one GPU, no cross-node transfer. `plan_grpo_resources` is what a dry run prints for the paper
profile. Tested here on a local Ray with one CPU worker (slow); vLLM cannot run on this machine.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from codedance_core.config.agent import RolloutConfig
from codedance_core.config.model import EngineConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.config.train import GRPOConfig
from codedance_core.train.ray_train import fit_on_ray, loop_config_of, report_summary, torch_trainer


def plan_grpo_resources(config: GRPOConfig, engine: EngineConfig | None = None) -> dict[str, Any]:
    """Trainer workers, their rollout engines, and the batch sizes of one step."""
    engine = engine or EngineConfig(model="policy")
    trainer_gpus = config.num_workers * config.gpus_per_worker
    tensor_parallel = engine.tensor_parallel_size if engine.kind == "vllm" else 1
    if engine.kind == "vllm" and config.gpus_per_worker and tensor_parallel > config.gpus_per_worker:
        raise ValueError(
            f"a colocated vLLM engine with tensor_parallel_size={tensor_parallel} needs "
            f"gpus_per_worker >= {tensor_parallel} (has {config.gpus_per_worker})"
        )
    per_worker_prompts = config.prompts_per_step // config.num_workers
    return {
        "placement": "colocated",
        "num_workers": config.num_workers,
        "use_gpu": config.gpus_per_worker > 0,
        "resources_per_worker": {"CPU": config.cpus_per_worker, "GPU": config.gpus_per_worker},
        "trainer_gpus": trainer_gpus,
        "rollout_engine": {
            "kind": engine.kind,
            "engines": config.num_workers,
            "tensor_parallel_size": tensor_parallel,
            "gpu_memory_share": config.rollout_gpu_share if engine.kind == "vllm" else None,
            "weight_sync": "after every update, in place" if engine.kind == "vllm" else "shared model object",
        },
        "total_gpus": trainer_gpus,
        "prompts_per_step": config.prompts_per_step,
        "trajectories_per_step": config.prompts_per_step * config.samples_per_prompt,
        "prompts_per_worker": per_worker_prompts,
        "trajectories_per_worker": per_worker_prompts * config.samples_per_prompt,
        "updates_per_step": config.ppo_epochs * config.mini_batches_per_step,
    }


def judge_for(rewards: RewardConfig) -> Any:
    """The LLM judge when an endpoint is configured (config or environment), else None (rules only)."""
    from codedance_core.rewards.judge import LLMJudge, resolve_base_urls

    return LLMJudge(rewards.judge) if resolve_base_urls(rewards.judge) else None


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: `train_grpo`, then rank 0 writes its summary for the driver."""
    from codedance_core.train.distributed import DistContext
    from codedance_core.train.grpo import train_grpo

    config = GRPOConfig.model_validate(loop_config["config"])
    rewards = RewardConfig.model_validate(loop_config["rewards"])
    dist = DistContext.current(use_gpu=config.gpus_per_worker > 0)
    result = train_grpo(
        config,
        loop_config["data"],
        loop_config["model_dir"],
        loop_config["run_dir"],
        rollout=RolloutConfig.model_validate(loop_config["rollout"]),
        rewards=rewards,
        sandbox=SandboxConfig.model_validate(loop_config["sandbox"]),
        engine=EngineConfig.model_validate(loop_config["engine"]) if loop_config["engine"] else None,
        judge=judge_for(rewards),
        checkpoint_uri=loop_config["checkpoint_uri"],
        dist=dist,
        progress=dist.is_main,
    )
    summary = {
        "steps": result.steps,
        "model_dir": str(result.model_dir),
        "resumed_from": result.resumed_from,
        "last": result.history[-1] if result.history else {},
    }
    report_summary(loop_config["run_dir"], summary, dist.is_main, {"steps": result.steps})


def train_grpo_on_ray(
    config: GRPOConfig,
    data: str | Sequence[dict[str, Any]],
    model_dir: str | Path,
    run_dir: str | Path,
    checkpoint_uri: str | None = None,
    *,
    rollout: RolloutConfig | None = None,
    rewards: RewardConfig | None = None,
    sandbox: SandboxConfig | None = None,
    engine: EngineConfig | None = None,
) -> dict[str, Any]:
    """Run GRPO on the connected Ray cluster (a local one is started if none is); rank 0's summary."""
    run_dir = Path(run_dir).resolve()
    loop_config = {
        **loop_config_of(config, data, model_dir, run_dir, checkpoint_uri),
        "rollout": (rollout or RolloutConfig()).model_dump(mode="json"),
        "rewards": (rewards or RewardConfig()).model_dump(mode="json"),
        "sandbox": (sandbox or SandboxConfig()).model_dump(mode="json"),
        "engine": engine.model_dump(mode="json") if engine is not None else None,
    }
    use_gpu = plan_grpo_resources(config, engine)["use_gpu"]
    return fit_on_ray(torch_trainer(_worker_loop, loop_config, config, use_gpu, "grpo", run_dir), run_dir)
