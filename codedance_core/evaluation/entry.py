"""Evaluate one checkpoint or served model: the entry point the CLI and the pipeline share.

Two runs of the same model on the same benchmark into the same --save_path would write the same
files: the second waits for the first (up to `LOCK_WAIT_S`, then it resumes from the first's rows
and redoes nothing), or is refused with a message naming the first (`storage.locks`).

The event loop always ends: `run_bounded` is `asyncio.run` with a bounded shutdown. A thread still
busy in the default executor (a generation that outlived a failed run) is waited for at most
`SHUTDOWN_TIMEOUT_S` instead of forever.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
import uuid
from collections.abc import Coroutine, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from codedance_core.config.evaluation import EvalConfig
from codedance_core.config.model import EngineConfig

LOCK_WAIT_S = 30.0
SHUTDOWN_TIMEOUT_S = 10.0
T = TypeVar("T")
_log = logging.getLogger(__name__)


def run_evaluation(config: EvalConfig, show_progress: bool = True, engine: EngineConfig | None = None):
    """Build the engine the config names and run the evaluation; returns `EvalOutputs`.

    A local checkpoint runs in-process with transformers, or with vLLM when `engine` says so (a GPU
    worker of the paper profile); served models are reached over HTTP."""
    return run_evaluations([config], show_progress, engine)[0]


def run_evaluations(configs: Sequence[EvalConfig], show_progress: bool = True, engine: EngineConfig | None = None):
    """`run_evaluation` for several benchmarks of the same model, one after the other, with the engine
    (and a local checkpoint's weights) built once; the configs differ only in what they evaluate."""
    from codedance_core.evaluation.runner import EvalRunner

    first = configs[0]
    if first.model_dir and engine is not None and engine.kind == "vllm":
        from codedance_core.engines.vllm import VLLMEngine
        from codedance_core.models.images import pixel_bounds

        served = VLLMEngine.from_config(engine.model_copy(update={"model": first.model_dir}))
        name = first.model_name or Path(first.model_dir).name
        try:
            return [
                run_bounded(run_locked(EvalRunner(config, served, name, pixel_bounds=pixel_bounds(served.image_processor),
                                                  show_progress=show_progress, batched=True)))
                for config in configs
            ]
        finally:
            served.close()
    if first.model_dir:
        from codedance_core.engines.hf import HFEngine
        from codedance_core.models import load_model_bundle
        from codedance_core.models.images import pixel_bounds

        bundle = load_model_bundle(first.model_dir, device=first.device)
        name = first.model_name or Path(first.model_dir).name
        local = HFEngine(bundle)
        try:
            return [
                run_bounded(run_locked(EvalRunner(config, local, name, bundle=bundle,
                                                  pixel_bounds=pixel_bounds(bundle.image_processor),
                                                  show_progress=show_progress)))
                for config in configs
            ]
        finally:
            local.close()
    from codedance_core.engines.openai import OpenAIEngine

    remote = OpenAIEngine(first.api_urls, model=first.model_name, concurrency=first.num_workers)

    async def go():
        try:
            name = first.model_name or await served_model_name(first.api_urls[0])
            return [
                await run_locked(EvalRunner(config, remote, name, show_progress=show_progress)) for config in configs
            ]
        finally:
            await remote.aclose()

    return run_bounded(go())


def results_lock_uri(config: EvalConfig, model_name: str) -> Path:
    """The lock of one run's outputs: beside its result file (same model, same dataset, same folder)."""
    from codedance_core.evaluation.registry import dataset_name, get_benchmark
    from codedance_core.evaluation.results import output_paths
    from codedance_core.storage.locks import lock_uri_for

    dataset = dataset_name(get_benchmark(config.benchmark), Path(config.data_path), config.data_source)
    result = output_paths(Path(config.save_path), model_name, dataset)["result"]
    return Path(lock_uri_for(result))


async def run_locked(runner: Any, wait_s: float = LOCK_WAIT_S) -> Any:
    """`runner.run()` holding the lock of its outputs (see the module docstring)."""
    from codedance_core.storage.locks import FileLock

    path = results_lock_uri(runner.config, runner.model_name)
    lock = FileLock(path, wait_s=wait_s, target=str(path.with_suffix("")))
    # Nothing else runs on the loop yet: waiting here in this thread holds nothing back.
    lock.acquire()
    try:
        return await runner.run()
    finally:
        lock.release()


def run_bounded(coroutine: Coroutine[Any, Any, T], shutdown_timeout_s: float = SHUTDOWN_TIMEOUT_S) -> T:
    """Run `coroutine` on a new event loop and always close it within about `shutdown_timeout_s`.

    Like `asyncio.run`: pending tasks are cancelled, async generators finalised, the default
    executor shut down; unlike it, no step of that waits forever (Python 3.11's waits for every
    executor thread, however long they run)."""
    loop = asyncio.new_event_loop()
    prefix = f"codedance-loop-{uuid.uuid4().hex[:6]}"
    executor = ThreadPoolExecutor(thread_name_prefix=prefix)
    loop.set_default_executor(executor)
    asyncio.set_event_loop(loop)
    try:
        return loop.run_until_complete(coroutine)
    finally:
        deadline = time.monotonic() + shutdown_timeout_s
        try:
            _cancel_pending(loop, shutdown_timeout_s)
            loop.run_until_complete(asyncio.wait([loop.create_task(loop.shutdown_asyncgens())],
                                                 timeout=max(deadline - time.monotonic(), 0.1)))
        finally:
            executor.shutdown(wait=False, cancel_futures=True)
            _join_threads(prefix, deadline)
            asyncio.set_event_loop(None)
            loop.close()


def _cancel_pending(loop: asyncio.AbstractEventLoop, timeout_s: float) -> None:
    pending = [task for task in asyncio.all_tasks(loop) if not task.done()]
    if not pending:
        return
    for task in pending:
        task.cancel()
    _, stuck = loop.run_until_complete(asyncio.wait(pending, timeout=timeout_s))
    for task in stuck:
        _log.warning("event loop closed with a task that ignored cancellation: %r", task)
    for task in pending:
        if task.done() and not task.cancelled() and task.exception() is not None:
            _log.debug("task failed during shutdown: %r", task.exception())


def _join_threads(prefix: str, deadline: float) -> None:
    for thread in [t for t in threading.enumerate() if t.name.startswith(prefix)]:
        thread.join(max(deadline - time.monotonic(), 0.0))
        if thread.is_alive():
            _log.warning("event loop closed while %s is still running (it ends on its own)", thread.name)


async def served_model_name(base_url: str) -> str:
    """The first model a server lists at /models (what vLLM and `codedance serve` report)."""
    import httpx

    async with httpx.AsyncClient(timeout=30) as client:
        response = await client.get(f"{base_url.rstrip('/')}/models")
        response.raise_for_status()
        return str(response.json()["data"][0]["id"])
