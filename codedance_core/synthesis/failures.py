"""Planned first attempts that fail: a typo whose REAL error the trajectory shows and fixes.

A model trained only on clean trajectories never sees an error message and does not learn to
recover from one. So a share of tool trajectories (`SynthesisConfig.failure_rate`) open with
the first script broken by a typo (`input_img` for `input_image`); the sandbox raises, the
observation in the row is that real error, and the next turn names the error and runs the
corrected script.
"""

from __future__ import annotations

from codedance_core.sandbox import ExecResult
from codedance_core.synthesis.steps import AnswerStep, ToolStep, Writer

TYPO = ("input_image", "input_img")


class PlannedFailureDidNotFail(RuntimeError):
    """The broken first attempt ran fine: the trajectory would teach a fix for nothing."""


def break_code(code: str) -> str:
    """The script with its first use of `input_image` misspelled (a NameError when it runs)."""
    right, wrong = TYPO
    if right not in code:
        raise ValueError("the script does not use input_image; nothing to misspell")
    return code.replace(right, wrong, 1)


def correction_think(result: ExecResult, original_think: str) -> str:
    """The thought after the failed attempt: name the real error, then why the fix is right."""
    error = f"{result.error_type}: {result.error_message}" if result.error_type else f"status {result.status}"
    return (f"The script failed with {error}. I misspelled the image variable: it is `input_image`, not "
            f"`input_img`. The session was reset, so I run the whole corrected script again. {original_think}")


def with_typo_first(writer: Writer) -> Writer:
    """Run `writer` with its first tool step preceded by a misspelled copy that fails."""
    try:
        first = next(writer)
    except StopIteration as stop:  # a writer with no tool step has nothing to break
        return stop.value
    result = yield ToolStep(first.think, break_code(first.code), expect_error=True)
    if result.ok:
        raise PlannedFailureDidNotFail("the misspelled script ran without error")
    result = yield ToolStep(correction_think(result, first.think), first.code)
    return (yield from _resume(writer, result))


def _resume(writer: Writer, value: ExecResult) -> Writer:
    """Continue a started writer by sending it `value`, relaying its later steps."""
    while True:
        try:
            step = writer.send(value)
        except StopIteration as stop:
            answer: AnswerStep = stop.value
            return answer
        value = yield step
