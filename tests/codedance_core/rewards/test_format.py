"""The format penalty: -1 for unbalanced think tags or not exactly one answer block."""

from __future__ import annotations

import pytest

from codedance_core.rewards.format import check_format, format_penalty

CASES = [
    ("<think>a</think><answer>3</answer>", 0.0),
    ("<think>a</think><code>x</code><think>b</think><answer>3</answer>", 0.0),
    ("<answer>3</answer>", 0.0),
    ("<think>a<answer>3</answer>", -1.0),
    ("a</think><answer>3</answer>", -1.0),
    ("<think><think>a</think></think><answer>3</answer>", -1.0),
    ("<think>a</think>", -1.0),
    ("<think>a</think><answer>3</answer><answer>4</answer>", -1.0),
    ("<think>a</think><answer>3", -1.0),
    ("<think>a</think></answer>3<answer>", -1.0),
]


@pytest.mark.parametrize(("text", "penalty"), CASES)
def test_format_penalty(text: str, penalty: float) -> None:
    assert format_penalty(text) == penalty


def test_penalty_says_why() -> None:
    assert "think" in check_format("<think>a").reason
    assert "found 2" in check_format("<answer>1</answer><answer>2</answer>").reason
    assert check_format("<answer>1</answer>").reason == ""


def test_an_answer_over_the_cap_is_a_format_error() -> None:
    text = "<think>ok</think><answer>" + "x" * 1000 + "</answer>"
    assert check_format(text).penalty == 0.0  # no cap unless the caller gives one
    capped = check_format(text, max_answer_chars=1000)
    assert capped.penalty == -1.0 and "1000 characters" in capped.reason
    assert check_format("<answer>" + "x" * 999 + "</answer>", max_answer_chars=1000).penalty == 0.0
