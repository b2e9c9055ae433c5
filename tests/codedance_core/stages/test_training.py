"""The training stages on a local Ray: one worker as a Ray task, two as a Ray Train run over gloo."""

from __future__ import annotations

import json

import pytest
from mlflow import MlflowClient

from codedance_core.config import load_profile
from codedance_core.stages import StageContext, train_sft
from codedance_core.stages.training import rl_plan, sft_plan
from codedance_core.storage import ArtifactRef
from codedance_core.train.memory_plan import MemoryPlanError


def sft_config(**settings):
    overrides = ["sft.max_steps=2", "sft.batch_size=2", *(f"sft.{k}={v}" for k, v in settings.items())]
    return load_profile("tiny", overrides).sft


def test_two_sft_workers_train_under_ray_train_and_every_rank_logs(
    ctx: StageContext, stored_sft_rows: ArtifactRef, stored_model: ArtifactRef
) -> None:
    config = sft_config(num_workers=2)
    assert sft_plan(config).kind == "ray-train"
    trained = train_sft(config, stored_sft_rows, stored_model, ctx)

    assert trained.steps == 2 and trained.model.digest != stored_model.digest
    model_dir = ctx.store().local_directory(trained.model)
    assert (model_dir / "config.json").exists()
    metrics = [json.loads(line) for line in ctx.store().read_bytes(trained.metrics.uri).decode().splitlines()]
    assert [row["step"] for row in metrics] == [1, 2]

    client = MlflowClient(ctx.tracking.tracking_uri)
    [run] = client.search_runs([client.get_experiment_by_name("stages").experiment_id],
                               filter_string="tags.`codedance.stage` = 'sft'")
    logged = set(run.data.metrics)
    assert {"loss", "rank0/loss", "rank1/loss", "rank1/tokens"} <= logged


def test_one_cpu_worker_is_a_ray_task_and_gpus_make_it_ray_train() -> None:
    assert sft_plan(sft_config()).kind == "ray-task"
    assert sft_plan(sft_config(gpus_per_worker=1)).kind == "ray-train"
    paper = load_profile("paper")
    plan = rl_plan(paper.grpo, paper.engine)
    assert (plan.kind, plan.num_workers, plan.total_gpus, plan.engine) == ("ray-train", 16, 16, "vllm")
    assert plan.details["trajectories per step"] == 256 * 8


def test_a_gpu_stage_whose_memory_plan_cannot_fit_is_refused_before_it_starts(
    ctx: StageContext, stored_sft_rows: ArtifactRef, stored_model: ArtifactRef
) -> None:
    logged: list[str] = []
    config = sft_config(gpus_per_worker=1, gpu_memory_gb=2)  # the CUDA context alone takes 3 GiB
    with pytest.raises(MemoryPlanError, match=r"sft\.gpu_memory_gb=2"):
        train_sft(config, stored_sft_rows, stored_model, ctx.with_log(logged.append))
    # The shape came from the stored model's config.json: without one there would be nothing to refuse.
    assert len(logged) == 1 and logged[0].startswith("sft memory: 3.") and logged[0].endswith("(DOES NOT FIT)")
    client = MlflowClient(ctx.tracking.tracking_uri)
    assert client.get_experiment_by_name("stages") is None or not client.search_runs(
        [client.get_experiment_by_name("stages").experiment_id])
