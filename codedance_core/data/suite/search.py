"""The `search` family: a tiny target in a large image (V*Bench-like).

The image is at least 1536 px wide, with large pale clutter, and the question is about an
object a few dozen pixels across (10-16 px when hard): "What colour is the small star?"
(open or multiple choice) or "Is the triangle to the left of the square?". A model that only
sees the image downscaled cannot answer reliably; one that crops and zooms with code can.
Clutter uses pale tints, never palette colours, and the asked-about objects are unique in
kind, so the answer is exact.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from codedance_core.data.suite.canvas import (
    COLOURS,
    PALETTE,
    Shape,
    draw_shape,
    pastel,
    pick,
    place_box,
    sample,
)
from codedance_core.data.suite.task import ANSWER_COLOUR, ANSWER_YES_NO, LETTERS, SuiteTask, with_options

BACKGROUND = (238, 234, 226)


def _clutter(rng: np.random.Generator, draw: ImageDraw.ImageDraw, canvas: tuple[int, int]) -> list[dict]:
    """Large pale rectangles and ellipses: texture for the eye, never mistaken for a target."""
    width, height = canvas
    items = []
    for _ in range(int(rng.integers(6, 15))):
        w, h = int(rng.integers(120, 520)), int(rng.integers(100, 420))
        x0, y0 = int(rng.integers(0, width - w)), int(rng.integers(0, height - h))
        rgb = pastel(PALETTE[pick(rng, COLOURS)], 0.78)
        kind = pick(rng, ("rectangle", "ellipse"))
        box = [x0, y0, x0 + w - 1, y0 + h - 1]
        (draw.rectangle if kind == "rectangle" else draw.ellipse)(box, fill=rgb)
        items.append({"kind": kind, "box": box, "rgb": list(rgb)})
    return items


def _small_shapes(rng, canvas, kinds, count, size_range, placed) -> list[Shape]:
    shapes = []
    for _ in range(count):
        box = place_box(rng, int(rng.integers(*size_range)), canvas, placed, margin=20, border=24)
        placed.append(box)
        shapes.append(Shape(kind=pick(rng, kinds), colour=pick(rng, COLOURS), box=box))
    return shapes


def _colour_question(rng, canvas, hard, size_range, placed):
    star = Shape("star", pick(rng, COLOURS), place_box(rng, int(rng.integers(*size_range)), canvas, placed, border=24))
    star = Shape(star.kind, star.colour, star.box, role="target")
    placed.append(star.box)
    n_distractors = int(rng.integers(6, 17)) if hard else int(rng.integers(0, 4))
    distractors = _small_shapes(rng, canvas, ("circle", "square", "triangle"), n_distractors, size_range, placed)
    question, answer, options = "What colour is the small star?", star.colour, []
    if rng.random() < 0.5:
        options = [star.colour] + sample(rng, [c for c in COLOURS if c != star.colour], 3)
        options = [options[int(i)] for i in rng.permutation(4)]
        question, answer = with_options(question, options), LETTERS[options.index(star.colour)]
    else:
        question = f"{question} {ANSWER_COLOUR}"
    return [star] + distractors, question, answer, options


def _relation_question(rng, canvas, hard, size_range, placed):
    width = canvas[0]
    while True:
        triangle_box = place_box(rng, int(rng.integers(*size_range)), canvas, placed, border=24)
        square_box = place_box(rng, int(rng.integers(*size_range)), canvas, placed + [triangle_box], border=24)
        if abs(triangle_box[0] - square_box[0]) >= width // 10:
            break
    triangle = Shape("triangle", pick(rng, COLOURS), triangle_box, role="target")
    square = Shape("square", pick(rng, COLOURS), square_box, role="target")
    placed += [triangle_box, square_box]
    n_distractors = int(rng.integers(6, 17)) if hard else int(rng.integers(0, 4))
    distractors = _small_shapes(rng, canvas, ("circle", "star"), n_distractors, size_range, placed)
    question = f"Is the {triangle.colour} triangle to the left of the {square.colour} square? {ANSWER_YES_NO}"
    answer = "yes" if triangle.centre[0] < square.centre[0] else "no"
    return [triangle, square] + distractors, question, answer, []


def generate(rng: np.random.Generator, hard: bool) -> SuiteTask:
    canvas = pick(rng, ((2048, 1536), (1920, 1440))) if hard else pick(rng, ((1536, 1024), (1600, 1200)))
    size_range = (10, 17) if hard else (22, 31)
    image = Image.new("RGB", canvas, BACKGROUND)
    draw = ImageDraw.Draw(image)
    clutter = _clutter(rng, draw, canvas)
    question_kind = pick(rng, ("colour", "relation"))
    build = _colour_question if question_kind == "colour" else _relation_question
    shapes, question, answer, options = build(rng, canvas, hard, size_range, [])
    for shape in shapes:
        draw_shape(draw, shape)
    params = {
        "canvas": list(canvas),
        "background": list(BACKGROUND),
        "question_kind": question_kind,
        "clutter": clutter,
        "shapes": [shape.to_params() for shape in shapes],
        "options": options,
    }
    return SuiteTask(question=question, answer=answer, image=image, params=params, options=options)
