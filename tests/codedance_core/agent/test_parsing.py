"""Parsing model turns, table-driven: the three code forms, their order, answers, malformed input."""

from __future__ import annotations

import pytest

from codedance_core.agent.parsing import ParsedTurn, extract_answer, parse_turn

TAGGED = "<think>crop it</think>\n<code>\n```python\nprint(1)\n```\n</code>"
FENCED = "Let me check.\n```python\nprint(2)\n```"
HERMES = '<tool_call>{"name": "execute_python_code", "arguments": {"code": "print(3)"}}</tool_call>'

CASES = [
    # (turn text, code, form, answer, parse_error contains)
    (TAGGED, "print(1)\n", "tagged", None, None),
    (FENCED, "print(2)\n", "fenced", None, None),
    (HERMES, "print(3)", "tool_call", None, None),
    ("<code>\n```py\nx = 1\n```\n</code>", "x = 1\n", "tagged", None, None),
    # Only the first block runs, and the tagged form wins over a bare fence before it.
    ("```python\nfirst()\n```\n" + TAGGED, "print(1)\n", "tagged", None, None),
    (TAGGED + "\n<code>\n```python\nsecond()\n```\n</code>", "print(1)\n", "tagged", None, None),
    (FENCED + "\n" + HERMES, "print(2)\n", "fenced", None, None),
    # Answers.
    ("<think>easy</think><answer> 7 </answer>", None, None, "7", None),
    ("<answer>blue</answer><answer>red</answer>", None, None, "blue", None),
    ("no tags at all", None, None, None, None),
    ("<answer>unclosed", None, None, None, None),
    # A bash block is not python.
    ("```bash\nls\n```", None, None, None, None),
    # Malformed calls become parse errors with a reason.
    ("<code>print(1)</code>", None, None, None, "without a ```python fenced block"),
    ("<code>\n```python\nprint(1)\n", None, None, None, "not closed"),
    ("<tool_call>{not json}</tool_call>", None, None, None, "not valid JSON"),
    ('<tool_call>{"name": "search", "arguments": {}}</tool_call>', None, None, None, "unknown tool 'search'"),
    ('<tool_call>{"name": "execute_python_code", "arguments": {}}</tool_call>', None, None, None, "no string argument"),
]


@pytest.mark.parametrize(("text", "code", "form", "answer", "error"), CASES)
def test_parse_turn(text: str, code: str | None, form: str | None, answer: str | None, error: str | None) -> None:
    parsed = parse_turn(text)
    assert parsed.code == code
    assert parsed.code_form == form
    assert parsed.answer == answer
    if error is None:
        assert parsed.parse_error is None
    else:
        assert parsed.parse_error is not None and error in parsed.parse_error
        assert parsed.wants_tool


def test_double_encoded_tool_call_arguments() -> None:
    text = '<tool_call>{"name": "execute_python_code", "arguments": "{\\"code\\": \\"print(4)\\"}"}</tool_call>'
    assert parse_turn(text) == ParsedTurn(code="print(4)", code_form="tool_call")


def test_a_turn_can_carry_code_and_answer() -> None:
    parsed = parse_turn(TAGGED + "<answer>3</answer>")
    assert parsed.code == "print(1)\n" and parsed.answer == "3"


def test_extract_answer_keeps_inner_newlines() -> None:
    assert extract_answer("<answer>\nline one\nline two\n</answer>") == "line one\nline two"
