"""Counting trajectories: find every shape with code, keep the asked-for colour and kind, count.

The program is the fixed shape finder of `shapes.py` with the question in it as a string, from
which the code reads the colour and kind ("How many red stars?" -> red, star): a policy learns to
write it by repeating the question, and the code does the looking. The number in the answer is
the one the code printed; where the finder gets a crowded image wrong, the answer check rejects
the item.
"""

from __future__ import annotations

from codedance_core.synthesis.shapes import SCRIPT_THOUGHT, count_code, printed_thought
from codedance_core.synthesis.steps import AnswerStep, ItemView, ToolStep, Writer, read_int


def write_count(view: ItemView) -> Writer:
    """Count the asked-for shapes with code; answer with the printed count."""
    result = yield ToolStep(SCRIPT_THOUGHT, count_code(view.question))
    count = read_int(result, "count")
    return AnswerStep(printed_thought(str(count)), str(count))
