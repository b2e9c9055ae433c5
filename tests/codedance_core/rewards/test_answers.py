"""Answer extraction and the normalisations the rules share."""

from __future__ import annotations

import pytest

from codedance_core.rewards.answers import (
    colour_words,
    extract_answer,
    is_colour_answer,
    leading_yes_no,
    normalise_words,
    parse_single_number,
    unwrap_latex,
)


def test_extract_the_single_answer() -> None:
    extracted = extract_answer("<think>hmm</think>\n<answer> 42 </answer>")
    assert (extracted.text, extracted.n_blocks) == ("42", 1)


def test_several_answers_take_the_last_complete_one() -> None:
    extracted = extract_answer("<answer>3</answer> wait <answer>4</answer> <answer>5")
    assert (extracted.text, extracted.n_blocks) == ("4", 2)


def test_no_complete_answer_is_none() -> None:
    assert extract_answer("<answer>5").text is None
    assert extract_answer("just 5").n_blocks == 0


@pytest.mark.parametrize(
    ("text", "value"),
    [("1,000", 1000.0), ("5 cm", 5.0), ("-2.5", -2.5), (".5", 0.5), ("45%", 45.0), ("about 7 apples", 7.0)],
)
def test_parse_single_number(text: str, value: float) -> None:
    assert parse_single_number(text).value == value


@pytest.mark.parametrize("text", ["3 or 4", "\\frac{1}{2}", "1/2", "x+1", "5 - 3", "two", ""])
def test_parse_single_number_refuses(text: str) -> None:
    assert parse_single_number(text).value is None


def test_number_words_only_when_allowed() -> None:
    assert parse_single_number("two", allow_words=True).value == 2.0
    assert parse_single_number("two or three", allow_words=True).value is None


def test_words_and_colours_and_yes_no() -> None:
    assert normalise_words("The Gray cat.") == "gray cat"
    assert unwrap_latex("$\\boxed{\\text{cat}}$") == "cat"
    assert colour_words("dark grey and violet") == {"gray", "purple"}
    assert is_colour_answer("light blue") and not is_colour_answer("red car")
    assert (
        leading_yes_no("Yes.") == "yes"
        and leading_yes_no("True") == "yes"
        and leading_yes_no("maybe") is None
    )
