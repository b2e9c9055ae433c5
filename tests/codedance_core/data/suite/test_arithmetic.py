"""Math items: the recorded operands, put through the recorded expression, give the answer."""

from __future__ import annotations

import numpy as np
import pytest

from codedance_core.data.suite.canvas import PALETTE


def operand_values(params: dict) -> dict[str, int]:
    if params["figure"] == "numbers_in_shapes":
        return {name: params["shapes"][ref["shape"]]["number"] for name, ref in params["operands"].items()}
    return {name: sum(s["kind"] == ref["kind"] for s in params["shapes"]) for name, ref in params["operands"].items()}


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_expression_of_the_operands_is_the_answer(family_tasks, difficulty):
    figures = set()
    for task in family_tasks("math", difficulty, n=30):
        params = task.params
        figures.add(params["figure"])
        values = operand_values(params)
        assert eval(params["expression"], {}, values) == params["value"] == int(task.answer)
        if params["figure"] == "count_arithmetic":
            assert values == {name: ref["count"] for name, ref in params["operands"].items()}
        assert int(task.answer) >= 0 or difficulty == "hard"
    assert figures == {"numbers_in_shapes", "count_arithmetic"}


def test_numbered_shapes_are_drawn_in_their_colour(family_tasks):
    for task in family_tasks("math", "easy", n=20):
        if task.params["figure"] != "numbers_in_shapes":
            continue
        pixels = np.asarray(task.image)
        for shape in task.params["shapes"]:
            x0, _y0, x1, y1 = shape["box"]
            x, y = (x0 + x1) // 2, y1 - 3  # just inside the bottom edge, below the number
            assert tuple(pixels[y, x]) == PALETTE[shape["colour"]]
        for ref in task.params["operands"].values():
            shape = task.params["shapes"][ref["shape"]]
            assert f"the number in the {shape['colour']} {shape['kind']}" in task.question
