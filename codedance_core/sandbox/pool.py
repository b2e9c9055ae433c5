"""The sandbox's public face: a pool of template workers serving many stateful sessions.

A rollout opens one `Session` per trajectory and calls `execute` once per tool call. Sessions
are cheap (a fork inside an already-running template), so many can be open at once.

How many snippets run at once follows the rollouts the pool serves: a rollout declares its
trajectories in flight (`serving`), and concurrent executions are bounded by that number (at
least `config.workers`; at most a few per CPU, since snippets compete for CPU, and
`config.max_sessions`). A trajectory has one session and a session runs one snippet at a time, so
a slow or timed-out snippet holds one slot and stalls only its own trajectory; a fixed bound of
`workers` would let two 15 s timeouts stall every trajectory behind them. Snippets that sleep or
wait hold a slot but no CPU, hence more slots than CPUs.

A session's process is started lazily, at its first `execute`, and ended at `close`: a
trajectory that never writes code costs nothing, and one that does holds a process (about 2 MiB
of its own memory, and a few milliseconds of CPU to start and stop) only from its first code
block to its end. `config.max_sessions` bounds how many processes are open at once; a trajectory
waits for one only when it has code to run.

The pool heals itself: a template that dies (or stops answering) is replaced, and each of its
sessions is reopened on a live template with its image re-injected at its next `execute`, which
returns `killed` for the call that was lost, exactly like any other failure that resets state.

Use it from asyncio (`async with SandboxPool(config) as pool`) or, in scripts and tests, through
`SandboxPool.sync(config)`, which runs the same pool on an event loop in a background thread.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import shutil
import threading
import time
from collections.abc import Awaitable, Iterator
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Self, TypeVar

from PIL import Image

from codedance_core.config.sandbox import SandboxConfig
from codedance_core.sandbox.result import ExecResult
from codedance_core.sandbox.worker import TemplateWorker, WorkerDied, write_pixels
from codedance_core.scratch import make_scratch_dir, sweep_stale

T = TypeVar("T")

# Concurrent executions per CPU at most. Image snippets take milliseconds of CPU and those that
# sleep or wait take none, so slots are cheap; but a snippet's wall-clock timeout runs while it
# shares the CPU, and at this bound a snippet of up to timeout_s / 8 CPU-seconds (1.9 s at the
# default 15 s) still finishes in time when every slot computes at once.
EXECUTIONS_PER_CPU = 8
IMAGE_DIR_PREFIX = "codedance-images-"  # the pool's image folder in /dev/shm (memory)


def usable_cpus() -> int:
    """CPUs this process may run on (its affinity, which a container's CPU set narrows)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


class ExecutionSlots:
    """A semaphore whose limit can change while slots are held (first come, first served)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()

    def resize(self, limit: int) -> None:
        """A new limit; a lower one takes effect as held slots are released."""
        self.limit = limit
        self._hand_out()

    async def acquire(self) -> None:
        if self.held < self.limit and not self._waiters:
            self.held += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter  # resolved by `_hand_out`, which counts the slot as held
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as we were cancelled: pass it on
            elif waiter in self._waiters:
                self._waiters.remove(waiter)
            raise

    def release(self) -> None:
        self.held -= 1
        self._hand_out()

    def _hand_out(self) -> None:
        while self._waiters and self.held < self.limit:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self.held += 1
                waiter.set_result(None)

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc_info: object) -> None:
        self.release()


class Session:
    """One trajectory's interpreter: `input_image` preloaded, state kept across `execute` calls."""

    def __init__(self, pool: SandboxPool, session_id: str, image: Image.Image) -> None:
        self.pool = pool
        self.session_id = session_id
        self.image: Image.Image | None = image  # until the process is started with it
        self.opening: dict[str, Any] = {}
        self._worker: TemplateWorker | None = None
        self._lock = asyncio.Lock()
        self.started = False
        self.closed = False

    async def execute(self, code: str, timeout_s: float | None = None) -> ExecResult:
        """Run one snippet; its variables stay for the next call unless it failed."""
        if self.closed:
            raise RuntimeError("this sandbox session is closed")
        timeout = self.pool.config.timeout_s if timeout_s is None else timeout_s
        async with self._lock:
            if not self.started:
                await self._start()
            return await self._execute_started(code, timeout)

    async def start(self) -> None:
        """Start the process now rather than at the first `execute` (idempotent): a rollout does
        this while the first turn generates, so the fork costs no wall time."""
        async with self._lock:
            if not self.started and not self.closed:
                await self._start()

    async def _start(self) -> None:
        """Take a session slot (waiting for one if all are taken) and fork the process."""
        await self.pool.session_slots.acquire()
        self.started = True  # from here on, close() gives the slot back
        self.opening = write_pixels(self.image, self.pool.image_dir / f"{self.session_id}.raw")
        self.image = None
        self._worker = await self.pool.place_session(self.session_id, self.opening)

    async def _execute_started(self, code: str, timeout: float) -> ExecResult:
        async with self.pool.execution_slots:
            started = time.monotonic()
            note = ""
            try:
                if self._worker is None or not self._worker.alive:
                    note = "[sandbox] the worker hosting this session died; its state was reset\n"
                    self._worker = await self.pool.place_session(self.session_id, self.opening)
                result = await self._worker.execute(self.session_id, code, timeout)
            except WorkerDied as error:
                self._worker = None
                self.pool.replace_dead_workers()
                return ExecResult(status="killed", error_type="WorkerDied", error_message=str(error),
                                  wall_time_s=time.monotonic() - started)
            if note:
                result.stderr = note + result.stderr
            return result

    async def close(self) -> None:
        """Kill the session's processes and free its slot; idempotent."""
        if self.closed:
            return
        self.closed = True
        self.image = None
        if not self.started:
            return
        if self._worker is not None:
            await self._worker.close_session(self.session_id)
        self.pool.forget_pixels(self.opening)
        self.pool.session_slots.release()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()


class SandboxPool:
    """Bounded set of template workers; opens sessions on the least loaded one."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self.workers: list[TemplateWorker] = []
        self.execution_slots = ExecutionSlots(self.config.workers)
        self.trajectories_served = 0
        self.session_slots = asyncio.Semaphore(self.config.max_sessions)
        self._ids = itertools.count(1)
        self.image_dir: Path | None = None
        self._respawn_lock = asyncio.Lock()
        self._background: set[asyncio.Task] = set()
        self.respawns = 0

    async def start(self) -> Self:
        """Start every worker (in parallel: each imports numpy, OpenCV, matplotlib once)."""
        shared_memory = "/dev/shm" if os.path.isdir("/dev/shm") else None
        sweep_stale(IMAGE_DIR_PREFIX, shared_memory)  # those of pools killed before their `close`
        self.image_dir = make_scratch_dir(IMAGE_DIR_PREFIX, shared_memory)  # mode 0700, named for this process
        self.workers = [TemplateWorker(self.config, i, self.image_dir) for i in range(self.config.workers)]
        try:
            await asyncio.gather(*(worker.start() for worker in self.workers))
        except BaseException:
            await self.close()
            raise
        return self

    async def close(self) -> None:
        """Stop every worker; nothing started by the pool survives this."""
        for task in list(self._background):
            task.cancel()
        await asyncio.gather(*(worker.stop() for worker in self.workers), return_exceptions=True)
        if self.image_dir is not None:
            shutil.rmtree(self.image_dir, ignore_errors=True)

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def open_session(self, image: Image.Image) -> Session:
        """A new session with `image` as `input_image` (and `input_image.jpg` in its directory);
        its process starts at the first `execute`."""
        if self.image_dir is None:
            raise RuntimeError("the sandbox pool is not started")
        return Session(self, f"s{next(self._ids)}", image)

    @contextlib.contextmanager
    def serving(self, trajectories: int) -> Iterator[None]:
        """Declare `trajectories` in flight for the block: concurrent executions follow the total."""
        self.trajectories_served += trajectories
        self.execution_slots.resize(self.execution_limit())
        try:
            yield
        finally:
            self.trajectories_served -= trajectories
            self.execution_slots.resize(self.execution_limit())

    def execution_limit(self) -> int:
        """Snippets allowed to run at once: one per trajectory in flight, within the pool's bounds."""
        ceiling = min(self.config.max_sessions, EXECUTIONS_PER_CPU * usable_cpus())
        return max(self.config.workers, min(self.trajectories_served, ceiling))

    def forget_pixels(self, opening: dict[str, Any]) -> None:
        """Delete a closed session's pixel file."""
        if self.image_dir is not None and "pixels_file" in opening:
            (self.image_dir / opening["pixels_file"]).unlink(missing_ok=True)

    async def run_once(self, image: Image.Image, code: str, timeout_s: float | None = None) -> ExecResult:
        """Open a session, run one snippet, close it."""
        session = await self.open_session(image)
        try:
            return await session.execute(code, timeout_s)
        finally:
            await session.close()

    async def place_session(self, session_id: str, opening: dict[str, Any]) -> TemplateWorker:
        """Open the session on the least loaded live worker, replacing dead workers first."""
        for _ in range(2):
            await self._replace_dead_workers()
            worker = min((w for w in self.workers if w.alive), key=lambda w: len(w.sessions))
            try:
                await worker.open_session(session_id, opening)
                return worker
            except WorkerDied:
                continue
        raise WorkerDied("could not open a session: sandbox workers keep dying")

    def replace_dead_workers(self) -> None:
        """Schedule the replacement of dead workers without waiting for it."""
        task = asyncio.get_running_loop().create_task(self._replace_dead_workers())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _replace_dead_workers(self) -> None:
        async with self._respawn_lock:
            for index, worker in enumerate(self.workers):
                if not worker.alive:
                    await worker.stop()
                    replacement = TemplateWorker(self.config, index, self.image_dir)
                    await replacement.start()
                    self.workers[index] = replacement
                    self.respawns += 1

    @classmethod
    def sync(cls, config: SandboxConfig | None = None) -> SyncSandboxPool:
        """A blocking facade over a pool running in a background event loop."""
        return SyncSandboxPool(config)


class SyncSandboxPool:
    """The pool for synchronous code: `with SandboxPool.sync(cfg) as pool: pool.run_once(img, code)`."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.config = config or SandboxConfig()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="sandbox-pool", daemon=True)
        self.pool: SandboxPool | None = None

    def call(self, coroutine: Awaitable[T], timeout_s: float | None = None) -> T:
        """Run a coroutine on the pool's loop and wait for its result."""
        future: Future = asyncio.run_coroutine_threadsafe(coroutine, self._loop)  # type: ignore[arg-type]
        return future.result(timeout_s)

    def start(self) -> Self:
        self._thread.start()
        try:
            self.pool = self.call(self._make_pool())
        except BaseException:
            self.close()
            raise
        return self

    async def _make_pool(self) -> SandboxPool:
        return await SandboxPool(self.config).start()

    def close(self) -> None:
        if self.pool is not None:
            self.call(self.pool.close())
            self.pool = None
        if self._thread.is_alive():
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join()
            self._loop.close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open_session(self, image: Image.Image) -> SyncSession:
        return SyncSession(self, self.call(self.pool.open_session(image)))

    def run_once(self, image: Image.Image, code: str, timeout_s: float | None = None) -> ExecResult:
        return self.call(self.pool.run_once(image, code, timeout_s))


class SyncSession:
    """Blocking view of a `Session`."""

    def __init__(self, owner: SyncSandboxPool, session: Session) -> None:
        self.owner = owner
        self.session = session

    def execute(self, code: str, timeout_s: float | None = None) -> ExecResult:
        return self.owner.call(self.session.execute(code, timeout_s))

    def close(self) -> None:
        self.owner.call(self.session.close())

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
