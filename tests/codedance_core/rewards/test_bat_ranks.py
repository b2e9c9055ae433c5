"""The turn-level correction under two workers: each normalises its share with the whole batch's statistics."""

from __future__ import annotations

import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from codedance_core.rewards.bat import turn_corrections, turn_value_stats
from codedance_core.train.distributed import DistContext
from codedance_core.train.grpo_step import global_turn_stats
from tests.conftest import free_port

# Rank 0 mostly fails, rank 1 mostly succeeds: normalising per worker would give each a different mean.
SHARDS = [
    [["error", "error", None], ["timeout", None], ["error", "ok", None]],
    [["ok", None], ["ok", "ok", None], [None], ["ok", "error", None]],
]


def _rank(rank: int, world_size: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group(
        "gloo", rank=rank, world_size=world_size, timeout=timedelta(seconds=60)
    )
    try:
        mine = SHARDS[rank]
        stats = global_turn_stats(turn_value_stats(mine), DistContext.current(use_gpu=False))
        Path(out_dir, f"rank{rank}.json").write_text(json.dumps(turn_corrections(mine, stats=stats)))
    finally:
        torch.distributed.destroy_process_group()


def test_each_rank_gets_the_single_process_values_of_the_concatenated_batch(tmp_path: Path) -> None:
    torch.multiprocessing.spawn(_rank, args=(2, free_port(), str(tmp_path)), nprocs=2)
    expected = turn_corrections(SHARDS[0] + SHARDS[1])
    distributed = [json.loads((tmp_path / f"rank{rank}.json").read_text()) for rank in range(2)]
    got = distributed[0] + distributed[1]
    assert len(got) == len(expected)
    for mine, whole in zip(got, expected, strict=True):
        assert mine == pytest.approx(whole, abs=1e-9)
    # Per-worker normalisation (what one rank computes alone) differs from the batch's.
    assert turn_corrections(SHARDS[0])[0] != pytest.approx(expected[0], abs=1e-3)


def test_one_process_keeps_its_own_statistics() -> None:
    local = turn_value_stats(SHARDS[0])
    assert global_turn_stats(local, DistContext()) == local
