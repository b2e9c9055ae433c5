"""The versioned prompts: a question becomes a system prompt and a user turn, image marker first."""

from __future__ import annotations

import pytest

from codedance_core.chat_format.prompts import (
    IMAGE_PLACEHOLDER,
    PROMPT_VERSION,
    get_prompts,
    initial_messages,
    user_turn,
)


def test_the_current_version_is_known_and_an_unknown_one_is_refused() -> None:
    assert get_prompts().version == PROMPT_VERSION
    assert "input_image" in get_prompts(PROMPT_VERSION).system
    with pytest.raises(ValueError, match="unknown prompt version 'v0'"):
        get_prompts("v0")


def test_the_user_turn_puts_the_image_then_the_question_then_the_instruction() -> None:
    text = user_turn("  How many stars?\n")
    assert text.startswith(f"{IMAGE_PLACEHOLDER}\nHow many stars?\n\n")
    assert text.endswith(get_prompts().instruction)
    assert user_turn("How many?", with_image=False).startswith("How many?")


def test_initial_messages_are_the_system_prompt_and_the_user_turn() -> None:
    messages = initial_messages("What colour is the star?")
    assert [m["role"] for m in messages] == ["system", "user"]
    assert messages[0]["content"] == get_prompts().system
    assert messages[1]["content"] == user_turn("What colour is the star?")
