"""Between the data's messages and the model's: `<image>` markers become image parts.

Datasets (the released CodeDance rows, our suite and SFT rows) write images into message text
as `<image>` markers, one per image, in order. Chat templates and OpenAI-style endpoints want
content parts instead: `{"type": "image"}` where the image goes. This is the one conversion,
used by the rollout, SFT and evaluation, so a marker means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from codedance_core.chat_format.prompts import IMAGE_PLACEHOLDER


def content_parts(text: str, marker: str = IMAGE_PLACEHOLDER) -> str | list[dict[str, Any]]:
    """Text with markers -> parts; text without markers stays a plain string."""
    if marker not in text:
        return text
    parts: list[dict[str, Any]] = []
    pieces = text.split(marker)
    for index, piece in enumerate(pieces):
        if index > 0:
            parts.append({"type": "image"})
        if piece:
            parts.append({"type": "text", "text": piece})
    return parts


def to_model_messages(messages: Sequence[dict[str, Any]], marker: str = IMAGE_PLACEHOLDER) -> list[dict[str, Any]]:
    """Messages whose string contents carry `<image>` markers, as messages with image parts."""
    converted = []
    for message in messages:
        content = message.get("content", "")
        if isinstance(content, str):
            content = content_parts(content, marker)
        converted.append({"role": message["role"], "content": content})
    return converted


def count_images(messages: Sequence[dict[str, Any]], marker: str = IMAGE_PLACEHOLDER) -> int:
    """Images a conversation refers to, in markers or image parts."""
    total = 0
    for message in messages:
        content = message.get("content", "")
        if isinstance(content, str):
            total += content.count(marker)
        else:
            total += sum(1 for part in content if part.get("type") in ("image", "image_url"))
    return total
