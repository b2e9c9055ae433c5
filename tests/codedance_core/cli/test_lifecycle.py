"""`codedance lifecycle --dry-run`: the paper profile's launch plan, printed on a laptop."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from codedance_core.cli.main import app


def test_the_paper_dry_run_prints_every_stage_plan_without_data_or_models(monkeypatch) -> None:
    monkeypatch.setenv("RAY_ADDRESS", "http://head:8265")
    result = CliRunner().invoke(app, ["lifecycle", "--profile", "paper", "--dry-run", "--json"])
    assert result.exit_code == 0, result.output
    rows = {row["step"]: row for row in json.loads(result.stdout)}
    assert rows["SFT"]["workers"] == 16 and rows["SFT"]["gpus"] == 16
    assert rows["evaluate SFT"]["engine"] == "vllm" and rows["evaluate SFT"]["gpus"] == 1
    assert "Ray job at http://head:8265" in rows["RL round 1"]["submitted as"]


def test_the_table_names_the_entry_points(monkeypatch) -> None:
    monkeypatch.delenv("RAY_ADDRESS", raising=False)
    result = CliRunner().invoke(app, ["lifecycle", "--profile", "tiny", "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "codedance_core.stages.training:sft_worker" in result.output and "local Ray" in result.output


def test_a_bad_override_exits_2_naming_the_field() -> None:
    result = CliRunner().invoke(app, ["lifecycle", "--dry-run", "--set", "grpo.num_wokers=2"])
    assert result.exit_code == 2 and "num_wokers" in result.output
