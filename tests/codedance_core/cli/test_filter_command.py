"""`codedance data filter` on the fixed-answer weak model (see tests/codedance_core/filtering/conftest.py)."""

from __future__ import annotations

import json

import polars as pl
from typer.testing import CliRunner

from codedance_core.cli.filter import app

from ..filtering.conftest import broken_image_row, candidate_row, fixed_answer_model_dir, write_candidates

__all__ = ["fixed_answer_model_dir"]  # the shared fixture, used here too

runner = CliRunner()


def test_filter_command_writes_kept_rows_report_and_json_summary(fixed_answer_model_dir, tmp_path) -> None:
    rows = [candidate_row(0, "7"), candidate_row(1, "8"), broken_image_row(2), candidate_row(3, "9")]
    data = write_candidates(tmp_path / "rl.parquet", rows)
    args = [
        "--input", data, "--out", str(tmp_path / "kept.parquet"), "--weak-model", str(fixed_answer_model_dir),
        "--k", "2", "--no-tools", "--temperature", "0", "--max-new-tokens", "24", "--device", "cpu",
        "--report", str(tmp_path / "report"), "--work-dir", str(tmp_path / "work"), "--workers", "1", "--json",
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["kept"] == 2 and summary["shards_scored"] == 1
    assert summary["report"]["total"] | {"histogram": None} == summary["report"]["total"] | {
        "rows": 4, "kept": 2, "trivial": 1, "hard": 2, "quarantined": 1, "histogram": None
    }
    assert pl.read_parquet(tmp_path / "kept.parquet")["bucket"].to_list() == ["hard", "hard"]
    assert sorted(p.rsplit("/", 1)[-1] for p in summary["report_files"]) == [
        "filter_pass_rates.png", "filter_report.json", "filter_report.md"
    ]

    again = runner.invoke(app, args)
    assert json.loads(again.stdout.strip().splitlines()[-1])["shards_reused"] == 1


def test_filter_command_needs_exactly_one_weak_model(tmp_path) -> None:
    result = runner.invoke(app, ["--input", "x.parquet", "--out", str(tmp_path / "o.parquet")])
    assert result.exit_code != 0
    assert "exactly one of --weak-model" in result.output


def test_filter_command_has_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0
    assert "--weak-url" in result.output and "--k" in result.output
