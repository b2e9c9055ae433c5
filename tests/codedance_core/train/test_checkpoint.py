"""Checkpoints are complete or absent; `latest` finds the newest complete one; old ones are pruned."""

from __future__ import annotations

import json
import random
from pathlib import Path

import numpy as np
import torch

from codedance_core.train.checkpoint import (
    CheckpointManager,
    DataPosition,
    read_trainer_state,
    write_trainer_state,
)


def write_payload(step: int):
    def write(directory: Path) -> None:
        (directory / "model").mkdir()
        (directory / "model" / "weights.bin").write_bytes(bytes([step]) * 16)

    return write


def test_save_then_latest_and_pruning(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt", keep=2)
    assert manager.latest() is None
    for step in (2, 4, 6):
        manager.save(step, write_payload(step))
    assert manager.complete() == ["step-00000004", "step-00000006"]
    assert manager.latest() == "step-00000006"
    assert (manager.local_path("step-00000006") / "model" / "weights.bin").read_bytes() == bytes([6]) * 16


def test_interrupted_writes_are_ignored(tmp_path):
    root = tmp_path / "ckpt"
    manager = CheckpointManager(root, keep=5)
    manager.save(2, write_payload(2))
    # A kill during a write leaves a temp dir; a kill after a remote-style upload leaves no manifest.
    (root / ".tmp-step-00000004-deadbeef" / "model").mkdir(parents=True)
    (root / "step-00000006" / "model").mkdir(parents=True)
    (root / "latest").write_text("step-00000006")
    reopened = CheckpointManager(root, keep=5)
    assert reopened.latest() == "step-00000002"
    assert not list(root.glob(".tmp-*"))


def test_a_pointer_left_behind_by_a_kill_does_not_hide_the_newer_checkpoint(tmp_path):
    root = tmp_path / "ckpt"
    manager = CheckpointManager(root, keep=5)
    manager.save(2, write_payload(2))
    manager.save(4, write_payload(4))
    (root / "latest").write_text("step-00000002")  # killed after the rename, before the pointer moved
    assert CheckpointManager(root, keep=5).latest() == "step-00000004"


def test_checkpoints_on_s3_are_complete_once_the_manifest_is_there(s3_bucket, tmp_path):
    manager = CheckpointManager(f"s3://{s3_bucket}/run/checkpoints", keep=1, cache_dir=tmp_path / "cache")
    manager.save(2, write_payload(2))
    manager.save(4, write_payload(4))
    assert manager.complete() == ["step-00000004"]
    local = manager.local_path(manager.latest())
    assert (local / "model" / "weights.bin").read_bytes() == bytes([4]) * 16
    assert json.loads((local / "checkpoint.json").read_text())["files"] == ["model/weights.bin"]


def test_trainer_state_restores_optimizer_scheduler_rngs_and_position(tmp_path):
    layer = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(layer.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1 / (step + 1))
    layer(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    scheduler.step()
    write_trainer_state(tmp_path, optimizer, scheduler, DataPosition(step=1, epoch=0, batch_in_epoch=3))
    expected = (random.random(), float(np.random.rand()), float(torch.rand(1)))

    fresh = torch.optim.AdamW(layer.parameters(), lr=0.1)
    fresh_scheduler = torch.optim.lr_scheduler.LambdaLR(fresh, lambda step: 1 / (step + 1))
    position = read_trainer_state(tmp_path, fresh, fresh_scheduler)
    assert position == DataPosition(step=1, epoch=0, batch_in_epoch=3)
    assert fresh_scheduler.last_epoch == 1 and fresh.param_groups[0]["lr"] == 0.05
    assert torch.equal(
        fresh.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"]
    )
    assert (random.random(), float(np.random.rand()), float(torch.rand(1))) == expected
