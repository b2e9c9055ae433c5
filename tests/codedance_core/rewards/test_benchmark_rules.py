"""Each benchmark scored by its authors' rule: one table per benchmark, looked up through the registry.

Every row is an answer as a model writes it inside <answer>, the gold as the benchmark ships it,
and what the benchmark's own evaluation makes of it. A score of 0 with rule `needs_judge` means
the rules leave it to the LLM judge (as the authors leave it to GPT), never that it is right.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from PIL import Image

from codedance_core.agent.trajectory import Trajectory, TurnRecord
from codedance_core.config.rewards import RewardConfig
from codedance_core.evaluation.registry import get_benchmark, load_items
from codedance_core.evaluation.runner import reward_config_for
from codedance_core.rewards.accuracy import Rule, score_answer
from codedance_core.rewards.benchmark_rules import benchmark_item, score_benchmark
from codedance_core.rewards.score import score_trajectories

CHOICE, NUMERIC, RELAXED, COUNT, MATH, EXACT, JUDGE, YES_NO = (
    Rule.CHOICE,
    Rule.NUMERIC,
    Rule.RELAXED_NUMERIC,
    Rule.COUNT,
    Rule.MATH_VERIFY,
    Rule.EXACT_MATCH,
    Rule.NEEDS_JUDGE,
    Rule.YES_NO,
)

# We-Math ships its options packed in one `option` column; the gold is a letter.
WEMATH = {"options": ["A. 2π; B. 4π; C. 8π; D. 16π; E. No correct answer"]}
# MATH-Vision: an options list and a letter gold; free-form items have no options.
MATHVISION_MC = {"options": ["3", "13", "2\\pi", "4\\pi", "6"]}
# MathVista: the gold is the option's text; rows carry question_type, answer_type and precision.
MATHVISTA_MC = {
    "options": ["145°", "165°", "155°", "135°"],
    "metadata": {"question_type": "multi_choice", "answer_type": "text", "precision": None},
}
MATHVISTA_INT = {"metadata": {"question_type": "free_form", "answer_type": "integer", "precision": None}}
MATHVISTA_FLOAT1 = {"metadata": {"question_type": "free_form", "answer_type": "float", "precision": 1.0}}
MATHVISTA_FLOAT2 = {"metadata": {"question_type": "free_form", "answer_type": "float", "precision": 2.0}}
MATHVISTA_LIST = {"metadata": {"question_type": "free_form", "answer_type": "list", "precision": None}}
# MathVerse writes the choices into the question; its free-form golds are numbers or expressions.
MATHVERSE_MC = {"question": "Find the angle ABC.\nChoices:\nA:60°\nB:30°\nC:45°\nD:90°"}
MATHVERSE_FREE = {"metadata": {"question_type": "free-form"}}
# V*Bench writes "(A) x" options into its question text; HR-Bench has A-D columns.
VSTAR = {
    "question": "What is the color of the cup?\n(A) red\n(B) blue\n(C) green\n(D) white\n"
    "Answer with the option's letter from the given choices directly."
}
HRBENCH = {"options": ["left", "right", "top", "bottom"]}

CASES: list[tuple[str, str | None, str, dict[str, Any], float, Rule]] = [
    # benchmark, answer, gold, item, expected score, expected rule
    ("wemath", "B", "B", WEMATH, 1.0, CHOICE),
    ("wemath", "(B)", "B", WEMATH, 1.0, CHOICE),
    ("wemath", "B. 4π", "B", WEMATH, 1.0, CHOICE),
    ("wemath", "The answer is B.", "B", WEMATH, 1.0, CHOICE),
    ("wemath", "Answer: B", "B", WEMATH, 1.0, CHOICE),
    ("wemath", "4π", "B", WEMATH, 1.0, CHOICE),
    ("wemath", "$4\\pi$", "B", WEMATH, 1.0, CHOICE),
    ("wemath", "C", "B", WEMATH, 0.0, CHOICE),
    ("wemath", "8π", "B", WEMATH, 0.0, CHOICE),
    ("wemath", "Because the radius doubles", "B", WEMATH, 0.0, JUDGE),
    ("mathvision", "A", "A", MATHVISION_MC, 1.0, CHOICE),
    ("mathvision", "(A)", "A", MATHVISION_MC, 1.0, CHOICE),
    ("mathvision", "A. 3", "A", MATHVISION_MC, 1.0, CHOICE),
    ("mathvision", "The answer is A", "A", MATHVISION_MC, 1.0, CHOICE),
    ("mathvision", "3", "A", MATHVISION_MC, 1.0, CHOICE),
    ("mathvision", "D. 4π", "D", MATHVISION_MC, 1.0, CHOICE),
    ("mathvision", "13", "A", MATHVISION_MC, 0.0, CHOICE),
    ("mathvision", "B", "A", MATHVISION_MC, 0.0, CHOICE),
    ("mathvision", "A", "3", MATHVISION_MC, 1.0, CHOICE),  # a gold written as the option's text
    ("mathvision", "13", "13", {}, 1.0, EXACT),
    ("mathvision", "3", "13", {}, 0.0, NUMERIC),
    ("mathvision", "13.0000001", "13", {}, 1.0, NUMERIC),
    ("mathvision", "\\frac{26}{2}", "13", {}, 1.0, MATH),
    ("mathvision", "2\\sqrt{3}", "\\sqrt{12}", {}, 1.0, MATH),
    ("mathvision", "\\sqrt{13}", "13", {}, 0.0, JUDGE),
    ("mathvista", "B", "165°", MATHVISTA_MC, 1.0, CHOICE),
    ("mathvista", "(B) 165°", "165°", MATHVISTA_MC, 1.0, CHOICE),
    ("mathvista", "165°", "165°", MATHVISTA_MC, 1.0, CHOICE),
    ("mathvista", "165", "165°", MATHVISTA_MC, 1.0, CHOICE),
    ("mathvista", "The answer is B.", "165°", MATHVISTA_MC, 1.0, CHOICE),
    ("mathvista", "A", "165°", MATHVISTA_MC, 0.0, CHOICE),
    ("mathvista", "Because it is obtuse", "165°", MATHVISTA_MC, 0.0, JUDGE),
    ("mathvista", "13", "13", MATHVISTA_INT, 1.0, NUMERIC),
    ("mathvista", "3", "13", MATHVISTA_INT, 0.0, NUMERIC),
    ("mathvista", "thirteen", "13", MATHVISTA_INT, 1.0, NUMERIC),
    ("mathvista", "13.6", "13", MATHVISTA_INT, 1.0, NUMERIC),  # cut to an integer, as MathVista does
    ("mathvista", "1.23", "1.2", MATHVISTA_FLOAT1, 1.0, NUMERIC),  # rounded to the item's precision
    ("mathvista", "1.3", "1.2", MATHVISTA_FLOAT1, 0.0, NUMERIC),
    ("mathvista", "0.6", "0.60", MATHVISTA_FLOAT2, 1.0, NUMERIC),
    ("mathvista", "0.61", "0.60", MATHVISTA_FLOAT2, 0.0, NUMERIC),
    ("mathvista", "[1,2,3]", "[1, 2, 3]", MATHVISTA_LIST, 1.0, EXACT),
    ("mathverse", "B", "B", MATHVERSE_MC, 1.0, CHOICE),
    ("mathverse", "B:30°", "B", MATHVERSE_MC, 1.0, CHOICE),
    ("mathverse", "30°", "B", MATHVERSE_MC, 1.0, CHOICE),
    ("mathverse", "Answer: (B)", "B", MATHVERSE_MC, 1.0, CHOICE),
    ("mathverse", "A", "B", MATHVERSE_MC, 0.0, CHOICE),
    ("mathverse", "Because AB = BC", "B", MATHVERSE_MC, 0.0, JUDGE),
    ("mathverse", "13", "13", MATHVERSE_FREE, 1.0, EXACT),
    ("mathverse", "3", "13", MATHVERSE_FREE, 0.0, NUMERIC),
    ("mathverse", "6 \\text{cm}", "6", MATHVERSE_FREE, 1.0, NUMERIC),
    ("mathverse", "\\frac{\\sqrt{3}}{2}", "\\frac{\\sqrt3}{2}", MATHVERSE_FREE, 1.0, MATH),
    ("mathverse", "2\\pi", "\\pi", MATHVERSE_FREE, 0.0, JUDGE),
    ("chartqa", "105", "100", {}, 1.0, RELAXED),
    ("chartqa", "95", "100", {}, 1.0, RELAXED),
    ("chartqa", "105.1", "100", {}, 0.0, RELAXED),  # 5.1% off
    ("chartqa", "94.9", "100", {}, 0.0, RELAXED),
    ("chartqa", "100%", "100", {}, 1.0, RELAXED),
    ("chartqa", "3", "13", {}, 0.0, RELAXED),
    ("chartqa", "0", "0", {}, 1.0, RELAXED),
    ("chartqa", "0.01", "0", {}, 0.0, RELAXED),  # a gold of 0 allows no tolerance
    ("chartqa", "germany", "Germany", {}, 1.0, EXACT),
    ("chartqa", "Yes, it is", "Yes", {}, 1.0, YES_NO),
    ("chartqa", "France", "Germany", {}, 0.0, JUDGE),
    ("chartqa", "about a hundred", "100", {}, 0.0, JUDGE),
    ("vstar", "B", "B", VSTAR, 1.0, CHOICE),
    ("vstar", "(B)", "B", VSTAR, 1.0, CHOICE),
    ("vstar", "B. blue", "B", VSTAR, 1.0, CHOICE),
    ("vstar", "blue", "B", VSTAR, 1.0, CHOICE),
    ("vstar", "The answer is B", "B", VSTAR, 1.0, CHOICE),
    ("vstar", "Answer: (B) blue", "B", VSTAR, 1.0, CHOICE),
    ("vstar", "A", "B", VSTAR, 0.0, CHOICE),
    ("vstar", "red", "B", VSTAR, 0.0, CHOICE),
    ("vstar", "Because it looks blue", "B", VSTAR, 0.0, JUDGE),
    ("hrbench_4k", "C", "C", HRBENCH, 1.0, CHOICE),
    ("hrbench_4k", "(C)", "C", HRBENCH, 1.0, CHOICE),
    ("hrbench_4k", "C) top", "C", HRBENCH, 1.0, CHOICE),
    ("hrbench_8k", "top", "C", HRBENCH, 1.0, CHOICE),
    ("hrbench_8k", "The correct option is C.", "C", HRBENCH, 1.0, CHOICE),
    ("hrbench_8k", "D", "C", HRBENCH, 0.0, CHOICE),
    ("hrbench_8k", "bottom", "C", HRBENCH, 0.0, CHOICE),
    ("hrbench_4k", "Clearly the top one", "C", HRBENCH, 0.0, JUDGE),
    ("countbench", "3", "3", {}, 1.0, COUNT),
    ("countbench", "three", "3", {}, 1.0, COUNT),
    ("countbench", "There are 3 dogs.", "3", {}, 1.0, COUNT),
    ("countbench", "13", "3", {}, 0.0, COUNT),
    ("countbench", "3.5", "3", {}, 0.0, COUNT),
    ("countbench", "3 or 4", "3", {}, 0.0, COUNT),
    ("pixmo_count", "12", "12", {}, 1.0, COUNT),
    ("pixmo_count", "none", "0", {}, 1.0, COUNT),
    ("pixmo_count", "2", "12", {}, 0.0, COUNT),
    ("pixmo_count", "I cannot tell", "12", {}, 0.0, COUNT),
    ("pixmo_count", "twelve", "12", {}, 1.0, COUNT),
    ("pixmo_count", "1,2", "12", {}, 0.0, COUNT),
]


@pytest.mark.parametrize(("benchmark", "answer", "gold", "item", "score", "rule"), CASES)
def test_benchmark_table(
    benchmark: str, answer: str, gold: str, item: dict, score: float, rule: Rule
) -> None:
    scorer = get_benchmark(benchmark).scorer
    assert scorer is not None
    result = score_answer(answer, gold, kind=scorer, **item)
    assert (result.score, result.rule) == (score, rule.value), result.detail


def test_every_benchmark_has_cases() -> None:
    counts: dict[str, int] = {}
    for benchmark, *_ in CASES:
        counts[benchmark] = counts.get(benchmark, 0) + 1
    grouped = counts | {"hrbench": counts["hrbench_4k"] + counts["hrbench_8k"]}
    for name in ("wemath", "mathvision", "mathvista", "mathverse", "chartqa", "vstar", "hrbench"):
        assert grouped[name] >= 6, name
    assert counts["countbench"] >= 6 and counts["pixmo_count"] >= 6


def test_options_are_found_wherever_the_benchmark_keeps_them() -> None:
    assert benchmark_item("B", WEMATH["options"]).options["B"] == "4π"
    assert benchmark_item("B", None, MATHVERSE_MC["question"]).options == {
        "A": "60°",
        "B": "30°",
        "C": "45°",
        "D": "90°",
    }
    assert benchmark_item("B", None, VSTAR["question"]).options["D"] == "white"
    assert benchmark_item("13", None, "How long is side AB? Point A is on the circle.").options == {}


def test_an_unknown_scorer_name_says_what_is_known() -> None:
    with pytest.raises(ValueError, match="mathvista"):
        score_benchmark("mmmu", "B", "B")


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (64, 64), "white").save(buffer, format="PNG")
    return buffer.getvalue()


def _answered(item, text: str) -> Trajectory:
    return Trajectory(item=item, sample_index=0, turns=[TurnRecord(index=0, text=text)])


def test_a_mathvista_file_is_scored_with_its_own_precision_and_options(tmp_path: Path) -> None:
    """Loaded through the registry, MathVista's per-row metadata reaches its rule."""
    rows = {
        "pid": ["1", "2", "3"],
        "question": ["What is the angle?", "How long is it?", "How many?"],
        "decoded_image": [{"bytes": _png(), "path": None}] * 3,
        "choices": [["145°", "165°"], None, None],
        "answer": ["165°", "1.20", "13"],  # precision 1 says how to read "1.20": to one decimal
        "question_type": ["multi_choice", "free_form", "free_form"],
        "answer_type": ["text", "float", "integer"],
        "precision": [None, 1.0, None],
    }
    path = tmp_path / "testmini.parquet"
    pl.DataFrame(rows).write_parquet(path)
    benchmark = get_benchmark("mathvista")
    items = load_items(benchmark, path, 4 * 784, 64 * 784)
    config = reward_config_for(benchmark, RewardConfig(), {item.data_source for item in items})
    answers = ["<think>.</think><answer>B. 165°</answer>", "<answer>1.23</answer>", "<answer>3</answer>"]
    inputs = [_answered(item, text).scoring_input() for item, text in zip(items, answers)]
    scores = asyncio.run(score_trajectories(inputs, config))
    assert [(s.accuracy, s.rule) for s in scores] == [(1.0, "choice"), (1.0, "numeric"), (0.0, "numeric")]


def test_a_wemath_file_scores_the_forms_models_write(tmp_path: Path) -> None:
    rows = {
        "ID": ["1", "2", "3"],
        "question": ["What is the circumference?"] * 3,
        "option": ["A. 2π; B. 4π; C. 8π; D. 16π; E. No correct answer"] * 3,
        "answer": ["B"] * 3,
        "image": [{"bytes": _png(), "path": None}] * 3,
    }
    path = tmp_path / "wemath.parquet"
    pl.DataFrame(rows).write_parquet(path)
    benchmark = get_benchmark("wemath")
    items = load_items(benchmark, path, 4 * 784, 64 * 784)
    config = reward_config_for(benchmark, RewardConfig(), {item.data_source for item in items})
    answers = ["<answer>B. 4π</answer>", "<answer>The answer is B.</answer>", "<answer>4π</answer>"]
    inputs = [_answered(item, text).scoring_input() for item, text in zip(items, answers)]
    scores = asyncio.run(score_trajectories(inputs, config))
    assert [s.accuracy for s in scores] == [1.0, 1.0, 1.0]
