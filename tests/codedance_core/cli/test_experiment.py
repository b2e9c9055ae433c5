"""`codedance experiment mini`: its help, and a bad override refused before any work starts."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from codedance_core.cli.experiment import app, command_line
from codedance_core.experiments.mini import MiniConfig


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(app, ["mini", "--help"])
    assert result.exit_code == 0
    for option in ("--seeds", "--smoke", "--out", "--set", "--json"):
        assert option in result.output


def test_a_bad_override_fails_fast_without_writing(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["mini", "--smoke", "--out", str(tmp_path / "out"), "--set", "sft.bogus=1"])
    assert result.exit_code == 2
    assert "bogus" in result.output
    assert not (tmp_path / "out").exists()


def test_the_recorded_command_reproduces_the_config() -> None:
    config = MiniConfig(seeds=[0, 1], overrides=["grpo.max_steps=16"], arms=["tool_sft", "rl_bat"])
    assert command_line(config, 2) == (
        "codedance experiment mini --seeds=2 --out=docs/mini-codedance --profile=tiny "
        "--set=grpo.max_steps=16 --arm=tool_sft --arm=rl_bat"
    )
    moved = MiniConfig(seeds=[0], smoke=True, store_root="/data/store")
    assert command_line(moved, 1).endswith("--smoke --out=docs/mini-codedance --profile=tiny --store=/data/store")
