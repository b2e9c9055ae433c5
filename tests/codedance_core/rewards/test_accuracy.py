"""Accuracy rules: each row is an answer, a gold answer, how to score it, and what must come out."""

from __future__ import annotations

import threading

import pytest

from codedance_core.rewards.accuracy import (
    AnswerKind,
    Rule,
    math_equivalent,
    option_letters,
    score_answer,
    score_response,
)

OPTIONS = ["dog", "cat", "horse"]

CASES = [
    # prediction, gold, keyword arguments, expected score, expected rule
    # counts and numbers: compared as numbers, never as substrings
    ("3", "13", {}, 0.0, Rule.NUMERIC),
    ("13", "3", {}, 0.0, Rule.NUMERIC),
    ("1,000", "1000", {}, 1.0, Rule.NUMERIC),
    ("1000", "1,000", {}, 1.0, Rule.NUMERIC),
    ("5 cm", "5", {}, 1.0, Rule.NUMERIC),
    ("5cm", "5", {}, 1.0, Rule.NUMERIC),
    ("There are 3 red circles.", "3", {}, 1.0, Rule.NUMERIC),
    ("three", "3", {}, 1.0, Rule.NUMERIC),
    ("-3", "3", {}, 0.0, Rule.NUMERIC),
    ("The answer is -3", "-3", {}, 1.0, Rule.NUMERIC),
    ("45%", "45", {}, 1.0, Rule.NUMERIC),
    ("$\\boxed{12}$", "12", {}, 1.0, Rule.NUMERIC),
    ("3", "3", {"kind": "count"}, 1.0, Rule.COUNT),
    ("13", "3", {"kind": "count"}, 0.0, Rule.COUNT),
    ("3.5", "3", {"kind": "count"}, 0.0, Rule.COUNT),
    ("none", "0", {"kind": "count"}, 1.0, Rule.COUNT),
    ("3 or 4", "3", {"kind": "count"}, 0.0, Rule.COUNT),
    ("I cannot tell", "3", {"kind": "count"}, 0.0, Rule.COUNT),
    # relaxed numeric (ChartQA): within 5% of the gold
    ("42.1", "44", {"kind": "relaxed_numeric"}, 1.0, Rule.RELAXED_NUMERIC),
    ("41", "44", {"kind": "relaxed_numeric"}, 0.0, Rule.RELAXED_NUMERIC),
    ("42.1", "44", {"kind": "numeric"}, 0.0, Rule.NUMERIC),
    ("42.1", "44", {}, 0.0, Rule.NUMERIC),  # no tolerance unless the source asks for it
    ("Germany", "germany", {"kind": "relaxed_numeric"}, 1.0, Rule.EXACT_MATCH),
    # multiple choice: by letter in any dress, or by option text
    ("(B)", "B", {}, 1.0, Rule.CHOICE),
    ("B", "(B)", {}, 1.0, Rule.CHOICE),
    ("B.", "B", {}, 1.0, Rule.CHOICE),
    ("Option B", "B", {}, 1.0, Rule.CHOICE),
    ("The answer is (C)", "C", {}, 1.0, Rule.CHOICE),
    ("C", "B", {}, 0.0, Rule.CHOICE),
    ("B. cat", "B", {"options": OPTIONS}, 1.0, Rule.CHOICE),
    ("cat", "B", {"options": OPTIONS}, 1.0, Rule.CHOICE),
    ("B", "cat", {"options": OPTIONS}, 1.0, Rule.CHOICE),
    ("horse", "B", {"options": OPTIONS}, 0.0, Rule.CHOICE),
    ("a cat", "A", {}, 0.0, Rule.NEEDS_JUDGE),  # names no option: the judge reads it
    ("B", "B", {"options": {"A": "dog", "B": "cat"}, "kind": "choice"}, 1.0, Rule.CHOICE),
    # yes/no and colours, normalised
    ("Yes.", "yes", {}, 1.0, Rule.YES_NO),
    ("yes, it is", "Yes", {}, 1.0, Rule.YES_NO),
    ("No", "yes", {}, 0.0, Rule.YES_NO),
    ("grey", "gray", {}, 1.0, Rule.COLOUR),
    ("Dark grey.", "gray", {}, 1.0, Rule.COLOUR),
    ("The star is red", "Red", {}, 1.0, Rule.COLOUR),
    ("blue", "red", {}, 0.0, Rule.COLOUR),
    # mathematics through math-verify
    ("\\frac{1}{2}", "0.5", {}, 1.0, Rule.MATH_VERIFY),
    ("x+1", "1+x", {}, 1.0, Rule.MATH_VERIFY),
    ("sqrt(3)/2", "\\frac{\\sqrt{3}}{2}", {}, 1.0, Rule.MATH_VERIFY),
    ("60^\\circ", "60", {}, 1.0, Rule.MATH_VERIFY),
    ("3 or 4", "4", {}, 0.0, Rule.MATH_VERIFY),
    ("2\\pi", "\\pi", {"kind": "math"}, 0.0, Rule.NEEDS_JUDGE),  # math sources: "not equivalent" -> judge
    ("3.0", "3", {"kind": "math"}, 1.0, Rule.NUMERIC),
    # free text: exact after normalisation, else the judge
    ("the red car", "red car", {}, 1.0, Rule.EXACT_MATCH),
    ("a blue sedan", "red car", {}, 0.0, Rule.NEEDS_JUDGE),
    ("on the couch", "on the sofa", {"kind": "free_form"}, 0.0, Rule.NEEDS_JUDGE),
    # nothing to score
    (None, "3", {}, 0.0, Rule.NO_ANSWER),
    ("   ", "3", {}, 0.0, Rule.NO_ANSWER),
    ("3" + " " * 999, "3", {}, 0.0, Rule.TOO_LONG),
]


@pytest.mark.parametrize(("prediction", "gold", "kwargs", "score", "rule"), CASES)
def test_rule_table(prediction, gold, kwargs, score, rule) -> None:
    result = score_answer(prediction, gold, **kwargs)
    assert (result.score, result.rule) == (score, rule.value), result.detail


def test_judge_is_needed_only_when_no_rule_decides() -> None:
    assert score_answer("a blue sedan", "red car").needs_judge
    assert not score_answer("3", "13").needs_judge


def test_answer_length_limit_is_configurable() -> None:
    assert score_answer("12345", "12345", max_answer_chars=5).rule == Rule.TOO_LONG.value
    assert score_answer("1234", "1234", max_answer_chars=5).score == 1.0


def test_score_response_reads_the_answer_block_only() -> None:
    response = "<think>3 or 13? I count 13.</think><answer>3</answer>"
    result = score_response(response, "3", kind=AnswerKind.COUNT)
    assert (result.score, result.extracted) == (1.0, "3")
    assert score_response("<think>the answer is 3</think>", "3").rule == Rule.NO_ANSWER.value


def test_option_letters_from_list_and_mapping() -> None:
    assert option_letters(["dog", "cat"]) == {"A": "dog", "B": "cat"}
    assert option_letters({"a": "dog"}) == {"A": "dog"}


def test_math_verify_works_off_the_main_thread() -> None:
    results: list[bool | None] = []
    worker = threading.Thread(target=lambda: results.append(math_equivalent("\\frac{2}{4}", "0.5")))
    worker.start()
    worker.join(timeout=30)
    assert results == [True]


def test_unparsable_mathematics_is_undecided_not_wrong() -> None:
    assert math_equivalent("", "3") is None
