"""Mathematical trajectories (`math`) and no-tool trajectories (`direct`).

`math` items need two kinds of step: reading quantities off the figure, then combining them.
Numbers written in shapes: turn 1 zooms on the operand shapes to read their numbers, turn 2
computes the expression from them. Counts of shape kinds: one script counts each asked-for kind
with the coordinate-free shape finder of `shapes.py` and computes from the counts
(`count_compute_code`). The answer is what the last script printed.

`direct` items hold the answer in the question's text: a short think and the answer, with no
tool call, so the model also learns when a tool is not worth calling (a configurable share,
`SynthesisConfig.needless_tool_rate`, prints the answer with a needless code call first). The writer derives the
answer from the generator's recorded values itself (it never copies the gold answer), so the
scorer still checks it.
"""

from __future__ import annotations

from codedance_core.data.suite.task import LETTERS
from codedance_core.synthesis.shapes import SCRIPT_THOUGHT, ZOOM_SIDE, count_compute_code, printed_thought
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


def write_math(view: ItemView) -> Writer:
    """Zoom to read the operands, then compute the expression in code; or count and compute in one script."""
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
        result = yield ToolStep(think, f"{assignments}\nprint(\"result:\", {expression})\n")
    else:
        result = yield ToolStep(SCRIPT_THOUGHT, count_compute_code(view.question))
    value = read_int(result, "result")
    return AnswerStep(printed_thought(str(value)), str(value))


def write_direct(view: ItemView) -> Writer:
    """Answer from the question's own text; with `view.needless_tool`, print that answer with code first.

    The needless call stands for a cold start that over-uses the tool (as distilled teachers
    do): it is what BAT's negative d(mu) on easy items has to train away. It only prints the
    answer the thought reached, so the call adds nothing to get wrong and is the only
    difference BAT can act on. A call that computed the answer instead (`print("answer:", 3 * 7 - 2)`)
    asked the tiny model for an expression it could not write: in the session-6 mini at a needless
    rate of 0.6, tool SFT called on 19 of 30 held-out direct items and printed the right answer on 2.
    """
    think, answer = _direct_reasoning(view.params["template"], view.params["values"])
    if view.needless_tool:
        result = yield ToolStep(f"{think} I print the answer with code.", f"print(\"answer:\", {answer!r})\n")
        answer = read_value(result, "answer")
        think = printed_thought(answer)
    return AnswerStep(think, answer)


def _direct_reasoning(template: str, values: dict) -> tuple[str, str]:
    """(the narration, the answer) of a direct item."""
    if template == "arithmetic":
        if "rows" in values:
            rows, per_row, taken = values["rows"], values["per_row"], values["taken"]
            total = rows * per_row - taken
            think = f"{rows} rows of {per_row} books is {rows * per_row}; minus {taken} taken leaves {total}."
            return f"{think} The image is not needed.", str(total)
        a, b = values["a"], values["b"]
        return f"{a} + {b} = {a + b} marbles. The image is not needed.", str(a + b)
    if template == "lookup":
        colour = values["colour"]
        return f"The note itself says the {values['thing']} is {colour}; no need to look at the image.", colour
    if template == "choice":
        numbers, asked = values["numbers"], values["asked"]
        best = min(numbers) if asked == "smallest" else max(numbers)
        letter = LETTERS[numbers.index(best)]
        return f"Of {numbers}, the {asked} is {best}, option ({letter}).", letter
    if template == "yes_no":
        if "c" in values:
            a, b, c = values["a"], values["b"], values["c"]
            return f"{a} + {b} = {a + b} and {c} + {c} = {2 * c}.", "yes" if a + b > 2 * c else "no"
        a, b = values["a"], values["b"]
        return f"Comparing {a} and {b} directly.", "yes" if a > b else "no"
    raise UnreadableOutput(f"no direct narration for template {template!r}")
