"""Small real images and rows for the data tests (no fixtures on disk: everything is made here)."""

from __future__ import annotations

import struct
import zlib
from typing import Any

import numpy as np
import pytest
from PIL import Image

from codedance_core.data.images import encode_jpeg, encode_png


def noise_image(side: int = 48, seed: int = 0) -> Image.Image:
    pixels = np.random.default_rng(seed).integers(0, 255, (side, side, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def png_bomb(width: int = 100_000, height: int = 100_000) -> bytes:
    """A tiny, well-formed PNG whose header claims width x height pixels."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(b"\x00" * 64))
            + chunk(b"IEND", b""))


@pytest.fixture
def png_bytes() -> bytes:
    return encode_png(noise_image())


@pytest.fixture
def jpeg_bytes() -> bytes:
    return encode_jpeg(noise_image(64))


def _rl_row(image: Any, answer: str | None = "4", **changes: Any) -> dict[str, Any]:
    """An RL row as in the released parquet (`prompt` spelling, images as {bytes, path} structs)."""
    if isinstance(image, bytes):
        image = {"bytes": image, "path": "img.png"}
    row = {
        "data_source": "vstar",
        "prompt": [
            {"role": "system", "content": "You are a helpful assistant."},
            {"role": "user", "content": "<image>\nHow many dogs are there?"},
        ],
        "images": [image],
        "ability": "count",
        "reward_model": {"style": "rule", "ground_truth": answer},
        "extra_info": {"split": "train", "index": 0, "answer": answer, "question": "How many dogs are there?",
                       "need_tools_kwargs": True},
    }
    row.update(changes)
    return row


@pytest.fixture
def make_rl_row():
    """Build an RL row: make_rl_row(image_bytes_or_struct, answer="4", **field_overrides)."""
    return _rl_row


@pytest.fixture
def bomb_png() -> bytes:
    return png_bomb()


@pytest.fixture
def make_noise_image():
    return noise_image
