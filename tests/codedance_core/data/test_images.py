"""Image checks: headers before pixels, full decodes, one reason per problem."""

from __future__ import annotations

import pytest

from codedance_core.config.data import ImageLimits
from codedance_core.data.images import ImageProblem, decode_image, encode_jpeg, encode_png, inspect_image


def reason_of(data: bytes, limits: ImageLimits | None = None) -> str:
    with pytest.raises(ImageProblem) as caught:
        inspect_image(data, limits or ImageLimits())
    return caught.value.reason


def test_png_round_trip_is_lossless_and_deterministic(make_noise_image):
    image = make_noise_image(32)
    data = encode_png(image)
    assert data == encode_png(image)
    assert decode_image(data).tobytes() == image.tobytes()
    assert inspect_image(data, ImageLimits()).width == 32


def test_truncated_jpeg_and_png_are_detected(make_noise_image):
    image = make_noise_image(64)
    for data in (encode_jpeg(image), encode_png(image)):
        assert reason_of(data[: len(data) * 6 // 10]) == "image_truncated"
    assert reason_of(encode_jpeg(image)[:300]) == "image_truncated"  # cut inside the header


def test_a_decompression_bomb_is_rejected_from_its_header(bomb_png):
    assert len(bomb_png) < 200
    assert reason_of(bomb_png) == "image_too_large"


def test_our_limits_apply_below_pillows_own(png_bytes):
    assert reason_of(png_bytes, ImageLimits(max_pixels=47 * 48)) == "image_too_large"
    assert reason_of(png_bytes, ImageLimits(max_bytes=10)) == "image_too_large"
    assert reason_of(png_bytes, ImageLimits(min_side=100)) == "image_too_small"


def test_bytes_that_are_not_an_image_are_undecodable():
    assert reason_of(b"GIF89a but not really") == "image_undecodable"
    assert reason_of(b"") == "image_undecodable"
