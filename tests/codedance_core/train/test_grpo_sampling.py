"""Which prompts a GRPO step draws and trains on: bucket-first epoch orders and dynamic sampling.

The rollouts here are scripted: a prompt's group is answered right by a fixed pattern of its
samples, so which groups carry a signal (rewards not all equal) is known in advance. The last test
runs the whole trainer on two DDP workers instead (train_grpo with dynamic sampling in
test_grpo.py: one process, resume included).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
import torch

from codedance_core.agent.trajectory import RolloutItem, Trajectory
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.train import GRPOConfig
from codedance_core.rewards.score import STATUS_SCORED, TrajectoryScore
from codedance_core.train.checkpoint import DataPosition
from codedance_core.train.distributed import DistContext
from codedance_core.train.grpo_sampling import Group, PromptSchedule, epoch_order, sample_step, score_groups
from tests.codedance_core.train.test_grpo import answering_model_dir  # noqa: F401 -- a fixture
from tests.conftest import free_port

GROUP = 4


def score(accuracy: float) -> TrajectoryScore:
    return TrajectoryScore(accuracy, 0.0, accuracy, 0.0, "exact", STATUS_SCORED, 0, 0, False, None, "")


def scripted_groups(indices: list[int], solvable: set[int]) -> list[Group]:
    """A solvable prompt is answered right by half its samples; the others by none (all rewards 0)."""
    trajectories, scores = [], []
    for index in indices:
        for sample in range(GROUP):
            trajectories.append(Trajectory(item=RolloutItem(f"item-{index}", [], []), sample_index=sample))
            scores.append(score(float(index in solvable and sample % 2 == 0)))
    return score_groups(trajectories, scores, GROUP, RewardConfig())


def rows(n: int, buckets: dict[int, str] | None = None) -> list[dict]:
    return [{"index": i, "bucket": (buckets or {}).get(i)} for i in range(n)]


def config(**overrides) -> GRPOConfig:
    values = {
        "prompts_per_step": 2,
        "samples_per_prompt": GROUP,
        "dynamic_sampling": True,
        "max_sampling_rounds": 4,
    }
    return GRPOConfig(**{**values, **overrides})


def test_groups_with_all_equal_rewards_are_dropped_and_more_prompts_drawn():
    settings = config()
    order = epoch_order(settings.seed, 0, 20)
    solvable = {int(order[1]), int(order[6])}  # one in the first batch, one in the fourth
    drawn: list[list[int]] = []

    def roll(indices: list[int], round_index: int) -> list[Group]:
        drawn.append(indices)
        return scripted_groups(indices, solvable)

    position = DataPosition()
    step = sample_step(
        PromptSchedule(settings, rows(20), DistContext()), position, settings, DistContext(), roll
    )

    assert drawn == [
        [int(i) for i in order[k : k + 2]] for k in (0, 2, 4, 6)
    ]  # the epoch's order, batch by batch
    assert sorted(g.trajectories[0].item.item_id for g in step.groups) == sorted(
        f"item-{i}" for i in solvable
    )
    assert all(g.informative for g in step.groups)
    assert position.batch_in_epoch == 4  # the cursor is past every prompt drawn, for the next step and resume
    metrics = step.metrics
    assert metrics["sampling/rounds"] == 4 and metrics["sampling/groups_drawn"] == 8
    assert metrics["sampling/informative_groups"] == 2 and metrics["sampling/informative_share"] == 0.25
    assert metrics["sampling/groups_trained"] == 2 and metrics["sampling/cap_hit"] == 0.0
    assert metrics["sampling/prompts_consumed"] == 8 and metrics["sampling/prompts_total"] == 8
    assert metrics["sampling/group_reward_std"] == 0.5 * 2 / 8  # std 0.5 in the two informative groups
    assert metrics["sampling/drawn_accuracy"] == 4 / 32


def test_at_the_cap_the_step_trains_on_what_it_found():
    settings = config(max_sampling_rounds=2)
    order = epoch_order(settings.seed, 0, 20)
    position = DataPosition()
    step = sample_step(
        PromptSchedule(settings, rows(20), DistContext()),
        position,
        settings,
        DistContext(),
        lambda indices, _: scripted_groups(indices, {int(order[3])}),
    )
    assert [g.informative for g in step.groups] == [True]
    assert step.metrics["sampling/cap_hit"] == 1.0 and step.metrics["sampling/rounds"] == 2
    assert position.batch_in_epoch == 2

    # With no informative group at all, one group still comes back (the step's filter keeps it out
    # of the loss), so the step's scoring and metrics have something to work on.
    nothing = sample_step(
        PromptSchedule(settings, rows(20), DistContext()),
        DataPosition(),
        settings,
        DistContext(),
        lambda indices, _: scripted_groups(indices, set()),
    )
    assert [g.informative for g in nothing.groups] == [False] and nothing.metrics[
        "sampling/groups_trained"
    ] == 0


def test_without_dynamic_sampling_one_batch_is_drawn_and_every_group_kept():
    settings = config(dynamic_sampling=False)
    position = DataPosition()
    step = sample_step(
        PromptSchedule(settings, rows(6), DistContext()),
        position,
        settings,
        DistContext(),
        lambda indices, _: scripted_groups(indices, set()),
    )
    assert len(step.groups) == 2 and step.metrics["sampling/informative_share"] == 0.0
    assert position.batch_in_epoch == 1


def test_medium_and_hard_rows_come_first_in_a_seeded_order():
    buckets = {1: "hard", 4: "medium", 6: "medium", 9: "hard"}
    data = rows(12, buckets)
    first = PromptSchedule(config(prompt_order="buckets_first"), data, DistContext())
    for epoch in (0, 1):
        order = [int(i) for i in first.order(epoch)]
        assert set(order[:4]) == set(buckets) and sorted(order) == list(range(12))
        again = PromptSchedule(config(prompt_order="buckets_first"), data, DistContext()).order(epoch)
        assert order == [int(i) for i in again]  # seeded: the same order on every run and every resume
    assert list(first.order(0)) != list(first.order(1))
    shuffled = PromptSchedule(config(prompt_order="shuffle"), data, DistContext())
    assert list(shuffled.order(0)) == list(epoch_order(0, 0, 12))


def test_the_cursor_crosses_into_the_next_epoch_within_a_step():
    settings = config(max_sampling_rounds=3)
    schedule = PromptSchedule(settings, rows(5), DistContext())  # two batches an epoch (one row dropped)
    position = DataPosition(step=0, epoch=0, batch_in_epoch=1)
    drawn: list[list[int]] = []
    sample_step(
        schedule, position, settings, DistContext(), lambda i, _: drawn.append(i) or scripted_groups(i, set())
    )
    assert drawn == [list(schedule.order(0)[2:4]), list(schedule.order(1)[0:2]), list(schedule.order(1)[2:4])]
    assert (position.epoch, position.batch_in_epoch) == (2, 0)


def _rank(rank: int, port: int, out_dir: str) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=2, timeout=timedelta(seconds=60))
    dist = DistContext.current(use_gpu=False)
    settings = config(prompts_per_step=4, max_sampling_rounds=3)
    # Rank 0 finds a signal in every group; rank 1 in one prompt of the second batch only.
    solvable = set(range(20)) if rank == 0 else {int(epoch_order(0, 0, 20)[6])}
    rolled: list[list[int]] = []

    def roll(indices: list[int], round_index: int) -> list[Group]:
        rolled.append(indices)
        return scripted_groups(indices, solvable)

    position = DataPosition()
    step = sample_step(PromptSchedule(settings, rows(20), dist), position, settings, dist, roll)
    result = {
        "rolled": rolled,
        "informative": [g.informative for g in step.groups],
        "metrics": step.metrics,
        "position": position.batch_in_epoch,
    }
    (Path(out_dir) / f"rank{rank}.json").write_text(json.dumps(result))
    torch.distributed.destroy_process_group()


def test_workers_draw_the_same_batches_and_each_trains_on_its_share(tmp_path):
    torch.multiprocessing.spawn(_rank, args=(free_port(), str(tmp_path)), nprocs=2)
    first, second = (json.loads((tmp_path / f"rank{r}.json").read_text()) for r in range(2))
    order = [int(i) for i in epoch_order(0, 0, 20)]
    assert first["rolled"] == [order[0:2]]  # full after one batch: it rolls out no later one
    assert second["rolled"] == [order[2:4], order[6:8], order[10:12]]  # its share of each batch, to the cap
    assert first["position"] == second["position"] == 3  # both consumed every batch drawn
    assert first["metrics"] == second["metrics"]  # the figures are the whole step's
    assert first["metrics"]["sampling/cap_hit"] == 1.0 and first["metrics"]["sampling/groups_trained"] == 3
    assert first["informative"] == [True, True]
    # the short rank pads its share with an uninformative group (kept out of the loss by the step's
    # filter), so both plan the same mini-batches
    assert second["informative"] == [True, False]


TWO_RANK_SCRIPT = """
import json, sys
import torch
torch.set_num_threads(1)
torch.distributed.init_process_group("gloo")
from codedance_core.config.agent import RolloutSettings
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.config.train import GRPOConfig
from codedance_core.train.grpo import train_grpo
from tests.codedance_core.train.test_grpo import direct_rows
model, run = sys.argv[1:3]
config = GRPOConfig(num_workers=2, prompts_per_step=4, samples_per_prompt=4, max_steps=2, learning_rate=2e-3,
                    rollout={"max_turns": 1}, micro_batch_size=2, max_tokens_per_micro_batch=64, seed=3,
                    dynamic_sampling=True, max_sampling_rounds=3)
