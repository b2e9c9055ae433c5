"""SFT under Ray Train: `train_sft` itself, run by a `TorchTrainer` with one worker per GPU.

Nothing here trains. Ray Train starts the workers, sets up `torch.distributed` (NCCL on GPUs, gloo
on CPU) and calls `_worker_loop` on each; that calls the very `train_sft` a CPU process runs, which
reads its rank from `torch.distributed` and, with `deepspeed_stage` 2/3, hands the step to
DeepSpeed. Checkpoints go to the run's checkpoint URI (the store, `s3://` in production), not to
Ray's own storage, so a restarted job -- or a plain process -- resumes from them. The launching
pieces (`loop_config_of`, `torch_trainer`, `fit_on_ray`, `report_summary`) serve GRPO too.

The cluster is whatever `ray.init` connected to: a local Ray started on demand, or the one named
by `RAY_ADDRESS`. Tested here on a local Ray with one CPU worker; DeepSpeed on GPUs cannot run on
this machine.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from codedance_core.config.train import SFTConfig
from codedance_core.train.distributed import plan_resources

RESULT_FILE = "result.json"


def _worker_loop(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: the shared training function, then a report of its result."""
    from codedance_core.train.distributed import DistContext
    from codedance_core.train.sft import train_sft

    config = SFTConfig.model_validate(loop_config["config"])
    dist = DistContext.current(use_gpu=config.gpus_per_worker > 0)
    result = train_sft(
        config,
        loop_config["data"],
        loop_config["model_dir"],
        loop_config["run_dir"],
        checkpoint_uri=loop_config["checkpoint_uri"],
        dist=dist,
        progress=dist.is_main,
    )
    summary = {
        "steps": result.steps,
        "final_loss": result.final_loss,
        "tokens_per_s": result.tokens_per_s,
        "model_dir": str(result.model_dir),
        "resumed_from": result.resumed_from,
        "data": result.data,
    }
    report_summary(loop_config["run_dir"], summary, dist.is_main, {k: v for k, v in summary.items() if k != "data"})


def report_summary(run_dir: str, summary: dict[str, Any], is_main: bool, metrics: dict[str, Any]) -> None:
    """Rank 0 writes the run's summary for the driver; every worker reports `metrics` to Ray Train.
    (Ray Train v2 keeps reported metrics only with a checkpoint, so the driver reads the file.)"""
    import ray.train

    if is_main:
        (Path(run_dir) / RESULT_FILE).write_text(json.dumps(summary))
    ray.train.report(metrics)


def loop_config_of(
    config: Any, data: str | Iterable[dict[str, Any]], model_dir: str | Path, run_dir: Path, checkpoint_uri: str | None
) -> dict[str, Any]:
    """What every worker's loop needs, as plain JSON-able values (Ray ships it to each worker)."""
    return {
        "config": config.model_dump(mode="json"),
        "data": data if isinstance(data, str) else list(data),
        "model_dir": str(Path(model_dir).resolve()),
        "run_dir": str(run_dir),
        "checkpoint_uri": checkpoint_uri or str(run_dir / "checkpoints"),
    }


def torch_trainer(loop: Any, loop_config: dict[str, Any], config: Any, use_gpu: bool, name: str, run_dir: Path) -> Any:
    """A `TorchTrainer` of `config.num_workers` workers (NCCL on GPUs, gloo on CPU)."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    per_worker = {"CPU": config.cpus_per_worker}
    if use_gpu:
        per_worker["GPU"] = config.gpus_per_worker
    return TorchTrainer(
        loop,
        train_loop_config=loop_config,
        scaling_config=ScalingConfig(num_workers=config.num_workers, use_gpu=use_gpu, resources_per_worker=per_worker),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        run_config=RunConfig(name=name, storage_path=str(run_dir / "ray")),
    )


def fit_on_ray(trainer: Any, run_dir: Path) -> dict[str, Any]:
    """Fit on the connected Ray cluster (a local one is started if none is); rank 0's summary."""
    import ray

    if not ray.is_initialized():
        ray.init()
    result = trainer.fit()
    if result.error is not None:
        raise result.error
    return json.loads((run_dir / RESULT_FILE).read_text())


def build_trainer(
    config: SFTConfig,
    data: str | Iterable[dict[str, Any]],
    model_dir: str | Path,
    run_dir: str | Path,
    checkpoint_uri: str | None = None,
) -> Any:
    """A `TorchTrainer` for the SFT run, its workers sized from the config (see `plan_resources`)."""
    run_dir = Path(run_dir).resolve()
    loop_config = loop_config_of(config, data, model_dir, run_dir, checkpoint_uri)
    return torch_trainer(_worker_loop, loop_config, config, plan_resources(config)["use_gpu"], "sft", run_dir)


def train_sft_on_ray(
    config: SFTConfig,
    data: str | Iterable[dict[str, Any]],
    model_dir: str | Path,
    run_dir: str | Path,
    checkpoint_uri: str | None = None,
) -> dict[str, Any]:
    """Run SFT on the connected Ray cluster (a local one is started if none is); rank 0's summary."""
    return fit_on_ray(build_trainer(config, data, model_dir, run_dir, checkpoint_uri), Path(run_dir).resolve())
