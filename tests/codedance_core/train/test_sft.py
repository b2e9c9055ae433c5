"""The SFT function trains, logs, checkpoints, and resumes exactly after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch
from safetensors.torch import load_file

from codedance_core.config.train import LoRAConfig, SFTConfig
from codedance_core.data.schemas import SFT_ARROW_SCHEMA
from codedance_core.models import load_model_bundle
from codedance_core.train.sft import train_sft, warmup_cosine

# A run paced by its metrics callback, so the test can kill it between checkpoints.
RUN_SCRIPT = """
import json, sys, time
import torch
torch.set_num_threads(1)
from codedance_core.config.train import SFTConfig
from codedance_core.train.sft import train_sft
data, model, run, pause = sys.argv[1:5]
config = SFTConfig(max_steps=9, batch_size=2, grad_accumulation=2, checkpoint_every=2, learning_rate=5e-3,
                   warmup_ratio=0.2, keep_checkpoints=2, seed=3)
result = train_sft(config, data, model, run, metrics_callback=lambda m, s: time.sleep(float(pause)), progress=False)
print(json.dumps({"steps": result.steps, "resumed_from": result.resumed_from}))
"""


def test_training_lowers_the_loss_and_writes_metrics_checkpoints_and_model(
    tiny_model_dir, sft_rows, tmp_path
):
    seen: list[tuple[int, dict]] = []
    config = SFTConfig(max_steps=8, batch_size=4, checkpoint_every=3, learning_rate=5e-3, warmup_ratio=0.1)
    result = train_sft(
        config, sft_rows, tiny_model_dir, tmp_path, metrics_callback=lambda m, s: seen.append((s, m))
    )
    assert result.steps == 8 and [step for step, _ in seen] == list(range(1, 9))
    assert seen[-1][1]["loss"] < seen[0][1]["loss"]
    assert all(m["tokens_per_s"] > 0 and m["lr"] > 0 for _, m in seen[:-1])
    logged = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged] == list(range(1, 9))
    assert sorted(p.name for p in (tmp_path / "checkpoints").glob("step-*")) == [
        "step-00000006",
        "step-00000008",
    ]
    trained = load_model_bundle(result.model_dir, device="cpu")
    start = load_model_bundle(tiny_model_dir, device="cpu")
    language = "model.language_model.layers.0.self_attn.q_proj.weight"
    vision = "model.visual.blocks.0.attn.qkv.weight"
    params, base = dict(trained.model.named_parameters()), dict(start.model.named_parameters())
    assert not torch.equal(params[language], base[language])
    assert torch.equal(params[vision], base[vision])  # freeze_vision is the default


def test_lora_trains_adapters_and_writes_a_merged_model(tiny_model_dir, sft_rows, tmp_path):
    config = SFTConfig(max_steps=3, batch_size=4, learning_rate=1e-2, lora=LoRAConfig(enabled=True, rank=4))
    result = train_sft(config, sft_rows, tiny_model_dir, tmp_path, progress=False)
    assert (tmp_path / "checkpoints" / "step-00000003" / "model" / "adapter_config.json").exists()
    merged = load_model_bundle(result.model_dir, device="cpu")  # a plain model directory
    start = load_model_bundle(tiny_model_dir, device="cpu")
    name = "model.language_model.layers.1.mlp.down_proj.weight"
    assert not torch.equal(
        dict(merged.model.named_parameters())[name], dict(start.model.named_parameters())[name]
    )


def test_schedule_warms_up_then_decays_to_the_floor():
    factor = warmup_cosine(total_steps=10, warmup_steps=2, min_ratio=0.1)
    assert factor(0) == 0.5 and factor(1) == 1.0 and factor(2) == 1.0
    assert factor(6) < factor(3) and factor(10) == pytest.approx(0.1)


def _start(script: Path, data: Path, model: Path, run: Path, pause: float) -> subprocess.Popen:
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1"}
    return subprocess.Popen(
        [sys.executable, str(script), str(data), str(model), str(run), str(pause)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def test_a_killed_run_resumes_to_the_same_parameters(tiny_model_dir, sft_rows, tmp_path):
    data = tmp_path / "sft.parquet"
    pq.write_table(pa.Table.from_pylist(sft_rows, schema=SFT_ARROW_SCHEMA), data)
    script = tmp_path / "run_sft.py"
    script.write_text(RUN_SCRIPT)
    reference = _start(script, data, tiny_model_dir, tmp_path / "uninterrupted", 0)
    killed_run = tmp_path / "killed"
    victim = _start(script, data, tiny_model_dir, killed_run, 0.4)
    deadline = time.monotonic() + 120
    while not (killed_run / "checkpoints" / "step-00000004" / "checkpoint.json").exists():
        assert victim.poll() is None, victim.stderr.read()
        assert time.monotonic() < deadline, "no checkpoint appeared"
        time.sleep(0.02)
    victim.send_signal(signal.SIGKILL)
    victim.wait()
    assert not (killed_run / "model").exists(), "the run finished before it was killed"

    resumed = _start(script, data, tiny_model_dir, killed_run, 0)
    out, err = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, err
    summary = json.loads(out.strip().splitlines()[-1])
    assert summary["steps"] == 9 and summary["resumed_from"] in ("step-00000004", "step-00000006")
    logged = [json.loads(line)["step"] for line in (killed_run / "metrics.jsonl").read_text().splitlines()]
    assert logged == list(range(1, 10))  # the steps redone after the checkpoint are logged once
    _, ref_err = reference.communicate(timeout=120)
    assert reference.returncode == 0, ref_err

    expected = load_file(tmp_path / "uninterrupted" / "model" / "model.safetensors")
    actual = load_file(killed_run / "model" / "model.safetensors")
    assert expected.keys() == actual.keys()
    assert all(torch.equal(expected[name], actual[name]) for name in expected)


@pytest.mark.slow
def test_sft_learns_the_trajectories(tiny_model_dir, sft_rows, tmp_path):
    """40 steps on a dozen trajectories: the assistant-token loss falls by more than half."""
    config = SFTConfig(max_steps=40, batch_size=4, learning_rate=1e-2, warmup_ratio=0.1, checkpoint_every=40)
    result = train_sft(config, sft_rows, tiny_model_dir, tmp_path, progress=False)
    first, last = result.history[0]["loss"], result.history[-1]["loss"]
    assert last < 0.5 * first, (first, last)


def test_bad_rows_are_quarantined_and_counted_in_the_result(tiny_model_dir, sft_rows, tmp_path):
    from tests.codedance_core.train.test_sft_data import broken_rows

    config = SFTConfig(max_steps=1, batch_size=2, checkpoint_every=5)
    result = train_sft(config, broken_rows(sft_rows), tiny_model_dir, tmp_path, progress=False)
    assert result.data["quarantined_rows"] == 3 and result.data["examples"] == 2
    quarantined = pq.read_table(result.data["quarantine_file"]).to_pylist()
    assert {row["reason"] for row in quarantined} == {"image_undecodable", "bad_messages"}
