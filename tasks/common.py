"""One decorator that turns a stage function into a Prefect task: cached, retried, logged, published.

The stage itself (codedance_core.stages) does the work and decides how it is launched; this layer adds
only what Prefect is for:
- caching: the cache key is the stage's own key (`stage_key`: its inputs' digests and the code its
  module reaches), so a rerun with nothing changed is a cache hit and an edit anywhere the stage's
  code reaches reruns it. Cache records are SERIALIZABLE under a lock manager, so two flow runs
  that reach the same stage at once (the lifecycle and the weekly retrain) compute it once: the
  second waits for the lock, then reads the first one's result.
- retries with backoff, only for faults of the outside world (`is_infrastructure_fault`);
- the stage's progress lines in the task run's log;
- the stage's result as Prefect artifacts (tables, reports, links) for the UI.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prefect import Task, get_run_logger, task
from prefect.artifacts import create_link_artifact, create_markdown_artifact, create_table_artifact
from prefect.cache_policies import CacheKeyFnPolicy, CachePolicy
from prefect.locking.filesystem import FileSystemLockManager

from codedance_core.stages.context import StageContext
from codedance_core.stages.faults import is_infrastructure_fault
from codedance_core.stages.keys import stage_key
from codedance_core.stages.results import Evaluation, FilterOutcome, SynthesisOutcome
from codedance_core.storage import is_remote, join_uri

RETRY_DELAYS_S = [10, 60]


def stage_task(stage_fn: Callable[..., Any]) -> Task:
    """A Prefect task running `stage_fn` (a `@stage` function) with its logs going to the task run."""
    signature = inspect.signature(stage_fn)

    @functools.wraps(stage_fn)
    def run(*args: Any, **kwargs: Any) -> Any:
        bound = signature.bind(*args, **kwargs)
        context: StageContext = bound.arguments["ctx"]
        bound.arguments["ctx"] = context.with_log(get_run_logger().info)
        result = stage_fn(*bound.args, **bound.kwargs)
        publish(result)
        return result

    return task(
        run, name=stage_fn.__name__, cache_policy=stage_cache_policy(stage_fn), persist_result=True,
        retries=len(RETRY_DELAYS_S), retry_delay_seconds=RETRY_DELAYS_S, retry_condition_fn=retry_on_infrastructure,
    )


def stage_cache_policy(stage_fn: Callable[..., Any], lock_dir: Path | None = None) -> CachePolicy:
    """The stage's own key as the cache key, serialised by a lock in `lock_dir`."""
    policy = CacheKeyFnPolicy(cache_key_fn=lambda _context, parameters: stage_key(stage_fn, parameters))
    if lock_dir is None:
        return policy
    return policy.configure(isolation_level="SERIALIZABLE", lock_manager=FileSystemLockManager(lock_dir))


def lock_dir_for(store_root: str) -> Path:
    """Where cache locks live: beside a local store (every flow run on this machine sees them);
    for an S3 store a local folder, which serialises the flow runs of this host: flows on several
    hosts sharing one store need a shared lock manager (prefect-redis's RedisLockManager)."""
    if is_remote(store_root):
        return Path.home() / ".codedance" / "locks"
    return Path(store_root) / "locks"


def configured(stage: Task, store_root: str) -> Task:
    """The task with results persisted in the store and cache records locked: what flows run."""
    stage_fn = stage.fn.__wrapped__
    return stage.with_options(
        result_storage=result_storage(store_root),
        cache_policy=stage_cache_policy(stage_fn, lock_dir_for(store_root)),
    )


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


@functools.cache
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


# -- what the Prefect UI shows of a stage's result -------------------------------------------------
def publish(result: Any) -> None:
    """Tables, reports and links for the typed results that have something to show."""
    if isinstance(result, Evaluation):
        key = artifact_key(f"eval-{result.label}")
        create_table_artifact([{"checkpoint": result.label, **_scalars(result.stats)}], key=key,
                              description=f"Evaluation of {result.label}")
        create_link_artifact(result.results.uri, link_text=f"{result.label}: results, viewer and plot",
                             key=f"{key}-results")
    elif isinstance(result, FilterOutcome) and result.markdown:
        create_markdown_artifact(result.markdown, key="filter-report", description="Pass rates and buckets per data_source")
    elif isinstance(result, SynthesisOutcome):
        rows = [{"family": family, **_scalars(values, as_text=True)} for family, values in result.stats.get("families", {}).items()]
        create_table_artifact(rows, key="synthesis-stats", description="Kept and rejected trajectories per family")


def artifact_key(text: str) -> str:
    """Prefect artifact keys are lowercase letters, digits and dashes."""
    return re.sub(r"[^a-z0-9-]+", "-", text.lower()).strip("-")


def _scalars(values: dict, as_text: bool = False) -> dict:
    """Table cells must be scalars: other values are dropped, or written as text."""
    if as_text:
        return {k: v if isinstance(v, (int, float, str)) else str(v) for k, v in values.items()}
    return {k: v for k, v in values.items() if isinstance(v, (int, float, str))}
