"""The `math` family: quantities read from a rendered figure, then combined arithmetically.

Two kinds of figure (MathVista-like, at toy scale):
- numbers written inside shapes: "What is the number in the red circle plus the number in
  the blue square?" (hard: three operands with multiplication);
- shapes to count: "How many more circles than squares are there?" (hard: "multiply the
  number of triangles by the number of circles, then add the number of squares").
Reading is the visual part, the arithmetic is exact integer arithmetic; `params` records
each operand's source shape(s), its value, and the expression.
(The module is not called `math.py` so that it never shadows the standard library.)
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from codedance_core.data.suite.canvas import (
    BLACK,
    COLOURS,
    WHITE,
    Shape,
    draw_shape,
    font,
    pick,
    place_box,
    sample,
)
from codedance_core.data.suite.task import ANSWER_INTEGER, SuiteTask, plural

DARK_COLOURS = {"red", "green", "blue", "purple"}
NUMBER_KINDS = ("circle", "square", "triangle")


def _text_anchor(shape: Shape) -> tuple[int, int]:
    x0, y0, x1, y1 = shape.box
    if shape.kind == "triangle":  # the widest part of a triangle is near its base
        return (x0 + x1) // 2, y0 + int((y1 - y0) * 0.66)
    return (x0 + x1) // 2, (y0 + y1) // 2


def _numbers_in_shapes(rng: np.random.Generator, hard: bool, side: int):
    combos = [(c, k) for c in COLOURS for k in NUMBER_KINDS]
    chosen = sample(rng, combos, 5 if hard else 3)
    shapes, numbers, placed = [], [], []
    for colour, kind in chosen:
        box = place_box(rng, int(rng.integers(80, 111) if hard else rng.integers(100, 131)), (side, side), placed)
        placed.append(box)
        shapes.append(Shape(kind, colour, box, role="operand"))
        numbers.append(int(rng.integers(2, 31) if hard else rng.integers(1, 21)))
    names = [f"the number in the {s.colour} {s.kind}" for s in shapes]
    if hard:
        a, b, c = (int(i) for i in rng.choice(len(shapes), size=3, replace=False))
        if rng.random() < 0.5:
            text = f"Multiply {names[a]} by {names[b]}, then subtract {names[c]}. What is the result?"
            expression, value = "a * b - c", numbers[a] * numbers[b] - numbers[c]
        else:
            text = f"Add {names[a]} and {names[b]}, then multiply by {names[c]}. What is the result?"
            expression, value = "(a + b) * c", (numbers[a] + numbers[b]) * numbers[c]
        operands = {"a": a, "b": b, "c": c}
    else:
        a, b = (int(i) for i in rng.choice(len(shapes), size=2, replace=False))
        if rng.random() < 0.5:
            text, expression, value = f"What is {names[a]} plus {names[b]}?", "a + b", numbers[a] + numbers[b]
        else:
            if numbers[a] < numbers[b]:
                a, b = b, a
            text, expression, value = f"What is {names[a]} minus {names[b]}?", "a - b", numbers[a] - numbers[b]
        operands = {"a": a, "b": b}
    return shapes, numbers, text, expression, value, operands


def _count_arithmetic(rng: np.random.Generator, hard: bool, side: int):
    kinds = sample(rng, ("circle", "square", "triangle", "star"), 3 if hard else 2)
    counts = [int(rng.integers(2, 9)) if hard else int(rng.integers(1, 7)) for _ in kinds]
    if not hard:
        while counts[0] == counts[1]:
            counts[1] = int(rng.integers(1, 7))
        if counts[0] < counts[1]:
            kinds, counts = kinds[::-1], counts[::-1]
    shapes, placed = [], []
    for kind, count in zip(kinds, counts, strict=True):
        for _ in range(count):
            box = place_box(rng, int(rng.integers(34, 56)), (side, side), placed)
            placed.append(box)
            shapes.append(Shape(kind, pick(rng, COLOURS), box, role="counted"))
    order = [int(i) for i in rng.permutation(len(shapes))]  # interleave kinds in drawing order
    shapes = [shapes[i] for i in order]
    k = [plural(kind) for kind in kinds]
    if hard:
        text = f"Multiply the number of {k[0]} by the number of {k[1]}, then add the number of {k[2]}. What is the result?"
        expression, value = "a * b + c", counts[0] * counts[1] + counts[2]
    else:
        text = f"How many more {k[0]} than {k[1]} are there?"
        expression, value = "a - b", counts[0] - counts[1]
    operands = {name: {"kind": kind, "count": count} for name, kind, count in zip("abc", kinds, counts)}
    return shapes, text, expression, value, operands


def generate(rng: np.random.Generator, hard: bool) -> SuiteTask:
    side = 640 if hard else 512
    figure = pick(rng, ("numbers_in_shapes", "count_arithmetic"))
    image = Image.new("RGB", (side, side), WHITE)
    draw = ImageDraw.Draw(image)
    if figure == "numbers_in_shapes":
        shapes, numbers, text, expression, value, operands = _numbers_in_shapes(rng, hard, side)
        shape_params = []
        for shape, number in zip(shapes, numbers, strict=True):
            draw_shape(draw, shape)
            ink = WHITE if shape.colour in DARK_COLOURS else BLACK
            size = max(18, (shape.box[2] - shape.box[0]) * 3 // 10)
            draw.text(_text_anchor(shape), str(number), fill=ink, font=font(size), anchor="mm")
            shape_params.append({**shape.to_params(), "number": number, "text_xy": list(_text_anchor(shape)),
                                 "text_size": size, "text_rgb": list(ink)})
        operand_values = {name: {"shape": index, "value": numbers[index]} for name, index in operands.items()}
    else:
        shapes, text, expression, value, operand_values = _count_arithmetic(rng, hard, side)
        for shape in shapes:
            draw_shape(draw, shape)
        shape_params = [shape.to_params() for shape in shapes]
    params = {
        "canvas": [side, side],
        "background": list(WHITE),
        "figure": figure,
        "shapes": shape_params,
        "operands": operand_values,
        "expression": expression,
        "value": value,
    }
    return SuiteTask(question=f"{text} {ANSWER_INTEGER}", answer=str(value), image=image, params=params)
