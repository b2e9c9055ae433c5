"""Accuracy by rule: decide whether an answer is right without asking a model, and say how.

A judge model is slow, costs money and can be wrong; most visual-QA answers (counts, option
letters, numbers, colours, yes/no, formulas) can be decided exactly. So every answer first goes
through these rules, and each result records the rule that decided it, so a surprising score can
be traced. Only when no rule can decide does the result say `needs_judge` (score 0 until the
judge, `judge.py`, gives a verdict).

Tricky cases the rules are built around: "3" vs "13" never match (numbers are compared as
numbers, never as substrings); "1,000" equals "1000"; "5 cm" equals "5"; "(B)", "B. 2π" and
"The answer is B" equal "B" and, given the options, so does the option's own text, and a gold
written as an option's text is matched to its letter; "Yes." equals "yes" and "grey" equals "gray".
On maths sources math-verify only ever confirms: when it says "not equivalent" the judge decides,
as in the original, since a right answer can be written in a form it does not read.

Each benchmark's own published rule lives in `benchmark_rules.py`, chosen by naming the
benchmark as the `kind`.

math-verify guards its parsing with `signal.alarm`, which only works on the main thread: off
the main thread (a thread pool, a Ray actor's worker thread) we call it without its timeout and
rely on the answer length cap to keep sympy's work small.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import Enum
from typing import Any

from codedance_core.rewards.answers import (
    choice_letter,
    colour_words,
    extract_answer,
    is_colour_answer,
    leading_yes_no,
    normalise_words,
    options_in_text,
    parse_single_number,
)

_log = logging.getLogger(__name__)

MAX_ANSWER_CHARS = 1000
EXACT_TOLERANCE = 1e-9
_MATH_VERIFY_TIMEOUT_S = 5


class AnswerKind(str, Enum):
    """Which scorer to apply; AUTO infers one from the gold answer."""

    AUTO = "auto"
    CHOICE = "choice"
    COUNT = "count"
    NUMERIC = "numeric"
    RELAXED_NUMERIC = "relaxed_numeric"
    MATH = "math"
    WORD = "word"
    FREE_FORM = "free_form"


_ANSWER_KINDS = frozenset(kind.value for kind in AnswerKind)


class Rule(str, Enum):
    """The rule that decided a score (recorded with every result)."""

    NO_ANSWER = "no_answer"
    TOO_LONG = "too_long"
    CHOICE = "choice"
    COUNT = "count"
    NUMERIC = "numeric"
    RELAXED_NUMERIC = "relaxed_numeric"
    MATH_VERIFY = "math_verify"
    YES_NO = "yes_no"
    COLOUR = "colour"
    EXACT_MATCH = "exact_match"
    NEEDS_JUDGE = "needs_judge"


@dataclass(frozen=True)
class AccuracyResult:
    """A score in [0, 1], the rule that gave it, the answer text scored, and a human-readable why."""

    score: float
    rule: str
    extracted: str | None
    detail: str
    # A rule's own verdict that a judge, when the run has one, may overrule (math-verify's "not
    # equivalent"); without a judge it stands, so wrong maths answers still score 0.
    ruled: AccuracyResult | None = None

    @property
    def needs_judge(self) -> bool:
        return self.rule == Rule.NEEDS_JUDGE.value


def _result(correct: bool, rule: Rule, prediction: str | None, detail: str) -> AccuracyResult:
    return AccuracyResult(float(correct), rule.value, prediction, detail)


# ---------------------------------------------------------------- choice
def option_letters(options: Sequence[str] | Mapping[str, str]) -> dict[str, str]:
    """Options as {letter: text}: a list is lettered A, B, C, ... in order."""
    if isinstance(options, Mapping):
        return {str(k).strip().upper(): str(v) for k, v in options.items()}
    return {chr(ord("A") + i): str(text) for i, text in enumerate(options)}


def _needs_judge(prediction: str | None, detail: str) -> AccuracyResult:
    return AccuracyResult(0.0, Rule.NEEDS_JUDGE.value, prediction, detail)


def score_choice(prediction: str, gold: str, options: dict[str, str]) -> AccuracyResult | None:
    """Multiple choice by letter or option text; None when the gold is not an option.

    A gold given as an option's text is matched to its letter. An answer that names no option
    ('Because the area ...') is for the judge, as in the original: it may still say the right thing.
    """
    gold_letter = choice_letter(gold, options)
    if gold_letter is None or (options and gold_letter not in options):
        return None
    predicted = choice_letter(prediction, options)
    if predicted is None:
        return _needs_judge(prediction, f"no option named in the answer (gold {gold_letter})")
    return _result(predicted == gold_letter, Rule.CHOICE, prediction, f"{predicted} vs {gold_letter}")


# ---------------------------------------------------------------- numbers
def score_number(
    prediction: str, gold: str, *, relative_tolerance: float, rule: Rule, decisive: bool
) -> AccuracyResult | None:
    """Compare as numbers. None when the gold is not a number, or (not decisive) the answer is not one."""
    gold_number = parse_single_number(gold).value
    if gold_number is None:
        return None
    parsed = parse_single_number(prediction, allow_words=True)
    if parsed.value is None:
        if decisive:
            return _result(False, rule, prediction, f"answer is not one number ({parsed.reason})")
        return None
    if rule is Rule.COUNT:
        correct = parsed.value == gold_number
    else:
        tolerance = max(relative_tolerance * abs(gold_number), EXACT_TOLERANCE)
        correct = math.isclose(parsed.value, gold_number, abs_tol=tolerance)
    return _result(correct, rule, prediction, f"{parsed.value:g} vs {gold_number:g}")


# ---------------------------------------------------------------- words
def score_word(prediction: str, gold: str) -> AccuracyResult | None:
    """Yes/no and colour answers, normalised; None when the gold is neither or the answer is unclear."""
    gold_yes_no = leading_yes_no(gold)
    if gold_yes_no is not None and len(normalise_words(gold).split()) == 1:
        predicted = leading_yes_no(prediction)
        if predicted is None:
            return None
        return _result(predicted == gold_yes_no, Rule.YES_NO, prediction, f"{predicted} vs {gold_yes_no}")
    if is_colour_answer(gold):
        gold_colours = colour_words(gold)
        predicted_colours = colour_words(prediction)
        if len(predicted_colours) != 1:
            return None
        correct = predicted_colours == gold_colours
        return _result(correct, Rule.COLOUR, prediction, f"{predicted_colours} vs {gold_colours}")
    return None


# ---------------------------------------------------------------- math
def _boxed(text: str) -> str:
    return text if "\\boxed" in text else "\\boxed{" + text + "}"


def math_equivalent(prediction: str, gold: str) -> bool | None:
    """math-verify equivalence; None when either side does not parse as mathematics."""
    from math_verify import parse, verify

    on_main_thread = threading.current_thread() is threading.main_thread()
    timeout = _MATH_VERIFY_TIMEOUT_S if on_main_thread else None
    try:
        gold_parsed = parse(_boxed(gold), parsing_timeout=timeout)
        predicted = parse(_boxed(prediction), parsing_timeout=timeout)
        if not gold_parsed or not predicted:
            return None
        return bool(verify(gold_parsed, predicted, timeout_seconds=timeout))
    except Exception as error:  # noqa: BLE001 - math-verify raises many types; undecided, not wrong
        _log.debug("math-verify failed on %r vs %r: %s", prediction, gold, error)
        return None


def _looks_mathematical(gold: str) -> bool:
    return any(ch.isdigit() for ch in gold) or any(mark in gold for mark in "\\^=+*/_")


def score_math(prediction: str, gold: str) -> AccuracyResult | None:
    """math-verify's verdict; None when it cannot parse, or the answer is too long to parse safely."""
    if len(prediction) >= MAX_ANSWER_CHARS:  # sympy on a page of text can run for minutes
        return None
    equivalent = math_equivalent(prediction, gold)
    if equivalent is None:
        return None
    return _result(equivalent, Rule.MATH_VERIFY, prediction, "equivalent" if equivalent else "not equivalent")


