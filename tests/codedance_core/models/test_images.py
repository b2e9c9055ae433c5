"""Qwen-style resizing and image decoding."""

from __future__ import annotations

import base64
import io

import pytest
from PIL import Image

from codedance_core.models.images import (
    ImageDecodeError,
    build_image_processor,
    decode_image,
    encode_data_url,
    pixel_bounds,
    resize_for_model,
    smart_resize,
)

CELL = 28 * 28


@pytest.mark.parametrize(
    ("height", "width", "max_cells"),
    [(480, 640, 256), (37, 1000, 256), (3000, 4000, 16384), (10, 10, 256), (224, 224, 256), (28, 5000, 256)],
)
def test_smart_resize_gives_multiples_of_28_within_bounds(height, width, max_cells):
    new_h, new_w = smart_resize(height, width, 4 * CELL, max_cells * CELL)
    assert new_h % 28 == 0 and new_w % 28 == 0
    assert 4 * CELL <= new_h * new_w <= max_cells * CELL
    assert abs(new_w / new_h - width / height) / (width / height) < 0.6  # aspect roughly kept


def test_smart_resize_matches_transformers_reference():
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import smart_resize as reference

    for height, width in [(480, 640), (37, 1000), (999, 333), (50, 60), (2000, 1500)]:
        assert smart_resize(height, width, 4 * CELL, 256 * CELL) == reference(
            height, width, 28, 4 * CELL, 256 * CELL
        )


def test_extreme_aspect_ratio_is_refused():
    with pytest.raises(ValueError, match="aspect ratio"):
        smart_resize(2, 1000, 4 * CELL, 256 * CELL)


def test_resize_for_model_is_idempotent_and_rgb():
    image = Image.new("L", (333, 250), 128)
    once = resize_for_model(image, 4 * CELL, 64 * CELL)
    assert once.mode == "RGB" and once.width % 28 == 0 and once.height % 28 == 0
    assert resize_for_model(once, 4 * CELL, 64 * CELL).size == once.size


def test_data_url_round_trip_is_lossless():
    image = Image.effect_noise((40, 30), 50).convert("RGB")
    assert decode_image(encode_data_url(image)).tobytes() == image.tobytes()


@pytest.mark.parametrize(
    "bad",
    [
        b"not an image",
        "data:image/png;base64,@@@",
        "https://example.com/x.png",
        "data:image/png;base64," + base64.b64encode(b"\x89PNG\r\n\x1a\ntruncated").decode(),
    ],
)
def test_undecodable_images_raise_image_decode_error(bad):
    with pytest.raises(ImageDecodeError):
        decode_image(bad)


def test_decode_image_reads_jpeg_bytes():
    buffer = io.BytesIO()
    Image.new("RGB", (20, 10), (255, 0, 0)).save(buffer, format="JPEG")
    assert decode_image(buffer.getvalue()).size == (20, 10)


def test_image_processor_keeps_configured_bounds(tmp_path):
    processor = build_image_processor(4 * CELL, 100 * CELL)
    assert pixel_bounds(processor) == (4 * CELL, 100 * CELL)
    processor.save_pretrained(tmp_path)
    from codedance_core.models.images import load_image_processor

    assert pixel_bounds(load_image_processor(tmp_path)) == (4 * CELL, 100 * CELL)
    assert pixel_bounds(load_image_processor(tmp_path, max_pixels=16384 * CELL)) == (4 * CELL, 16384 * CELL)
