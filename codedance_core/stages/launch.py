"""How a stage's work runs: planned from its config, the same whoever calls the stage.

A stage plans its launch (`LaunchPlan`) from the resources its config names, then `launch` runs the
stage's worker entry point (a function of this package, so a worker imports `codedance_core` and
nothing of the orchestrator):

- `ray-train`: a Ray Train `TorchTrainer` of `num_workers` workers (NCCL on GPUs, gloo on CPU), each
  calling the entry point, which finds its rank through `torch.distributed`. Chosen for a training
  stage that plans more than one worker or any GPU.
- `ray-task`: one Ray task with the stage's CPUs and GPUs (evaluation, filtering, synthesis, ...).
- `in-process`: bookkeeping that only talks to the tracking server (registering a model).

Where the Ray work goes follows `RAY_ADDRESS` as Ray documents it (ray_address.py): unset, a local
Ray started on demand; `ray://host:10001` or a GCS address, this process drives the cluster; a
dashboard address `http://host:8265`, the stage is submitted as a Ray job through the Jobs API
(ray_jobs.py) whose driver, on the cluster, runs the same plan. Results come back through the
artifact store: the return value of a Ray Train run's rank 0, or of a job's driver, is written to
`calls/<stage>-<key>/result.pkl`, so the caller reads it wherever the work ran.
"""

from __future__ import annotations

import importlib
import os
import pickle
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from codedance_core.config.base import StrictModel
from codedance_core.stages.context import CallId
from codedance_core.stages.faults import is_infrastructure_fault
from codedance_core.stages.ray_address import RayAddress, connect, ray_address_from_env
from codedance_core.storage import ArtifactStore

LaunchKind = Literal["in-process", "ray-task", "ray-train"]
RESULT_FILE = "result.pkl"
CALL_FILE = "call.pkl"


class LaunchPlan(StrictModel):
    """What a stage will launch: workers, resources, engine and the entry point they run."""

    stage: str = Field(description="Stage name, as in runs and job ids.")
    entry_point: str = Field(description="module:function every worker runs (imports codedance_core only).")
    kind: LaunchKind = Field(description="ray-train, ray-task or in-process.")
    num_workers: int = Field(1, ge=1, description="Workers (Ray Train ranks); 1 for a task.")
    cpus_per_worker: float = Field(1.0, ge=0)
    gpus_per_worker: float = Field(0.0, ge=0)
    engine: str | None = Field(None, description="Generation engine the workers run (hf, vllm, openai), if any.")
    details: dict[str, Any] = Field(default_factory=dict, description="Stage-specific figures a dry run shows.")

    @classmethod
    def for_training(
        cls, stage: str, entry_point: str, num_workers: int, cpus_per_worker: float, gpus_per_worker: float,
        engine: str | None = None, details: dict[str, Any] | None = None,
    ) -> LaunchPlan:
        """Ray Train when the stage plans more than one worker or any GPU, else one Ray task."""
        kind: LaunchKind = "ray-train" if num_workers > 1 or gpus_per_worker > 0 else "ray-task"
        return cls(stage=stage, entry_point=entry_point, kind=kind, num_workers=num_workers,
                   cpus_per_worker=cpus_per_worker, gpus_per_worker=gpus_per_worker, engine=engine,
                   details=details or {})

    @classmethod
    def for_task(
        cls, stage: str, entry_point: str, cpus: float = 1.0, gpus: float = 0.0, engine: str | None = None,
        details: dict[str, Any] | None = None,
    ) -> LaunchPlan:
        return cls(stage=stage, entry_point=entry_point, kind="ray-task", cpus_per_worker=cpus,
                   gpus_per_worker=gpus, engine=engine, details=details or {})

    @property
    def total_gpus(self) -> float:
        return self.num_workers * self.gpus_per_worker

    @property
    def total_cpus(self) -> float:
        return self.num_workers * self.cpus_per_worker

    def describe(self, address: RayAddress) -> dict[str, Any]:
        """One row of a dry run: what would be launched, where, with what."""
        return {
            "stage": self.stage,
            "launch": self.kind,
            "submitted as": submission_of(self, address),
            "workers": self.num_workers,
            "gpus": self.total_gpus,
            "cpus": self.total_cpus,
            "engine": self.engine or "-",
            "entry point": self.entry_point,
            **self.details,
        }


def submission_of(plan: LaunchPlan, address: RayAddress) -> str:
    """How the plan reaches Ray at this address, in words."""
    if plan.kind == "in-process":
        return "in the calling process"
    where = {
        "local": "a local Ray started on demand",
        "client": f"the Ray cluster at {address.value} (Ray client)",
        "cluster": f"the Ray cluster at {address.value}",
        "dashboard": f"a Ray job at {address.value} (Jobs API)",
    }[address.kind]
    return where


def resolve_entry(entry_point: str) -> Callable[[Any], Any]:
    module, _, name = entry_point.partition(":")
    return getattr(importlib.import_module(module), name)


def run_entry(entry_point: str, call: Any) -> Any:
    """What a Ray task runs: the stage's entry point on its call (a function of this module, so Ray
    ships it by reference and the worker imports codedance_core only)."""
    return resolve_entry(entry_point)(call)


