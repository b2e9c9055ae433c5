"""Which prompts a GRPO step trains on: each epoch's prompt order, and dynamic sampling.

Order. An epoch's order is a seeded permutation of the rows, a function of (seed, epoch) only. With
`prompt_order: buckets_first`, the rows weak-to-strong filtering put in the medium and hard buckets
come first, then the others (rows without a bucket, from sources that were not filtered), each part
in the permutation's order. The data position's `batch_in_epoch` counts the batches of
`prompts_per_step` prompts DRAWN in the epoch -- one a step without dynamic sampling -- so a
checkpoint's position names exactly the prompts that come next, and a resumed run draws them.

Dynamic sampling (DAPO). A group whose rewards are all equal has zero GRPO advantage: it costs a
rollout and teaches nothing. A step draws a batch, rolls it out and scores it, keeps its
informative groups, and draws again until it holds `prompts_per_step` of them or has drawn
`max_sampling_rounds` batches; then it trains on what it found (`sampling/cap_hit`). Under several
workers each rolls out its share of every batch and keeps at most its share of informative groups
(groups never move between workers); whether to draw again is decided on the sum over workers (one
all_reduce per round), so every rank draws the same batches. A worker already full skips the
rollout of later batches (their prompts are consumed all the same). Under several workers a rank
short of informative groups fills its share with uninformative ones, which the filter keeps out of
the loss: every rank then plans the same mini-batches, as the update's collectives require.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codedance_core.agent.trajectory import Trajectory
from codedance_core.config.filtering import BUCKET_HARD, BUCKET_MEDIUM
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.train import GRPOConfig
from codedance_core.rewards.score import TrajectoryScore, batch_rewards
from codedance_core.train.checkpoint import DataPosition
from codedance_core.train.distributed import DistContext
from codedance_core.train.grpo_step import informative

FIRST_BUCKETS = (BUCKET_MEDIUM, BUCKET_HARD)


def epoch_order(seed: int, epoch: int, size: int, priority: np.ndarray | None = None) -> np.ndarray:
    """The prompt order of one epoch: a function of (seed, epoch) only, so resume needs no state.
    With `priority` (one number per row), rows of a lower priority come first, each part in the
    permutation's order."""
    permutation = np.random.default_rng([seed, epoch]).permutation(size)
    if priority is None:
        return permutation
    return permutation[np.argsort(priority[permutation], kind="stable")]


def bucket_priority(rows: Sequence[dict[str, Any]]) -> np.ndarray:
    """0 for the rows of the medium and hard buckets, 1 for the others."""
    return np.array([0 if row.get("bucket") in FIRST_BUCKETS else 1 for row in rows], dtype=np.int8)


def steps_per_epoch(rows: int, config: GRPOConfig) -> int:
    """Batches of `prompts_per_step` prompts in an epoch (steps, without dynamic sampling)."""
    if rows < config.prompts_per_step:
        raise ValueError(f"{rows} prompts cannot fill one step of prompts_per_step={config.prompts_per_step}")
    return rows // config.prompts_per_step  # the last partial batch is dropped, as verl does


def total_steps_of(config: GRPOConfig, rows: int) -> int:
    return config.max_steps if config.max_steps is not None else config.epochs * steps_per_epoch(rows, config)


class PromptSchedule:
    """The prompts of each batch a run draws, in seeded epoch orders, from a `DataPosition` cursor."""

    def __init__(self, config: GRPOConfig, rows: Sequence[dict[str, Any]], dist: DistContext) -> None:
        self.config, self.dist, self.rows = config, dist, len(rows)
        self.priority = bucket_priority(rows) if config.prompt_order == "buckets_first" else None
        self.batches_per_epoch = steps_per_epoch(len(rows), config)
        self._orders: dict[int, np.ndarray] = {}

    def order(self, epoch: int) -> np.ndarray:
        if epoch not in self._orders:
            self._orders = {epoch: epoch_order(self.config.seed, epoch, self.rows, self.priority)}
        return self._orders[epoch]

    def batch(self, position: DataPosition) -> list[int]:
        """This worker's share of the batch at `position`."""
        size = self.config.prompts_per_step
        prompts = self.order(position.epoch)[position.batch_in_epoch * size :][:size]
        share = size // self.dist.world_size
        return [int(i) for i in prompts[self.dist.rank * share : (self.dist.rank + 1) * share]]

    def draw(self, position: DataPosition) -> list[int]:
        """This worker's share of the next batch; the cursor moves past it (into the next epoch at the end)."""
        indices = self.batch(position)
        position.batch_in_epoch += 1
        if position.batch_in_epoch >= self.batches_per_epoch:
            position.epoch += 1
            position.batch_in_epoch = 0
        return indices

    def prompts_drawn(self, position: DataPosition) -> int:
        """Prompts drawn since the run began (over all workers)."""
        return (
            position.epoch * self.batches_per_epoch + position.batch_in_epoch
        ) * self.config.prompts_per_step


