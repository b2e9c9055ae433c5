"""The `direct` family: the answer is in the question's text; the image does not matter.

These items teach *when not to call a tool*: BAT's sequence-level term rewards tool use on
hard prompts and penalises it on easy ones, and it can only learn the difference if some
prompts need no tool at all. Each item still carries an image (RL rows always do), a few
plain shapes that the question never mentions.
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from codedance_core.data.suite.canvas import COLOURS, KINDS, WHITE, Shape, draw_shape, pick, place_box
from codedance_core.data.suite.task import (
    ANSWER_COLOUR,
    ANSWER_INTEGER,
    ANSWER_YES_NO,
    LETTERS,
    SuiteTask,
    with_options,
)

THINGS = ("wall", "door", "kite", "umbrella", "bicycle", "mailbox", "boat", "lamp")


def _arithmetic(rng: np.random.Generator, hard: bool) -> tuple[str, str, dict]:
    if hard:
        rows, per_row, taken = int(rng.integers(3, 13)), int(rng.integers(4, 16)), int(rng.integers(1, 20))
        text = (f"A shelf has {rows} rows with {per_row} books in each row, and {taken} books are taken away. "
                f"How many books are left on the shelf? {ANSWER_INTEGER}")
        return text, str(rows * per_row - taken), {"rows": rows, "per_row": per_row, "taken": taken}
    a, b = int(rng.integers(2, 50)), int(rng.integers(2, 50))
    text = f"A box holds {a} red marbles and {b} blue marbles. How many marbles are in the box? {ANSWER_INTEGER}"
    return text, str(a + b), {"a": a, "b": b}


def _lookup(rng: np.random.Generator, hard: bool) -> tuple[str, str, dict]:
    thing, colour = pick(rng, THINGS), pick(rng, COLOURS)
    if hard:
        other_thing, other_colour = pick(rng, [t for t in THINGS if t != thing]), pick(rng, COLOURS)
        text = (f"A note says: 'The {other_thing} is {other_colour} and the {thing} is {colour}.' "
                f"According to the note, what colour is the {thing}? {ANSWER_COLOUR}")
        return text, colour, {"thing": thing, "colour": colour, "other": [other_thing, other_colour]}
    text = f"A note says: 'The {thing} is {colour}.' According to the note, what colour is the {thing}? {ANSWER_COLOUR}"
    return text, colour, {"thing": thing, "colour": colour}


def _choice(rng: np.random.Generator, hard: bool) -> tuple[str, str, dict]:
    count = 4 if hard else 2
    numbers = [int(n) for n in rng.choice(np.arange(1, 1000), size=count, replace=False)]
    word, best = ("smallest", int(np.argmin(numbers))) if hard else ("largest", int(np.argmax(numbers)))
    text = with_options(f"Which of these numbers is the {word}?", [str(n) for n in numbers])
    return text, LETTERS[best], {"numbers": numbers, "asked": word}


def _yes_no(rng: np.random.Generator, hard: bool) -> tuple[str, str, dict]:
    a, b = (int(n) for n in rng.choice(np.arange(1, 100), size=2, replace=False))
    if hard:
        c = int(rng.integers(1, 100))
        text = f"Is {a} plus {b} greater than {c} plus {c}? {ANSWER_YES_NO}"
        return text, "yes" if a + b > 2 * c else "no", {"a": a, "b": b, "c": c}
    return f"Is {a} greater than {b}? {ANSWER_YES_NO}", "yes" if a > b else "no", {"a": a, "b": b}


TEMPLATES = {"arithmetic": _arithmetic, "lookup": _lookup, "choice": _choice, "yes_no": _yes_no}


def generate(rng: np.random.Generator, hard: bool) -> SuiteTask:
    template = pick(rng, tuple(TEMPLATES))
    question, answer, values = TEMPLATES[template](rng, hard)
    side = 448
    image = Image.new("RGB", (side, side), WHITE)
    draw = ImageDraw.Draw(image)
    shapes, placed = [], []
    for _ in range(int(rng.integers(2, 6))):
        box = place_box(rng, int(rng.integers(40, 90)), (side, side), placed)
        placed.append(box)
        shapes.append(Shape(pick(rng, KINDS), pick(rng, COLOURS), box))
        draw_shape(draw, shapes[-1])
    params = {
        "canvas": [side, side],
        "background": list(WHITE),
        "template": template,
        "values": values,
        "shapes": [shape.to_params() for shape in shapes],
    }
    options = [str(n) for n in values["numbers"]] if template == "choice" else []
    return SuiteTask(question=question, answer=answer, image=image, params=params, options=options)
