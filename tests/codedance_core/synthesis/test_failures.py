"""Planned failures: the misspelled script and the correction that quotes the real error."""

from __future__ import annotations

import pytest

from codedance_core.sandbox import ExecResult
from codedance_core.synthesis.failures import (
    PlannedFailureDidNotFail,
    break_code,
    correction_think,
    with_typo_first,
)
from codedance_core.synthesis.steps import AnswerStep, ToolStep


def two_step_writer():
    result = yield ToolStep("look", "print(input_image.size)\n")
    return AnswerStep("done", result.stdout.strip())


def test_break_code_misspells_the_first_use_only():
    assert break_code("a = input_image\nb = input_image\n") == "a = input_img\nb = input_image\n"
    with pytest.raises(ValueError):
        break_code("print(1)")


def test_the_wrapper_runs_a_broken_copy_then_the_original_then_resumes():
    wrapped = with_typo_first(two_step_writer())
    broken = next(wrapped)
    assert broken.expect_error and "input_img" in broken.code
    error = ExecResult(status="error", error_type="NameError", error_message="name 'input_img' is not defined")
    fixed = wrapped.send(error)
    assert fixed.code == "print(input_image.size)\n" and "NameError" in fixed.think
    with pytest.raises(StopIteration) as stop:
        wrapped.send(ExecResult(status="ok", stdout="(448, 448)\n"))
    assert stop.value.value == AnswerStep("done", "(448, 448)")


def test_a_broken_script_that_succeeds_is_an_error():
    wrapped = with_typo_first(two_step_writer())
    next(wrapped)
    with pytest.raises(PlannedFailureDidNotFail):
        wrapped.send(ExecResult(status="ok"))


def test_correction_names_the_error():
    think = correction_think(ExecResult(status="error", error_type="NameError", error_message="x"), "then count")
    assert think.startswith("The script failed with NameError: x") and think.endswith("then count")
