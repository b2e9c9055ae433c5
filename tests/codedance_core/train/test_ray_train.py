"""The same SFT function under Ray Train's TorchTrainer: a local Ray, one CPU worker, no DeepSpeed."""

from __future__ import annotations

import json

import pytest

from codedance_core.config.train import SFTConfig
from codedance_core.train.distributed import deepspeed_config, plan_resources


@pytest.mark.slow
def test_sft_runs_under_ray_train_and_checkpoints(tiny_model_dir, sft_rows, tmp_path, monkeypatch):
    import ray

    from codedance_core.train.ray_train import train_sft_on_ray

    monkeypatch.setenv("RAY_AUTH_MODE", "disabled")
    ray.init(num_cpus=2, object_store_memory=200 * 1024**2, include_dashboard=False)
    try:
        summary = train_sft_on_ray(
            SFTConfig(max_steps=3, batch_size=4, checkpoint_every=2), sft_rows, tiny_model_dir, tmp_path
        )
    finally:
        ray.shutdown()
    assert summary["steps"] == 3 and summary["final_loss"] > 0
    assert (tmp_path / "checkpoints" / "step-00000003" / "checkpoint.json").exists()
    assert len((tmp_path / "metrics.jsonl").read_text().splitlines()) == 3


def test_paper_sized_config_plans_gpus_and_a_zero3_deepspeed_config():
    config = SFTConfig(
        num_workers=16, gpus_per_worker=1, deepspeed_stage=3, batch_size=1, grad_accumulation=8
    )
    plan = plan_resources(config)
    assert plan["total_gpus"] == 16 and plan["global_batch_size"] == 128
    ds = deepspeed_config(config, world_size=16)
    assert ds["zero_optimization"]["stage"] == 3 and ds["bf16"]["enabled"] is True
    assert ds["train_batch_size"] == 128
    json.dumps(ds)  # DeepSpeed takes it as JSON


def test_deepspeed_needs_gpu_workers():
    with pytest.raises(ValueError, match="gpus_per_worker"):
        SFTConfig(deepspeed_stage=2)
