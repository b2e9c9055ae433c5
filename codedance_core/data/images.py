"""Image bytes in and out: encoding for the suite, and the checks the validator runs on each image.

The checks are ordered by cost. The header (format and size) is read first, so a
decompression bomb (a few hundred bytes that claim 100000 x 100000 pixels) is rejected
before a single pixel is allocated; only then is the image fully decoded, because a
truncated JPEG is detected only by decoding to its end (`Image.verify()` does not). Pillow's
own bomb guard is a process-wide global, so instead of changing it we apply our limits first
and translate Pillow's error if it fires anyway.
"""

from __future__ import annotations

import io
import warnings
from dataclasses import dataclass

from PIL import Image, UnidentifiedImageError

from codedance_core.config.data import ImageLimits


class ImageProblem(ValueError):
    """An image that cannot be used; `reason` is one of the validator's reason codes."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class ImageInfo:
    format: str
    width: int
    height: int
    mode: str


def encode_png(image: Image.Image, compress_level: int = 6) -> bytes:
    """PNG bytes; deterministic for a given image and Pillow version."""
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=compress_level)
    return buffer.getvalue()


def encode_jpeg(image: Image.Image, quality: int = 90) -> bytes:
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, format="JPEG", quality=quality)
    return buffer.getvalue()


def decode_image(data: bytes, limits: ImageLimits | None = None) -> Image.Image:
    """A fully loaded RGB image from encoded bytes, after the same checks as `inspect_image`."""
    image = _open_checked(data, limits or ImageLimits())
    _load_fully(image)
    return image.convert("RGB")


def inspect_image(data: bytes, limits: ImageLimits) -> ImageInfo:
    """Check that `data` is a complete image within `limits`; raise ImageProblem otherwise."""
    image = _open_checked(data, limits)
    _load_fully(image)
    return ImageInfo(format=image.format or "unknown", width=image.width, height=image.height, mode=image.mode)


def _open_checked(data: bytes, limits: ImageLimits) -> Image.Image:
    if not data:
        raise ImageProblem("image_undecodable", "empty image bytes")
    if len(data) > limits.max_bytes:
        raise ImageProblem("image_too_large", f"{len(data)} bytes > max_bytes {limits.max_bytes}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
    except Image.DecompressionBombError as exc:
        raise ImageProblem("image_too_large", f"decompression bomb: {exc}") from None
    except UnidentifiedImageError:
        raise ImageProblem("image_undecodable", f"not a known image format (starts with {data[:8]!r})") from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise ImageProblem(_decode_reason(exc), f"not a readable image: {exc}") from None
    width, height = image.size
    if width * height > limits.max_pixels or max(width, height) > limits.max_side:
        raise ImageProblem(
            "image_too_large", f"{width}x{height} exceeds max_pixels {limits.max_pixels} / max_side {limits.max_side}"
        )
    if min(width, height) < limits.min_side:
        raise ImageProblem("image_too_small", f"{width}x{height} is below min_side {limits.min_side}")
    return image


def _load_fully(image: Image.Image) -> None:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image.load()
    except Image.DecompressionBombError as exc:
        raise ImageProblem("image_too_large", f"decompression bomb: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        raise ImageProblem(_decode_reason(exc), f"cannot decode: {exc}") from None


def _decode_reason(exc: BaseException) -> str:
    """Pillow says "truncated" both when the header and when the pixel data stop short."""
    return "image_truncated" if "truncated" in str(exc).lower() else "image_undecodable"
