"""From conversations to model inputs: token ids with expanded image pads, and left-padded batches.

The chat template writes ONE `<|image_pad|>` per image; the model needs one pad per merged patch
(grid_t * grid_h * grid_w / merge_size^2). Transformers' `Qwen2_5_VLProcessor` would do this but
needs torchvision, so we expand ourselves, from the same `smart_resize` the image processor uses.

Token ids are the currency of the rollout loop (token-in/token-out): a trajectory's ids are built
once, here, and every later consumer (generation, log-probs, training) gets exactly those ids.
`collate_prompts` is the one place that turns them into tensors, so generation and training see
identical inputs, `mm_token_type_ids` included (without it Qwen2.5-VL silently falls back to 1-D
positions for image tokens).
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from PIL import Image
from transformers import PreTrainedTokenizerBase
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

from codedance_core.models.images import pixel_bounds, smart_resize
from codedance_core.models.tokenizer import IMAGE_PAD


@dataclass
class EncodedPrompt:
    """A conversation as the model reads it: ids with expanded image pads, and its images in order."""

    token_ids: list[int]
    images: list[Image.Image] = field(default_factory=list)


def image_token_count(processor: Qwen2VLImageProcessorPil, image: Image.Image) -> int:
    """How many `<|image_pad|>` tokens `image` occupies once resized and merged."""
    min_pixels, max_pixels = pixel_bounds(processor)
    factor = processor.patch_size * processor.merge_size
    height, width = smart_resize(image.height, image.width, min_pixels, max_pixels, factor=factor)
    return (height // processor.patch_size) * (width // processor.patch_size) // processor.merge_size**2


def expand_image_pads(token_ids: Sequence[int], counts: Sequence[int], image_token_id: int) -> list[int]:
    """Replace the i-th single image pad by counts[i] copies; the number of pads must equal len(counts)."""
    positions = [i for i, token in enumerate(token_ids) if token == image_token_id]
    if len(positions) != len(counts):
        raise ValueError(f"{len(positions)} image placeholders in the text but {len(counts)} images")
    expanded: list[int] = []
    start = 0
    for position, count in zip(positions, counts, strict=True):
        expanded.extend(token_ids[start:position])
        expanded.extend([image_token_id] * count)
        start = position + 1
    expanded.extend(token_ids[start:])
    return expanded


def encode_text_with_images(
    tokenizer: PreTrainedTokenizerBase,
    processor: Qwen2VLImageProcessorPil,
    text: str,
    images: Sequence[Image.Image],
) -> list[int]:
    """Token ids of already-templated text whose `<|image_pad|>` placeholders stand for `images`."""
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_PAD)
    ids = tokenizer.encode(text, add_special_tokens=False)
    return expand_image_pads(ids, [image_token_count(processor, image) for image in images], image_token_id)


def encode_messages(
    tokenizer: PreTrainedTokenizerBase,
    processor: Qwen2VLImageProcessorPil,
    messages: Sequence[dict],
    images: Sequence[Image.Image],
    chat_template: str,
    add_generation_prompt: bool = True,
) -> EncodedPrompt:
    """Render messages with the chat template and encode them; image parts take `images` in order."""
    text = tokenizer.apply_chat_template(
        list(messages),
        chat_template=chat_template,
        tokenize=False,
        add_generation_prompt=add_generation_prompt,
    )
    return EncodedPrompt(encode_text_with_images(tokenizer, processor, text, images), list(images))


class PixelCache:
    """Processed pixels per image object, so a multi-turn batch does not re-process every image of
    every trajectory at every turn (the question image is sent again with each turn's prompt).

    Entries are keyed by object identity and hold a weak reference to check it: a new image that
    reuses a dead image's id is never served the dead image's pixels.
    """

    def __init__(self, max_items: int = 8192) -> None:
        self.max_items = max_items
        self._entries: dict[int, tuple[weakref.ref, torch.Tensor, torch.Tensor]] = {}
        self.hits = 0
        self.misses = 0

    def _forget(self, key: int) -> Callable[[weakref.ref], None]:
        """A callback that drops an entry's pixels as soon as its image dies: callers that decode
        images afresh for every batch (SFT, pretraining) would otherwise keep up to `max_items`
        dead images' pixels alive, gigabytes at 144 cells."""

        def forget(dead: weakref.ref) -> None:
            entry = self._entries.get(key)
            if entry is not None and entry[0] is dead:
                del self._entries[key]

        return forget

    def _get(self, image: Image.Image) -> tuple[torch.Tensor, torch.Tensor] | None:
        entry = self._entries.get(id(image))
        if entry is None or entry[0]() is not image:
            return None
        return entry[1], entry[2]

    def features(self, processor: Qwen2VLImageProcessorPil, images: Sequence[Image.Image]) -> tuple[torch.Tensor, torch.Tensor]:
        """pixel_values and image_grid_thw for `images`, processing only those not seen before."""
        missing: list[Image.Image] = []
        seen: set[int] = set()
        for image in images:
            if id(image) not in seen and self._get(image) is None:
                missing.append(image)
            seen.add(id(image))
        if missing:
            self.misses += len(missing)
            processed = processor(images=missing, return_tensors="pt")
            grids = processed["image_grid_thw"]
            rows = grids.prod(dim=-1).tolist()
            pixels = torch.split(processed["pixel_values"], rows)
            if len(self._entries) + len(missing) > self.max_items:
                self._entries = {k: v for k, v in self._entries.items() if v[0]() is not None}
            for image, grid, pixel in zip(missing, grids, pixels, strict=True):
                self._entries[id(image)] = (weakref.ref(image, self._forget(id(image))), pixel, grid)
        self.hits += len(images) - len(missing)
        found = [self._get(image) for image in images]
        return torch.cat([f[0] for f in found]), torch.stack([f[1] for f in found])  # type: ignore[index]


def collate_prompts(
    prompts: Sequence[EncodedPrompt],
    processor: Qwen2VLImageProcessorPil,
    pad_token_id: int,
    image_token_id: int,
    device: torch.device | str = "cpu",
    pixel_dtype: torch.dtype = torch.float32,
    pixel_cache: PixelCache | None = None,
) -> dict[str, torch.Tensor]:
    """Left-padded model inputs for a batch: input_ids, attention_mask, mm_token_type_ids and,
    when any prompt has images, pixel_values and image_grid_thw (images in row order)."""
    width = max(len(prompt.token_ids) for prompt in prompts)
    input_ids = torch.full((len(prompts), width), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):
        input_ids[row, width - len(prompt.token_ids) :] = torch.tensor(prompt.token_ids, dtype=torch.long)
        attention_mask[row, width - len(prompt.token_ids) :] = 1
    image_mask = (input_ids == image_token_id) & attention_mask.bool()
    batch = {
        "input_ids": input_ids,
        "attention_mask": attention_mask,
        "mm_token_type_ids": image_mask.to(torch.int32),
    }
    images = [image for prompt in prompts for image in prompt.images]
    if images:
        if pixel_cache is not None:
            pixel_values, grid = pixel_cache.features(processor, images)
        else:
            features = processor(images=images, return_tensors="pt")
            pixel_values, grid = features["pixel_values"], features["image_grid_thw"]
        expected = int((grid.prod(dim=-1) // processor.merge_size**2).sum())
        if expected != int(image_mask.sum()):
            raise ValueError(
                f"prompts hold {int(image_mask.sum())} image tokens but their images need {expected}"
            )
        batch["pixel_values"] = pixel_values.to(pixel_dtype)
        batch["image_grid_thw"] = grid
    elif bool(image_mask.any()):
        raise ValueError("prompts hold image tokens but no images were given")
    return {name: tensor.to(device) for name, tensor in batch.items()}
