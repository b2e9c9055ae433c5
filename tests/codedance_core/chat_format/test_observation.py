"""The observation formatter: one text per execution outcome, capped, with image placeholders."""

from __future__ import annotations

import pytest

from codedance_core.chat_format.observation import (
    ParsedExecution,
    cap,
    format_observation,
    format_parse_error,
    is_our_observation,
    parse_original_observation,
    reformat_observation,
)

# A plain record with the fields of the sandbox's ExecResult that the formatter reads.
Outcome = ParsedExecution


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


# -- the original's observation text, mapped onto ours -------------------------------------------
REFLECT = "\nThink with the tool's result, then answer. Determine if it adequately answers the question."


def test_the_originals_stdout_only_maps_to_our_stdout() -> None:
    training = f"Code execution successful, output:\n(224, 224)\n{REFLECT}"
    evaluation = "<tool_response>\nOutput:\n(224, 224)\n</tool_response>"
    ours = format_observation(Outcome(stdout="(224, 224)\n")).text
    assert reformat_observation(training) == reformat_observation(evaluation) == ours
    assert parse_original_observation(training).stdout == "(224, 224)"


def test_the_originals_error_maps_to_our_error_with_type_message_and_line() -> None:
    text = (
        "Output before error:\nstart\n--- Execution Error (Error) ---\nZeroDivisionError: division by zero (line 2)"
        "\n\nStderr output:\nTraceback (most recent call last): ..."
    )
    parsed = parse_original_observation(text)
    assert (parsed.status, parsed.error_type, parsed.error_message, parsed.error_line) == (
        "error", "ZeroDivisionError", "division by zero", 2,
    )
    expected = Outcome(
        status="error", stdout="start", error_type="ZeroDivisionError", error_message="division by zero", error_line=2
    )
    assert reformat_observation(text) == format_observation(expected).text


def test_the_originals_images_keep_their_placeholders_in_order() -> None:
    text = "<tool_response>\nOutput:\ncropped\nOutput image:\n<image>\nOutput image:\n<image>\n</tool_response>"
    assert reformat_observation(text) == format_observation(Outcome(stdout="cropped", images=[1, 2])).text
    assert reformat_observation(text).count("<image>") == 2


def test_the_originals_timeout_and_silent_code() -> None:
    assert reformat_observation("Code execution timed out.", timeout_s=15) == format_observation(
        Outcome(status="timeout"), timeout_s=15
    ).text
    silent = "Code executed successfully. No explicit output or figures produced."
    assert reformat_observation(silent) == format_observation(Outcome()).text


def test_a_printed_header_word_is_output_not_a_section() -> None:
    assert parse_original_observation("Output:\nOutput: 5\nmore").stdout == "Output: 5\nmore"


def test_our_own_observation_is_kept_and_unwrapped() -> None:
    ours = format_observation(Outcome(stdout="7")).text
    assert is_our_observation(ours)
    assert reformat_observation(f"<tool_response>\n{ours}\n</tool_response>") == ours
