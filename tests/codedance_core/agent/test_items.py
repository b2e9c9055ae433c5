"""Rows to rollout items."""

from __future__ import annotations

from codedance_core.agent.items import options_in_question


def test_options_are_read_from_the_question_text() -> None:
    question = "What colour is the small star? (A) blue (B) green (C) light purple (D) red Answer with the option's letter."
    assert options_in_question(question) == ["blue", "green", "light purple", "red"]
    assert options_in_question("Which is larger?\n(A) 528\n(B) 726") == ["528", "726"]
    assert options_in_question("How many (roughly) circles?") is None
    assert options_in_question("(B) only one (A) out of order") is None
