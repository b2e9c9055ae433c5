"""`codedance train sft`: trains from a parquet, resumes on a second call, plans with --dry-run."""

from __future__ import annotations

import json

import pyarrow as pa
import pyarrow.parquet as pq
import typer
from typer.testing import CliRunner

from codedance_core.cli import train
from codedance_core.data.schemas import SFT_ARROW_SCHEMA
from tests.codedance_core.train.rows import trajectory_row

# Mounted as the lead mounts it, so arguments read as on the command line: `codedance train sft ...`.
app = typer.Typer()
app.add_typer(train.app, name="train")


def test_sft_command_trains_stores_and_a_second_call_resumes(tiny_model_dir, tmp_path):
    data = tmp_path / "sft.parquet"
    pq.write_table(pa.Table.from_pylist([trajectory_row(i) for i in range(6)], schema=SFT_ARROW_SCHEMA), data)
    args = ["train", "sft", "--data", str(data), "--model", str(tiny_model_dir), "--out", str(tmp_path / "run"),
            "--store", str(tmp_path / "store"), "--set", "sft.max_steps=2", "--set", "sft.batch_size=3", "--json"]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    summary = json.loads(first.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 2 and summary["resumed_from"] is None
    assert summary["model"].startswith(str(tmp_path / "store" / "models" / "sft-"))
    assert (tmp_path / "run" / "model" / "config.json").exists() and (tmp_path / "run" / "metrics.jsonl").exists()
    # The same call again is the same stage call: it goes on from its last checkpoint, training nothing more.
    second = CliRunner().invoke(app, args)
    again = json.loads(second.stdout.strip().splitlines()[-1])
    assert again["steps"] == 2 and again["resumed_from"] == "step-00000002"
    assert again["model"] == summary["model"]


def test_dry_run_validates_and_plans(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "train",
            "sft",
            "--data",
            "x.parquet",
            "--model",
            "m",
            "--out",
            str(tmp_path),
            "--set",
            "sft.num_workers=4",
            "--dry-run",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)["plan"]
    assert (plan["workers"], plan["launch"], plan["entry point"]) == (4, "ray-train", "codedance_core.stages.training:sft_worker")


def test_rl_dry_run_shows_the_loop_settings_rl_runs_with(tmp_path):
    args = ["train", "rl", "--data", "x.parquet", "--model", "m", "--out", str(tmp_path), "--dry-run", "--json"]
    overrides = ["--set", "rollout.observation_max_chars=1000", "--set", "grpo.rollout.max_turns=2"]
    result = CliRunner().invoke(app, args + overrides)
    assert result.exit_code == 0, result.output
    rollout = json.loads(result.stdout)["rollout"]
    assert (rollout["max_turns"], rollout["observation_max_chars"], rollout["max_new_tokens"]) == (2, 1000, 1024)


def test_a_bad_setting_exits_2_naming_the_field(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "train",
            "sft",
            "--data",
            "x",
            "--model",
            "m",
            "--out",
            str(tmp_path),
            "--set",
            "sft.learning_rat=1",
            "--dry-run",
        ],
    )
    assert result.exit_code == 2
    assert "learning_rat" in result.output


def test_the_paper_dry_runs_plan_memory_with_no_data_and_no_model_here() -> None:
    for command in ("sft", "rl"):
        result = CliRunner().invoke(app, ["train", command, "--config", "paper", "--dry-run", "--json"])
        assert result.exit_code == 0, result.output
        shown = json.loads(result.stdout)
        assert (shown["plan"]["workers"], shown["plan"]["gpus"], shown["plan"]["deepspeed stage"]) == (16, 16, 3)
        memory = shown["memory"]
        assert memory["fits"] and memory["model"].startswith("Qwen2.5-VL-7B: published dimensions")
        assert {"weights", "gradients", "optimizer states", "activations", "log-prob chunk", "overhead"} <= set(
            memory["gib"]["update" if command == "rl" else "step"])
    text = CliRunner().invoke(app, ["train", "rl", "--config", "paper", "--dry-run"])
    assert text.exit_code == 0, text.output
    assert "engine weights" in text.stdout and "GPU (gpu_memory_gb)" in text.stdout


def test_a_plan_that_does_not_fit_exits_1_naming_what_to_change() -> None:
    args = ["train", "rl", "--config", "paper", "--dry-run", "--set", "grpo.gradient_checkpointing=false"]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1
    assert "set grpo.gradient_checkpointing=true" in result.stderr


def test_the_memory_plan_reads_config_json_when_the_model_is_here(tiny_model_dir) -> None:
    args = ["train", "sft", "--config", "paper", "--model", str(tiny_model_dir), "--dry-run", "--json"]
    memory = json.loads(CliRunner().invoke(app, args).stdout)["memory"]
    assert memory["model"] == f"{tiny_model_dir.name}: {tiny_model_dir}/config.json" and memory["gib"]["step"]["total"] < 10


def test_training_without_data_exits_2() -> None:
    result = CliRunner().invoke(app, ["train", "sft", "--model", "m"])
    assert result.exit_code == 2 and "--data and --model" in result.stderr
