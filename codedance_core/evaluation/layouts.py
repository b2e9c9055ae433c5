"""Which layout a benchmark file is in, and the prompt its items get.

A file is recognised from its first row's columns before anything else is read: RL rows as
released (`prompt` or `messages`, `reward_model`), or eval rows (a question and an answer column
among those `ColumnHints` names; VLMEvalKit's TSV is such a layout). A file in neither is refused
at once with one line naming the layouts known and the columns found, rather than after every
row failed (or, worse, scored 0%).

Items get the prompt the original evaluation script builds (our system prompt, the image, the
question, the instruction: docs/method.md §2) whatever the layout; RL rows, which carry a prompt of
their own, keep it only when asked (`prompt="row"`), and their question is taken from
`extra_info.question`, else from the user turn without its image markers.
"""

from __future__ import annotations

import string
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from codedance_core.agent.trajectory import RolloutItem
from codedance_core.chat_format.prompts import original_prompt, question_in_prompt
from codedance_core.data.quarantine import NoValidRowsError
from codedance_core.errors import UserError
from codedance_core.evaluation.loaders import (
    IMAGE_COLUMNS,
    RL_COLUMNS,
    BenchmarkFormatError,
    ColumnHints,
    read_table,
)

if TYPE_CHECKING:
    from codedance_core.evaluation.registry import Benchmark

TSV_COLUMNS = "index, image as base64, question, answer, options in columns A, B, ..."


class UnknownLayoutError(NoValidRowsError, BenchmarkFormatError):
    """A benchmark file in no layout its entry reads: names the layouts known and the columns found."""

    def __init__(self, uri: str, benchmark: str, found: Sequence[str], layouts: Sequence[str]) -> None:
        self.uri, self.found, self.expected, self.reasons = uri, list(found), list(layouts), {}
        message = (
            f"{uri}: not a layout benchmark {benchmark!r} reads; "
            f"columns found: {', '.join(self.found) or '(none)'}; layouts known: {'; '.join(layouts)}"
        )
        UserError.__init__(self, message, "check --benchmark and that the file is the benchmark's")


def is_rl_row(row: Mapping[str, Any]) -> bool:
    return "reward_model" in row and ("prompt" in row or "messages" in row)


def is_eval_row(row: Mapping[str, Any], hints: ColumnHints) -> bool:
    if hints.question_template is not None:
        fields = {name for _, name, _, _ in string.Formatter().parse(hints.question_template) if name}
        has_question = fields <= set(row)
    else:
        has_question = any(column in row for column in hints.question)
    return has_question and any(column in row for column in hints.answer)


def known_layouts(hints: ColumnHints) -> list[str]:
    question = "the template's fields" if hints.question_template else "one of " + "/".join(hints.question)
    return [
        f"RL rows ({', '.join(RL_COLUMNS)})",
        (
            f"eval rows (question: {question}; answer: one of {'/'.join(hints.answer)}; "
            f"image: one of {'/'.join(IMAGE_COLUMNS)})"
        ),
        f"VLMEvalKit TSV ({TSV_COLUMNS})",
    ]


def check_layout(benchmark: Benchmark, uri: str, row: Mapping[str, Any]) -> None:
    """Raise UnknownLayoutError unless `row` (a file's first) is in a layout `benchmark` reads."""
    rl, evaluation = is_rl_row(row), is_eval_row(row, benchmark.hints)
    fits = {"rl": rl, "eval": evaluation, "auto": rl or evaluation}[benchmark.layout]
    if not fits:
        raise UnknownLayoutError(uri, benchmark.name, list(row), known_layouts(benchmark.hints))


def check_file(benchmark: Benchmark, path: Path) -> None:
    """The file's layout, checked from its first row (cheap: nothing else is read)."""
    from codedance_core.evaluation.registry import data_file

    source = data_file(benchmark, path)
    first = next(iter(read_table(source)), None)
    if first is None:
        raise BenchmarkFormatError(f"{source}: no rows; {benchmark.name} expects {benchmark.expects}")
    check_layout(benchmark, str(source), first)


def with_original_prompt(item: RolloutItem) -> RolloutItem:
    """An item from a row with its own prompt, given the original evaluation script's instead."""
    question = item.question
    if question == next((m["content"] for m in item.messages if m["role"] == "user"), None):
        question = question_in_prompt(question)  # no extra_info.question: the user turn's text
    return replace(item, messages=original_prompt(question, len(item.images)), question=question)
