"""Whole-trajectory scores and batch rewards: the parts of docs/method.md §4 put together."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest

from codedance_core.config.rewards import JudgeConfig, RewardConfig
from codedance_core.rewards.accuracy import AnswerKind
from codedance_core.rewards.bat import difficulty_weight
from codedance_core.rewards.judge import LLMJudge
from codedance_core.rewards.score import (
    TrajectoryInput,
    batch_rewards,
    batch_token_advantages,
    is_math_source,
    score_trajectories,
    score_trajectory,
    scorer_for_source,
)

GOOD = "<think>count them</think><answer>{}</answer>"
BAD_FORMAT = "<think>count them<answer>{}</answer>"


@pytest.mark.parametrize(
    ("source", "math"),
    [
        ("suite_math", True),
        ("thinklite_eureka", True),
        ("xince", True),  # the original weights xince as maths
        ("MathVista", True),
        ("mathverse_mini", True),
        ("vstar", False),
        ("chart", False),
        ("suite_count", False),
    ],
)
def test_math_sources(source: str, math: bool) -> None:
    assert is_math_source(source, RewardConfig()) is math


def test_scorer_per_source() -> None:
    config = RewardConfig()
    assert scorer_for_source("chart", config) is AnswerKind.RELAXED_NUMERIC
    assert scorer_for_source("suite_count", config) is AnswerKind.COUNT
    assert scorer_for_source("suite_math", config) is AnswerKind.MATH
    assert scorer_for_source("vstar", config) is AnswerKind.AUTO
    assert scorer_for_source("vstar", RewardConfig(scorer_by_source={"vstar": "choice"})) is AnswerKind.CHOICE


def test_correct_answer_with_one_failed_call() -> None:
    score = score_trajectory(GOOD.format("3"), "3", "suite_count", ["ok", "error", None])
    assert (score.accuracy, score.format_penalty, score.base, score.rule) == (1.0, 0.0, 1.0, "count")
    assert (score.n_calls, score.n_success, score.r_tool, score.valid) == (2, 1, 0.75, True)


def test_math_source_weights() -> None:
    score = score_trajectory(BAD_FORMAT.format("\\frac{1}{2}"), "0.5", "suite_math", ["ok"])
    assert score.base == pytest.approx(1.2 * 1.0 + 0.4 * -1.0)
    assert score.r_tool == 2.0 and score.rule == "math_verify"


def test_wrong_answer_without_calls() -> None:
    score = score_trajectory(GOOD.format("13"), "3", "suite_count")
    assert (score.accuracy, score.base, score.r_tool) == (0.0, 0.0, 0.0)


def test_chart_answers_are_relaxed() -> None:
    assert score_trajectory(GOOD.format("104"), "100", "chart").accuracy == 1.0
    assert score_trajectory(GOOD.format("106"), "100", "chart").accuracy == 0.0


def test_undecidable_without_a_judge_is_a_judge_error() -> None:
    score = score_trajectory(GOOD.format("a blue sedan"), "red car", "vl_agent")
    assert (score.status, score.valid, score.rule) == ("judge_error", False, "judge")


def test_batch_scoring_asks_the_judge_only_for_what_rules_leave(judge_server, tmp_path: Path) -> None:
    items = [
        TrajectoryInput(GOOD.format("3"), "3", "suite_count", ["ok", None]),
        TrajectoryInput(GOOD.format("right: on the couch"), "on the sofa", "vl_agent", question="Where?"),
        TrajectoryInput(GOOD.format("under the table"), "on the sofa", "vl_agent", question="Where?"),
        TrajectoryInput(GOOD.format("garbage"), "on the sofa", "vl_agent", question="Where?"),
    ]
    config = RewardConfig(
        judge=JudgeConfig(
            base_urls=[judge_server.base_url],
            model="m",
            max_retries=1,
            backoff_initial_s=0.01,
            cache_path=str(tmp_path / "j.sqlite"),
        )
    )
    scores = asyncio.run(score_trajectories(items, config, LLMJudge(config.judge)))
    assert [(s.accuracy, s.rule, s.status) for s in scores] == [
        (1.0, "count", "scored"),
        (1.0, "judge", "scored"),
        (0.0, "judge", "scored"),
        (0.0, "judge", "judge_error"),
    ]
    assert judge_server.seen_answers.keys() == {"right: on the couch", "under the table", "garbage"}


def test_batch_rewards_use_the_groups_mean_accuracy() -> None:
    # Group "p": two correct (one with a format error), two wrong; all used tools successfully.
    scores = [
        score_trajectory(GOOD.format("3"), "3", "suite_count", ["ok", None]),
        score_trajectory(BAD_FORMAT.format("3"), "3", "suite_count", ["ok", None]),
        score_trajectory(GOOD.format("4"), "3", "suite_count", ["ok", None]),
        score_trajectory(GOOD.format("5"), "3", "suite_count", ["ok", None]),
    ]
    batch = batch_rewards(scores, ["p"] * 4)
    d = difficulty_weight(0.5)  # mu from accuracy is 0.5; from the score it would have been 0.45
    assert batch.group_mean_accuracy == {"p": 0.5} and batch.difficulty["p"] == pytest.approx(d)
    expected = [1.0 + d * 1.5, 1.0 - 0.2 + d * 1.5, d * 0.5, d * 0.5]
    assert batch.rewards.tolist() == pytest.approx(expected)
    assert batch_rewards(scores, ["p"] * 4, RewardConfig(use_bat=False)).rewards.tolist() == pytest.approx(
        [1.0, 0.8, 0.0, 0.0]
    )


def test_judge_errors_are_left_out_of_mu_and_marked_invalid() -> None:
    scores = [
        score_trajectory(GOOD.format("3"), "3", "suite_count", ["ok", None]),
        score_trajectory(GOOD.format("a blue sedan"), "red car", "vl_agent", ["ok", None]),
        score_trajectory(GOOD.format("a blue sedan"), "red car", "vl_agent"),
    ]
    batch = batch_rewards(scores, ["a", "a", "b"])
    assert batch.group_mean_accuracy["a"] == 1.0 and np.isnan(batch.group_mean_accuracy["b"])
    assert batch.valid.tolist() == [True, False, False]


def test_token_advantages_of_a_batch() -> None:
    scores = [
        score_trajectory(GOOD.format("3"), "3", "suite_count", ["ok", None]),
        score_trajectory(GOOD.format("4"), "3", "suite_count", ["error", None]),
        score_trajectory(GOOD.format("a blue sedan"), "red car", "vl_agent", [None]),
    ]
    group_ids = ["p", "p", "q"]
    statuses = [["ok", None], ["error", None], [None]]
    spans = [[(2, 4), (6, 8)], [(2, 4), (6, 8)], [(1, 3)]]
    batch = batch_rewards(scores, group_ids)
    with_turns = batch_token_advantages(batch, group_ids, statuses, spans, [8, 8, 5])
    without = batch_token_advantages(
        batch, group_ids, statuses, spans, [8, 8, 5], RewardConfig(use_turn_level=False)
    )
    assert with_turns[0][0] > 0 > with_turns[1][0]  # the correct one is above its group's mean
    assert (
        with_turns[0][2] > with_turns[0][0] and with_turns[1][2] < with_turns[1][0]
    )  # ok vs failed call turn
    assert with_turns[0][6] == with_turns[0][0]  # the final turn carries no correction
    assert np.all(without[0] == without[0][0]) and np.all(without[1] == without[1][0])
    assert with_turns[2].tolist() == [0.0] * 5  # judge error: excluded


def test_every_suite_gold_is_decided_by_a_rule() -> None:
    """The procedural suite promises exact answers: none of them may need the judge."""
    from codedance_core.config.data import SuiteSpec
    from codedance_core.data.suite import make_row

    spec = SuiteSpec(n=40, seed=3)
    for index in range(spec.n):
        row = make_row(spec, index)
        gold = row["reward_model"]["ground_truth"]
        score = score_trajectory(GOOD.format(gold), gold, row["data_source"])
        assert (score.accuracy, score.valid) == (1.0, True), (row["data_source"], gold, score.detail)
        assert score.rule != "judge"


def test_xince_rows_get_the_math_weights() -> None:
    score = score_trajectory(BAD_FORMAT.format("\\frac{1}{2}"), "0.5", "xince", ["ok"])
    assert score.math_source and score.base == pytest.approx(1.2 * 1.0 + 0.4 * -1.0)
    assert score.r_tool == 2.0


def test_without_a_judge_math_verify_rejecting_a_math_answer_stands() -> None:
    # A run with no judge keeps the rule's verdict (recorded as math-verify's, with why): dropping
    # every wrong maths answer as judge_error would leave GRPO only the right ones to learn from.
    score = score_trajectory(GOOD.format("2\\pi"), "\\pi", "thinklite_eureka")
    assert (score.accuracy, score.rule, score.status) == (0.0, "math_verify", "scored")
    assert "no judge configured" in score.detail


def test_the_judge_decides_a_math_answer_math_verify_rejects(judge_server, tmp_path: Path) -> None:
    items = [
        TrajectoryInput(GOOD.format("right: 2 pi radians"), "2\\pi", "xince", question="Angle?"),
        TrajectoryInput(GOOD.format("4\\pi"), "2\\pi", "xince", question="Angle?"),
    ]
    config = RewardConfig(
        judge=JudgeConfig(base_urls=[judge_server.base_url], model="m", cache_path=str(tmp_path / "j.sqlite"))
    )
    scores = asyncio.run(score_trajectories(items, config, LLMJudge(config.judge)))
    assert [(s.accuracy, s.rule, s.status) for s in scores] == [(1.0, "judge", "scored"), (0.0, "judge", "scored")]


@pytest.mark.parametrize(
    "answer", ["B", "(B)", "B. 2π", "The answer is B.", "Answer: B", "2\\pi", "$2\\pi$"]
)
def test_multiple_choice_on_math_sources(answer: str) -> None:
    question = "What is the circumference?\nChoices:\n(A) \\pi\n(B) 2\\pi\n(C) 4\\pi"
    for gold in ("B", "2\\pi"):  # a gold written as the option's text is matched to its letter
        score = score_trajectory(GOOD.format(answer), gold, "thinklite_eureka", question=question)
        assert (score.accuracy, score.rule) == (1.0, "choice"), (answer, gold, score.detail)
    wrong = score_trajectory(GOOD.format("C"), "B", "thinklite_eureka", question=question)
    assert (wrong.accuracy, wrong.rule) == (0.0, "choice")


def test_long_answers_on_other_sources_score_0_and_break_the_format() -> None:
    long_answer = "3 " + "x" * 1000
    score = score_trajectory(GOOD.format(long_answer), "3", "vstar")
    assert (score.accuracy, score.format_penalty, score.rule) == (0.0, -1.0, "too_long")
    assert score.base == pytest.approx(-0.2)
    short = score_trajectory(GOOD.format("3"), "3", "vstar")
    assert (short.accuracy, short.format_penalty) == (1.0, 0.0)


def test_long_answers_on_math_sources_are_not_capped() -> None:
    long_answer = "The area is 12 square units. " + "Explaining it at length. " * 45
    score = score_trajectory(GOOD.format(long_answer), "12", "thinklite_eureka")
    assert len(long_answer) >= 1000
    assert (score.accuracy, score.format_penalty, score.rule) == (1.0, 0.0, "numeric")
