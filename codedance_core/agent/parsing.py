"""Reading a model turn: the code it wants run and the answer it gives.

The model may write code in three forms (docs/method.md §2), tried in this order:
1. `<code>` + a fenced ```python block + `</code>` (what our prompt asks for);
2. a bare fenced ```python block (what models fall back to);
3. a Hermes-style `<tool_call>{"name": "execute_python_code", "arguments": {"code": ...}}</tool_call>`.
Only the first block of a turn runs: a turn is one action, and its observation answers it.

Malformed code is not an exception: it becomes a `parse_error` with a reason, which the rollout
records and shows to the model, and which the reward counts as a failed call.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Literal

CodeForm = Literal["tagged", "fenced", "tool_call"]
TOOL_NAME = "execute_python_code"

_TAGGED = re.compile(r"<code>\s*```(?:python|py)?[ \t]*\n(.*?)```\s*</code>", re.DOTALL)
_TAGGED_OPEN = re.compile(r"<code>(.*?)(?:</code>|\Z)", re.DOTALL)
_FENCED = re.compile(r"```(?:python|py)[ \t]*\n(.*?)```", re.DOTALL)
_TOOL_CALL = re.compile(r"<tool_call>(.*?)</tool_call>", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*?)</answer>", re.DOTALL)


@dataclass(frozen=True)
class ParsedTurn:
    """What one assistant turn asks for: code to run, a final answer, both, or neither."""

    code: str | None = None
    code_form: CodeForm | None = None
    answer: str | None = None
    parse_error: str | None = None

    @property
    def wants_tool(self) -> bool:
        """True when the turn tried to call the tool (even if the call could not be parsed)."""
        return self.code is not None or self.parse_error is not None


def extract_answer(text: str) -> str | None:
    """The content of the first complete `<answer>...</answer>`, stripped; None without one."""
    match = _ANSWER.search(text)
    return match.group(1).strip() if match else None


def _tool_call_code(text: str) -> tuple[str | None, str | None]:
    """(code, error) from the first Hermes-style tool call, if any."""
    match = _TOOL_CALL.search(text)
    if not match:
        return None, None
    try:
        call = json.loads(match.group(1).strip())
    except json.JSONDecodeError as exc:
        return None, f"tool_call is not valid JSON: {exc.msg} at position {exc.pos}"
    if not isinstance(call, dict) or call.get("name") != TOOL_NAME:
        name = call.get("name") if isinstance(call, dict) else None
        return None, f"unknown tool {name!r}; the only tool is {TOOL_NAME}"
    arguments = call.get("arguments")
    if isinstance(arguments, str):  # some models double-encode the arguments
        try:
            arguments = json.loads(arguments)
        except json.JSONDecodeError:
            return None, "tool_call arguments are a string that is not JSON"
    code = arguments.get("code") if isinstance(arguments, dict) else None
    if not isinstance(code, str) or not code.strip():
        return None, "tool_call has no string argument 'code'"
    return code, None


def parse_turn(text: str) -> ParsedTurn:
    """Parse an assistant turn: the first code block in the first form that matches, and the answer."""
    answer = extract_answer(text)
    if match := _TAGGED.search(text):
        return ParsedTurn(code=match.group(1), code_form="tagged", answer=answer)
    if match := _FENCED.search(text):
        return ParsedTurn(code=match.group(1), code_form="fenced", answer=answer)
    code, error = _tool_call_code(text)
    if code is not None:
        return ParsedTurn(code=code, code_form="tool_call", answer=answer)
    if error is not None:
        return ParsedTurn(answer=answer, parse_error=error)
    if match := _TAGGED_OPEN.search(text):
        body = match.group(1)
        if "```" not in body:
            reason = "<code> block without a ```python fenced block inside"
        else:
            reason = "<code> block whose ```python fence is not closed"
        return ParsedTurn(answer=answer, parse_error=reason)
    return ParsedTurn(answer=answer)
