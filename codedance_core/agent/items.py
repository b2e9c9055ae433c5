"""Rows to rollout items: the RL rows of the released data and of our suite, and eval items.

The image the model sees and the sandbox's `input_image` must be the same picture, pixel for
pixel, or coordinates the model reasons about would not match the code's (docs/method.md §2).
So images are resized here, once, Qwen-style, and both the engine and the sandbox get the
resized image.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from PIL import Image

from codedance_core.agent.trajectory import RolloutItem
from codedance_core.chat_format.prompts import PromptSet, get_prompts, initial_messages
from codedance_core.data.schemas import EvalItem, ImageRef, RLRow
from codedance_core.models.images import decode_image, resize_for_model

_OPTION = re.compile(r"\(([A-J])\)\s*(.+?)(?=\s*\([A-J]\)|\s+Answer\b|\n|$)")


def options_in_question(question: str) -> list[str] | None:
    """Choices written into the question as '(A) x (B) y ...', in letter order; None without any.
    RL rows carry multiple-choice options only in their text, and the choice rule needs them to
    accept an answer given as the option's text instead of its letter."""
    found = _OPTION.findall(question)
    letters = [letter for letter, _ in found]
    if len(found) < 2 or letters != [chr(ord("A") + i) for i in range(len(found))]:
        return None
    return [text.strip() for _, text in found]


def load_image(ref: ImageRef, min_pixels: int, max_pixels: int) -> Image.Image:
    """Decode an image reference (inline bytes or a path) and resize it for the model."""
    source = ref.bytes if ref.bytes else ref.path
    if source is None:
        raise ValueError("image has neither bytes nor path")
    return resize_for_model(decode_image(source).convert("RGB"), min_pixels, max_pixels)


def item_from_rl_row(
    row: dict[str, Any], index: int, min_pixels: int, max_pixels: int, images: Sequence[Image.Image] | None = None
) -> RolloutItem:
    """A RolloutItem from an RL row (either spelling); the row keeps its own system prompt.

    `images`: the row's images already at hand (e.g. kept encoded until read); None decodes them."""
    parsed = RLRow.model_validate(row)
    messages = [{"role": m.role, "content": m.content} for m in parsed.prompt]
    question = parsed.extra_info.question or next(m["content"] for m in messages if m["role"] == "user")
    item_id = f"{parsed.data_source}:{parsed.extra_info.index if parsed.extra_info.index is not None else index}"
    return RolloutItem(
        item_id=item_id,
        messages=messages,
        images=_images(parsed.images, min_pixels, max_pixels, images),
        gold=parsed.reward_model.ground_truth,
        data_source=parsed.data_source,
        question=question,
        options=options_in_question(question),
    )


def item_from_eval_row(
    row: dict[str, Any],
    index: int,
    min_pixels: int,
    max_pixels: int,
    prompts: PromptSet | None = None,
    images: Sequence[Image.Image] | None = None,
) -> RolloutItem:
    """A RolloutItem from an evaluation item, with our versioned prompt (`images` as for RL rows)."""
    parsed = EvalItem.model_validate(row)
    question = parsed.question
    if parsed.options and "(A)" not in question:
        letters = "ABCDEFGHIJ"
        question += "\nOptions:\n" + "\n".join(f"({letters[i]}) {opt}" for i, opt in enumerate(parsed.options))
    images = _images(parsed.images, min_pixels, max_pixels, images)
    messages = initial_messages(question, prompts or get_prompts(), with_image=False)
    messages[-1]["content"] = "<image>" * len(images) + "\n" + messages[-1]["content"]
    return RolloutItem(
        item_id=str(parsed.id if parsed.id is not None else index),
        messages=messages,
        images=images,
        gold=parsed.answer,
        data_source=parsed.data_source,
        question=parsed.question,
        options=parsed.options or None,
        metadata=parsed.metadata,
    )


def _images(
    refs: Sequence[ImageRef], min_pixels: int, max_pixels: int, given: Sequence[Image.Image] | None
) -> list[Image.Image]:
    """The given images (one per reference) or the references decoded and resized."""
    if given is None:
        return [load_image(ref, min_pixels, max_pixels) for ref in refs]
    if len(given) != len(refs):
        raise ValueError(f"{len(given)} images given for {len(refs)} image references")
    return given  # type: ignore[return-value] -- any Sequence of images (a lazily decoded one included)