@dataclass
class Group:
    """One prompt's rollouts with their scores, and whether their rewards differ."""

    trajectories: list[Trajectory]
    scores: list[TrajectoryScore]
    informative: bool
    reward_std: float


def score_groups(
    trajectories: Sequence[Trajectory],
    scores: Sequence[TrajectoryScore],
    group_size: int,
    config: RewardConfig,
) -> list[Group]:
    """Consecutive groups of `group_size`, each judged on its valid trajectories' rewards (BAT
    included: a reward depends on its own group only, so this matches the step's scoring)."""
    group_ids = [index // group_size for index in range(len(trajectories))]
    rewards = batch_rewards(scores, group_ids, config)
    groups = []
    for start in range(0, len(trajectories), group_size):
        part = slice(start, start + group_size)
        valid = rewards.rewards[part][rewards.valid[part]]
        groups.append(
            Group(
                list(trajectories[part]),
                list(scores[part]),
                informative(valid),
                float(np.std(valid)) if valid.size else 0.0,
            )
        )
    return groups


@dataclass
class SampledStep:
    """The groups a step trains on, and the sampling's figures over all workers."""

    groups: list[Group]
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def trajectories(self) -> list[Trajectory]:
        return [t for group in self.groups for t in group.trajectories]

    @property
    def scores(self) -> list[TrajectoryScore]:
        return [s for group in self.groups for s in group.scores]


RollFn = Callable[[list[int], int], list[Group]]  # (prompt indices, round) -> scored groups


def sample_step(
    schedule: PromptSchedule, position: DataPosition, config: GRPOConfig, dist: DistContext, roll: RollFn
) -> SampledStep:
    """Draw, roll out and score batches for one step (one batch without dynamic sampling).

    Without dynamic sampling every group of the batch is returned. With it: this worker's
    informative groups (at most its share), then -- under several workers, or when none was found
    -- uninformative ones up to its share, which the step's filter keeps out of the loss."""
    share = config.prompts_per_step // dist.world_size
    rounds = config.max_sampling_rounds if config.dynamic_sampling else 1
    found: list[Group] = []
    others: list[Group] = []
    drawn: list[Group] = []
    used = 0
    for round_index in range(rounds):
        indices = schedule.draw(position)
        used += 1
        if not config.dynamic_sampling or len(found) < share:
            groups = roll(indices, round_index)
            drawn.extend(groups)
            found.extend(g for g in groups if g.informative)
            others.extend(g for g in groups if not g.informative)
        if not config.dynamic_sampling:
            return SampledStep(drawn, _metrics(drawn, drawn, used, False, schedule, position, dist))
        if dist.sum_scalar(float(min(len(found), share))) >= config.prompts_per_step:
            break
    chosen = found[:share]
    filled = dist.sum_scalar(float(len(chosen)))
    padding = share if dist.distributed else 1
    chosen += others[: max(padding - len(chosen), 0)]
    cap_hit = filled < config.prompts_per_step
    return SampledStep(chosen, _metrics(drawn, chosen, used, cap_hit, schedule, position, dist))


def _metrics(
    drawn: list[Group],
    chosen: list[Group],
    rounds: int,
    cap_hit: bool,
    schedule: PromptSchedule,
    position: DataPosition,
    dist: DistContext,
) -> dict[str, float]:
    """Counts summed over workers (one gather: every rank calls this), then the shares."""
    trajectories = [t for g in drawn for t in g.scores]
    local = (
        len(drawn),
        sum(g.informative for g in drawn),
        sum(g.informative for g in chosen),
        sum(g.reward_std for g in drawn),
        sum(s.accuracy for s in trajectories),
        len(trajectories),
    )
    drawn_groups, informative_groups, trained, std_sum, correct, samples = np.sum(
        dist.gather_objects(local), axis=0
    )
    return {
        "sampling/rounds": float(rounds),
        "sampling/groups_drawn": float(drawn_groups),
        "sampling/informative_groups": float(informative_groups),
        "sampling/informative_share": float(informative_groups / drawn_groups) if drawn_groups else 0.0,
        "sampling/groups_trained": float(trained),
        "sampling/group_reward_std": float(std_sum / drawn_groups) if drawn_groups else 0.0,
        "sampling/drawn_accuracy": float(correct / samples) if samples else 0.0,
        "sampling/prompts_consumed": float(rounds * schedule.config.prompts_per_step),
        "sampling/prompts_total": float(schedule.prompts_drawn(position)),
        "sampling/cap_hit": float(cap_hit),
    }
