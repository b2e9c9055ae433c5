"""What every pipeline task shares: cache keys, the retry rule, result storage, Ray submission.

Cache keys are built from what a task's output depends on and nothing else: the digests of its
input artifacts (`ArtifactRef.digest`, not the URI, not the data), the digest of the config
sections it reads, and the code version. So a rerun with the same inputs is a cache hit, and a
change to one stage's config reruns that stage and, through the new output digest, everything
after it.

Retries are for the outside world only: a lost Ray worker, a 5xx or timeout from a server, a
network fault talking to S3. An error in data, config or code fails at once: retrying it would
only fail again, slower.
"""

from __future__ import annotations

import hashlib
import os
import signal
import threading
from collections.abc import Callable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from codedance_core.config.base import canonical_json
from codedance_core.storage import ArtifactRef, is_remote, join_uri

PACKAGE_ROOT = Path(__file__).resolve().parents[1] / "codedance_core"


# The parts of the library each task's output depends on: a change to one of them reruns the
# task; a change elsewhere (the evaluation harness, say) leaves its cached results valid.
CODE_PARTS: dict[str, tuple[str, ...]] = {
    "build_tiny_model": ("models", "data/suite", "config"),
    "register_checkpoint_folder": ("storage",),
    "synthesise_suite": ("data", "agent/prompts.py", "config/data.py"),
    "validate_dataset": ("data", "config/data.py"),
    "train_weak_model_task": ("filtering/weak_model.py", "models", "config"),
    "filter_rows": ("filtering", "agent", "rewards", "sandbox", "engines", "models", "config"),
    "synthesize_trajectories": ("synthesis", "sandbox", "rewards", "agent", "data", "models/images.py", "config"),
    "train_sft_stage": ("train", "models", "config", "agent"),
    "train_rl_round": ("train", "models", "config", "agent", "rewards", "sandbox", "engines"),
    "register_and_promote": ("tracking",),
    "evaluate_checkpoint_task": ("evaluation", "agent", "rewards", "sandbox", "engines", "models", "config"),
}


