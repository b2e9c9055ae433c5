"""Each benchmark scored the way its authors score it, so that our numbers compare with theirs.

A generic rule set (`accuracy.py`) is right for training rewards but not for a results table:
MathVista rounds floats to a per-item precision, ChartQA allows 5% on numbers, the
multiple-choice benchmarks compare option letters. Each rule below states the published rule it
follows, in our words, beside the code. The authors' pipelines hand some answers to a language
model (MathVista and MathVerse extract the answer with GPT, VLMEvalKit asks one which option a
rambling answer means); where our rules cannot decide, the result is `needs_judge` and the LLM
judge decides, as the original CodeDance evaluation did.

A rule is chosen by naming the benchmark as the scorer (`evaluation/registry.py`:
`Benchmark.scorer`); `score_answer(kind="mathvista", ...)` lands here. CountBench and PixMo-Count
need no rule of their own: their published metric, an exact integer match (CountBenchQA as
PaliGemma reports it; the Molmo paper for PixMo-Count), is the `count` kind. Multiple-choice answers
are read in every form models write them (`answers.choice_letter`): 'B', '(B)', 'B. 2π',
'The answer is B', or the option's own text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from codedance_core.rewards.accuracy import (
    AccuracyResult,
    Rule,
    option_letters,
    score_choice,
    score_math,
    score_word,
)
from codedance_core.rewards.answers import (
    normalise_words,
    option_key,
    options_in_text,
    parse_single_number,
)

CHARTQA_TOLERANCE = 0.05
MATHVISION_ABS_TOLERANCE = 1e-6


@dataclass(frozen=True)
class BenchmarkItem:
    """What a rule knows of an item besides the answer: gold, options {letter: text}, question, metadata."""

    gold: str
    options: dict[str, str]
    question: str = ""
    metadata: Mapping[str, Any] = field(default_factory=dict)


def benchmark_item(
    gold: str,
    options: Sequence[str] | Mapping[str, str] | None = None,
    question: str = "",
    metadata: Mapping[str, Any] | None = None,
) -> BenchmarkItem:
    """The item with its options lettered: given as a list or mapping, packed into one string
    ('A. 2π; B. 4π', as We-Math's `option` column), or, failing both, listed in the question."""
    lettered = option_letters(options) if options else {}
    if len(lettered) == 1:
        lettered = options_in_text(next(iter(lettered.values()))) or lettered
    return BenchmarkItem(gold.strip(), lettered or options_in_text(question), question, metadata or {})


def _result(correct: bool, rule: Rule, prediction: str, detail: str) -> AccuracyResult:
    return AccuracyResult(float(correct), rule.value, prediction, detail)


def _judge(prediction: str, detail: str) -> AccuracyResult:
    return AccuracyResult(0.0, Rule.NEEDS_JUDGE.value, prediction, detail)


def _same_text(prediction: str, gold: str) -> AccuracyResult | None:
    if normalise_words(gold) and normalise_words(prediction) == normalise_words(gold):
        return _result(True, Rule.EXACT_MATCH, prediction, "same text after normalisation")
    return None


def _number(text: str) -> float | None:
    return parse_single_number(text, allow_words=True).value


# ---------------------------------------------------------------- multiple choice: V*, HR-Bench, We-Math
def score_letter_benchmark(prediction: str, item: BenchmarkItem) -> AccuracyResult:
    """The option the answer names against the gold option.

    V*Bench (SEAL, Wu & Xie 2023) and HR-Bench (Wang et al. 2024, scored with VLMEvalKit's
    multiple-choice evaluation) count an item right when the chosen option is the correct one;
    VLMEvalKit first looks for the option letter, then for an option's text, and only then asks
    a model, our judge. We-Math's evaluation (four_dimensional_metrics) compares the option letter
    read from the response with the gold letter.
    """
    chosen = score_choice(prediction, item.gold, item.options)
    if chosen is not None:
        return chosen
    return _same_text(prediction, item.gold) or _judge(prediction, f"gold {item.gold!r} is not an option")


# ---------------------------------------------------------------- ChartQA
def _chart_number(text: str) -> float | None:
    # A % sign is ignored on both sides: models drop it or add it, and the value is the same.
    return parse_single_number(text.replace("%", " ")).value


def score_chartqa(prediction: str, item: BenchmarkItem) -> AccuracyResult:
    """Relaxed accuracy (ChartQA paper, Masry et al. 2022, §4): a numeric answer is right within 5%
    of the gold, relative to the gold; any other answer must match exactly (case aside). As in the
    reference implementation, a gold of 0 allows no tolerance. Text that is not an exact match is
    left to the judge ('Yes, it is' vs 'Yes')."""
    gold_number = _chart_number(item.gold)
    if gold_number is not None:
        predicted = _chart_number(prediction)
        if predicted is None:
            return _judge(prediction, "answer is not one number")
        if gold_number == 0:
            correct = predicted == 0
        else:
            correct = abs(predicted - gold_number) / abs(gold_number) <= CHARTQA_TOLERANCE + 1e-12
        return _result(correct, Rule.RELAXED_NUMERIC, prediction, f"{predicted:g} vs {gold_number:g}")
    decided = _same_text(prediction, item.gold) or score_word(prediction, item.gold)
    return decided or _judge(prediction, "text answers differ")


# ---------------------------------------------------------------- maths benchmarks, free-form part
def _maths_free_form(prediction: str, gold: str, abs_tolerance: float) -> AccuracyResult:
    """Same text, the same number (within abs_tolerance), or math-verify's equivalence; else the judge."""
    if (same := _same_text(prediction, gold)) is not None:
        return same
    gold_number, predicted = _number(gold), _number(prediction)
    if gold_number is not None and predicted is not None:
        correct = math.isclose(predicted, gold_number, rel_tol=0.0, abs_tol=max(abs_tolerance, 1e-9))
        return _result(correct, Rule.NUMERIC, prediction, f"{predicted:g} vs {gold_number:g}")
    maths = score_math(prediction, gold)
    if maths is not None and maths.score:
        return maths
    return _judge(prediction, "no rule confirms; the judge decides")


# ---------------------------------------------------------------- MathVista
def _mathvista_answer_type(item: BenchmarkItem) -> str:
    given = str(item.metadata.get("answer_type") or "")
    if given:
        return given
    number = _number(item.gold)
    if number is None:
        return "text"
    return "integer" if "." not in item.gold else "float"


def _mathvista_precision(item: BenchmarkItem) -> int:
    given = item.metadata.get("precision")
    try:
        if given is not None and not math.isnan(float(given)):
            return int(float(given))
    except (TypeError, ValueError):
        pass
    return len(item.gold.split(".", 1)[1]) if "." in item.gold else 0


def score_mathvista(prediction: str, item: BenchmarkItem) -> AccuracyResult:
    """MathVista's evaluation (evaluation/calculate_score.py, normalize_extracted_answer, then an
    exact comparison with the gold):
    - multi_choice: a letter is turned into its option's text, which must equal the gold (the gold
      is the option's text); we read the letter or the text (the authors' nearest-option fallback
      by edit distance is the judge's job here);
    - integer: the answer, read as a number, is cut to an integer (3.7 counts as 3, as there);
    - float: rounded to the item's `precision` decimals, then compared (numerically here, so that
      a gold written '0.60' is not lost to string formatting);
    - text and list: the same text.
    """
    question_type = str(item.metadata.get("question_type") or ("multi_choice" if item.options else ""))
    if question_type == "multi_choice":
        chosen = score_choice(prediction, item.gold, item.options)
        if chosen is not None:
            return chosen
    answer_type = _mathvista_answer_type(item)
    gold_number, predicted = _number(item.gold), _number(prediction)
    if answer_type in ("integer", "float") and gold_number is not None:
        if predicted is None:
            maths = score_math(prediction, item.gold)
            if maths is not None and maths.score:
                return maths
            return _judge(prediction, "answer is not one number")
        if answer_type == "integer":
            correct = math.trunc(predicted) == gold_number
        else:
            digits = _mathvista_precision(item)
            correct = round(predicted, digits) == round(gold_number, digits)
        return _result(correct, Rule.NUMERIC, prediction, f"{predicted:g} vs {gold_number:g} ({answer_type})")
    if option_key(prediction) == option_key(item.gold):
        return _result(True, Rule.EXACT_MATCH, prediction, "same text")
    return _judge(prediction, "text answers differ")


# ---------------------------------------------------------------- MathVerse, MATH-Vision
def score_mathverse(prediction: str, item: BenchmarkItem) -> AccuracyResult:
    """MathVerse's evaluation (Zhang et al. 2024, evaluation/score_answer): an answer identical to
    the gold is right without asking; every other answer is judged by GPT against the gold. Its
    multiple-choice golds are letters, with the options written into the question ('Choices:
    A:.. B:..'). We decide letters, identical text, equal numbers and math-verify equivalences
    by rule, and send the rest to the judge."""
    chosen = score_choice(prediction, item.gold, item.options)
    if chosen is not None:
        return chosen
    return _maths_free_form(prediction, item.gold, abs_tolerance=0.0)


def score_mathvision(prediction: str, item: BenchmarkItem) -> AccuracyResult:
    """MATH-Vision's evaluation (Wang et al. 2024, evaluation/utils.py is_equal): items with
    options have a gold letter, compared with the option the answer names; free-form answers are
    right when equal as text, as numbers within 1e-6, or as evaluated expressions (ours: math-verify).
    What these cannot confirm goes to the judge, as in the original CodeDance evaluation."""
    if item.options:
        chosen = score_choice(prediction, item.gold, item.options)
        if chosen is not None:
            return chosen
    return _maths_free_form(prediction, item.gold, abs_tolerance=MATHVISION_ABS_TOLERANCE)


BenchmarkRule = Callable[[str, BenchmarkItem], AccuracyResult]

BENCHMARK_RULES: dict[str, BenchmarkRule] = {
    "vstar": score_letter_benchmark,
    "hrbench": score_letter_benchmark,
    "wemath": score_letter_benchmark,
    "chartqa": score_chartqa,
    "mathvista": score_mathvista,
    "mathverse": score_mathverse,
    "mathvision": score_mathvision,
}


def score_benchmark(
    name: str,
    prediction: str,
    gold: str,
    *,
    options: Sequence[str] | Mapping[str, str] | None = None,
    question: str = "",
    metadata: Mapping[str, Any] | None = None,
) -> AccuracyResult:
    """Score one (present, not over-long) answer with benchmark `name`'s rule."""
    rule = BENCHMARK_RULES.get(name)
    if rule is None:
        raise ValueError(
            f"unknown scorer {name!r}: not an answer kind nor one of {', '.join(BENCHMARK_RULES)}"
        )
    return rule(prediction.strip(), benchmark_item(gold, options, question, metadata))
