"""The format penalty: -1 for a response whose tags a parser cannot trust, else 0.

Two things must hold (docs/method.md §4): every `<think>` is closed by a `</think>` before the
next one opens (no nesting, none left open), and there is exactly one `<answer>...</answer>`
block. The check runs on the model's own text (the assistant turns joined), never on tool
observations, which may print anything. As in the original, an over-long answer (1000 characters
or more, on sources other than maths) is a format error too: the caller passes the cap.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from codedance_core.rewards.answers import extract_answer

FORMAT_PENALTY = -1.0
_THINK_TAG = re.compile(r"</?think>")


@dataclass(frozen=True)
class FormatCheck:
    """The penalty (-1.0 or 0.0) and, when penalised, what was wrong."""

    penalty: float
    reason: str


def think_tags_balanced(text: str) -> bool:
    """Every `<think>` closed before the next opens, and none left open."""
    open_block = False
    for tag in _THINK_TAG.findall(text):
        opening = tag == "<think>"
        if opening == open_block:  # an open inside an open, or a close with nothing open
            return False
        open_block = opening
    return not open_block


def answer_blocks_ok(text: str) -> bool:
    """Exactly one `<answer>` and one `</answer>`, in that order."""
    if text.count("<answer>") != 1 or text.count("</answer>") != 1:
        return False
    return text.index("<answer>") < text.index("</answer>")


def check_format(text: str, *, max_answer_chars: int | None = None) -> FormatCheck:
    """-1.0 when the think tags are unbalanced, the answer block is not exactly one, or the answer
    is `max_answer_chars` long or longer (None: no cap); else 0.0."""
    if not think_tags_balanced(text):
        return FormatCheck(FORMAT_PENALTY, "unbalanced <think> tags")
    if not answer_blocks_ok(text):
        n_open = text.count("<answer>")
        return FormatCheck(
            FORMAT_PENALTY, f"expected one <answer>...</answer> block, found {n_open} opening tags"
        )
    answer = extract_answer(text).text or ""
    if max_answer_chars is not None and len(answer) >= max_answer_chars:
        return FormatCheck(FORMAT_PENALTY, f"answer of {len(answer)} characters (cap {max_answer_chars})")
    return FormatCheck(0.0, "")


def format_penalty(text: str) -> float:
    """-1.0 or 0.0: the number `check_format` decides."""
    return check_format(text).penalty
