"""Mathematical trajectories (`math`) and no-tool trajectories (`direct`).

`math` items need two kinds of step: reading quantities off the figure, then combining them.
Turn 1 is visual: zoom on the operand shapes to read their numbers, or box and count each
asked-for kind. Turn 2 computes the expression in code from those quantities (the counts are
still in the session's `counts` from turn 1), and the answer is what turn 2 printed.

`direct` items hold the answer in the question's text: a short think and the answer, with no
tool call, so the model also learns when a tool is not worth calling. The writer derives the
answer from the generator's recorded values itself (it never copies the gold answer), so the
scorer still checks it.
"""

from __future__ import annotations

from codedance_core.data.suite.task import LETTERS
from codedance_core.synthesis.search import ZOOM_SIDE
from codedance_core.synthesis.steps import (
    AnswerStep,
    ItemView,
    ToolStep,
    UnreadableOutput,
    Writer,
    read_int,
    read_value,
)


def _zoom_operands_code(crops: dict[str, tuple[int, int, int, int]]) -> str:
    lines = ["from PIL import Image", ""]
    for name, (left, top, right, bottom) in crops.items():
        factor = max(2, ZOOM_SIDE // max(1, right - left + 1))
        lines += [f"{name} = input_image.crop(({left}, {top}, {right + 1}, {bottom + 1}))",
                  f"{name}.resize(({name}.width * {factor}, {name}.height * {factor}), Image.Resampling.LANCZOS).show()"]
    return "\n".join(lines) + "\n"


def _count_kinds_code(boxes: dict[str, list[tuple[int, int, int, int]]]) -> str:
    listed = "\n".join(f"    {kind!r}: {value!r}," for kind, value in boxes.items())
    return f"""import numpy as np
from PIL import ImageDraw

pixels = np.asarray(input_image.convert("RGB")).astype(int)
boxes = {{  # where I see each kind: (left, top, right, bottom)
{listed}
}}
marked = input_image.copy()
draw = ImageDraw.Draw(marked)
counts = {{}}
for kind, kind_boxes in boxes.items():
    found = [b for b in kind_boxes if (np.abs(pixels[b[1]:b[3] + 1, b[0]:b[2] + 1] - 255).sum(axis=2) > 60).mean() > 0.15]
    for box in found:
        draw.rectangle(box, outline=(0, 0, 0), width=1)
    counts[kind] = len(found)
print("counts:", counts)
marked
"""


def write_math(view: ItemView) -> Writer:
    """Read the operands (zoom or count), then compute the expression in code."""
    params = view.params
    expression, operands = params["expression"], params["operands"]
    names = sorted(operands)
    if params["figure"] == "numbers_in_shapes":
        shapes = params["shapes"]
        crops = {name: view.box(shapes[operands[name]["shape"]]["box"], pad=2) for name in names}
        described = {name: f"the {shapes[operands[name]['shape']]['colour']} {shapes[operands[name]['shape']]['kind']}"
                     for name in names}
        think = "I need the numbers written in " + ", ".join(described.values()) + \
                ". I zoom on each of these shapes to read its number clearly."
        yield ToolStep(think, _zoom_operands_code(crops))
        # What the zoomed crops show is read by eye (the writer knows the digits it drew).
        numbers = {name: shapes[operands[name]["shape"]]["number"] for name in names}
        readings = "; ".join(f"{described[name]} shows {numbers[name]}" for name in names)
        assignments = "\n".join(f"{name} = {numbers[name]}  # {described[name]}" for name in names)
        think = f"Reading the zoomed crops: {readings}. Now I compute {expression}."
    else:
        kinds = {name: operands[name]["kind"] for name in names}
        boxes = {kind: [view.box(s["box"]) for s in params["shapes"] if s["kind"] == kind] for kind in kinds.values()}
        think = "I need the numbers of " + ", ".join(f"{kind}s" for kind in kinds.values()) + \
                ". I box every shape of each kind, checking each box holds a shape, and count them."
        result = yield ToolStep(think, _count_kinds_code(boxes))
        counts = read_value(result, "counts")
        assignments = "\n".join(f"{name} = counts[{kind!r}]" for name, kind in kinds.items())
        think = f"The counts are {counts}. With those I compute {expression}."
    result = yield ToolStep(think, f"{assignments}\nprint(\"result:\", {expression})\n")
    value = read_int(result, "result")
    return AnswerStep(f"{expression} = {value}.", str(value))


def write_direct(view: ItemView) -> Writer:
    """Answer from the question's own text, without calling the tool."""
    yield from ()
    template, values = view.params["template"], view.params["values"]
    if template == "arithmetic":
        if "rows" in values:
            total = values["rows"] * values["per_row"] - values["taken"]
            return AnswerStep(f"{values['rows']} rows of {values['per_row']} books is "
                              f"{values['rows'] * values['per_row']}; minus {values['taken']} taken leaves {total}. "
                              "The image is not needed.", str(total))
        total = values["a"] + values["b"]
        return AnswerStep(f"{values['a']} + {values['b']} = {total} marbles. The image is not needed.", str(total))
    if template == "lookup":
        return AnswerStep(f"The note itself says the {values['thing']} is {values['colour']}; no need to look at "
                          "the image.", values["colour"])
    if template == "choice":
        numbers = values["numbers"]
        best = min(numbers) if values["asked"] == "smallest" else max(numbers)
        letter = LETTERS[numbers.index(best)]
        return AnswerStep(f"Of {numbers}, the {values['asked']} is {best}, option ({letter}).", letter)
    if template == "yes_no":
        if "c" in values:
            left, right = values["a"] + values["b"], 2 * values["c"]
            return AnswerStep(f"{values['a']} + {values['b']} = {left} and {values['c']} + {values['c']} = {right}.",
                              "yes" if left > right else "no")
        return AnswerStep(f"Comparing {values['a']} and {values['b']} directly.", "yes" if values["a"] > values["b"] else "no")
    raise UnreadableOutput(f"no direct narration for template {template!r}")
