"""The `count` family: "How many red circles are there?" (CountBench / PixMo-Count-like).

Easy: a handful of large shapes, none touching. Hard: a larger canvas crowded with small
shapes; distractors may overlap one another (the clutter that makes counting by eye fail)
but never a counted shape, and counted shapes are drawn last, so every one stays fully
visible and the count is exact. The question asks for shapes matching a colour and kind, a
kind only, or a colour only; `params["shapes"]` lists every shape in drawing order.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from codedance_core.data.suite.canvas import COLOURS, WHITE, Box, Shape, draw_shape, pick, place_box, sample
from codedance_core.data.suite.task import ANSWER_INTEGER, SuiteTask, plural

COUNT_KINDS = ("circle", "square", "triangle", "star")


def _question(form: str, colour: str, kind: str) -> str:
    if form == "colour_kind":
        return f"How many {colour} {plural(kind)} are there in the image?"
    if form == "kind":
        return f"How many {plural(kind)} are there in the image?"
    return f"How many {colour} shapes are there in the image?"


def _matches(form: str, target: tuple[str, str], colour: str, kind: str) -> bool:
    if form == "colour_kind":
        return (colour, kind) == target
    if form == "kind":
        return kind == target[1]
    return colour == target[0]


def generate(rng: np.random.Generator, hard: bool) -> SuiteTask:
    side = pick(rng, (616, 672)) if hard else pick(rng, (448, 512, 560))
    colours = sample(rng, COLOURS, 5 if hard else 3)
    kinds = sample(rng, COUNT_KINDS, 4 if hard else 3)
    form = pick(rng, ("colour_kind", "colour_kind", "kind", "colour"))
    target = (colours[0], kinds[0])
    n_targets = int(rng.integers(3, 13)) if hard else int(rng.integers(1, 7))
    n_distractors = int(rng.integers(15, 36)) if hard else int(rng.integers(2, 8))
    size_low, size_high = (14, 31) if hard else (36, 65)

    targets: list[Shape] = []
    for _ in range(n_targets):
        box = place_box(rng, int(rng.integers(size_low, size_high)), (side, side), [t.box for t in targets])
        targets.append(Shape(kind=target[1], colour=target[0], box=box, role="target"))
    if form == "kind":  # counted shapes of the asked kind may have any colour
        targets = [Shape(t.kind, pick(rng, colours), t.box, t.role) for t in targets]
    if form == "colour":
        targets = [Shape(pick(rng, kinds), t.colour, t.box, t.role) for t in targets]

    distractors: list[Shape] = []
    for _ in range(n_distractors):
        colour, kind = pick(rng, colours), pick(rng, kinds)
        while _matches(form, target, colour, kind):
            colour, kind = pick(rng, colours), pick(rng, kinds)
        avoid: list[Box] = [t.box for t in targets]
        if not hard:
            avoid += [d.box for d in distractors]
        box = place_box(rng, int(rng.integers(size_low, size_high)), (side, side), avoid, margin=3)
        distractors.append(Shape(kind=kind, colour=colour, box=box))

    image = Image.new("RGB", (side, side), WHITE)
    draw = ImageDraw.Draw(image)
    shapes = distractors + targets  # counted shapes on top
    for shape in shapes:
        draw_shape(draw, shape)
    params = {
        "canvas": [side, side],
        "background": list(WHITE),
        "question_kind": form,
        "target": {"colour": target[0] if form != "kind" else None, "kind": target[1] if form != "colour" else None},
        "count": len(targets),
        "shapes": [shape.to_params() for shape in shapes],
    }
    question = f"{_question(form, *target)} {ANSWER_INTEGER}"
    return SuiteTask(question=question, answer=str(len(targets)), image=image, params=params)
