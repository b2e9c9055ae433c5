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

import re
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


# -- the original's observation text, mapped onto ours -----------------------------------------
# The released CodeDance data shows tool results in the original's own words: a stdout section
# ("Code execution successful, output:" in its training tool, "Output:" in its evaluation
# script, "Output before error:" on a failure), a stderr section (fenced or not), one
# "Output image:" line per produced image, an error block "--- Execution Error (Type) ---", a
# bare "Code execution timed out.", and in training a closing instruction to reflect on the
# result. Parsing that back into an execution record lets `format_observation` write the text
# every other stage shows (docs/method.md §2).

_OURS = re.compile(r"^(Execution (succeeded|failed|timed out|was killed|produced|ended)|Your code could not be run)")
_SECTION = re.compile(
    r"^(?P<head>Code execution successful, output:|Output before error:|Output:|Stderr output:|Output image:"
    r"|--- Execution Error \((?P<error_type>[^)\n]*)\) ---)[ \t]*(?:\n|$|(?=" + re.escape(IMAGE_PLACEHOLDER) + "))",
    re.MULTILINE,
)  # a header is alone on its line (or followed by its image): a printed "Output: 5" is not one
_REFLECT = re.compile(r"\n*Think with the tool's result, then answer\..*\Z", re.DOTALL)
_EXIT_NOTE = re.compile(r"\n?NOTE: Code execution was halted by a call to exit\(\) or quit\(\)\..*$")
_TIMED_OUT = re.compile(r"timed out(?: after (?P<seconds>[\d.]+) seconds)?")
_TYPED_MESSAGE = re.compile(r"^(?P<type>[A-Za-z_][\w.]*): (?P<message>.*)$", re.DOTALL)
_LINE_SUFFIX = re.compile(r" \(line (?P<line>\d+)\)$")
_FENCE = re.compile(r"^```\w*\n(?P<body>.*?)\n?```$", re.DOTALL)
RESPONSE_OPEN, RESPONSE_CLOSE = "<tool_response>", "</tool_response>"


@dataclass
class ParsedExecution:
    """An execution record read back from an observation text (the fields `format_observation` reads)."""

    status: str = "ok"
    stdout: str = ""
    stderr: str = ""
    error_type: str | None = None
    error_message: str | None = None
    error_line: int | None = None
    result_repr: str | None = None
    images: list[Any] = field(default_factory=list)
    timeout_s: float | None = None


def unwrap_tool_response(text: str) -> str:
    """The observation inside `<tool_response>` wrappings (the original wrapped each part of some)."""
    stripped = text.strip()
    if not stripped.startswith(RESPONSE_OPEN):
        return text
    return stripped.replace(RESPONSE_OPEN, "").replace(RESPONSE_CLOSE, "").strip("\n")


def is_our_observation(text: str) -> bool:
    """Whether an (unwrapped) observation was written by `format_observation` or `format_parse_error`."""
    return bool(_OURS.match(text.lstrip()))


def _unfenced(body: str) -> str:
    body = body.strip("\n")
    match = _FENCE.match(body.strip())
    return match.group("body") if match else body


def parse_original_observation(text: str, image_placeholder: str = IMAGE_PLACEHOLDER) -> ParsedExecution:
    """The execution an observation in the original's words reports; one image per placeholder."""
    body = _REFLECT.sub("", unwrap_tool_response(text))
    parsed = ParsedExecution(images=[None] * body.count(image_placeholder))
    sections = list(_SECTION.finditer(body))
    preamble = body[: sections[0].start() if sections else len(body)].strip()
    for index, section in enumerate(sections):
        end = sections[index + 1].start() if index + 1 < len(sections) else len(body)
        content = body[section.end() : end].replace(image_placeholder, "").strip("\n")
        head = section.group("head")
        if head.startswith("---"):
            _read_error(parsed, section.group("error_type"), content.strip())
        elif head == "Stderr output:":
            parsed.stderr = _unfenced(content)
        elif head != "Output image:":
            parsed.stdout = _EXIT_NOTE.sub("", content.strip("\n"))
    if preamble:
        _read_preamble(parsed, preamble)
    return parsed


def _read_error(parsed: ParsedExecution, error_type: str, message: str) -> None:
    timed_out = _TIMED_OUT.search(message)
    if error_type == "TimeoutError" or (timed_out and error_type in ("", "Error")):
        parsed.status = "timeout"
        parsed.timeout_s = float(timed_out.group("seconds")) if timed_out and timed_out.group("seconds") else None
        return
    parsed.status = "error"
    if line := _LINE_SUFFIX.search(message):
        parsed.error_line = int(line.group("line"))
        message = message[: line.start()]
    typed = _TYPED_MESSAGE.match(message)
    if typed and error_type in ("", "Error"):
        error_type, message = typed.group("type"), typed.group("message")
    parsed.error_type, parsed.error_message = error_type or "Error", message


def _read_preamble(parsed: ParsedExecution, preamble: str) -> None:
    """Text before any section: a timeout, a failure of the original's framework, or a note on silent code."""
    if timed_out := _TIMED_OUT.search(preamble):
        parsed.status = "timeout"
        parsed.timeout_s = float(timed_out.group("seconds")) if timed_out.group("seconds") else None
    elif preamble.startswith(("Code execution failed:", "An unexpected exception")):
        parsed.status = "error"
        _read_error(parsed, "Error", preamble.split(":", 1)[1].strip())
    elif not preamble.startswith(("Code executed successfully", "Execution finished")):
        parsed.stdout = (parsed.stdout + "\n" + preamble).strip("\n") if parsed.stdout else preamble


def reformat_observation(
    text: str, max_chars: int = 4000, timeout_s: float | None = None, image_placeholder: str = IMAGE_PLACEHOLDER
) -> str:
    """An observation text in our words: ours is kept (unwrapped), the original's is parsed and rendered."""
    inner = unwrap_tool_response(text)
    if is_our_observation(inner):
        return inner
    parsed = parse_original_observation(inner, image_placeholder)
    timeout = timeout_s if timeout_s is not None else parsed.timeout_s  # the limit the loop states
    return format_observation(parsed, image_placeholder, max_chars, timeout).text
