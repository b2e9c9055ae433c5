"""Images as the model sees them: Qwen-style resizing and a Pillow-only image processor.

Qwen2.5-VL cuts an image into 14 px patches and merges 2x2 of them into one token, so sides must
be multiples of 28 and the area is bounded (min 4*28^2; max 16384*28^2 in the paper, far less for
the tiny model). The sandbox's `input_image` must be this *same* resized image, so coordinates the
model reasons about are the code's coordinates: `resize_for_model` is the one place that decides.

The image processor is transformers' `Qwen2VLImageProcessorPil`: the torch-backed
`Qwen2VLImageProcessor` needs torchvision, which has no CPU build on these machines.
"""

from __future__ import annotations

import base64
import binascii
import io
import math
from pathlib import Path
from typing import TYPE_CHECKING

from PIL import Image

if TYPE_CHECKING:  # transformers pulls torch (~400 MB); resizing and data URLs need neither
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

PATCH_SIZE = 14
MERGE_SIZE = 2
FACTOR = PATCH_SIZE * MERGE_SIZE
MAX_ASPECT_RATIO = 200


class ImageDecodeError(ValueError):
    """An image could not be decoded (bad bytes, bad data URL, unsupported format)."""


def smart_resize(
    height: int, width: int, min_pixels: int, max_pixels: int, factor: int = FACTOR
) -> tuple[int, int]:
    """Target (height, width): multiples of `factor`, area within [min_pixels, max_pixels], aspect kept.

    Same rule as Qwen2-VL's reference implementation, re-derived so the sandbox can use it without
    the image processor.
    """
    if min(height, width) <= 0:
        raise ValueError(f"image has an empty side: {width}x{height}")
    if max(height, width) / min(height, width) > MAX_ASPECT_RATIO:
        raise ValueError(f"aspect ratio above {MAX_ASPECT_RATIO}: {width}x{height}")
    new_h = max(factor, round(height / factor) * factor)
    new_w = max(factor, round(width / factor) * factor)
    if new_h * new_w > max_pixels:
        shrink = math.sqrt(height * width / max_pixels)
        new_h = max(factor, math.floor(height / shrink / factor) * factor)
        new_w = max(factor, math.floor(width / shrink / factor) * factor)
    elif new_h * new_w < min_pixels:
        grow = math.sqrt(min_pixels / (height * width))
        new_h = math.ceil(height * grow / factor) * factor
        new_w = math.ceil(width * grow / factor) * factor
    return new_h, new_w


def resize_for_model(image: Image.Image, min_pixels: int, max_pixels: int) -> Image.Image:
    """The RGB image resized Qwen-style; returned as is (converted to RGB) when already conforming."""
    rgb = image.convert("RGB")
    height, width = smart_resize(rgb.height, rgb.width, min_pixels, max_pixels)
    if (height, width) == (rgb.height, rgb.width):
        return rgb
    return rgb.resize((width, height), Image.Resampling.BICUBIC)


def build_image_processor(min_pixels: int, max_pixels: int) -> Qwen2VLImageProcessorPil:
    """A Qwen2-VL image processor (Pillow backend) with the given area bounds."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    return Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels)


def load_image_processor(
    model_dir: str | Path, min_pixels: int | None = None, max_pixels: int | None = None
) -> Qwen2VLImageProcessorPil:
    """The image processor saved in `model_dir` (tiny or a real Qwen2.5-VL checkpoint), Pillow backend.

    A real checkpoint's preprocessor_config.json names the torch class; its values (patch size,
    merge size, bounds, mean/std) are what matter and the Pillow class reads them all.
    """
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    processor = Qwen2VLImageProcessorPil.from_pretrained(str(model_dir))
    if min_pixels is not None or max_pixels is not None:
        bounds = pixel_bounds(processor)
        processor = Qwen2VLImageProcessorPil.from_pretrained(
            str(model_dir),
            min_pixels=min_pixels if min_pixels is not None else bounds[0],
            max_pixels=max_pixels if max_pixels is not None else bounds[1],
        )
    return processor


def pixel_bounds(processor: Qwen2VLImageProcessorPil) -> tuple[int, int]:
    """(min_pixels, max_pixels) of an image processor."""
    return int(processor.size["shortest_edge"]), int(processor.size["longest_edge"])


def decode_image(data: bytes | str | Image.Image) -> Image.Image:
    """A loaded RGB PIL image from raw bytes, a `data:image/...;base64,` URL or an image.

    Raises ImageDecodeError with the reason, so callers can end one trajectory, not the batch.
    """
    if isinstance(data, Image.Image):
        return data.convert("RGB")
    if isinstance(data, str):
        data = _data_url_bytes(data)
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            return opened.convert("RGB")
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"cannot decode image ({len(data)} bytes): {error}") from error


def encode_data_url(image: Image.Image, image_format: str = "PNG") -> str:
    """A base64 data URL of the image (PNG by default: lossless, so a round trip is exact)."""
    buffer = io.BytesIO()
    image.save(buffer, format=image_format)
    mime = "jpeg" if image_format.upper() in ("JPG", "JPEG") else image_format.lower()
    return f"data:image/{mime};base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _data_url_bytes(url: str) -> bytes:
    if not url.startswith("data:image/") or ";base64," not in url:
        raise ImageDecodeError(f"not a base64 image data URL: {url[:40]!r}")
    try:
        return base64.b64decode(url.split(";base64,", 1)[1], validate=True)
    except (binascii.Error, ValueError) as error:
        raise ImageDecodeError(f"bad base64 in data URL: {error}") from error
