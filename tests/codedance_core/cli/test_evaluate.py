"""`codedance eval`: the original's spellings, and errors as messages. (A whole run with --model DIR
is in tests/codedance_core/evaluation/test_runner.py, beside the taught model it needs.)"""

from __future__ import annotations

from typer.testing import CliRunner

from codedance_core.cli.evaluate import app


def test_help_lists_the_original_arguments_and_the_benchmarks() -> None:
    result = CliRunner().invoke(app, ["--help"], terminal_width=200)
    assert result.exit_code == 0
    for option in (
        "--model_name",
        "--api_url",
        "--data_path",
        "--save_path",
        "--num_workers",
        "--data_source",
        "--model",
        "--samples",
        "--max_turns",
        "--limit",
        "--benchmark",
    ):
        assert option in result.output
    assert "hrbench_4k" in result.output


def test_a_wrong_model_choice_exits_with_a_message(tmp_path) -> None:
    result = CliRunner().invoke(app, ["--data_path", str(tmp_path / "x.parquet")])
    assert result.exit_code == 2
