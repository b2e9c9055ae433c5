"""`codedance train sft`: trains from a parquet, resumes on a second call, plans with --dry-run."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import typer
from typer.testing import CliRunner

from codedance_core.cli import train
from codedance_core.data.schemas import SFT_ARROW_SCHEMA

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from conftest import trajectory_row

# Mounted as the lead mounts it, so arguments read as on the command line: `codedance train sft ...`.
app = typer.Typer()
app.add_typer(train.app, name="train")


def test_sft_command_trains_then_resumes(tiny_model_dir, tmp_path):
    data = tmp_path / "sft.parquet"
    pq.write_table(pa.Table.from_pylist([trajectory_row(i) for i in range(6)], schema=SFT_ARROW_SCHEMA), data)
    args = [
        "train",
        "sft",
        "--data",
        str(data),
        "--model",
        str(tiny_model_dir),
        "--out",
        str(tmp_path / "run"),
        "--set",
        "sft.max_steps=2",
        "--set",
        "sft.batch_size=3",
        "--json",
    ]
    first = CliRunner().invoke(app, args)
    assert first.exit_code == 0, first.output
    assert json.loads(first.stdout.strip().splitlines()[-1])["steps"] == 2
    longer = [a if a != "sft.max_steps=2" else "sft.max_steps=3" for a in args]
    second = CliRunner().invoke(app, longer)
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["steps"] == 3 and summary["resumed_from"] == "step-00000002"


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
    assert json.loads(result.stdout)["resources"]["num_workers"] == 4


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
