"""Counting trajectories: find every shape with code, keep the asked-for colour and kind, count.

The program is the fixed shape finder of `shapes.py` plus one line naming what the question
asks for ("How many red stars?" -> colour red, kind star), so a policy learns to write it from
the question's words alone: the code does the looking. The number in the answer is the one the
code printed; where the finder gets a crowded image wrong, the answer check rejects the item.
"""

from __future__ import annotations

from codedance_core.synthesis.shapes import count_code
from codedance_core.synthesis.steps import AnswerStep, ItemView, ToolStep, Writer, read_int


def write_count(view: ItemView) -> Writer:
    """Count the asked-for shapes with code; answer with the printed count."""
    target = view.params["target"]
    colour, kind = target.get("colour"), target.get("kind")
    what = " ".join(part for part in (colour, f"{kind}s" if kind else "shapes") if part)
    think = f"I list every shape's colour and kind with code and count the {what}."
    result = yield ToolStep(think, count_code(colour, kind))
    count = read_int(result, "count")
    return AnswerStep(f"The code counted {count} {what}.", str(count))
