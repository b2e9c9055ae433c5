"""Answer extraction and the normalisations the rules share."""

from __future__ import annotations

import pytest

from codedance_core.rewards.answers import (
    choice_letter,
    colour_words,
    extract_answer,
    is_colour_answer,
    leading_yes_no,
    normalise_words,
    options_in_text,
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


OPTIONS = {"A": "$\\pi$", "B": "2π", "C": "4π", "D": "145°"}


@pytest.mark.parametrize(
    ("answer", "letter"),
    [
        ("B", "B"),
        ("(B)", "B"),
        ("B.", "B"),
        ("B) 2π", "B"),
        ("B. 2π", "B"),
        ("The answer is B", "B"),
        ("The answer is B.", "B"),
        ("Answer: B", "B"),
        ("**B**", "B"),
        ("\\boxed{B}", "B"),
        ("The correct option is (B) 2π.", "B"),
        ("2π", "B"),
        ("2\\pi", "B"),
        ("145", "D"),  # a number option matches its number
        ("Because", None),
        ("A cat", None),
        ("4 pi or 2 pi", None),
    ],
)
def test_choice_letter_reads_the_forms_models_write(answer: str, letter: str | None) -> None:
    assert choice_letter(answer, OPTIONS) == letter


def test_options_listed_in_text() -> None:
    assert options_in_text("A. 2π; B. 4π; C. 8π") == {"A": "2π", "B": "4π", "C": "8π"}
    assert options_in_text("Choices:\nA:60°\nB:30°") == {"A": "60°", "B": "30°"}
    assert options_in_text("Colour?\n(A) red\n(B) blue\nAnswer with the letter.") == {"A": "red", "B": "blue"}
    assert options_in_text("Answer with a letter, e.g., A, B, C, D.") == {}
