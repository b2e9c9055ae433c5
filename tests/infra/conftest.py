"""Fixtures of the infra tests: the parsed files, read once per session."""

from __future__ import annotations

import pytest

from tests.infra.infra_files import INFRA, Instruction, parse_dockerfile


@pytest.fixture(scope="session")
def dockerfiles() -> dict[str, list[Instruction]]:
    """The parsed worker and orchestrator Dockerfiles, by role."""
    return {
        role: parse_dockerfile((INFRA / "docker" / f"{role}.Dockerfile").read_text())
        for role in ("worker", "orchestrator")
    }
