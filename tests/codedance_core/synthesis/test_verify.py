"""A program-written trajectory run for real: its tool messages are cut where the rollout's are, and it
fits the rollout's turn budget or is rejected."""

from __future__ import annotations

import pytest
from PIL import Image

from codedance_core.config.agent import RolloutOverrides
from codedance_core.config.synthesis import SynthesisConfig
from codedance_core.synthesis.steps import AnswerStep, ToolStep, Writer
from codedance_core.synthesis.verify import Rejected, run_program

from .conftest import suite_rows, synthesize

LONG_OUTPUT = "print('x' * 1500)"  # stdout gets half the cap


def chatty_writer() -> Writer:
    """One tool call that prints 1500 characters, then the answer."""
    yield ToolStep("Print a lot.", LONG_OUTPUT)
    return AnswerStep("Done.", "x")


def run(pool, max_turns: int, observation_max_chars: int):
    async def go():
        session = await pool.pool.open_session(Image.new("RGB", (56, 56), "red"))
        try:
            return await run_program(chatty_writer(), session, max_turns, 15.0, observation_max_chars)
        finally:
            await session.close()

    return pool.call(go(), timeout_s=60)


def test_an_observation_is_cut_at_the_configured_cap(pool) -> None:
    cut = run(pool, max_turns=6, observation_max_chars=400).turns[0].observation.text
    whole = run(pool, max_turns=6, observation_max_chars=4000).turns[0].observation.text
    assert "truncated" in cut and len(cut) < 500
    assert "truncated" not in whole and "x" * 1500 in whole


def test_a_trajectory_longer_than_the_turn_budget_is_rejected(pool) -> None:
    with pytest.raises(Rejected, match="too_many_turns"):
        run(pool, max_turns=1, observation_max_chars=4000)


def test_the_pipeline_takes_its_turn_budget_from_the_rollout_settings(pool) -> None:
    # A planned failure makes a count trajectory three turns: typo, fix, answer.
    rows = suite_rows(["count"], 1, difficulty="easy")
    [kept] = synthesize(pool, rows, failure_rate=1.0)
    [rejected] = synthesize(pool, rows, failure_rate=1.0, rollout=RolloutOverrides(max_turns=2))
    assert kept.kept, (kept.reason, kept.detail)
    assert rejected.reason == "too_many_turns"


def test_a_config_on_its_own_inherits_the_library_defaults() -> None:
    loop = SynthesisConfig(rollout=RolloutOverrides(observation_max_chars=1000)).loop_settings
    assert (loop.max_turns, loop.observation_max_chars) == (6, 1000)
