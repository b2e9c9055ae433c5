"""One GRPO step after the rollout: score the trajectories, then update the policy on them.

Scoring is the rewards package end to end (accuracy, format, BAT with the group's mean accuracy,
group-normalised advantages plus the turn-level correction, whose z-normalisation uses the
statistics of the whole batch, all workers' trajectories together), followed by what only the trainer
decides: which trajectories enter the loss. A trajectory the judge could not grade, a group
filtered for having all-equal rewards, or a trajectory with no model token stays out.

The update recomputes log-probs of the trajectory tokens under the current policy, from the
very token ids and images the engine saw (`bundle.model_inputs`, so `mm_token_type_ids` and
M-RoPE match generation), at the sampling temperature, a chunk of positions at a time
(`token_logprobs`), and applies `grpo_loss`. Per-token arrays are kept per trajectory (index j =
token j) and laid out into each micro-batch's padded target frame only when it is built, so
micro-batching never changes the math: the loss weights divide by the mini-batch's global token
count. With `max_tokens_per_micro_batch`, micro-batches are trajectories of similar length up to
that many padded tokens, so a few long trajectories do not set the width of many short ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.distributed as torch_dist

from codedance_core.agent.trajectory import Trajectory
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.train import GRPOConfig
from codedance_core.models.inputs import EncodedPrompt
from codedance_core.rewards.bat import TurnStats, turn_value_stats
from codedance_core.rewards.judge import LLMJudge
from codedance_core.rewards.score import (
    BatchRewards,
    TrajectoryScore,
    batch_rewards,
    batch_token_advantages,
    score_trajectories,
)
from codedance_core.train.distributed import DistContext, autocast_dtype
from codedance_core.train.grpo_loss import clipped_policy_loss, token_weights
from codedance_core.train.sharded import Optimization
from codedance_core.train.token_logprobs import EntropyMode, TokenScores, max_over_ranks, token_scores


@dataclass
class ScoredBatch:
    """A step's trajectories with their rewards, token advantages, and which ones train."""

    trajectories: list[Trajectory]
    group_ids: list[int]
    scores: list[TrajectoryScore]
    rewards: BatchRewards
    advantages: list[np.ndarray]
    keep: np.ndarray
    groups_filtered: int = 0


def global_turn_stats(local: TurnStats, dist: DistContext) -> TurnStats:
    """The turn values' statistics over every worker's trajectories: one all_reduce of (count,
    sum, sum of squares) when several workers share the batch, `local` alone otherwise. Every rank
    must call it at the same point of the step (it is a collective)."""
    if not dist.distributed:
        return local
    summed = torch.tensor([local.count, local.total, local.total_sq], dtype=torch.float64, device=dist.device)
    torch_dist.all_reduce(summed)
    count, total, total_sq = (float(value) for value in summed.tolist())
    return TurnStats(count, total, total_sq)


def batch_turn_stats(
    trajectories: Sequence[Trajectory], valid: np.ndarray, config: RewardConfig, dist: DistContext | None
) -> TurnStats | None:
    """The statistics the turn-level correction normalises with: over the valid trajectories of the
    whole batch, all workers together (the original normalised over the batch, not a worker's share)."""
    if not config.use_turn_level:
        return None
    statuses = [t.tool_statuses for t, ok in zip(trajectories, valid, strict=True) if ok]
    local = turn_value_stats(statuses, config.turn_discount, config.fail_penalty)
    return global_turn_stats(local, dist or DistContext())


async def score_batch(
    trajectories: Sequence[Trajectory],
    group_size: int,
    config: RewardConfig,
    judge: LLMJudge | None = None,
    filter_equal_reward_groups: bool = False,
    dist: DistContext | None = None,
) -> ScoredBatch:
    """Rewards and advantages of consecutive groups of `group_size` trajectories (one prompt each).

    Under several workers (`dist`), each scores its own groups, and the turn-level correction is
    normalised with statistics gathered from all of them (a collective: every rank calls this)."""
    scores = await score_trajectories([t.scoring_input() for t in trajectories], config, judge)
    return scored_batch(trajectories, scores, group_size, config, filter_equal_reward_groups, dist)


