"""From conversations to model inputs: image pads expanded, batches left-padded."""

from __future__ import annotations

import pytest
import torch
from PIL import Image

from codedance_core.models.inputs import EncodedPrompt, expand_image_pads

PAD = 7


def test_each_pad_expands_to_its_images_count():
    assert expand_image_pads([1, PAD, 2, PAD, 3], [3, 1], PAD) == [1, PAD, PAD, PAD, 2, PAD, 3]
    assert expand_image_pads([1, 2], [], PAD) == [1, 2]


def test_pad_and_image_counts_must_agree():
    with pytest.raises(ValueError, match="2 image placeholders in the text but 1 images"):
        expand_image_pads([PAD, PAD], [4], PAD)


def test_encoded_image_tokens_match_the_image_processor_grid(tiny_bundle):
    image = Image.new("RGB", (300, 200), (0, 0, 255))
    prompt = tiny_bundle.encode_messages(
        [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "n?"}]}], [image]
    )
    grid = tiny_bundle.image_processor(images=[image], return_tensors="pt")["image_grid_thw"][0]
    expected = int(grid.prod()) // tiny_bundle.image_processor.merge_size**2
    assert prompt.token_ids.count(tiny_bundle.image_token_id) == expected


def test_batches_are_left_padded_with_image_tokens_typed(tiny_bundle):
    image = Image.new("RGB", (56, 56), (0, 255, 0))
    with_image = tiny_bundle.encode_messages([{"role": "user", "content": [{"type": "image"}]}], [image])
    text_only = tiny_bundle.encode_messages([{"role": "user", "content": "a much longer question " * 4}])
    batch = tiny_bundle.model_inputs([with_image, text_only])
    width = batch["input_ids"].shape[1]
    assert width == max(len(with_image.token_ids), len(text_only.token_ids))
    short = width - len(with_image.token_ids)
    assert batch["attention_mask"][0, :short].sum() == 0 and batch["attention_mask"][0, short:].all()
    assert batch["input_ids"][0, :short].eq(tiny_bundle.pad_token_id).all()
    assert batch["input_ids"][0, short:].tolist() == with_image.token_ids
    assert batch["mm_token_type_ids"].sum() == with_image.token_ids.count(tiny_bundle.image_token_id)
    assert batch["image_grid_thw"].tolist() == [[1, 4, 4]]
    assert batch["pixel_values"].dtype == torch.float32


def test_image_tokens_without_images_are_refused(tiny_bundle):
    prompt = EncodedPrompt([1, tiny_bundle.image_token_id, 2], [])
    with pytest.raises(ValueError, match="no images"):
        tiny_bundle.model_inputs([prompt])


def test_pixel_cache_processes_each_image_once_and_matches_the_processor(tiny_bundle) -> None:
    from PIL import Image

    from codedance_core.models.inputs import PixelCache

    processor = tiny_bundle.image_processor
    a, b = Image.new("RGB", (120, 90), "red"), Image.new("RGB", (60, 200), "blue")
    cache = PixelCache()
    first = cache.features(processor, [a, b])
    again = cache.features(processor, [b, a, b])
    assert (cache.misses, cache.hits) == (2, 3)
    direct = processor(images=[b, a, b], return_tensors="pt")
    assert torch.equal(again[1], direct["image_grid_thw"])
    assert torch.allclose(again[0], direct["pixel_values"])
    assert torch.allclose(first[0], processor(images=[a, b], return_tensors="pt")["pixel_values"])


def test_pixel_cache_lets_go_of_an_image_s_pixels_when_the_image_dies(tiny_bundle) -> None:
    from PIL import Image

    from codedance_core.models.inputs import PixelCache

    cache = PixelCache()
    for colour in ("red", "green", "blue"):  # a fresh image per batch, as SFT decodes them
        cache.features(tiny_bundle.image_processor, [Image.new("RGB", (64, 64), colour)])
    kept = Image.new("RGB", (64, 64), "white")
    cache.features(tiny_bundle.image_processor, [kept])
    assert len(cache._entries) == 1, "only the live image's pixels are held"
