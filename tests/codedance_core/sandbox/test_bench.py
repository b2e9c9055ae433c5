"""The sandbox benchmark's new-session figure times a real session start, not a bookkeeping call."""

from __future__ import annotations

import asyncio

from codedance_core.sandbox import SandboxConfig, SandboxPool
from codedance_core.sandbox.bench import benchmark_image, measure_new_sessions, summarise


def test_a_new_session_is_timed_through_its_first_execute_beside_a_warm_one() -> None:
    async def measure() -> dict:
        async with SandboxPool(SandboxConfig(isolation="bwrap", workers=1)) as pool:
            return await measure_new_sessions(pool, benchmark_image(), sessions=5)

    figures = asyncio.run(measure())
    first, warm = figures["first_execute_in_new_session"], figures["warm_execute"]
    assert first["runs"] == warm["runs"] == figures["close"]["runs"] == 5
    # A new session forks and injects a 1024x1024 image before it runs anything: it must cost
    # more than a round trip in a live session (timing open_session alone would not).
    assert first["p50_ms"] > warm["p50_ms"] > 0
    assert figures["start_cost_p50_ms"] == first["p50_ms"] - warm["p50_ms"]


def test_summaries_are_in_milliseconds() -> None:
    assert summarise([0.001, 0.002, 0.003]) == {"p50_ms": 2.0, "p90_ms": 2.0, "mean_ms": 2.0, "runs": 3}