def scored_batch(
    trajectories: Sequence[Trajectory],
    scores: Sequence[TrajectoryScore],
    group_size: int,
    config: RewardConfig,
    filter_equal_reward_groups: bool = False,
    dist: DistContext | None = None,
) -> ScoredBatch:
    """`score_batch` after the scoring: rewards, advantages and which trajectories train, from
    scores already computed (dynamic sampling scores each draw as it comes). A collective, as above."""
    group_ids = [index // group_size for index in range(len(trajectories))]
    rewards = batch_rewards(scores, group_ids, config)
    advantages = batch_token_advantages(
        rewards,
        group_ids,
        [t.tool_statuses for t in trajectories],
        [t.turn_spans for t in trajectories],
        [len(t.token_ids) for t in trajectories],
        config,
        batch_turn_stats(trajectories, rewards.valid, config, dist),
    )
    keep = rewards.valid & np.array([sum(t.loss_mask) > 0 for t in trajectories], dtype=bool)
    filtered = 0
    if filter_equal_reward_groups:
        for group in sorted(set(group_ids)):
            members = [i for i, g in enumerate(group_ids) if g == group and rewards.valid[i]]
            if members and not informative(rewards.rewards[members]):
                keep[[i for i, g in enumerate(group_ids) if g == group]] = False
                filtered += 1
    return ScoredBatch(list(trajectories), group_ids, list(scores), rewards, advantages, keep, filtered)


def informative(group_rewards: np.ndarray) -> bool:
    """Whether a group's (valid) rewards differ: all equal, every GRPO advantage is 0."""
    return group_rewards.size > 1 and bool(np.ptp(group_rewards) > 0)


@dataclass
class Policy:
    """What an update needs: the model to call (possibly wrapped), its bundle, and how it is optimised."""

    model: Any
    bundle: Any
    optimization: Optimization  # backward, no_sync, the optimizer step (plain, DDP or DeepSpeed)
    config: GRPOConfig
    dist: DistContext
    temperature: float  # the rollouts' sampling temperature: tokens are re-scored at it
    reference: Any = None  # frozen initial model when kl_coef > 0


@dataclass
class _Tallies:
    """Sums over an update's tokens, turned into logged means at the end."""

    tokens: float = 0.0
    loss: float = 0.0
    clipped: float = 0.0
    entropy: float = 0.0
    entropy_tokens: float = 0.0
    kl: float = 0.0
    ratio: float = 0.0
    grad_norms: list[float] = field(default_factory=list)


def _left_pad(rows: Sequence[Sequence[float]], width: int, dtype: torch.dtype) -> torch.Tensor:
    padded = torch.zeros((len(rows), width), dtype=dtype)
    for index, row in enumerate(rows):
        if len(row):
            padded[index, width - len(row) :] = torch.as_tensor(np.asarray(row), dtype=dtype)
    return padded


def generated_image_pads(trajectory: Trajectory, image_token_id: int) -> bool:
    """Whether the model itself sampled an image pad: such a sequence no longer matches its images."""
    return any(m and t == image_token_id for t, m in zip(trajectory.token_ids, trajectory.loss_mask, strict=True))


def _encodable(trajectory: Trajectory, image_token_id: int, pad_token_id: int) -> EncodedPrompt:
    """The trajectory as model input; image pads the model sampled become padding (the trajectory
    is kept out of the loss by `update_policy`, but under DDP it still goes through the forward)."""
    tokens = [
        pad_token_id if m and t == image_token_id else t
        for t, m in zip(trajectory.token_ids, trajectory.loss_mask, strict=True)
    ]
    return EncodedPrompt(tokens, trajectory.images)


class MicroBatch:
    """Trajectories laid out as one left-padded batch, per-token arrays in the target frame."""

    def __init__(self, trajectories: Sequence[Trajectory], bundle: Any) -> None:
        self.trajectories = list(trajectories)
        image_id, pad_id = bundle.image_token_id, bundle.pad_token_id
        self.inputs = bundle.model_inputs([_encodable(t, image_id, pad_id) for t in trajectories])
        self.width = self.inputs["input_ids"].shape[1]
        self.targets = self.inputs["input_ids"][:, 1:]

    def frame(self, rows: Sequence[Sequence[float]], dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Per-trajectory arrays (index j = token j) as a (B, W-1) target-frame tensor on the device."""
        return _left_pad(rows, self.width, dtype)[:, 1:].to(self.targets.device)

    def unframe(self, values: torch.Tensor) -> list[np.ndarray]:
        """The inverse of `frame` for one value per target: index 0 (no prediction) is 0."""
        result = []
        for row, trajectory in zip(values.detach().float().cpu().numpy(), self.trajectories, strict=True):
            length = len(trajectory.token_ids)
            result.append(np.concatenate([[0.0], row[self.width - length :]]))
        return result


def _token_scores(
    model: Any, batch: MicroBatch, policy: Policy, scored: torch.Tensor, entropy: EntropyMode = "none"
) -> TokenScores:
    amp = autocast_dtype(policy.config, policy.dist.device)  # type: ignore[arg-type]
    with torch.autocast(policy.dist.device.type, dtype=amp, enabled=amp is not None):
        return token_scores(
            model,
            batch.inputs,
            batch.targets,
            scored,
            policy.temperature,
            policy.config.logprob_chunk_tokens,
            entropy,
            policy.dist,
        )


def plan_micro_batches(lengths: Sequence[int], max_rows: int, max_tokens: int | None) -> list[list[int]]:
    """Indices into `lengths` grouped into micro-batches.

    Without a token budget: consecutive runs of `max_rows`. With one: sorted by length, each
    micro-batch takes the next (longer) sequence while rows x longest -- the padded tokens of a
    left-padded batch -- stays within `max_tokens` and it has fewer than `max_rows` rows; a
    sequence longer than the budget goes alone.
    """
    if max_tokens is None:
        return [list(range(start, min(start + max_rows, len(lengths)))) for start in range(0, len(lengths), max_rows)]
    batches: list[list[int]] = []
    current: list[int] = []
    for index in sorted(range(len(lengths)), key=lambda i: lengths[i]):
        if current and (len(current) >= max_rows or (len(current) + 1) * lengths[index] > max_tokens):
            batches.append(current)
            current = []
        current.append(index)
    return batches + [current] if current else batches


def _passes(policy: Policy, trajectories: Sequence[Trajectory]) -> list[list[int]]:
    """The micro-batches of `trajectories`, then empty ones (see `_pass_rows`) until every rank has
    as many as the busiest: DDP and ZeRO pair each rank's backward passes, ZeRO-3 its forwards."""
    config = policy.config
    lengths = [len(t.token_ids) for t in trajectories]
    plan = plan_micro_batches(lengths, config.micro_batch_size, config.max_tokens_per_micro_batch)
    return plan + [[] for _ in range(max_over_ranks(len(plan), policy.dist) - len(plan))]


def _pass_rows(rows: list[int], lengths: Sequence[int]) -> tuple[list[int], bool]:
    """The rows a pass runs, and whether it is a filler: an empty pass runs the shortest sequence
    with nothing scored and zero weight, which changes no gradient."""
    if rows:
        return rows, False
    return [min(range(len(lengths)), key=lambda i: lengths[i])], True


@torch.no_grad()
def policy_logprobs(model: Any, trajectories: Sequence[Trajectory], policy: Policy) -> list[np.ndarray]:
    """Log-probs of the model's tokens (`loss_mask`) under `model` at the sampling temperature,
    0 elsewhere (no gradient)."""
    result: list[np.ndarray] = [np.zeros(len(t.token_ids)) for t in trajectories]
    lengths = [len(t.token_ids) for t in trajectories]
    for planned in _passes(policy, trajectories):
        rows, filler = _pass_rows(planned, lengths)
        part = [trajectories[r] for r in rows]
        batch = MicroBatch(part, policy.bundle)
        scored = batch.frame([np.zeros(len(t.token_ids)) if filler else t.loss_mask for t in part]) > 0
        values = batch.unframe(_token_scores(model, batch, policy, scored).logprobs)
        if not filler:
            for row, logprobs in zip(rows, values, strict=True):
                result[row] = logprobs
    return result


def mini_batches(groups: Sequence[int], count: int) -> list[list[int]]:
    """Split group ids into `count` consecutive slices of (nearly) equal size."""
    return [list(part) for part in np.array_split(np.asarray(sorted(set(groups))), count) if len(part)]


def update_policy(policy: Policy, scored: ScoredBatch) -> dict[str, float]:
    """ppo_epochs x mini-batches optimizer updates on the kept trajectories; the update's metrics."""
    config, dist = policy.config, policy.dist
    image_id = policy.bundle.image_token_id
    for index, trajectory in enumerate(scored.trajectories):
        if generated_image_pads(trajectory, image_id):
            scored.keep[index] = False
    # Under DDP every rank must run the same number of backward passes: filtered trajectories stay
    # in (with zero weight) instead of being dropped.
    indices = list(range(len(scored.trajectories))) if dist.distributed else list(np.flatnonzero(scored.keep))
    trajectories = [scored.trajectories[i] for i in indices]
    policy.model.eval()
    old, diff = _old_logprobs(policy, trajectories)
    reference = policy_logprobs(policy.reference, trajectories, policy) if policy.reference is not None else None
    policy.model.train()
    tallies = _Tallies()
    for epoch in range(config.ppo_epochs):
        for groups in mini_batches([scored.group_ids[i] for i in indices], config.mini_batches_per_step):
            chosen = [k for k, i in enumerate(indices) if scored.group_ids[i] in set(groups)]
            _one_update(policy, scored, indices, chosen, old, reference, tallies, epoch == 0)
    tokens = max(tallies.tokens, 1.0)
    updates = max(len(tallies.grad_norms), 1)
    return {
        "loss": tallies.loss / updates,
        "clip_frac": tallies.clipped / tokens,
        "entropy": tallies.entropy / max(tallies.entropy_tokens, 1.0),
        "kl_ref": tallies.kl / tokens,
        "ratio_mean": tallies.ratio / tokens,
        "grad_norm": float(np.mean(tallies.grad_norms)) if tallies.grad_norms else 0.0,
        "updates": float(len(tallies.grad_norms)),
        "rollout_logprob_abs_diff": diff,
        "lr": policy.optimization.lr,
    }


def _old_logprobs(policy: Policy, trajectories: Sequence[Trajectory]) -> tuple[list[np.ndarray], float]:
    """The ratio's denominator per trajectory, and the mean |engine - trainer| log-prob gap.

    The gap is measured every step: it is how a missed weight sync shows (an engine sampling from
    stale weights). With `old_logprobs: rollout` the engine's own log-probs are the denominator,
    and the trainer re-scores only a probe of one micro-batch to measure the gap."""
    rollout = [np.asarray(t.logprobs, dtype=np.float64) for t in trajectories]
    if not trajectories:
        return rollout, 0.0
    if policy.config.old_logprobs == "rollout":
        probe = list(trajectories[: policy.config.micro_batch_size])
        return rollout, _mean_gap(probe, policy_logprobs(policy.model, probe, policy))
    recomputed = policy_logprobs(policy.model, trajectories, policy)
    return recomputed, _mean_gap(trajectories, recomputed)


def _mean_gap(trajectories: Sequence[Trajectory], trainer: Sequence[np.ndarray]) -> float:
    """Mean |engine - trainer| log-prob over the model's tokens."""
    gaps = [
        np.abs(np.asarray(t.logprobs, dtype=np.float64) - scored)[np.asarray(t.loss_mask, dtype=bool)]
        for t, scored in zip(trajectories, trainer, strict=True)
    ]
    joined = np.concatenate(gaps) if gaps else np.zeros(0)
    return float(joined.mean()) if joined.size else 0.0


def _one_update(
    policy: Policy,
    scored: ScoredBatch,
    indices: list[int],
    chosen: list[int],
    old: list[np.ndarray],
    reference: list[np.ndarray] | None,
    tallies: _Tallies,
    first_epoch: bool,
) -> None:
    config, dist = policy.config, policy.dist
    keep = [bool(scored.keep[indices[k]]) for k in chosen]
    masks = [np.asarray(scored.trajectories[indices[k]].loss_mask, dtype=np.float32) * ok for k, ok in zip(chosen, keep)]
    total_tokens = dist.sum_scalar(float(sum(m.sum() for m in masks)))
    total_sequences = dist.sum_scalar(float(sum(keep)))
    if total_tokens == 0:
        return  # nothing to learn from in this mini-batch, on any rank: no step (no decay either)
    lengths = [len(scored.trajectories[indices[k]].token_ids) for k in chosen]
    entropy: EntropyMode = "trained" if config.entropy_coef > 0 else "detached" if first_epoch else "none"
    passes = _passes(policy, [scored.trajectories[indices[k]] for k in chosen])
    for number, planned in enumerate(passes):
        rows, filler = _pass_rows(planned, lengths)
        part = [chosen[r] for r in rows]
        batch = MicroBatch([scored.trajectories[indices[k]] for k in part], policy.bundle)
        last = number == len(passes) - 1
        with policy.optimization.no_sync(last):
            mask = batch.frame([masks[r] * (not filler) for r in rows])
            scores = _token_scores(policy.model, batch, policy, mask > 0, entropy)
            logp = scores.logprobs
            weights = token_weights(mask, config.loss_aggregation, total_tokens, total_sequences)
            result = clipped_policy_loss(
                logp,
                batch.frame([old[k] for k in part]),
                batch.frame([scored.advantages[indices[k]] for k in part]),
                weights,
                config.clip_low,
                config.clip_high,
                config.dual_clip,
                batch.frame([reference[k] for k in part]) if reference is not None else None,
                config.kl_coef,
            )
            loss = result.loss
            if config.entropy_coef > 0:
                loss = loss - config.entropy_coef * (scores.entropy * weights).sum()
            # the weights already divide by the global count: gradients sum over ranks
            policy.optimization.backward(loss)
        counted = float(mask.sum())
        tallies.loss += float(loss.detach())
        tallies.clipped += result.clipped_tokens
        tallies.kl += result.kl_sum
        tallies.ratio += result.ratio_sum
        if first_epoch and scores.entropy is not None:
            tallies.entropy += float((scores.entropy.detach() * mask).sum())
            tallies.entropy_tokens += counted
        tallies.tokens += counted
    tallies.grad_norms.append(policy.optimization.step())
