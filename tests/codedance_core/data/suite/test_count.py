"""Count items: the answer is the number of recorded shapes that match, and the pixels agree."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from codedance_core.data.suite.canvas import PALETTE


def matches(shape: dict, target: dict) -> bool:
    return all(target[key] is None or shape[key] == target[key] for key in ("colour", "kind"))


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_answer_is_the_number_of_matching_shapes(family_tasks, difficulty):
    for task in family_tasks("count", difficulty, n=30):
        params = task.params
        counted = [s for s in params["shapes"] if matches(s, params["target"])]
        assert int(task.answer) == len(counted) == params["count"]
        assert all(s["role"] == "target" for s in counted)
        assert str(params["target"]["colour"] or params["target"]["kind"]) in task.question


def test_hard_items_are_crowded_and_small(family_tasks):
    for task in family_tasks("count", "hard", n=10):
        sizes = [s["box"][2] - s["box"][0] + 1 for s in task.params["shapes"]]
        assert len(sizes) >= 18 and max(sizes) <= 30


def test_rendered_pixels_agree_with_the_record(family_tasks):
    """Easy shapes never touch, so each shape of a colour is one connected blob of exactly that colour."""
    for task in family_tasks("count", "easy", n=12):
        pixels = np.asarray(task.image)
        for colour in {s["colour"] for s in task.params["shapes"]}:
            mask = np.all(pixels == PALETTE[colour], axis=-1)
            _, blobs = ndimage.label(mask)
            assert blobs == sum(s["colour"] == colour for s in task.params["shapes"])