train_grpo(config, direct_rows(12), model, run, rollout=RolloutSettings(max_new_tokens=20),
           sandbox=SandboxConfig(workers=1), progress=False)
"""


@pytest.mark.slow  # about 25 s on 2 cores: two DDP ranks rolling out with their sandbox pools
def test_two_ddp_workers_sample_dynamically_in_lockstep(answering_model_dir, tmp_path):  # noqa: F811
    # Each rank rolls out its own share and may find its informative groups in a different round,
    # with micro-batch counts of its own: a rank out of step would hang a collective (the timeout).
    script = tmp_path / "two_ranks.py"
    script.write_text(TWO_RANK_SCRIPT)
    env = {**os.environ, "DS_ACCELERATOR": "cpu", "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path.cwd())}
    command = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--nproc_per_node",
        "2",
        "--master_port",
        str(free_port()),
        str(script),
        str(answering_model_dir),
        str(tmp_path / "run"),
    ]
    done = subprocess.run(command, check=False, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    logged = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    assert [row["step"] for row in logged] == [1, 2]
    for row in logged:
        assert row["sampling/groups_drawn"] <= 4 * row["sampling/rounds"]
        assert (
            row["sampling/groups_trained"] <= 4 and row["trajectories"] == 16
        )  # each rank: its share of 2 groups
    assert any(row["sampling/groups_trained"] > 0 and row["grad_norm"] > 0 for row in logged)
