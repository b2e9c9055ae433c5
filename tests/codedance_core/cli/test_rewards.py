"""`codedance rewards`: the commands people use to see why a response got its reward."""

from __future__ import annotations

import json

import pytest
from typer.testing import CliRunner

from codedance_core.cli.rewards import app

runner = CliRunner()


def test_score_prints_every_part_as_json() -> None:
    result = runner.invoke(
        app,
        [
            "score",
            "--response",
            "<think>a</think><answer>1,000</answer>",
            "--gold",
            "1000",
            "--data-source",
            "suite_count",
            "--tool-status",
            "ok",
            "--tool-status",
            "error",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    parts = json.loads(result.stdout)
    assert (parts["accuracy"], parts["rule"], parts["r_tool"], parts["format_penalty"]) == (
        1.0,
        "count",
        0.75,
        0.0,
    )


def test_score_with_options_as_a_table() -> None:
    result = runner.invoke(
        app,
        ["score", "--response", "<answer>cat</answer>", "--gold", "B", "--option", "dog", "--option", "cat"],
    )
    assert result.exit_code == 0 and "choice" in result.stdout


def test_judge_without_an_endpoint_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_AS_A_JUDGE_BASE", raising=False)
    result = runner.invoke(app, ["score", "--response", "<answer>x</answer>", "--gold", "y", "--judge"])
    assert result.exit_code == 2 and "LLM_AS_A_JUDGE_BASE" in result.output


def test_difficulty_curve() -> None:
    result = runner.invoke(app, ["difficulty", "--steps", "3", "--json"])
    curve = json.loads(result.stdout)["d"]
    assert [round(point["d"], 2) for point in curve] == [0.78, 0.30, -0.18]
    assert runner.invoke(app, ["difficulty", "--help"]).exit_code == 0
