"""Chart trajectories: read bar heights (or line points) against the y-axis, then compute.

"Which category is highest/lowest?" needs no coordinates: the options list the categories left
to right, so the code finds the marks, orders them and picks one (`_extreme_code`); a policy
can learn to write it by repeating the question. A lookup or a difference needs the named
category's column, which only the chart's text says: turn 1 reads the axis (0 and 100 at two
pixel rows: what a reader does with the tick labels) and, for each category it needs, finds the
top of the bar (the first row of the bar's colour in the category's column) or the centre of
the line's marker, and converts pixels to values; for a difference, turn 2 computes it from the
`values` of turn 1, still in the session.
"""

from __future__ import annotations

import ast

from codedance_core.data.suite.canvas import PALETTE
from codedance_core.data.suite.task import LETTERS
from codedance_core.synthesis.shapes import COLOUR_TOLERANCE as SHAPE_TOLERANCE
from codedance_core.synthesis.shapes import SCRIPT_THOUGHT, printed_thought, question_line
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


def _extreme_code(question: str) -> str:
    """Which mark is highest or lowest, from the pixels alone: no axis, no coordinates.

    The question's first line goes in as a string, and the code reads "highest" or "lowest" from
    it; the options' letters follow the marks left to right, so a policy writes the whole script
    by repeating that line (see `shapes.shape_script`).

    The data are drawn in one palette colour (the colour with the most pixels); an opening with
    a 2x2 square erases a line chart's thin line and keeps its markers, and keeps bars whole, so
    the regions left are the marks, left to right in the options' order. A higher mark has a
    higher centre on the image whether it is a bar (bottoms are all on the axis) or a marker.
    """
    return f"""import numpy as np
from scipy import ndimage

{question_line(question)}wanted = "highest" if "highest" in question else "lowest"
palette = {dict(PALETTE)!r}
pixels = np.asarray(input_image.convert("RGB")).astype(int)
masks = {{colour: np.abs(pixels - rgb).sum(axis=2) < {SHAPE_TOLERANCE} for colour, rgb in palette.items()}}
data = max(masks.values(), key=lambda mask: mask.sum())  # the chart's own colour
side = max(2, round(input_image.width / 130))  # wider than the line, narrower than a marker
labels, n = ndimage.label(ndimage.binary_opening(data, structure=np.ones((side, side))))
centres = [(ys.start + ys.stop) / 2 for ys, xs in sorted(ndimage.find_objects(labels), key=lambda r: r[1].start)]
best = min(centres) if wanted == "highest" else max(centres)  # rows grow downwards
print("marks:", n)
print(wanted + ":", {LETTERS!r}[centres.index(best)])  # the options' letters, left to right
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
    """Measure what the question needs, compute it, answer with it."""
    params = view.params
    kind, labels = params["question_kind"], params["labels"]
    if kind in ("max", "min"):
        result = yield ToolStep(SCRIPT_THOUGHT, _extreme_code(view.question))
        if read_int(result, "marks") != len(labels):
            raise UnreadableOutput(f"found {read_int(result, 'marks')} marks for {len(labels)} categories")
        letter = read_value(result, "highest" if kind == "max" else "lowest")
        return AnswerStep(printed_thought(letter), letter)
    needed = params["asked_labels"]
    columns = {mark["label"]: view.x(_mark_x(mark)) for mark in params["marks"] if mark["label"] in needed}
    axis = params["y_axis"]
    think = (f"The 0 tick is at y = {view.y(axis['y_of_zero']):.1f} and the 100 tick at y = "
             f"{view.y(axis['y_of_max']):.1f}. I measure {quote(needed)} in pixels and convert to values.")
    result = yield ToolStep(think, _measure_code(view, columns))
    values = _read_values(result)
    if kind == "lookup":
        label = needed[0]
        return AnswerStep(f"The measured value of {label} is {values[label]}.", str(values[label]))
    first, second = needed
    think = f"The values are {first} = {values[first]} and {second} = {values[second]}; I compute the difference."
    result = yield ToolStep(think, f'print("difference:", values[{first!r}] - values[{second!r}])\n')
    difference = read_int(result, "difference")
    return AnswerStep(f"{first} minus {second} is {difference}.", str(difference))


def _mark_x(mark: dict) -> float:
    if "rect" in mark:
        return (mark["rect"][0] + mark["rect"][2]) / 2
    return mark["point"][0]
