"""Serialising access to the model while still batching: a tiny continuous-ish batching queue.

An evaluation run sends dozens of concurrent requests. Running them one by one wastes the
batched engine; running them in parallel threads is wrong (one model, one KV cache, state kept on
the module). So requests wait in a queue for a few milliseconds, those with identical sampling
parameters are generated as one batch, and a single worker task owns the engine.
"""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import dataclass

from codedance_core.engines.base import Completion, GenerationEngine, GenerationRequest, SamplingParams


@dataclass
class _Job:
    requests: list[GenerationRequest]
    params: SamplingParams
    future: asyncio.Future


class GenerationBatcher:
    """Collects concurrent submissions and runs them through one engine, batch by batch."""

    def __init__(self, engine: GenerationEngine, max_batch_size: int = 32, window_s: float = 0.005) -> None:
        self.engine = engine
        self.max_batch_size = max_batch_size
        self.window_s = window_s
        self.batches_run = 0
        self._queue: asyncio.Queue[_Job] | None = None
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._queue = asyncio.Queue()
        self._worker = asyncio.create_task(self._work())

    async def stop(self) -> None:
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker

    async def submit(self, requests: list[GenerationRequest], params: SamplingParams) -> list[Completion]:
        """Completions of `requests`, generated together with whatever else is waiting."""
        if self._queue is None:
            raise RuntimeError("GenerationBatcher.start() was not called")
        job = _Job(requests, params, asyncio.get_running_loop().create_future())
        await self._queue.put(job)
        return await job.future

    async def _work(self) -> None:
        assert self._queue is not None
        while True:
            jobs = [await self._queue.get()]
            await asyncio.sleep(self.window_s)  # let concurrent requests arrive
            while not self._queue.empty() and sum(len(job.requests) for job in jobs) < self.max_batch_size:
                jobs.append(self._queue.get_nowait())
            for params in dict.fromkeys(job.params for job in jobs):
                await self._run_group([job for job in jobs if job.params == params], params)

    async def _run_group(self, jobs: list[_Job], params: SamplingParams) -> None:
        flat = [request for job in jobs for request in job.requests]
        try:
            completions = await asyncio.to_thread(self.engine.generate, flat, params)
        except Exception as error:  # noqa: BLE001 - the error goes to each waiting client, the worker lives on
            for job in jobs:
                if not job.future.done():
                    job.future.set_exception(error)
            return
        self.batches_run += 1
        start = 0
        for job in jobs:
            if not job.future.done():
                job.future.set_result(completions[start : start + len(job.requests)])
            start += len(job.requests)
