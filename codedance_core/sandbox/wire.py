"""Length-prefixed frames exchanged between the host, the template process and session processes.

Why not pickle: frames from a session process are written by (or next to) untrusted user code,
so whoever reads them must only ever parse data, never build objects. A frame is therefore a
JSON header plus raw binary blobs (images, pixels) whose sizes the header lists, and every size
is checked against a cap before anything is allocated.

This module is imported both on the host (as `codedance_core.sandbox.wire`) and inside the
sandbox (as a top-level module next to `zygote.py`), so it depends on the standard library only.
"""

from __future__ import annotations

import json
import os
import struct
from typing import Any

LENGTH = struct.Struct(">I")
MAX_HEADER_BYTES = 16 * 1024 * 1024


class FrameError(ValueError):
    """A frame that is malformed or larger than allowed."""


def encode_frame(header: dict[str, Any], blobs: list[bytes] | None = None) -> bytes:
    """One frame: total length, header length, JSON header (with blob sizes), then the blobs."""
    blobs = blobs or []
    header = {**header, "blobs": [len(blob) for blob in blobs]}
    header_bytes = json.dumps(header, separators=(",", ":")).encode()
    body = b"".join([LENGTH.pack(len(header_bytes)), header_bytes, *blobs])
    return LENGTH.pack(len(body)) + body


def decode_body(body: bytes | memoryview) -> tuple[dict[str, Any], list[bytes]]:
    """Split a frame body (without its total length) into its header and blobs, checking sizes."""
    if len(body) < LENGTH.size:
        raise FrameError("frame shorter than its header length")
    (header_len,) = LENGTH.unpack_from(body, 0)
    if header_len > min(MAX_HEADER_BYTES, len(body) - LENGTH.size):
        raise FrameError(f"header length {header_len} exceeds the frame")
    try:
        header = json.loads(bytes(body[LENGTH.size : LENGTH.size + header_len]))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise FrameError(f"header is not JSON: {error}") from error
    sizes = header.get("blobs") if isinstance(header, dict) else None
    if not isinstance(sizes, list) or not all(isinstance(size, int) and size >= 0 for size in sizes):
        raise FrameError("header must be an object with a list of blob sizes")
    offset = LENGTH.size + header_len
    if offset + sum(sizes) != len(body):
        raise FrameError("blob sizes do not add up to the frame length")
    blobs = []
    for size in sizes:
        blobs.append(bytes(body[offset : offset + size]))
        offset += size
    return header, blobs


class FrameReader:
    """Incremental decoder for a non-blocking stream: feed bytes, collect complete frame bodies."""

    def __init__(self, max_frame_bytes: int) -> None:
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[bytes]:
        """Append data; return the bodies of the frames it completed. Raises FrameError if too large."""
        self._buffer += data
        bodies = []
        while len(self._buffer) >= LENGTH.size:
            (length,) = LENGTH.unpack_from(self._buffer, 0)
            if length > self.max_frame_bytes:
                raise FrameError(f"frame of {length} bytes exceeds the limit of {self.max_frame_bytes}")
            if len(self._buffer) < LENGTH.size + length:
                break
            bodies.append(bytes(self._buffer[LENGTH.size : LENGTH.size + length]))
            del self._buffer[: LENGTH.size + length]
        return bodies


def write_all(fd: int, data: bytes) -> None:
    """Write every byte to a blocking file descriptor."""
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def read_exact(fd: int, size: int) -> bytes:
    """Read exactly `size` bytes from a blocking descriptor; EOFError if it closes first."""
    chunks = []
    while size:
        chunk = os.read(fd, min(size, 1 << 20))
        if not chunk:
            raise EOFError("stream closed mid-frame")
        chunks.append(chunk)
        size -= len(chunk)
    return b"".join(chunks)


def read_frame(fd: int, max_frame_bytes: int) -> tuple[dict[str, Any], list[bytes]]:
    """Read and decode one frame from a blocking descriptor."""
    (length,) = LENGTH.unpack(read_exact(fd, LENGTH.size))
    if length > max_frame_bytes:
        raise FrameError(f"frame of {length} bytes exceeds the limit of {max_frame_bytes}")
    return decode_body(read_exact(fd, length))