@cache
def code_version(parts: tuple[str, ...] = ()) -> str:
    """sha256 of the library source a task depends on (all of codedance_core when unspecified)."""
    digest = hashlib.sha256()
    roots = [PACKAGE_ROOT / part for part in parts] or [PACKAGE_ROOT]
    files = sorted({f for root in roots for f in ([root] if root.is_file() else root.rglob("*.py"))})
    for path in files:
        digest.update(str(path.relative_to(PACKAGE_ROOT)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()[:16]


def fingerprint(value: Any) -> Any:
    """The part of a task input that its output depends on, as JSON-able data."""
    if type(value).__name__ == "Tracking":  # where results are logged does not change them
        return None
    if isinstance(value, ArtifactRef):
        return {"artifact": value.digest}
    if isinstance(value, BaseModel):
        digest = getattr(value, "digest", None)
        if callable(digest):
            return {"config": digest()}
        return fingerprint(value.model_dump(mode="json"))
    if isinstance(value, Mapping):
        return {str(k): fingerprint(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [fingerprint(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def stage_cache_key(context: Any, parameters: Mapping[str, Any]) -> str:
    """Prefect cache_key_fn: task name + code version + fingerprints of the inputs."""
    payload = {
        "task": context.task.name,
        "code": code_version(CODE_PARTS.get(context.task.name, ())),
        "inputs": {name: fingerprint(value) for name, value in sorted(parameters.items())},
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


# -- what is worth retrying --------------------------------------------------------------------
_INFRA_NAMES = {
    # Ray: a worker, node or object went away under us.
    "RayActorError", "WorkerCrashedError", "NodeDiedError", "ObjectLostError", "OwnerDiedError",
    "RaySystemError", "ActorDiedError", "ActorUnavailableError", "ObjectFetchTimedOutError",
    # HTTP and S3 clients: the server or the network failed.
    "ConnectError", "ConnectTimeout", "ReadTimeout", "WriteTimeout", "PoolTimeout", "RemoteProtocolError",
    "EndpointConnectionError", "ConnectTimeoutError", "ReadTimeoutError", "ClientConnectorError",
    "ServerDisconnectedError",
    # The sandbox lost a worker process.
    "WorkerDied",
}


def is_infrastructure_fault(error: BaseException) -> bool:
    """True for faults of the outside world (retry), False for errors in data, config or code."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if type(current).__name__ in _INFRA_NAMES or isinstance(current, (ConnectionError, TimeoutError)):
            return True
        status = getattr(getattr(current, "response", None), "status_code", None)
        if isinstance(status, int) and (status >= 500 or status == 429):
            return True
        current = current.__cause__ or current.__context__
    return False


def retry_on_infrastructure(task: Any, task_run: Any, state: Any) -> bool:
    """Prefect retry_condition_fn: retry only infrastructure faults."""
    try:
        state.result()
    except BaseException as error:  # noqa: BLE001 -- we only classify it
        return is_infrastructure_fault(error)
    return False


def result_storage_path(store_root: str) -> str:
    """Where task results are persisted: beside the artifacts, in the same store."""
    root = store_root if is_remote(store_root) else str(Path(store_root).resolve())
    return join_uri(root, "prefect-results")


def result_storage(store_root: str) -> str:
    """A saved Prefect filesystem block for task results (local folder, or fsspec for s3://);
    returns its slug. Prefect needs result storage saved server-side so that every worker that
    picks up a task can read the cached result."""
    from prefect.filesystems import LocalFileSystem, RemoteFileSystem

    path = result_storage_path(store_root)
    name = "codedance-results-" + hashlib.sha256(path.encode()).hexdigest()[:12]
    block = RemoteFileSystem(basepath=path) if is_remote(path) else LocalFileSystem(basepath=path)
    block.save(name, overwrite=True)
    kind = "remote-file-system" if is_remote(path) else "local-file-system"
    return f"{kind}/{name}"


# -- Ray ---------------------------------------------------------------------------------------
def ensure_ray(num_cpus: int | None = None) -> None:
    """Connect to RAY_ADDRESS when set, else start a small local Ray (once per process)."""
    import ray

    if ray.is_initialized():
        return
    address = os.environ.get("RAY_ADDRESS")
    if address:
        _init_keeping_sigterm_handler(address=address, ignore_reinit_error=True, log_to_driver=True)
        return
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    _init_keeping_sigterm_handler(
        num_cpus=num_cpus or os.cpu_count() or 2,
        object_store_memory=256 * 1024 * 1024,  # else Ray claims a large share of RAM
        include_dashboard=False,
        ignore_reinit_error=True,
        log_to_driver=True,
    )


def _init_keeping_sigterm_handler(**options: Any) -> None:
    """ray.init, without losing the process's own SIGTERM handler.

    ray.init replaces the SIGTERM handler with `sys.exit`. When a flow run is cancelled, the
    Prefect worker SIGTERMs the flow-run process, and Prefect's handler is what turns that
    signal into a cancellation (state Cancelled, on_cancellation hooks); under Ray's, the run
    ends Crashed. Either way `run_on_ray` cancels its Ray task on the way out. Ray's handler is
    kept only when the process had none of its own (a plain script).
    """
    import ray

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGTERM) if in_main_thread else None
    ray.init(**options)
    if callable(previous):
        signal.signal(signal.SIGTERM, previous)


def run_on_ray(
    fn: Callable[..., Any],
    *args: Any,
    name: str,
    num_cpus: float = 1,
    num_gpus: float = 0,
    memory_gb: float | None = None,
    **kwargs: Any,
) -> Any:
    """Run `fn` as a Ray task with the stage's resources and wait for it.

    The worker side imports only codedance_core. If the wait is interrupted (the flow run was
    cancelled, the task timed out) the Ray task is cancelled, so no work is left running.
    """
    import ray

    ensure_ray()
    options: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus, "name": name, "max_retries": 0}
    if memory_gb:
        options["memory"] = int(memory_gb * 1024**3)
    ref = ray.remote(fn).options(**options).remote(*args, **kwargs)
    try:
        return ray.get(ref)
    except BaseException as error:
        if not is_infrastructure_fault(error):
            ray.cancel(ref, force=True, recursive=True)
        raise
