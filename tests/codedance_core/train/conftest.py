"""The SFT rows fixture of the training tests (rows.py builds them)."""

from __future__ import annotations

import pytest

from tests.codedance_core.train.rows import trajectory_row


@pytest.fixture(scope="session")
def sft_rows() -> list[dict]:
    return [trajectory_row(i) for i in range(12)]
