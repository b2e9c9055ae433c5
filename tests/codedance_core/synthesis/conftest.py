"""Fixtures for synthesis tests: suite RL rows, and a real sandbox pool (isolation on) to run them."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from codedance_core.config.data import SuiteSpec
from codedance_core.config.synthesis import SynthesisConfig
from codedance_core.data.suite import make_row
from codedance_core.sandbox import SandboxConfig, SandboxPool, SyncSandboxPool
from codedance_core.synthesis import synthesize_rows


def suite_rows(families: list[str], n: int, seed: int = 3, difficulty: str = "mixed") -> list[dict]:
    """`n` RL rows of the procedural suite, cycling through `families`."""
    spec = SuiteSpec(families=families, n=n, seed=seed, split="train", difficulty=difficulty)
    return [make_row(spec, index) for index in range(n)]


@pytest.fixture(scope="module")
def pool() -> Iterator[SyncSandboxPool]:
    with SandboxPool.sync(SandboxConfig(isolation="bwrap", workers=2)) as sync_pool:
        yield sync_pool


def synthesize(pool: SyncSandboxPool, rows: list[dict], **overrides):
    """Outcomes of `rows` synthesised on the shared pool."""
    config = SynthesisConfig(**overrides)
    return pool.call(synthesize_rows(rows, pool.pool, config), timeout_s=120)
