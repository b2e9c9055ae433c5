"""Which waiting turns go to the engine together, and when: the tool loop's generation batcher.

Every live trajectory that wants tokens submits a request; the batcher sends requests to the
engine together (one batched forward pass), so the model is never called one conversation at a
time. When a batch leaves depends on the schedule:

- continuous (the default): a trajectory's next turn joins the queue the moment its tool result is
  back, and whenever the engine is free it takes what is queued, after waiting `wait_s` at most for
  more to join, and no more than the engine's batch size (so a turn that becomes ready while a batch
  runs goes out in the next one, not after every chunk of an oversized call). A slow or timed-out
  snippet delays only its own trajectory; the others keep the engine busy.
- lockstep: every batch waits for all live trajectories, so turns advance together. Each turn then
  waits for the slowest tool call of the batch, but a batch's requests are a function of the step,
  not of the sandbox's timing, which is what makes a seeded, batched engine reproducible (GRPO's
  `deterministic_rollout`). The whole batch goes to the engine, which splits it by its own rule.

A request carries its own token limit (a trajectory near its response budget or the end of its
context asks for fewer than the per-turn cap). The engine interface takes one `SamplingParams` per
call, so a batch goes out as one call per distinct limit, largest first; all but the last turns of
trajectories near their end ask for the per-turn cap, so this rarely splits a batch.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections import Counter
from dataclasses import dataclass, field

from codedance_core.engines.base import Completion, GenerationEngine, GenerationRequest, SamplingParams


@dataclass
class RolloutStats:
    """Where a batch's time went (the engine, the sandbox, the wall clock) and how trajectories ended."""

    wall_s: float = 0.0
    engine_s: float = 0.0
    sandbox_s: float = 0.0
    engine_calls: int = 0
    engine_requests: int = 0
    finish_reasons: dict[str, int] = field(default_factory=dict)

    @property
    def sandbox_hidden_fraction(self) -> float:
        """Share of sandbox time that overlapped generation instead of adding to the wall time."""
        if self.sandbox_s <= 0:
            return 1.0
        exposed = max(0.0, self.wall_s - self.engine_s)
        return max(0.0, min(1.0, 1.0 - exposed / self.sandbox_s))

    @property
    def mean_batch_size(self) -> float:
        return self.engine_requests / self.engine_calls if self.engine_calls else 0.0

    def count_finishes(self, reasons: list[str]) -> None:
        self.finish_reasons = dict(sorted(Counter(reasons).items()))


@dataclass
class _Waiting:
    request: GenerationRequest
    params: SamplingParams
    future: asyncio.Future[Completion]


class GenerationBatcher:
    """Collects the live trajectories' requests and sends them to the engine in batches."""

    def __init__(
        self,
        engine: GenerationEngine,
        params: SamplingParams,
        stats: RolloutStats,
        wait_s: float,
        lockstep: bool = False,
        max_batch_size: int | None = None,
    ):
        self.engine = engine
        self.params = params
        self.stats = stats
        self.wait_s = wait_s
        self.lockstep = lockstep
        self.max_batch_size = None if lockstep else max_batch_size
        self.live = 0
        self._pending: list[_Waiting] = []
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, live: int) -> None:
        self.live = live
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def submit(self, request: GenerationRequest, max_new_tokens: int | None = None) -> Completion:
        """Queue one turn (at most `max_new_tokens`, default the batch's cap) and wait for its completion."""
        params = self.params
        if max_new_tokens is not None and max_new_tokens != params.max_new_tokens:
            params = dataclasses.replace(params, max_new_tokens=max_new_tokens)
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._pending.append(_Waiting(request, params, future))
        self._arrived.set()
        return await future

    def leave(self) -> None:
        """A trajectory ended: no batch waits for it any more."""
        self.live -= 1
        self._arrived.set()

    async def _loop(self) -> None:
        while True:
            await self._until_batch_ready()
            await self._send(self._take())

    async def _until_batch_ready(self) -> None:
        while not self._pending:
            await self._next_arrival(None)
        if self.lockstep:
            while len(self._pending) < self.live:
                await self._next_arrival(None)
            return
        # Continuous: trajectories finishing their code may join if they are back within wait_s.
        enough = min(self.live, self.max_batch_size or self.live)
        deadline = asyncio.get_running_loop().time() + self.wait_s
        while len(self._pending) < enough:
            remaining = deadline - asyncio.get_running_loop().time()
            if remaining <= 0:
                return
            await self._next_arrival(remaining)

    async def _next_arrival(self, timeout_s: float | None) -> None:
        """Wait for a submission or a departure (or the timeout)."""
        self._arrived.clear()
        try:
            await asyncio.wait_for(self._arrived.wait(), timeout_s)
        except TimeoutError:
            pass

    def _take(self) -> list[_Waiting]:
        size = self.max_batch_size or len(self._pending)
        batch, self._pending = self._pending[:size], self._pending[size:]
        return batch

    async def _send(self, batch: list[_Waiting]) -> None:
        """One engine call per distinct limit, largest first; each call's turns are answered as it returns."""
        groups: dict[SamplingParams, list[_Waiting]] = {}
        for waiting in batch:
            groups.setdefault(waiting.params, []).append(waiting)
        for params in sorted(groups, key=lambda p: -p.max_new_tokens):
            members = groups[params]
            started = time.perf_counter()
            try:
                completions = await self.engine.agenerate([waiting.request for waiting in members], params)
                if len(completions) != len(members):
                    raise RuntimeError(f"{len(completions)} completions for {len(members)} requests")
            except Exception as exc:  # noqa: BLE001 -- an engine fault fails this call's turns, not the loop
                completions = [Completion.failed(f"engine error: {type(exc).__name__}: {exc}") for _ in members]
            self.stats.engine_s += time.perf_counter() - started
            self.stats.engine_calls += 1
            self.stats.engine_requests += len(members)
            for waiting, completion in zip(members, completions, strict=True):
                if not waiting.future.done():
                    waiting.future.set_result(completion)
