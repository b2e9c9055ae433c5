"""Two evaluations writing the same outputs: no shared temporary names, and one run at a time."""

from __future__ import annotations

import json
import multiprocessing
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from codedance_core.evaluation.results import ResultFile, _save_png
from tests.codedance_core.evaluation.conftest import eval_parquet

ROWS = [{"item_id": f"item{i}", "sample_index": 0, "text": "x" * 2000} for i in range(40)]


def rewrite_and_save_many(folder: str, rounds: int) -> None:
    """What two runs on one save path both do at the end: rewrite the result file, save the same PNGs."""
    results = ResultFile(Path(folder) / "result.jsonl")
    image = Image.new("RGB", (64, 64), "red")
    for _ in range(rounds):
        results.rewrite(ROWS)
        _save_png(image, Path(folder) / "input0.png")


def test_two_processes_rewriting_the_same_outputs_never_collide(tmp_path: Path) -> None:
    context = multiprocessing.get_context("spawn")
    workers = [context.Process(target=rewrite_and_save_many, args=(str(tmp_path), 150)) for _ in range(2)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    assert [worker.exitcode for worker in workers] == [0, 0]
    assert ResultFile(tmp_path / "result.jsonl").load().keys() == {(row["item_id"], 0) for row in ROWS}
    assert Image.open(tmp_path / "input0.png").size == (64, 64)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["input0.png", "result.jsonl"]  # no staged file left


def eval_command(data: Path, model: Path, save: Path) -> list[str]:
    return [
        sys.executable,
        "-m",
        "codedance_core.cli.main",
        "eval",
        "--data_path",
        str(data),
        "--benchmark",
        "parquet",
        "--model",
        str(model),
        "--save_path",
        str(save),
        "--max_turns",
        "1",
        "--max_new_tokens",
        "8",
        "--device",
        "cpu",
        "--no_viewer",
        "--no-progress",
        "--sandbox_workers",
        "1",
        "--json",
    ]


@pytest.mark.slow
def test_two_evals_on_one_save_path_take_turns(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = eval_parquet(
        tmp_path / "bench.parquet", [(f"What colour is {i}?", "red", "red") for i in range(6)]
    )
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    for attempt in range(2):
        save = tmp_path / f"out{attempt}"
        runs = [
            subprocess.Popen(
                eval_command(data, tiny_model_dir, save),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                env=env,
            )
            for _ in range(2)
        ]
        outcomes = [run.communicate(timeout=240) for run in runs]  # both exit: neither hangs
        codes = [run.returncode for run in runs]
        [result] = save.glob("result_*.jsonl")
        rows = [json.loads(line) for line in result.read_text().splitlines()]
        assert sorted(row["item_id"] for row in rows) == [str(i) for i in range(6)]  # complete, once each
        assert not list(save.glob(".*.tmp")) and not list(save.glob("images_*/.*.tmp"))
        for code, (out, err) in zip(codes, outcomes, strict=True):
            if code == 0:
                assert json.loads(out)["items"] == 6  # ran, or waited and found every row done
            else:  # refused: the message names the run holding the outputs
                other = next(run.pid for run in runs if run.returncode == 0)
                assert f"pid {other} on" in err, err
        assert 0 in codes
