"""Launch plans: what a stage asks Ray for, described for each kind of RAY_ADDRESS; results through the store."""

from __future__ import annotations

from pathlib import Path

from codedance_core.stages.context import CallId
from codedance_core.stages.launch import (
    LaunchPlan,
    read_result,
    resolve_entry,
    run_entry,
    submission_of,
    write_result,
)
from codedance_core.stages.ray_address import parse_ray_address
from codedance_core.storage import ArtifactStore


def test_training_plans_become_ray_train_only_when_they_need_it() -> None:
    entry = "codedance_core.stages.training:sft_worker"
    assert LaunchPlan.for_training("sft", entry, 1, 1, 0).kind == "ray-task"
    assert LaunchPlan.for_training("sft", entry, 2, 0.5, 0).kind == "ray-train"
    plan = LaunchPlan.for_training("sft", entry, 8, 4, 1)
    assert (plan.kind, plan.total_gpus, plan.total_cpus) == ("ray-train", 8, 32)


def test_where_a_plan_goes_follows_the_ray_address() -> None:
    plan = LaunchPlan.for_task("evaluate", "m:f", gpus=1)
    assert "local Ray" in submission_of(plan, parse_ray_address(None))
    assert "Ray client" in submission_of(plan, parse_ray_address("ray://head:10001"))
    assert "Ray job at http://head:8265" in submission_of(plan, parse_ray_address("http://head:8265"))
    in_process = LaunchPlan(stage="register", entry_point="m:f", kind="in-process")
    assert submission_of(in_process, parse_ray_address("http://head:8265")) == "in the calling process"
    assert plan.describe(parse_ray_address(None))["gpus"] == 1


def test_an_entry_point_is_a_module_and_a_function() -> None:
    assert resolve_entry("codedance_core.storage.uris:join_uri") is not None
    assert run_entry("codedance_core.storage.uris:is_remote", "s3://bucket") is True


def test_a_result_comes_back_through_the_store(tmp_path: Path) -> None:
    store = ArtifactStore(tmp_path / "store")
    call = CallId(stage="sft", key="f" * 64, code="c" * 16)
    assert call.folder == "calls/sft-ffffffffffffffff"
    write_result(store, f"{call.folder}/result.pkl", {"steps": 3})
    assert read_result(store, call.folder) == {"steps": 3}
