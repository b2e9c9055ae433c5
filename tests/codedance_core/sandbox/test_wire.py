"""Frames between host, template and sessions: round trips, and refusal of malformed input."""

from __future__ import annotations

import os

import pytest

from codedance_core.sandbox.wire import FrameError, FrameReader, decode_body, encode_frame, read_frame


def test_a_frame_round_trips_through_a_pipe_in_pieces():
    frame = encode_frame({"op": "result", "stdout": "héllo"}, [b"\x89PNG...", b""])
    reader = FrameReader(max_frame_bytes=1 << 20)
    bodies = []
    for start in range(0, len(frame), 7):  # arbitrary chunking, as a non-blocking pipe delivers it
        bodies += reader.feed(frame[start : start + 7])
    [body] = bodies
    header, blobs = decode_body(body)
    assert header["stdout"] == "héllo" and blobs == [b"\x89PNG...", b""]

    read_end, write_end = os.pipe()
    os.write(write_end, frame)
    assert read_frame(read_end, 1 << 20)[1] == blobs


def test_oversized_and_malformed_frames_are_refused():
    with pytest.raises(FrameError):
        FrameReader(max_frame_bytes=10).feed(encode_frame({"op": "x" * 100}))
    body = encode_frame({"op": "ok"}, [b"abc"])[4:]
    with pytest.raises(FrameError):
        decode_body(body[:-1])  # blob sizes no longer add up
    with pytest.raises(FrameError):
        decode_body(b"\x00\x00\x00\x03{x}")  # not JSON
