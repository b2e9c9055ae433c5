"""Direct items: everything needed for the answer is in the question's text."""

from __future__ import annotations

import pytest

from codedance_core.data.suite.task import LETTERS


@pytest.mark.parametrize("difficulty", ["easy", "hard"])
def test_answer_is_derivable_from_the_text(family_tasks, difficulty):
    templates = set()
    for task in family_tasks("direct", difficulty, n=40):
        template, values = task.params["template"], task.params["values"]
        templates.add(template)
        for value in values.values():
            if isinstance(value, int):
                assert str(value) in task.question
        if template == "lookup":
            assert f"the {values['thing']} is {task.answer}." in task.question.lower()
        elif template == "choice":
            numbers = values["numbers"]
            best = min(numbers) if values["asked"] == "smallest" else max(numbers)
            assert task.answer == LETTERS[numbers.index(best)]
            assert f"({task.answer}) {best}" in task.question
        elif template == "arithmetic":
            expected = values["rows"] * values["per_row"] - values["taken"] if difficulty == "hard" else (
                values["a"] + values["b"])
            assert task.answer == str(expected)
        else:
            assert task.answer in ("yes", "no")
    assert templates == {"arithmetic", "lookup", "choice", "yes_no"}
