"""The DeepSpeed config derived from the SFT config, never written by hand."""

from __future__ import annotations

import json

from codedance_core.config.train import SFTConfig
from codedance_core.train.distributed import deepspeed_config


def test_paper_sized_config_gives_a_zero3_deepspeed_config():
    config = SFTConfig(num_workers=16, gpus_per_worker=1, deepspeed_stage=3, batch_size=1, grad_accumulation=8)
    ds = deepspeed_config(config, world_size=16)
    assert ds["zero_optimization"]["stage"] == 3 and ds["bf16"]["enabled"] is True
    assert ds["train_batch_size"] == 128
    json.dumps(ds)  # DeepSpeed takes it as JSON
