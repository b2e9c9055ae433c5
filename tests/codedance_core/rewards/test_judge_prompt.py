"""The judge prompt: seven examples in the reply format it asks for, and a version."""

from __future__ import annotations

from codedance_core.rewards.judge import parse_judgement
from codedance_core.rewards.judge_prompt import JUDGE_EXAMPLES, JUDGE_PROMPT_VERSION, judge_messages


def test_seven_examples_answered_in_the_asked_format() -> None:
    messages = judge_messages("What colour?", "red", "crimson")
    assert len(JUDGE_EXAMPLES) == 7 and JUDGE_PROMPT_VERSION
    assert messages[0]["role"] == "system" and "Judgement: 1" in messages[0]["content"]
    shots = [m["content"] for m in messages[2:-1:2]]
    assert [parse_judgement(s) for s in shots] == [float(e[3]) for e in JUDGE_EXAMPLES]
    assert {0.0, 1.0} <= {parse_judgement(s) for s in shots}
    assert messages[-1] == {
        "role": "user",
        "content": "Question: What colour?\nReference answer: red\nModel answer: crimson",
    }
