"""Checkpoints are complete or absent; `latest` finds the newest complete one; old ones are pruned."""

from __future__ import annotations

import json
import logging
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from codedance_core.storage import sha256_bytes
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


def test_the_manifest_records_each_files_size_and_digest(tmp_path):
    manager = CheckpointManager(tmp_path / "ckpt")
    manager.save(2, write_payload(2))
    manifest = json.loads((tmp_path / "ckpt" / "step-00000002" / "checkpoint.json").read_text())
    assert manifest["index"] == {"model/weights.bin": {"digest": sha256_bytes(bytes([2]) * 16), "size": 16}}


def test_a_truncated_latest_checkpoint_is_reported_and_the_previous_one_used(tmp_path, caplog):
    root = tmp_path / "ckpt"
    manager = CheckpointManager(root, keep=5)
    manager.save(2, write_payload(2))
    manager.save(4, write_payload(4))
    (root / "step-00000004" / "model" / "weights.bin").write_bytes(bytes([4]) * 3)  # a full disk, say
    with caplog.at_level(logging.WARNING):
        assert CheckpointManager(root, keep=5).latest() == "step-00000002"
    assert "step-00000004" in caplog.text and "weights.bin has 3 bytes where 16 were written" in caplog.text


def test_a_latest_checkpoint_with_a_changed_or_missing_file_is_skipped(tmp_path):
    root = tmp_path / "ckpt"
    manager = CheckpointManager(root, keep=5)
    for step in (2, 4, 6):
        manager.save(step, write_payload(step))
    (root / "step-00000006" / "model" / "weights.bin").write_bytes(bytes([9]) * 16)  # same size, other bytes
    (root / "step-00000004" / "model" / "weights.bin").unlink()
    assert CheckpointManager(root, keep=5).latest() == "step-00000002"


def test_a_damaged_latest_checkpoint_on_s3_falls_back_to_the_previous_one(s3_bucket, tmp_path, caplog):
    uri = f"s3://{s3_bucket}/run/checkpoints"
    manager = CheckpointManager(uri, keep=5, cache_dir=tmp_path / "cache")
    manager.save(2, write_payload(2))
    manager.save(4, write_payload(4))
    manager.store.write_bytes("step-00000004/model/weights.bin", b"not the checkpoint's file")
    reopened = CheckpointManager(uri, keep=5, cache_dir=tmp_path / "cache")
    with caplog.at_level(logging.WARNING):
        assert reopened.latest() == "step-00000002"
    assert "step-00000004" in caplog.text
    assert (reopened.local_path("step-00000002") / "model" / "weights.bin").read_bytes() == bytes([2]) * 16


def test_a_step_saved_again_on_s3_does_not_count_until_its_manifest_is_written_last(
    s3_bucket, tmp_path, monkeypatch
):
    uri = f"s3://{s3_bucket}/run/checkpoints"
    manager = CheckpointManager(uri, keep=5, cache_dir=tmp_path / "cache")
    manager.save(2, write_payload(2))

    def two_files(directory: Path) -> None:
        write_payload(7)(directory)
        (directory / "trainer_state.pt").write_bytes(b"state")

    real_commit = manager.store._commit_file

    def cut_after_the_first_file(local: Path, relpath: str):
        if relpath.endswith("trainer_state.pt"):
            raise ConnectionError("connection lost between two files")
        return real_commit(local, relpath)

    monkeypatch.setattr(manager.store, "_commit_file", cut_after_the_first_file)
    with pytest.raises(ConnectionError):
        manager.save(2, two_files)  # a run resumed from an earlier step writes step 2 again
    assert CheckpointManager(uri, keep=5, cache_dir=tmp_path / "cache2").latest() is None
