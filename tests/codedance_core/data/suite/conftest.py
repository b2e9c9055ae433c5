"""Tasks of one family, made through the real generator (so seeds, splits and difficulty apply)."""

from __future__ import annotations

import pytest

from codedance_core.config.data import SuiteSpec
from codedance_core.data.suite.generator import make_task


@pytest.fixture
def family_tasks():
    """family_tasks("count", "easy", n=20) -> list of (SuiteTask, difficulty)."""

    def make(family: str, difficulty: str, n: int = 20, seed: int = 0):
        spec = SuiteSpec(families=[family], n=n, seed=seed, difficulty=difficulty)
        return [make_task(spec, index)[0] for index in range(n)]

    return make