def score_math_source(prediction: str, gold: str, options: dict[str, str]) -> AccuracyResult | None:
    """Maths answers: the option chosen, a plain number, then math-verify, then the judge.

    A right answer math-verify cannot confirm is still right (an unusual notation, a unit it does
    not read, words around the value), so "not equivalent" goes to the judge rather than scoring
    0, as in the original; only an equivalence is decided here. None: nothing applies.
    """
    if options or _is_letter(gold):
        chosen = score_choice(prediction, gold, options)
        if chosen is not None and not chosen.needs_judge:
            return chosen
        if chosen is not None:  # the answer names no option: compare it with the gold option's text
            gold = options.get(choice_letter(gold, options) or "", "")
            if not gold:
                return chosen
    decided = score_number(prediction, gold, relative_tolerance=0.0, rule=Rule.NUMERIC, decisive=False)
    if decided is not None:
        return decided
    maths = score_math(prediction, gold)
    if maths is not None and not maths.score:
        return replace(_needs_judge(prediction, "math-verify: not equivalent; the judge decides"), ruled=maths)
    return maths


# ---------------------------------------------------------------- entry points
def _exact_or_judge(prediction: str, gold: str) -> AccuracyResult:
    if normalise_words(prediction) == normalise_words(gold) and normalise_words(gold):
        return _result(True, Rule.EXACT_MATCH, prediction, "same text after normalisation")
    return _needs_judge(prediction, "no rule can decide")


