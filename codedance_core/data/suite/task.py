"""What a family generator returns, and the question phrasing shared by the families.

A family is a function `generate(rng, hard) -> SuiteTask`. The task carries the rendered
image, the question, the exact gold answer, and `params`: everything the generator decided
(every shape's kind, colour and box, a chart's values and pixel mapping, ...), recorded in
full because later stages write code trajectories from it and tests check the answer
against it.
"""

from __future__ import annotations

import string
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

LETTERS = string.ascii_uppercase

ANSWER_INTEGER = "Answer with a single integer."
ANSWER_COLOUR = "Answer with a colour word."
ANSWER_YES_NO = "Answer yes or no."
ANSWER_LETTER = "Answer with the option's letter."


@dataclass
class SuiteTask:
    question: str
    answer: str
    image: Image.Image
    params: dict[str, Any] = field(default_factory=dict)
    options: list[str] = field(default_factory=list)


def with_options(question: str, options: list[str]) -> str:
    """A multiple-choice question: the options as (A) ... lines, then the answer instruction."""
    lines = [question] + [f"({LETTERS[i]}) {option}" for i, option in enumerate(options)]
    return "\n".join(lines) + f"\n{ANSWER_LETTER}"


def plural(kind: str) -> str:
    return f"{kind}es" if kind.endswith(("s", "sh", "ch", "x")) else f"{kind}s"
