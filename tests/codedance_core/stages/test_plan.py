"""The dry run: what each stage of the lifecycle would launch, for the paper profile, from a laptop."""

from __future__ import annotations

from codedance_core.config import load_profile
from codedance_core.stages.plan import lifecycle_plan, plan_rows
from codedance_core.stages.ray_address import parse_ray_address


def test_the_paper_profile_plans_sixteen_gpu_workers_for_training_and_gpus_for_generation() -> None:
    rows = {row["step"]: row for row in plan_rows(load_profile("paper"), rl_rounds=2,
                                                  address=parse_ray_address("http://head:8265"))}
    assert list(rows)[-1] == "register + promote" and "RL round 2" in rows and "weak model" not in rows
    for training in ("SFT", "RL round 1", "RL round 2"):
        assert (rows[training]["launch"], rows[training]["workers"], rows[training]["gpus"]) == ("ray-train", 16, 16)
    assert rows["RL round 1"]["engine"] == "vllm"
    for generating in ("weak-to-strong filter", "evaluate SFT", "evaluate RL 2"):
        assert rows[generating]["gpus"] >= 1 and rows[generating]["engine"] == "vllm", generating
    assert all("Ray job" in row["submitted as"] for name, row in rows.items() if name != "register + promote")
    assert rows["SFT"]["entry point"] == "codedance_core.stages.training:sft_worker"


def test_the_tiny_profile_runs_on_cpu_tasks_of_a_local_ray() -> None:
    rows = plan_rows(load_profile("tiny"), address=parse_ray_address(None))
    assert [row["step"] for row in rows][:6] == [
        "base model", "suite: train", "suite: test", "validate train", "validate test", "weak model"]
    assert {row["launch"] for row in rows} == {"ray-task", "in-process"}
    assert all(row["gpus"] == 0 for row in rows)
    assert "local Ray" in rows[0]["submitted as"]


def test_more_workers_turn_a_training_stage_into_ray_train() -> None:
    steps = dict(lifecycle_plan(load_profile("tiny", ["sft.num_workers=2", "grpo.num_workers=2"])))
    assert steps["SFT"].kind == steps["RL round 1"].kind == "ray-train"
    assert steps["SFT"].num_workers == 2


def test_training_steps_show_one_gpu_memory_cpu_steps_none() -> None:
    local = parse_ray_address(None)
    paper = {row["step"]: row for row in plan_rows(load_profile("paper"), address=local)}
    assert paper["SFT"]["memory per GPU"].endswith(" of 80 GiB") and paper["RL round 1"]["memory per GPU"].endswith(" of 80 GiB")
    assert paper["evaluate SFT"]["memory per GPU"] == "-"
    tiny = {row["step"]: row for row in plan_rows(load_profile("tiny"), address=local)}
    assert tiny["SFT"]["memory per GPU"] == "n/a"
    unsharded = {row["step"]: row for row in plan_rows(load_profile("paper", ["sft.deepspeed_stage=0"]), address=local)}
    assert unsharded["SFT"]["memory per GPU"].endswith("(DOES NOT FIT)")
