"""From an RL row to what synthesis works on: the prompt, the resized image, the writer's view.

The sandbox must hold the image the model sees (docs/method.md §2), so the row's image is
resized here, once, with the policy's pixel bounds; that resized image is the SFT row's first
image, the sandbox's `input_image`, and the frame of every coordinate a writer puts in code.
"""

from __future__ import annotations

import io
import json
import random
from dataclasses import dataclass
from typing import Any

from PIL import Image

from codedance_core.config.synthesis import SynthesisConfig
from codedance_core.data.schemas import RLRow
from codedance_core.models.images import resize_for_model
from codedance_core.synthesis.steps import ItemView


class BadItem(ValueError):
    """The row cannot be synthesised (no image, unreadable generator record, ...)."""


@dataclass
class SynthesisItem:
    """One RL row, ready to be synthesised."""

    index: int
    data_source: str
    family: str
    question: str
    gold: str
    options: list[str]
    prompt: list[dict[str, str]]
    image: Image.Image
    params: dict[str, Any]

    def view(self, rng: random.Random, plan: str | None = None) -> ItemView:
        """The writer's view: parameters in the resized image's coordinates, and the item's plan
        (None, 'typo' or 'needless_tool'; see `pipeline.failure_plan`)."""
        original = self.params.get("image_size") or [self.image.width, self.image.height]
        return ItemView(
            question=self.question,
            params=json.loads(json.dumps(self.params)),  # a writer may not alter the item
            options=list(self.options),
            size=(self.image.width, self.image.height),
            scale_x=self.image.width / original[0],
            scale_y=self.image.height / original[1],
            rng=rng,
            needless_tool=plan == "needless_tool",
        )


def _decode_first_image(row: RLRow) -> Image.Image:
    ref = row.images[0]
    if not ref.bytes:
        raise BadItem("the row's image has no inline bytes")
    try:
        with Image.open(io.BytesIO(ref.bytes)) as opened:
            return opened.convert("RGB")
    except (OSError, ValueError) as error:
        raise BadItem(f"cannot decode the row's image: {error}") from None


def prepare_item(raw: dict[str, Any], position: int, config: SynthesisConfig) -> SynthesisItem:
    """Validate an RL row and resize its image for the model; BadItem says why it cannot be used."""
    try:
        row = RLRow.model_validate(raw)
    except ValueError as error:
        raise BadItem(f"not a valid RL row: {str(error).splitlines()[0]}") from None
    extra = row.extra_info
    params: dict[str, Any] = {}
    generator = getattr(extra, "generator", None)
    if generator:
        try:
            params = json.loads(generator) if isinstance(generator, str) else dict(generator)
        except ValueError:
            raise BadItem("extra_info.generator is not JSON") from None
    family = params.get("family") or getattr(extra, "family", None) or row.ability
    question = extra.question or _last_user_text(row)
    image = resize_for_model(_decode_first_image(row), config.min_pixels, config.max_pixels)
    return SynthesisItem(
        index=extra.index if extra.index is not None else position,
        data_source=row.data_source,
        family=str(family),
        question=question,
        gold=row.answer,
        options=list(params.get("options") or []),
        prompt=[{"role": m.role, "content": m.content} for m in row.prompt],
        image=image,
        params=params,
    )


def _last_user_text(row: RLRow) -> str:
    return next(m.content for m in reversed(row.prompt) if m.role == "user")
