"""The GRPO update's micro-batches: planned to a token budget, and never changing the update."""

from __future__ import annotations

import copy
import os
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest
import torch

from codedance_core.agent.trajectory import RolloutItem, Trajectory
from codedance_core.config.train import GRPOConfig
from codedance_core.models import load_model_bundle
from codedance_core.rewards.score import BatchRewards
from codedance_core.train.distributed import DistContext
from codedance_core.train.grpo_step import Policy, ScoredBatch, plan_micro_batches, update_policy
from codedance_core.train.sharded import Optimization
from tests.conftest import free_port


def test_without_a_budget_micro_batches_are_consecutive_runs():
    assert plan_micro_batches([9, 1, 5, 3, 7], max_rows=2, max_tokens=None) == [[0, 1], [2, 3], [4]]


def test_a_budget_groups_similar_lengths_and_covers_every_sequence_once():
    lengths = [120, 30, 500, 35, 90, 40, 33, 100, 31]
    plan = plan_micro_batches(lengths, max_rows=3, max_tokens=200)
    assert sorted(i for batch in plan for i in batch) == list(range(len(lengths)))
    for batch in plan:
        assert len(batch) <= 3
        assert len(batch) * max(lengths[i] for i in batch) <= 200 or len(batch) == 1
    assert [2] in plan  # longer than the budget: alone
    assert [1, 8, 6] in plan  # the short ones together, up to max_rows
    assert plan_micro_batches([], max_rows=3, max_tokens=200) == []


def make_trajectory(bundle, index: int, rng: np.random.Generator) -> Trajectory:
    """A prompt, then 1-3 model turns each followed by a tool observation; lengths vary widely."""
    prompt = bundle.encode_messages([{"role": "user", "content": f"Question {index}: add {index} and 3."}])
    trajectory = Trajectory(item=RolloutItem(f"item-{index}", [], []), sample_index=index)
    trajectory.extend(prompt.token_ids, trained=False)
    for _ in range(1 + index % 3):
        answer = rng.integers(10, 1000, size=int(rng.integers(3, 25))).tolist()
        trajectory.extend(answer, trained=True, logprobs=rng.uniform(-3, -0.1, len(answer)).tolist())
        trajectory.extend(rng.integers(10, 1000, size=int(rng.integers(2, 12))).tolist(), trained=False)
    return trajectory


def scored_batch(bundle, count: int = 8) -> ScoredBatch:
    rng = np.random.default_rng(0)
    trajectories = [make_trajectory(bundle, i, rng) for i in range(count)]
    advantages = [rng.normal(size=len(t.token_ids)) * np.asarray(t.loss_mask) for t in trajectories]
    keep = np.ones(count, dtype=bool)
    keep[3] = False  # one trajectory out of the loss, as an ungraded one would be
    rewards = BatchRewards(rewards=np.zeros(count), valid=keep.copy())
    return ScoredBatch(trajectories, [i // 4 for i in range(count)], [], rewards, advantages, keep)


def updated(bundle, config: GRPOConfig) -> tuple[dict[str, torch.Tensor], dict[str, float]]:
    """Parameters after one update with plain SGD (the update is -lr x the gradient), and the metrics."""
    model = copy.deepcopy(bundle.model)
    model.model.visual.requires_grad_(False)  # text-only trajectories (see `_ddp_rank`)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    optimization = Optimization(model, model, optimizer, scheduler, DistContext(), config.max_grad_norm)
    policy = Policy(model, bundle, optimization, config, DistContext(), temperature=0.8)
    metrics = update_policy(policy, scored_batch(bundle))
    return {name: p.detach().clone() for name, p in model.named_parameters()}, metrics


def test_a_token_budget_gives_the_same_update_as_fixed_micro_batches(tiny_bundle):
    common = {"micro_batch_size": 3, "logprob_chunk_tokens": 16, "entropy_coef": 0.01, "max_grad_norm": 0.0}
    lengths = [len(t.token_ids) for t in scored_batch(tiny_bundle).trajectories]
    budget = 2 * max(lengths)
    assert plan_micro_batches(lengths, 3, budget) != plan_micro_batches(lengths, 3, None)

    fixed, fixed_metrics = updated(tiny_bundle, GRPOConfig(**common))
    budgeted, budgeted_metrics = updated(tiny_bundle, GRPOConfig(**common, max_tokens_per_micro_batch=budget))

    before = {name: p.detach() for name, p in tiny_bundle.model.named_parameters()}
    largest_step = max(float((fixed[name] - before[name]).abs().max()) for name in fixed)
    assert largest_step > 1e-3  # the update moved the weights far beyond the tolerance below
    for name in fixed:  # float32 rounding of the summation order only
        torch.testing.assert_close(budgeted[name], fixed[name], rtol=0, atol=1e-6)
    for key in ("loss", "entropy", "clip_frac", "ratio_mean"):
        assert budgeted_metrics[key] == pytest.approx(fixed_metrics[key], rel=1e-5, abs=1e-7)
    assert fixed_metrics["entropy"] > 0



def _ddp_rank(rank: int, world_size: int, port: int, model_dir: str, out_dir: str, config_json: str) -> None:
    os.environ.update(DS_ACCELERATOR="cpu", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world_size, timeout=timedelta(seconds=120))
    bundle = load_model_bundle(model_dir, device="cpu", dtype="float32")
    # DDP reduces a bucket once all its parameters have gradients: the unused vision tower stays frozen
    bundle.model.model.visual.requires_grad_(False)
    model = torch.nn.parallel.DistributedDataParallel(bundle.model)
    optimizer = torch.optim.SGD(model.parameters(), lr=1.0)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
    config = GRPOConfig.model_validate_json(config_json)
    dist = DistContext.current(use_gpu=False)
    optimization = Optimization(model, bundle.model, optimizer, scheduler, dist, config.max_grad_norm)
    policy = Policy(model, bundle, optimization, config, dist, temperature=0.8)
    whole = scored_batch(bundle)
    mine = slice(4 * rank, 4 * rank + 4)
    scored = ScoredBatch(
        whole.trajectories[mine], whole.group_ids[mine], [], whole.rewards, whole.advantages[mine], whole.keep[mine]
    )
    update_policy(policy, scored)
    if rank == 0:
        torch.save({n: p.detach() for n, p in bundle.model.named_parameters()}, Path(out_dir) / "params.pt")
    torch.distributed.destroy_process_group()


def test_ranks_with_different_micro_batch_counts_update_as_one_process(tiny_model_dir, tiny_bundle, tmp_path):
    # Each rank scores half of the trajectories; with a token budget their micro-batch counts differ,
    # and the rank with fewer runs empty passes so that DDP pairs every backward.
    config = GRPOConfig(micro_batch_size=3, logprob_chunk_tokens=16, max_grad_norm=0.0, max_tokens_per_micro_batch=150)
    lengths = [len(t.token_ids) for t in scored_batch(tiny_bundle).trajectories]
    plans = [plan_micro_batches(lengths[4 * r : 4 * r + 4], 3, 150) for r in range(2)]
    assert len(plans[0]) != len(plans[1])
    torch.multiprocessing.spawn(
        _ddp_rank, args=(2, free_port(), str(tiny_model_dir), str(tmp_path), config.model_dump_json()), nprocs=2
    )
    expected, _ = updated(tiny_bundle, config)
    distributed = torch.load(tmp_path / "params.pt")
    for name, parameter in expected.items():
        torch.testing.assert_close(distributed[name], parameter, rtol=0, atol=1e-6)
