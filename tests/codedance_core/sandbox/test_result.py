"""ExecResult: explicit status, JSON round trip, strict parsing of a template's reply."""

from __future__ import annotations

import io
import json

import pytest
from PIL import Image

from codedance_core.sandbox import ExecResult


def png(size=(8, 8)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, "red").save(buffer, format="PNG")
    return buffer.getvalue()


def test_results_round_trip_through_json():
    result = ExecResult(status="error", stdout="Error: not really\n", error_type="KeyError",
                        error_message="'x'", error_line=3, images=[png()], wall_time_s=0.01)
    again = ExecResult.from_dict(json.loads(json.dumps(result.to_dict())))
    assert again == result
    assert again.pil_images()[0].size == (8, 8)


def test_success_is_the_status_not_the_text():
    assert ExecResult(status="ok", stdout="Error timeout Traceback").ok
    assert not ExecResult(status="timeout").ok


def test_replies_are_checked():
    result = ExecResult.from_reply({"status": "ok", "stdout": "1\n", "error_line": "7", "wall_time_s": 0.5}, [])
    assert result.error_line is None and result.wall_time_s == 0.5
    with pytest.raises(ValueError):
        ExecResult.from_reply({"status": "fine"}, [])
