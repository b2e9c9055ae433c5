"""The vocabulary of a synthesised trajectory: steps a writer proposes, and how they are narrated.

A program writer is a Python generator: it yields `ToolStep`s (a thought and the code to run),
receives each step's REAL `ExecResult` back, and returns the final `AnswerStep`. So every fact
the narration states after a tool call (a count, a bar's value, a colour) is read from what the
code actually printed, never from the generator's record: if the code measures wrongly, the
answer is wrong and the trajectory is rejected. That is what "verified by execution" means here.

`ItemView` is what a writer knows about an item: the generator's parameters, mapped into the
coordinates of the RESIZED image the sandbox (and the model) sees.
"""

from __future__ import annotations

import random
import re
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

from codedance_core.sandbox import ExecResult


@dataclass(frozen=True)
class ToolStep:
    """One assistant turn that calls the tool: its reasoning and the script it runs.

    `expect_error`: a planned failed attempt (the trajectory shows the error and fixes it).
    """

    think: str
    code: str
    expect_error: bool = False


@dataclass(frozen=True)
class AnswerStep:
    """The final assistant turn: its reasoning and the answer (no code)."""

    think: str
    answer: str


Writer = Generator[ToolStep, ExecResult, AnswerStep]


class UnreadableOutput(ValueError):
    """The code ran but did not print what the writer needs to go on (a rejection reason)."""


@dataclass
class ItemView:
    """An item as a writer sees it: question, options, generator parameters and the image scale.

    `scale_x`/`scale_y` map original pixel coordinates (those in `params`) to the resized image's.
    """

    question: str
    params: dict[str, Any]
    options: list[str]
    size: tuple[int, int]
    scale_x: float
    scale_y: float
    rng: random.Random = field(default_factory=random.Random)
    needless_tool: bool = False

    def box(self, box: list[int] | tuple[int, ...], pad: int = 0) -> tuple[int, int, int, int]:
        """An inclusive original-pixel box in resized coordinates, padded and clipped to the image."""
        x0, y0, x1, y1 = box
        width, height = self.size
        return (
            max(0, int(x0 * self.scale_x) - pad),
            max(0, int(y0 * self.scale_y) - pad),
            min(width - 1, round((x1 + 1) * self.scale_x) - 1 + pad),
            min(height - 1, round((y1 + 1) * self.scale_y) - 1 + pad),
        )

    def x(self, x: float) -> int:
        """An original pixel column's centre as a resized column."""
        return round((x + 0.5) * self.scale_x - 0.5)

    def y(self, y: float) -> float:
        """An original pixel row's centre in resized (continuous) row coordinates."""
        return (y + 0.5) * self.scale_y - 0.5


def tool_turn_text(step: ToolStep) -> str:
    """The assistant turn of a tool step, in the format our prompt asks for."""
    code = step.code if step.code.endswith("\n") else step.code + "\n"
    return f"<think>\n{step.think.strip()}\n</think>\n<code>\n```python\n{code}```\n</code>"


def answer_turn_text(step: AnswerStep) -> str:
    """The final assistant turn: reasoning, then the answer block."""
    return f"<think>\n{step.think.strip()}\n</think>\n<answer>{step.answer}</answer>"


def read_value(result: ExecResult, name: str) -> str:
    """The text after `name:` on the last stdout line that starts with it."""
    found = re.findall(rf"^{re.escape(name)}:\s*(.+?)\s*$", result.stdout, flags=re.MULTILINE)
    if not found:
        raise UnreadableOutput(f"the output has no '{name}:' line (stdout: {result.stdout[:200]!r})")
    return found[-1]


def read_int(result: ExecResult, name: str) -> int:
    text = read_value(result, name)
    try:
        return int(float(text))
    except ValueError:
        raise UnreadableOutput(f"'{name}:' is not a number: {text!r}") from None


def quote(values: list[str]) -> str:
    """'a', 'b' and 'c' -> "a, b and c" for narration."""
    return values[0] if len(values) == 1 else ", ".join(values[:-1]) + " and " + values[-1]
