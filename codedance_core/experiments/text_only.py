"""Text-only SFT data: the control arm that answers without ever writing code.

The first claim of the paper (tool SFT beats text-only SFT on visual tasks) only means
something if the two arms see the same items, the same prompts and the same gold answers, and
differ in one thing: whether the assistant's reply contains code. So the text-only rows are
*derived from the synthesised tool trajectories* rather than generated separately: each keeps
the system and user messages (so the prompt at evaluation time is identical for both arms) and
ONE assistant turn with a short think and the verified final answer. Tool turns, their
observation images and the code are dropped; only the question's own image remains.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from codedance_core.agent.parsing import extract_answer
from codedance_core.data.io import ParquetSink, iter_batches
from codedance_core.data.schemas import SFT_ARROW_SCHEMA
from codedance_core.storage import ArtifactRef

# Short on purpose: a long think would teach the tiny model text it cannot ground in the image.
TEXT_ONLY_THINK = "I look at the image and answer directly, without code."


def has_code(content: str) -> bool:
    return "<code>" in content or "```python" in content or "<tool_call>" in content


def text_only_messages(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """system + user + one assistant turn (think + answer) of a tool trajectory's messages.

    A trajectory that already is a single code-free answer (the `direct` family) is kept as is;
    otherwise the final answer is taken from the last assistant turn. Raises ValueError when the
    trajectory has no user turn or no final answer (a synthesised row always has both).
    """
    prompt = _up_to_first_user(messages)
    replies = [m for m in messages if m["role"] == "assistant"]
    tools = [m for m in messages if m["role"] == "tool"]
    if len(replies) == 1 and not tools and not has_code(replies[0]["content"]):
        return [*prompt, dict(replies[0])]
    answer = extract_answer(replies[-1]["content"]) if replies else None
    if answer is None:
        raise ValueError("trajectory has no final <answer>")
    reply = f"<think>\n{TEXT_ONLY_THINK}\n</think>\n<answer>{answer}</answer>"
    return [*prompt, {"role": "assistant", "content": reply}]


def _up_to_first_user(messages: list[dict[str, str]]) -> list[dict[str, str]]:
    """The messages up to and including the first user turn (the system prompt and the question)."""
    out: list[dict[str, str]] = []
    for message in messages:
        out.append({"role": message["role"], "content": message["content"]})
        if message["role"] == "user":
            return out
    raise ValueError("trajectory has no user turn")


def text_only_row(row: dict[str, Any]) -> dict[str, Any]:
    """One SFT row (messages, images) turned into its text-only twin: the question's image only."""
    messages = text_only_messages(list(row["messages"]))
    images_used = sum(m["content"].count("<image>") for m in messages)
    return {"messages": messages, "images": list(row["images"])[:images_used]}


def text_only_rows(rows: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    return [text_only_row(row) for row in rows]


def write_text_only(tool_sft_uri: str, out_uri: str, batch_rows: int = 256) -> ArtifactRef:
    """Read synthesised tool trajectories at `tool_sft_uri`; write their text-only twins to `out_uri`."""
    with ParquetSink.open(out_uri, SFT_ARROW_SCHEMA) as sink:
        for batch in iter_batches(tool_sft_uri, batch_rows=batch_rows):
            sink.write_rows(text_only_rows(batch.to_pylist()))
    assert sink.ref is not None
    return sink.ref
