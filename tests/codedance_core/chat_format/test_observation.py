"""The observation formatter: one text per execution outcome, capped, with image placeholders."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from codedance_core.chat_format.observation import cap, format_observation, format_parse_error


@dataclass
class Outcome:
    """A plain record with the fields of the sandbox's ExecResult that the formatter reads."""

    status: str = "ok"
    stdout: str = ""
    stderr: str = ""
    error_type: str | None = None
    error_message: str | None = None
    error_line: int | None = None
    result_repr: str | None = None
    images: list[Any] = field(default_factory=list)


def test_ok_with_output_value_and_images() -> None:
    obs = format_observation(Outcome(stdout="42\n", result_repr="(10, 20)", images=["a", "b"]))
    assert obs.text.startswith("Execution succeeded.")
    assert "tool_response" not in obs.text  # the chat template wraps tool turns
    assert "stdout:\n42" in obs.text and "value:\n(10, 20)" in obs.text
    assert "2 images: <image><image>" in obs.text
    assert obs.images == ["a", "b"]


def test_error_names_type_message_and_line_and_says_state_was_reset() -> None:
    obs = format_observation(
        Outcome(status="error", error_type="ZeroDivisionError", error_message="division by zero", error_line=3)
    )
    assert "Execution failed (line 3): ZeroDivisionError: division by zero" in obs.text
    assert "session was reset" in obs.text


@pytest.mark.parametrize(
    ("status", "phrase"),
    [("timeout", "timed out after 15 s"), ("killed", "resource limit"), ("output_limit", "more output")],
)
def test_each_failure_status_has_its_own_words(status: str, phrase: str) -> None:
    assert phrase in format_observation(Outcome(status=status), timeout_s=15).text


def test_silent_code_gets_a_hint() -> None:
    assert "printed nothing" in format_observation(Outcome()).text


def test_huge_output_is_capped_with_a_marker() -> None:
    obs = format_observation(Outcome(stdout="x" * 100_000), max_chars=1000)
    assert len(obs.text) < 1200
    assert "[truncated" in obs.text


def test_cap_keeps_head_and_tail() -> None:
    text = "HEAD" + "." * 1000 + "TAIL"
    capped = cap(text, 100)
    assert capped.startswith("HEAD") and capped.endswith("TAIL") and "truncated 908 characters" in capped
    assert cap("short", 100) == "short"


def test_custom_image_placeholder() -> None:
    obs = format_observation(Outcome(images=[1]), image_placeholder="<|vision_start|><|image_pad|><|vision_end|>")
    assert "1 image: <|vision_start|><|image_pad|><|vision_end|>" in obs.text


def test_parse_error_observation() -> None:
    obs = format_parse_error("<code> block whose ```python fence is not closed")
    assert "could not be run" in obs.text and obs.images == []