def launch(plan: LaunchPlan, call: Any, store: ArtifactStore, call_id: CallId, log: Callable[[str], None]) -> Any:
    """Run `plan` on `call` wherever RAY_ADDRESS points; the entry point's return value."""
    if plan.kind == "in-process":
        return run_entry(plan.entry_point, call)
    address = ray_address_from_env()
    if address.kind == "dashboard":
        from codedance_core.stages.job_entry import run_as_job

        return run_as_job(plan, call, store, call_id, address, log)
    if address.kind == "local":
        connect(address, num_cpus=_local_cpus(plan))
        _check_local_cpus(plan)
    else:  # a remote cluster runs this checkout's code, shipped with the connection
        from codedance_core.stages.ray_jobs import code_runtime_env

        connect(address, runtime_env=code_runtime_env(call_id.code))
    return run_on_cluster(plan, call, store, call_id)


def _local_cpus(plan: LaunchPlan) -> int:
    """A local Ray gets at least the CPUs the plan asks for: Ray's CPUs are scheduling slots, and stages
    run one at a time, so a 2-worker run on a 2-core laptop must not wait forever for a third slot."""
    return max(os.cpu_count() or 1, int(plan.total_cpus + 0.999))


def _check_local_cpus(plan: LaunchPlan) -> None:
    """A local Ray started earlier in this process with fewer CPUs would wait forever: say so."""
    import ray

    have = ray.cluster_resources().get("CPU", 0.0)
    if have < plan.total_cpus:
        raise ValueError(
            f"{plan.stage} asks for {plan.total_cpus:g} CPUs ({plan.num_workers} workers x {plan.cpus_per_worker:g}) "
            f"and the local Ray of this process has {have:g}: lower the stage's cpus_per_worker, or run it in a "
            "new process (a local Ray is sized by the first stage that starts it)"
        )


def run_on_cluster(plan: LaunchPlan, call: Any, store: ArtifactStore, call_id: CallId) -> Any:
    """Run the plan on the Ray cluster this process is connected to."""
    if plan.kind == "ray-train":
        return _fit(plan, call, store, call_id)
    return _run_task(plan, call)


def _run_task(plan: LaunchPlan, call: Any) -> Any:
    """One Ray task; if the wait is interrupted (the flow run was cancelled, a timeout) the task is
    cancelled too, so no work is left running. Ray does not retry it: the stage's task does, and
    only for infrastructure faults."""
    import ray

    options: dict[str, Any] = {
        "num_cpus": plan.cpus_per_worker, "num_gpus": plan.gpus_per_worker, "name": plan.stage, "max_retries": 0,
    }
    ref = ray.remote(run_entry).options(**options).remote(plan.entry_point, call)
    try:
        return ray.get(ref)
    except BaseException as error:
        if not is_infrastructure_fault(error):
            ray.cancel(ref, force=True, recursive=True)
        raise


def _fit(plan: LaunchPlan, call: Any, store: ArtifactStore, call_id: CallId) -> Any:
    """A TorchTrainer of the plan's workers; rank 0's return value, read back from the store."""
    from ray.train import FailureConfig, RunConfig, ScalingConfig
    from ray.train.torch import TorchConfig, TorchTrainer

    use_gpu = plan.gpus_per_worker > 0
    per_worker = {"CPU": plan.cpus_per_worker, **({"GPU": plan.gpus_per_worker} if use_gpu else {})}
    store.delete(f"{call_id.folder}/{RESULT_FILE}")
    trainer = TorchTrainer(
        train_worker_loop,
        train_loop_config={"entry_point": plan.entry_point, "call": call, "store_root": store.root,
                           "result": f"{call_id.folder}/{RESULT_FILE}"},
        scaling_config=ScalingConfig(num_workers=plan.num_workers, use_gpu=use_gpu, resources_per_worker=per_worker),
        torch_config=TorchConfig(backend="nccl" if use_gpu else "gloo"),
        # Ray Train keeps only its own run state here: checkpoints go to the artifact store, so a
        # restarted stage resumes from them whichever node it lands on.
        run_config=RunConfig(name=call_id.name, storage_path=str(Path(tempfile.gettempdir()) / "codedance-ray-train"),
                              failure_config=FailureConfig(max_failures=0)),
    )
    outcome = trainer.fit()
    if getattr(outcome, "error", None) is not None:
        raise outcome.error
    return read_result(store, call_id.folder)


def train_worker_loop(loop_config: dict[str, Any]) -> None:
    """One Ray Train worker: the entry point; rank 0 leaves its return value in the store."""
    import torch.distributed as torch_dist

    result = run_entry(loop_config["entry_point"], loop_config["call"])
    if not torch_dist.is_initialized() or torch_dist.get_rank() == 0:
        write_result(ArtifactStore(loop_config["store_root"]), loop_config["result"], result)


def write_result(store: ArtifactStore, relpath: str, value: Any) -> None:
    store.write_bytes(relpath, pickle.dumps(value))


def read_result(store: ArtifactStore, folder: str) -> Any:
    relpath = f"{folder}/{RESULT_FILE}"
    if not store.exists(relpath):
        raise RuntimeError(f"the stage finished but left no result at {store.uri(relpath)}")
    return pickle.loads(store.read_bytes(relpath))
