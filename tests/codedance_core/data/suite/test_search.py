"""Search items: a large image, a tiny unique target, and an answer that follows from its record."""

from __future__ import annotations

import numpy as np
import pytest

from codedance_core.data.suite.canvas import PALETTE
from codedance_core.data.suite.task import LETTERS


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_answers_follow_from_the_recorded_objects(family_tasks, difficulty):
    for task in family_tasks("search", difficulty, n=24):
        params, pixels = task.params, np.asarray(task.image)
        assert task.image.width >= 1536
        targets = [s for s in params["shapes"] if s["role"] == "target"]
        for shape in targets:
            side = shape["box"][2] - shape["box"][0] + 1
            assert side <= (16 if difficulty == "hard" else 30)
            cx, cy = (shape["box"][0] + shape["box"][2]) // 2, (shape["box"][1] + shape["box"][3]) // 2
            assert tuple(pixels[cy, cx]) == PALETTE[shape["colour"]]
        if params["question_kind"] == "colour":
            (star,) = targets
            assert [s["kind"] for s in params["shapes"]].count("star") == 1
            expected = LETTERS[params["options"].index(star["colour"])] if params["options"] else star["colour"]
            assert task.answer == expected
        else:
            triangle, square = targets
            kinds = [s["kind"] for s in params["shapes"]]
            assert kinds.count("triangle") == kinds.count("square") == 1
            left = (triangle["box"][0] + triangle["box"][2]) < (square["box"][0] + square["box"][2])
            assert task.answer == ("yes" if left else "no")
