"""The coordinate-free shape finder: run as a script on suite images at the tiny profile's size."""

from __future__ import annotations

import ast
import io
from collections import Counter
from contextlib import redirect_stdout

from codedance_core.data.suite import arithmetic, count, search
from codedance_core.data.suite.generator import item_rng
from codedance_core.models.images import resize_for_model
from codedance_core.synthesis.shapes import (
    FIND_SHAPES_CODE,
    IMPORTS,
    count_code,
    count_compute_code,
    relation_code,
    star_colour_code,
)

TINY_PIXELS = 144 * 28 * 28


def run(code: str, image) -> tuple[dict, str]:
    """Run a writer's script the way the sandbox does (input_image preloaded); its globals and stdout."""
    namespace = {"input_image": image}
    with redirect_stdout(io.StringIO()) as out:
        exec(compile(code, "<script>", "exec"), namespace)  # noqa: S102 - our own generated script
    return namespace, out.getvalue()


def easy(family, generate, index):
    task = generate(item_rng("train", family, 0, index), False)
    return task, resize_for_model(task.image, 4 * 784, TINY_PIXELS)


def test_every_shape_of_easy_count_images_is_found_with_its_colour_and_kind():
    for index in range(25):
        task, image = easy("count", count.generate, index)
        namespace, _ = run(IMPORTS + FIND_SHAPES_CODE, image)
        found = Counter((colour, kind) for colour, kind, *_box in namespace["shapes"])
        assert found == Counter((s["colour"], s["kind"]) for s in task.params["shapes"]), index


def test_the_count_script_prints_the_gold_count():
    for index in range(10):
        task, image = easy("count", count.generate, index)
        _, out = run(count_code(task.question), image)
        assert out.strip() == f"count: {task.answer}"


def test_the_count_arithmetic_script_prints_the_gold_result_easy_and_hard():
    checked = Counter()
    for hard in (False, True):
        for index in range(12):
            task = arithmetic.generate(item_rng("train", "math", 0, index), hard)
            if task.params["figure"] != "count_arithmetic":
                continue
            _, out = run(count_compute_code(task.question), resize_for_model(task.image, 4 * 784, TINY_PIXELS))
            counts, result = out.strip().splitlines()
            operands = task.params["operands"]
            assert counts == "counts: " + str({operands[name]["kind"]: operands[name]["count"] for name in sorted(operands)})
            assert result == f"result: {task.answer}", (hard, index)
            checked[hard] += 1
    assert checked[False] >= 3 and checked[True] >= 3, checked


def test_the_relation_script_answers_most_easy_search_questions():
    right = asked = 0
    for index in range(30):
        task, image = easy("search", search.generate, index)
        if task.params["question_kind"] != "relation":
            continue
        try:
            _, out = run(relation_code(task.question), image)
        except ValueError:  # no shape of a named colour found: the writer's trajectory would be rejected
            asked += 1
            continue
        printed = dict(line.split(": ") for line in out.strip().splitlines())
        left = float(printed["triangle centre x"]) < float(printed["square centre x"])
        assert printed["triangle left of square"] == str(left)
        answer = "yes" if left else "no"
        right += answer == task.answer
        asked += 1
    assert asked >= 8 and right / asked >= 0.9, (right, asked)


def test_the_colour_script_finds_the_small_star_and_prints_its_colour_last():
    right = asked = 0
    scripts = set()
    for index in range(40):
        task, image = easy("search", search.generate, index)
        if task.params["question_kind"] != "colour":
            continue
        code = star_colour_code(task.question)
        scripts.add(code)
        _, out = run(code, image)
        printed = out.strip().splitlines()
        assert printed[-1].startswith("colour: "), "the line an answer copies is printed last"
        asked += 1
        star = task.params["shapes"][0]
        if printed[-1] != f"colour: {star['colour']}":
            continue
        right += 1
        # The printed box is the star's: its centre, resized, lies in it (give or take a pixel).
        x0, y0, x1, y1 = star["box"]
        cx = (x0 + x1 + 1) / 2 * image.width / task.image.width
        cy = (y0 + y1 + 1) / 2 * image.height / task.image.height
        left, top, right, bottom = ast.literal_eval(printed[-2].removeprefix("target box: "))
        assert left - 1 <= cx <= right + 2 and top - 1 <= cy <= bottom + 2, index
    assert asked >= 12 and right / asked >= 0.85, (right, asked)
    # No coordinates in the text: one script per question line (open, or with options) for stars anywhere.
    assert len(scripts) == 2


def test_every_shape_script_ends_the_same_so_only_its_opening_depends_on_the_question():
    scripts = [
        count_code("How many red shapes are there in the image?"),
        count_compute_code("How many more squares than stars are there?"),
        relation_code("Is the red triangle to the left of the blue square? Answer yes or no."),
        star_colour_code("What colour is the small star?"),
    ]
    tails = {script[script.index("palette = ") :] for script in scripts}
    assert len(tails) == 1 and tails.pop().endswith("\nanswer(shapes)\n")
    assert all(script.index("def answer(shapes):") < script.index("palette = ") for script in scripts)
