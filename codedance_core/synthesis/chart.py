"""Chart trajectories: read bar heights (or line points) against the y-axis, then compute.

Turn 1 reads the axis (0 and 100 at two pixel rows: what a reader does with the tick labels)
and, for each category it needs, finds the top of the bar (the first row of the bar's colour
in the category's column) or the centre of the line's marker (the rows where the colour fills
a small window around the column), and converts pixels to values. When the question needs
more than a lookup (the largest, the smallest, a difference), turn 2 computes it from the
`values` of turn 1, still in the session: the mathematical step works on quantities read
earlier.
"""

from __future__ import annotations

import ast

from codedance_core.data.suite.canvas import PALETTE
from codedance_core.data.suite.task import LETTERS
from codedance_core.synthesis.steps import (
    AnswerStep,
    ItemView,
    ToolStep,
    UnreadableOutput,
    Writer,
    quote,
    read_int,
    read_value,
)

COLOUR_TOLERANCE = 120


def _measure_code(view: ItemView, columns: dict[str, int]) -> str:
    params = view.params
    axis = params["y_axis"]
    y_zero, y_hundred = view.y(axis["y_of_zero"]), view.y(axis["y_of_max"])
    if params["chart_kind"] == "bar":
        find_top = f"""    rows = np.nonzero(np.abs(pixels[:, x] - colour).sum(axis=1) < {COLOUR_TOLERANCE})[0]
    top = rows.min()  # the bar's top edge"""
    else:
        find_top = f"""    window = np.abs(pixels[:, x - 2:x + 3] - colour).sum(axis=2) < {COLOUR_TOLERANCE}
    rows = np.nonzero(window.sum(axis=1) >= 4)[0]  # rows the marker (nearly) fills across the window
    top = rows.mean()  # the marker's centre"""
    return f"""import numpy as np

pixels = np.asarray(input_image.convert("RGB")).astype(int)
colour = np.array({list(PALETTE[params["colour"]])})  # the {params['colour']} {params['chart_kind']}s
y_zero, y_hundred = {y_zero:.1f}, {y_hundred:.1f}  # pixel rows of the 0 and 100 ticks
columns = {columns!r}  # x of each category's centre
values = {{}}
for label, x in columns.items():
{find_top}
    values[label] = round((y_zero - top) / (y_zero - y_hundred) * 100)
print("values:", values)
"""


def _read_values(result) -> dict[str, int]:
    try:
        values = ast.literal_eval(read_value(result, "values"))
    except (ValueError, SyntaxError):
        raise UnreadableOutput(f"cannot read the measured values from {result.stdout[:200]!r}") from None
    if not isinstance(values, dict):
        raise UnreadableOutput(f"measured values are not a dict: {values!r}")
    return values


def write_chart(view: ItemView) -> Writer:
    """Measure the needed categories, compute what the question asks, answer with it."""
    params = view.params
    kind, labels = params["question_kind"], params["labels"]
    needed = labels if kind in ("max", "min") else params["asked_labels"]
    columns = {mark["label"]: view.x(_mark_x(mark)) for mark in params["marks"] if mark["label"] in needed}
    axis = params["y_axis"]
    think = (f"This is a {params['chart_kind']} chart on a 0-100 axis: the 0 tick is at y = "
             f"{view.y(axis['y_of_zero']):.1f} and the 100 tick at y = {view.y(axis['y_of_max']):.1f}. "
             f"I measure {quote(needed) if len(needed) < 4 else 'every category'} in pixels and convert to values.")
    result = yield ToolStep(think, _measure_code(view, columns))
    values = _read_values(result)
    if kind == "lookup":
        label = needed[0]
        return AnswerStep(f"The measured value of {label} is {values[label]}.", str(values[label]))
    if kind == "difference":
        first, second = needed
        think = f"The values are {first} = {values[first]} and {second} = {values[second]}; I compute the difference."
        result = yield ToolStep(think, f'print("difference:", values[{first!r}] - values[{second!r}])\n')
        difference = read_int(result, "difference")
        return AnswerStep(f"{first} minus {second} is {difference}.", str(difference))
    word, pick = ("highest", "max") if kind == "max" else ("lowest", "min")
    think = f"I have every category's value; I let the code pick the {word} one."
    result = yield ToolStep(think, f'print("{word}:", {pick}(values, key=values.get))\n')
    best = read_value(result, word)
    if best not in labels:
        raise UnreadableOutput(f"{best!r} is not a category of the chart")
    letter = LETTERS[labels.index(best)]
    return AnswerStep(f"{best} has the {word} value ({values[best]}); it is option ({letter}).", letter)


def _mark_x(mark: dict) -> float:
    if "rect" in mark:
        return (mark["rect"][0] + mark["rect"][2]) / 2
    return mark["point"][0]
