"""Chart items: answers computed from the recorded values, and bars measured in pixels match them."""

from __future__ import annotations

import numpy as np
import pytest

from codedance_core.data.suite.canvas import PALETTE
from codedance_core.data.suite.task import LETTERS


def expected_answer(params: dict, question: str) -> str:
    labels, values = params["labels"], params["values"]
    kind = params["question_kind"]
    if kind == "max":
        return LETTERS[values.index(max(values))]
    if kind == "min":
        return LETTERS[values.index(min(values))]
    named = [labels.index(label) for label in params["asked_labels"]]
    assert all(f"value of {labels[i]}" in question for i in named)
    if kind == "lookup":
        return str(values[named[0]])
    first, second = named
    assert values[first] > values[second]
    return str(values[first] - values[second])


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_answer_follows_from_the_values(family_tasks, difficulty):
    kinds = set()
    for task in family_tasks("chart", difficulty, n=30):
        kinds.add(task.params["question_kind"])
        assert task.answer == expected_answer(task.params, task.question)
        assert len(set(task.params["values"])) == len(task.params["values"])
    assert {"lookup", "max", "min"} <= kinds


def test_values_can_be_measured_exactly_from_pixels(family_tasks):
    measured = 0
    for task in family_tasks("chart", "hard", n=20):
        params, pixels = task.params, np.asarray(task.image)
        axis, rgb = params["y_axis"], PALETTE[params["colour"]]
        for mark in params["marks"]:
            if params["chart_kind"] == "bar":
                x = (mark["rect"][0] + mark["rect"][2]) // 2
                column = np.all(pixels[:, x] == rgb, axis=-1)
                assert column.sum() // axis["px_per_unit"] == mark["value"]
            else:
                x, y = mark["point"]
                assert tuple(pixels[y, x]) == rgb
                assert (axis["y_of_zero"] - y) / axis["px_per_unit"] == mark["value"]
            measured += 1
    assert measured > 50
