"""The one observation formatter: what the model sees after its code runs.

The original used different observation texts in training and in evaluation, so a model was
evaluated on inputs it had never seen. Here SFT data, RL rollouts and evaluation all call
`format_observation`, and its version is recorded with every trajectory.

An observation is the content of a `tool` message: the explicit execution status, stdout,
stderr, the value of a final expression, and one image placeholder per produced image (the
images themselves travel beside the text). The chat template renders a tool message as a user
turn wrapped in `<tool_response>...</tool_response>` (docs/method.md §2), so the wrapping
lives in one place, the template, for every model and every stage. Every part is capped so a
chatty program cannot overflow the context; a cut is marked, never silent.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from codedance_core.chat_format.prompts import IMAGE_PLACEHOLDER

OBSERVATION_VERSION = "v1"
TRUNCATION_MARK = "\n...[truncated {n} characters]...\n"


class ExecutionLike(Protocol):
    """The fields of a sandbox ExecResult that the formatter reads."""

    status: str
    stdout: str
    stderr: str
    error_type: str | None
    error_message: str | None
    error_line: int | None
    result_repr: str | None
    images: list[Any]


@dataclass(frozen=True)
class Observation:
    """The content of a tool turn and the images it refers to (one placeholder each, in order)."""

    text: str
    images: list[Any] = field(default_factory=list)


def cap(text: str, limit: int) -> str:
    """Keep the head and tail of a long text with a marker saying how much was cut."""
    if len(text) <= limit:
        return text
    keep_head = limit * 2 // 3
    keep_tail = limit - keep_head
    cut = len(text) - keep_head - keep_tail
    return text[:keep_head] + TRUNCATION_MARK.format(n=cut) + text[len(text) - keep_tail :]


def _status_line(result: ExecutionLike, timeout_s: float | None) -> str:
    status = result.status
    if status == "ok":
        return "Execution succeeded."
    reset = " The session was reset: variables are gone and `input_image` is loaded again."
    if status == "error":
        where = f" (line {result.error_line})" if result.error_line else ""
        return f"Execution failed{where}: {result.error_type or 'Error'}: {result.error_message or ''}".rstrip() + reset
    if status == "timeout":
        limit = f" after {timeout_s:g} s" if timeout_s else ""
        return f"Execution timed out{limit} and was stopped." + reset
    if status == "killed":
        return "Execution was killed for exceeding a resource limit (memory, processes or files)." + reset
    if status == "output_limit":
        return "Execution produced more output than allowed and was stopped." + reset
    return f"Execution ended with status {status}." + reset


def format_observation(
    result: ExecutionLike,
    image_placeholder: str = IMAGE_PLACEHOLDER,
    max_chars: int = 4000,
    timeout_s: float | None = None,
) -> Observation:
    """Render an execution result as the tool turn the model reads next."""
    budget = max(200, max_chars)
    parts = [_status_line(result, timeout_s)]
    if result.stdout:
        parts.append("stdout:\n" + cap(result.stdout.rstrip("\n"), budget // 2))
    if result.stderr and result.status == "ok":
        parts.append("stderr:\n" + cap(result.stderr.rstrip("\n"), budget // 4))
    if result.result_repr:
        parts.append("value:\n" + cap(result.result_repr, budget // 4))
    images = list(result.images)
    if images:
        noun = "image" if len(images) == 1 else "images"
        parts.append(f"{len(images)} {noun}: " + "".join(image_placeholder for _ in images))
    if result.status == "ok" and not (result.stdout or result.result_repr or images):
        parts.append("The code printed nothing. Use print() to see values, or show an image to look at it.")
    return Observation(text=cap("\n".join(parts), budget), images=images)


def format_parse_error(reason: str) -> Observation:
    """The tool turn for a code block that could not be parsed (counted as a failed call)."""
    hint = "Write code as <code>\n```python\n...\n```\n</code>."
    return Observation(text=f"Your code could not be run: {reason}. {hint}")
