"""`<image>` markers to image parts: one conversion for every stage."""

from __future__ import annotations

from codedance_core.chat_format.messages import content_parts, count_images, to_model_messages


def test_text_without_markers_stays_a_string() -> None:
    assert content_parts("just words") == "just words"


def test_markers_become_image_parts_in_place() -> None:
    assert content_parts("<image>\nHow many?") == [{"type": "image"}, {"type": "text", "text": "\nHow many?"}]
    assert content_parts("a<image>b<image>") == [
        {"type": "text", "text": "a"},
        {"type": "image"},
        {"type": "text", "text": "b"},
        {"type": "image"},
    ]


def test_messages_are_converted_and_counted() -> None:
    messages = [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "<image>q"},
        {"role": "tool", "content": "1 image: <image>"},
    ]
    converted = to_model_messages(messages)
    assert converted[0] == {"role": "system", "content": "sys"}
    assert converted[1]["content"][0] == {"type": "image"}
    assert count_images(messages) == count_images(converted) == 2

