"""Search trajectories: find a tiny target with code and read its colour or position.

Both questions are answered by the coordinate-free shape finder of `shapes.py`: the script is
fixed text with the question's first line in it as a string, so a policy writes it by copying
the question, never by reading a position off an image it sees at 144 cells (where the target
is a few pixels across). A script that crops at the generator's coordinates ("I crop around
(331, 40)") cannot be learned that way: a tiny policy cannot see those coordinates, and one
trained on such scripts ran a working script on 3 of 30 held-out search items.

"What colour is the small star?": the script takes the smallest shape found (the star; see
`star_colour_code`) and prints its box and palette colour. The writer checks
the box against the generator's star, so a trajectory whose code picked another shape of the
right colour by luck is rejected, not taught. With (A)-(D) options the answer is the letter of
the printed colour.

"Is the red triangle left of the blue square?": the finder locates both named shapes and the
code compares their centres.
"""

from __future__ import annotations

import ast

from codedance_core.data.suite.task import LETTERS
from codedance_core.synthesis.shapes import (
    SCRIPT_THOUGHT,
    printed_thought,
    relation_code,
    star_colour_code,
)
from codedance_core.synthesis.steps import (
    AnswerStep,
    ItemView,
    ToolStep,
    UnreadableOutput,
    Writer,
    read_value,
)


def write_search(view: ItemView) -> Writer:
    """Find the target(s) with the shape finder and answer from what the code printed."""
    if view.params["question_kind"] == "colour":
        star = next(shape for shape in view.params["shapes"] if shape["role"] == "target")
        return (yield from _colour_trajectory(view, star))
    return (yield from _relation_trajectory(view))


def _colour_trajectory(view: ItemView, star: dict) -> Writer:
    result = yield ToolStep(SCRIPT_THOUGHT, star_colour_code(view.question))
    _check_found(view, star, read_value(result, "target box"))
    colour = read_value(result, "colour")
    options = view.params.get("options") or []
    if not options:
        return AnswerStep(printed_thought(colour), colour)
    if colour not in options:
        raise UnreadableOutput(f"measured colour {colour!r} is not among the options {options}")
    letter = LETTERS[options.index(colour)]
    return AnswerStep(f"The code printed {colour}; option ({letter}) is {colour}.", letter)


def _check_found(view: ItemView, star: dict, printed_box: str) -> None:
    """UnreadableOutput unless the box the code printed overlaps the star's (resized, padded 1 px).

    Where the finder misses the star, another shape sometimes has its colour (1 in 4 or 6 by
    chance on hard images): the answer would be right by luck, and SFT would teach trusting it.
    """
    try:
        left, top, right, bottom = ast.literal_eval(printed_box)
    except (ValueError, SyntaxError, TypeError):
        raise UnreadableOutput(f"'target box:' is not a box: {printed_box!r}") from None
    x0, y0, x1, y1 = view.box(star["box"], pad=1)
    if right < x0 or x1 < left or bottom < y0 or y1 < top:
        raise UnreadableOutput(f"the code found {printed_box}, not the star at {(x0, y0, x1, y1)}")


def _relation_trajectory(view: ItemView) -> Writer:
    result = yield ToolStep(SCRIPT_THOUGHT, relation_code(view.question))
    left = read_value(result, "triangle left of square") == "True"
    think = f"The code says the triangle is to the {'left' if left else 'right'} of the square."
    return AnswerStep(think, "yes" if left else "no")