def _score_auto(prediction: str, gold: str, options: dict[str, str]) -> AccuracyResult:
    """The first rule that fits the gold and can read the answer; else exact text, else the judge."""
    attempts = [
        lambda: score_choice(prediction, gold, options) if options or _is_letter(gold) else None,
        lambda: score_number(prediction, gold, relative_tolerance=0.0, rule=Rule.NUMERIC, decisive=False),
        lambda: score_word(prediction, gold),
        lambda: score_math(prediction, gold) if _looks_mathematical(gold) else None,
    ]
    for attempt in attempts:
        result = attempt()
        if result is not None:
            return result
    return _exact_or_judge(prediction, gold)


def _is_letter(gold: str) -> bool:
    stripped = gold.strip().strip("().").strip()
    return len(stripped) == 1 and stripped.isalpha() and stripped.isupper()


def score_answer(
    prediction: str | None,
    gold: str,
    *,
    kind: AnswerKind | str = AnswerKind.AUTO,
    options: Sequence[str] | Mapping[str, str] | None = None,
    relative_tolerance: float = 0.05,
    max_answer_chars: int | None = MAX_ANSWER_CHARS,
    question: str = "",
    metadata: Mapping[str, Any] | None = None,
) -> AccuracyResult:
    """Score an extracted answer against the gold answer with the rule `kind` names (or inferred).

    `kind` is an `AnswerKind` or the name of a benchmark's own rule (`benchmark_rules.py`).
    `relative_tolerance` applies to RELAXED_NUMERIC only; AUTO and NUMERIC compare numbers exactly.
    A kind that does not fit the gold (a relaxed-numeric source whose gold is a word) falls back
    to AUTO. Options not given are read from the question when it lists them ('(A) x (B) y').
    `max_answer_chars` None: no length cap (math sources, as in the original).
    """
    if prediction is None or not prediction.strip():
        return AccuracyResult(0.0, Rule.NO_ANSWER.value, prediction, "no complete <answer> block")
    if max_answer_chars is not None and len(prediction) >= max_answer_chars:
        return AccuracyResult(0.0, Rule.TOO_LONG.value, None, f"answer of {len(prediction)} characters")
    if str(getattr(kind, "value", kind)) not in _ANSWER_KINDS:
        # Benchmark rules are built from this module's rules, so that module is imported here.
        from codedance_core.rewards.benchmark_rules import score_benchmark

        return score_benchmark(
            str(kind), prediction, gold, options=options, question=question, metadata=metadata
        )
    kind = AnswerKind(kind)
    lettered = option_letters(options) if options else options_in_text(question)
    decided: AccuracyResult | None = None
    if kind is AnswerKind.CHOICE:
        decided = score_choice(prediction, gold, lettered)
    elif kind is AnswerKind.COUNT:
        decided = score_number(prediction, gold, relative_tolerance=0.0, rule=Rule.COUNT, decisive=True)
    elif kind in (AnswerKind.NUMERIC, AnswerKind.RELAXED_NUMERIC):
        relaxed = kind is AnswerKind.RELAXED_NUMERIC
        decided = score_number(
            prediction,
            gold,
            relative_tolerance=relative_tolerance if relaxed else 0.0,
            rule=Rule.RELAXED_NUMERIC if relaxed else Rule.NUMERIC,
            decisive=True,
        )
    elif kind is AnswerKind.MATH:
        decided = score_math_source(prediction, gold, lettered)
    elif kind is AnswerKind.WORD:
        decided = score_word(prediction, gold)
    elif kind is AnswerKind.FREE_FORM:
        decided = _exact_or_judge(prediction, gold)
    return decided or _score_auto(prediction, gold, lettered)


def score_response(response: str, gold: str, **kwargs: object) -> AccuracyResult:
    """Extract the answer block from a full response, then `score_answer` it."""
    return score_answer(extract_answer(response).text, gold, **kwargs)  # type: ignore[arg-type]
