"""`codedance sandbox run`: a snippet file against an image file, images saved beside the code."""

from __future__ import annotations

import json

from PIL import Image
from typer.testing import CliRunner

from codedance_core.cli.sandbox import app


def test_run_prints_the_result_and_saves_images(tmp_path):
    image, code = tmp_path / "photo.png", tmp_path / "zoom.py"
    Image.new("RGB", (200, 100), "blue").save(image)
    code.write_text("print(input_image.size)\ninput_image.crop((0, 0, 80, 60))\n")
    result = CliRunner().invoke(app, ["run", "--image", str(image), "--code", str(code), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.output)
    assert data["status"] == "ok" and data["stdout"] == "(200, 100)\n"
    assert Image.open(data["images"][0]).size == (80, 60)


def test_a_failing_snippet_exits_nonzero_with_the_error(tmp_path):
    image, code = tmp_path / "photo.png", tmp_path / "bad.py"
    Image.new("RGB", (64, 64)).save(image)
    code.write_text("x = 1\nx / 0\n")
    result = CliRunner().invoke(app, ["run", "--image", str(image), "--code", str(code)])
    assert result.exit_code == 1 and "ZeroDivisionError (line 2)" in result.output


def test_every_command_has_help():
    for command in ("run", "bench"):
        result = CliRunner().invoke(app, [command, "--help"])
        assert result.exit_code == 0 and len(result.output) > 100
