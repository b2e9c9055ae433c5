"""`codedance model tiny` and `codedance model info`."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from codedance_core.cli.model import app

runner = CliRunner()


def test_tiny_builds_a_loadable_model_from_the_suite(tmp_path):
    out = tmp_path / "tiny"
    result = runner.invoke(app, ["tiny", "--out", str(out), "--rows", "20", "--workers", "1", "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["out"] == str(out) and 100_000 < summary["parameters"] < 2_000_000
    info = runner.invoke(app, ["info", str(out), "--json"])
    details = json.loads(info.stdout.strip().splitlines()[-1])
    assert details["parameters"] == summary["parameters"] and details["max_pixels"] == 256 * 28 * 28


def test_info_on_a_non_model_directory_exits_2(tmp_path):
    result = runner.invoke(app, ["info", str(tmp_path)])
    assert result.exit_code == 2 and "no config.json" in result.output


def test_bad_option_exits_2_without_traceback(tmp_path):
    result = runner.invoke(app, ["tiny", "--out", str(tmp_path), "--vocab-size", "10"])
    assert result.exit_code == 2 and "Traceback" not in result.output


def test_every_command_has_help():
    for command in ("tiny", "info"):
        result = runner.invoke(app, [command, "--help"])
        assert result.exit_code == 0 and len(result.output) > 100
