"""Measuring the sandbox against its performance targets, side by side in one run.

Three ways to run the same crop-and-zoom snippet on a 1024x1024 image:
(a) this sandbox, isolation on, in a warm session (the real rollout path, through asyncio);
(b) a naive executor: a fresh `python -c` per call that imports the same libraries and loads the
    image from disk (what a sandbox without a template costs);
(c) plain in-process `exec` (no isolation at all: the floor).
Targets: p50(a) at least 30x lower than p50(b) and within 5 ms of p50(c); at least 150
executions/s with 2 workers; a new session in under 20 ms at p50.

A session's process starts at its first `execute` (`open_session` only books it), so a new
session is timed as `open_session` plus its first execute of a trivial snippet: the fork, the
image injection and one round trip, everything a trajectory waits for before its first code
block runs. A warm execute of the same snippet is timed beside it, interleaved so both see the
same load; the difference is the start-up alone.
Used by `benchmarks/sandbox.py` and `codedance sandbox bench`; returns plain dicts for JSON.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np
from PIL import Image

from codedance_core.config.sandbox import SandboxConfig
from codedance_core.sandbox.pool import SandboxPool

WORKLOAD = (
    "from PIL import Image\n"
    "crop = input_image.crop((384, 384, 640, 640))\n"
    "zoom = crop.resize((crop.width * 2, crop.height * 2), Image.Resampling.BICUBIC)\n"
    "print('zoomed', zoom.size, zoom.getpixel((10, 10)))\n"
)
TRIVIAL = "started = True\n"  # a round trip that does no work: what is left is the session's own cost
NAIVE_PREAMBLE = (
    "import numpy, cv2, scipy.ndimage, matplotlib\n"
    "matplotlib.use('Agg')\n"
    "import matplotlib.pyplot\n"
    "from PIL import Image\n"
    "input_image = Image.open({path!r}); input_image.load()\n"
)


def benchmark_image() -> Image.Image:
    """A deterministic 1024x1024 RGB image with texture (so crops and codecs do real work)."""
    rng = np.random.default_rng(0)
    return Image.fromarray(rng.integers(0, 256, (1024, 1024, 3), dtype=np.uint8))


def summarise(seconds: list[float]) -> dict[str, float]:
    """p50, p90 and mean in milliseconds."""
    ordered = sorted(seconds)
    return {
        "p50_ms": 1000 * statistics.median(ordered),
        "p90_ms": 1000 * ordered[int(0.9 * (len(ordered) - 1))],
        "mean_ms": 1000 * statistics.fmean(ordered),
        "runs": len(ordered),
    }


def measure_in_process(image: Image.Image, runs: int) -> dict[str, float]:
    """(c) exec of the snippet in this process, fresh globals with input_image each time."""
    code = compile(WORKLOAD, "<workload>", "exec")
    timings = []
    with open(os.devnull, "w") as sink:
        for _ in range(runs):
            namespace = {"input_image": image, "print": lambda *a: print(*a, file=sink)}
            started = time.perf_counter()
            exec(code, namespace)  # noqa: S102 - the in-process floor the sandbox is compared with
            timings.append(time.perf_counter() - started)
    return summarise(timings)


def measure_naive(image: Image.Image, runs: int) -> dict[str, float]:
    """(b) one fresh interpreter per call, same imports, image read from a file."""
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "input_image.png")
        image.save(path)
        program = NAIVE_PREAMBLE.format(path=path) + WORKLOAD
        timings = []
        for _ in range(runs):
            started = time.perf_counter()
            subprocess.run([sys.executable, "-c", program], check=True, capture_output=True)
            timings.append(time.perf_counter() - started)
    return summarise(timings)


async def measure_sandbox(image: Image.Image, config: SandboxConfig, runs: int,
                          sessions: int, throughput_runs: int) -> dict[str, Any]:
    """(a) latency in one warm session, what a new session costs, and throughput over many sessions."""
    async with SandboxPool(config) as pool:
        session = await pool.open_session(image)
        for _ in range(5):
            await session.execute(WORKLOAD)
        latency = []
        for _ in range(runs):
            started = time.perf_counter()
            result = await session.execute(WORKLOAD)
            latency.append(time.perf_counter() - started)
            if not result.ok:
                raise RuntimeError(f"benchmark snippet failed in the sandbox: {result}")
        await session.close()
        session_start = await measure_new_sessions(pool, image, sessions)
        throughput = await measure_throughput(pool, image, throughput_runs)
    return {"latency": summarise(latency), "session_start": session_start, "throughput_exec_per_s": throughput}


async def measure_new_sessions(pool: SandboxPool, image: Image.Image, sessions: int) -> dict[str, Any]:
    """New sessions (open + first trivial execute) beside warm executes, and closing times."""
    warm = await pool.open_session(image)
    await warm.execute(TRIVIAL)
    first, warm_runs, closing = [], [], []
    for _ in range(sessions):
        started = time.perf_counter()
        fresh = await pool.open_session(image)
        result = await fresh.execute(TRIVIAL)
        first.append(time.perf_counter() - started)
        if not result.ok:
            raise RuntimeError(f"trivial snippet failed in a new session: {result}")
        started = time.perf_counter()
        await fresh.close()  # kills the session's processes
        closing.append(time.perf_counter() - started)
        started = time.perf_counter()
        await warm.execute(TRIVIAL)
        warm_runs.append(time.perf_counter() - started)
    await warm.close()
    first_execute, warm_execute = summarise(first), summarise(warm_runs)
    return {
        "first_execute_in_new_session": first_execute,
        "warm_execute": warm_execute,
        "close": summarise(closing),
        "start_cost_p50_ms": first_execute["p50_ms"] - warm_execute["p50_ms"],
    }


async def measure_throughput(pool: SandboxPool, image: Image.Image, total: int, clients: int = 8) -> float:
    """Executions per second with `clients` warm sessions hammering the pool at once."""
    sessions = [await pool.open_session(image) for _ in range(clients)]
    for session in sessions:
        await session.execute(WORKLOAD)

    async def client(session, count: int) -> None:
        for _ in range(count):
            await session.execute(WORKLOAD)

    started = time.perf_counter()
    await asyncio.gather(*(client(session, total // clients) for session in sessions))
    elapsed = time.perf_counter() - started
    for session in sessions:
        await session.close()
    return (total // clients) * clients / elapsed


def run_benchmark(config: SandboxConfig | None = None, runs: int = 200, naive_runs: int = 10,
                  sessions: int = 50, throughput_runs: int = 800) -> dict[str, Any]:
    """All three measurements and the verdict on each target."""
    config = config or SandboxConfig()
    image = benchmark_image()
    sandbox = asyncio.run(measure_sandbox(image, config, runs, sessions, throughput_runs))
    in_process = measure_in_process(image, runs)
    naive = measure_naive(image, naive_runs)
    p50 = sandbox["latency"]["p50_ms"]
    session_start = sandbox["session_start"]
    figures = {
        "speedup_vs_naive_p50": naive["p50_ms"] / p50,
        "overhead_vs_in_process_p50_ms": p50 - in_process["p50_ms"],
        "throughput_exec_per_s": sandbox["throughput_exec_per_s"],
        "new_session_p50_ms": session_start["first_execute_in_new_session"]["p50_ms"],
        "new_session_start_cost_p50_ms": session_start["start_cost_p50_ms"],
    }
    targets = {
        "speedup_vs_naive_p50 >= 30": figures["speedup_vs_naive_p50"] >= 30,
        "overhead_vs_in_process_p50_ms <= 5": figures["overhead_vs_in_process_p50_ms"] <= 5,
        "throughput_exec_per_s >= 150": figures["throughput_exec_per_s"] >= 150,
        "new_session_p50_ms < 20": figures["new_session_p50_ms"] < 20,
    }
    return {
        "workload": WORKLOAD,
        "image": "1024x1024 RGB",
        "isolation": config.isolation,
        "workers": config.workers,
        "cpu_count": os.cpu_count(),
        "latency": {"sandbox": sandbox["latency"], "naive_python_c": naive, "in_process_exec": in_process},
        "new_session": session_start["first_execute_in_new_session"],
        "session_start": session_start,
        **figures,
        "targets_met": targets,
    }
