"""BAT formulas, checked against the values docs/method.md §4 states and against hand computation."""

from __future__ import annotations

import numpy as np
import pytest

from codedance_core.rewards.bat import (
    count_tool_calls,
    difficulty_weight,
    discounted_turn_values,
    group_advantages,
    token_advantages,
    tool_reward,
    turn_corrections,
    turn_value_stats,
)


@pytest.mark.parametrize(("mu", "expected"), [(0.0, 0.78), (0.5, 0.30), (0.673, 0.0), (1.0, -0.18)])
def test_difficulty_weight_matches_the_paper(mu: float, expected: float) -> None:
    assert difficulty_weight(mu) == pytest.approx(expected, abs=0.005)


def test_difficulty_weight_parameters_and_arrays() -> None:
    assert difficulty_weight(0.5, gamma=4.0, beta=0.1) == pytest.approx(0.4)
    weights = difficulty_weight(np.array([0.0, 1.0]))
    assert isinstance(weights, np.ndarray) and weights[0] > 0 > weights[1]


@pytest.mark.parametrize(
    ("calls", "successes", "correct", "math_source", "expected"),
    [
        (0, 0, True, False, 0.0),
        (2, 2, True, False, 1.5),
        (2, 1, True, False, 0.75),
        (2, 1, False, False, 0.25),
        (4, 4, True, True, 2.0),
        (4, 2, False, True, 0.5),
    ],
)
def test_tool_reward(calls: int, successes: int, correct: bool, math_source: bool, expected: float) -> None:
    assert tool_reward(calls, successes, correct, math_source) == pytest.approx(expected)


def test_tool_reward_rejects_impossible_counts() -> None:
    with pytest.raises(ValueError):
        tool_reward(1, 2, True, False)


def test_only_ok_is_a_success_and_no_call_is_not_a_call() -> None:
    statuses = ["ok", "error", "timeout", "parse_error", "ok", None]  # None: the answer turn
    assert count_tool_calls(statuses) == (5, 2)
    assert count_tool_calls([None, None]) == (0, 0)  # e.g. after the turn-limit "answer now" message


def test_group_advantages_by_hand() -> None:
    advantages = group_advantages([1.0, 0.0, 5.0, 5.0, 7.0], ["a", "a", "b", "b", "c"])
    std_a = np.std([1.0, 0.0], ddof=1)
    assert advantages[0] == pytest.approx(0.5 / (std_a + 1e-6))
    assert advantages[1] == pytest.approx(-0.5 / (std_a + 1e-6))
    assert advantages[2:].tolist() == [0.0, 0.0, 0.0]  # equal rewards, and a lone member


def test_group_advantages_length_mismatch() -> None:
    with pytest.raises(ValueError):
        group_advantages([1.0], ["a", "b"])


def test_discounted_turn_values_backwards() -> None:
    values = discounted_turn_values(["ok", "error", None], discount=0.2, fail_penalty=-0.5)
    assert values == pytest.approx([-0.1, -0.5, 0.0])


def test_turn_corrections_normalise_non_final_turns_over_the_batch() -> None:
    batch = [["error", "ok", None], ["ok", None], [None]]
    corrections = turn_corrections(batch)
    raw_non_final = np.array([-0.5 + 0.2 * 0.0, 0.0, 0.0])  # traj 0: turn 0 failed, turn 1 ok; traj 1: ok
    expected = (raw_non_final - raw_non_final.mean()) / (raw_non_final.std() + 1e-6)
    assert corrections[0][:2] == pytest.approx(expected[:2].tolist())
    assert corrections[1][0] == pytest.approx(expected[2])
    assert [values[-1] for values in corrections] == [0.0, 0.0, 0.0]
    assert corrections[0][0] < 0 < corrections[0][1]


def test_turn_corrections_all_equal_is_zero() -> None:
    assert turn_corrections([["ok", None], ["ok", "ok", None]]) == [[0.0, 0.0], [0.0, 0.0, 0.0]]
    assert turn_corrections([[]]) == [[]]


def test_token_advantages_map_turn_values_onto_spans() -> None:
    advantages = token_advantages(1.0, [-1.0, 2.0], [(2, 4), (6, 8)], length=10, weight=0.2)
    assert advantages.tolist() == pytest.approx([1, 1, 0.8, 0.8, 1, 1, 1.4, 1.4, 1, 1])


@pytest.mark.parametrize("spans", [[(0, 11)], [(4, 6), (2, 5)], [(5, 3)]])
def test_token_advantages_reject_bad_spans(spans: list[tuple[int, int]]) -> None:
    with pytest.raises(ValueError):
        token_advantages(0.0, [0.0] * len(spans), spans, length=10)


BATCH = [["error", "ok", None], ["ok", None], [None], ["timeout", "error", "ok", None], ["ok", "ok", None]]


def test_statistics_of_two_shards_add_up_to_those_of_the_whole_batch() -> None:
    first, second = BATCH[:2], BATCH[2:]
    combined = turn_value_stats(first) + turn_value_stats(second)
    whole = np.array([value for statuses in BATCH for value in discounted_turn_values(statuses, 0.2, -0.5)[:-1]])
    assert combined.count == whole.size
    assert combined.mean == pytest.approx(whole.mean(), abs=1e-12)
    assert combined.std == pytest.approx(whole.std(), abs=1e-12)
    # Each shard normalised with the combined statistics is the whole batch normalised.
    sharded = turn_corrections(first, stats=combined) + turn_corrections(second, stats=combined)
    for mine, expected in zip(sharded, turn_corrections(BATCH), strict=True):
        assert mine == pytest.approx(expected, abs=1e-9)
    # A shard normalised over itself alone is not.
    assert turn_corrections(first)[0] != pytest.approx(turn_corrections(BATCH)[0], abs=1e-3)


def test_empty_statistics_normalise_nothing() -> None:
    empty = turn_value_stats([[None], []])
    assert (empty.count, empty.mean, empty.std) == (0.0, 0.0, 0.0)
    assert turn_corrections([["ok", None]], stats=empty) == [[0.0, 0.0]]
