"""A ZeRO-3 engine on the tiny model in a two-process CPU group (gloo), from a spawned test rank."""

from __future__ import annotations

import os
from datetime import timedelta
from typing import Any

from codedance_core.models import load_model_bundle


def zero3_engine(rank: int, world_size: int, port: int, model_dir: str) -> Any:
    """Join the group as this rank of `world_size` on loopback and wrap the model in `model_dir` in a
    DeepSpeed ZeRO-3 engine (AdamW, one sequence per micro-batch): its weights are now sharded."""
    os.environ.update(
        DS_ACCELERATOR="cpu",
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(world_size),
    )
    import deepspeed

    deepspeed.init_distributed(dist_backend="gloo", timeout=timedelta(seconds=120))
    model = load_model_bundle(model_dir, device="cpu", dtype="float32").model
    config = {
        "train_micro_batch_size_per_gpu": 1,
        "zero_optimization": {"stage": 3},
        "optimizer": {"type": "AdamW", "params": {"lr": 1e-3, "torch_adam": True}},
    }
    engine, *_ = deepspeed.initialize(model=model, model_parameters=model.parameters(), config=config)
    return engine
