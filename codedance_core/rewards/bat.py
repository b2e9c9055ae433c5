"""Balanced Adaptive Tool-call (BAT): the tool part of the reward and the GRPO advantages.

Pure functions over plain Python and numpy values, so the trainer, the tests and a notebook
all compute the same numbers (docs/method.md §4):

- r_tool rewards successful tool calls, more when the answer is right; nothing without calls.
- d(mu) = (1 + tanh(gamma * (0.5 - mu))) / 2 - beta scales r_tool by how hard the prompt is
  for the current policy: positive on hard prompts (tools encouraged), negative on easy ones
  (tool overuse discouraged). mu is the group's mean ACCURACY: the original used the score,
  format penalty included, which let format errors pass for difficulty.
- The turn-level correction gives each assistant turn a dense signal: a failed call costs
  `fail_penalty`, discounted backwards to the turns that led to it, z-normalised over the whole
  batch: with several workers, each computes `turn_value_stats` of its share and the trainer
  sums them over workers (`TurnStats`), so no worker normalises over its own slice only.

A tool call's outcome is the sandbox's explicit status string, never a search of its output
for "Error": "ok" is a success and anything else ("error", "timeout", "killed",
"output_limit", "parse_error" for an unparsable code block) a failure. A turn without a call
(the answer turn, or a turn after the turn-limit "answer now" message) is given as None: that
message is not a tool call, and counting it as a success was a defect of the original.
"""

from __future__ import annotations

from collections.abc import Hashable, Sequence
from dataclasses import dataclass

import numpy as np

STATUS_OK = "ok"
FAILED_STATUSES = ("error", "timeout", "killed", "output_limit", "parse_error")

CallStatus = str | None  # one assistant turn: its tool call's status, or None when it made no call


def difficulty_weight(mu: float | np.ndarray, gamma: float = 4.0, beta: float = 0.2) -> float | np.ndarray:
    """d(mu) = (1 + tanh(gamma * (0.5 - mu))) / 2 - beta; d(0)=0.78, d(0.5)=0.30, d(1)=-0.18 by default."""
    value = (1.0 + np.tanh(gamma * (0.5 - np.asarray(mu, dtype=float)))) / 2.0 - beta
    return float(value) if np.ndim(value) == 0 else value


def count_tool_calls(statuses: Sequence[CallStatus]) -> tuple[int, int]:
    """(calls, successful calls) of one trajectory's per-turn statuses; None turns are not calls."""
    calls = [status for status in statuses if status is not None]
    return len(calls), sum(status == STATUS_OK for status in calls)


def tool_reward(
    n_calls: int,
    n_success: int,
    correct: bool,
    math_source: bool,
    *,
    correct_scale: float = 1.5,
    incorrect_scale: float = 0.5,
    math_correct_scale: float = 2.0,
    math_incorrect_scale: float = 1.0,
) -> float:
    """r_tool = scale * successful / calls, the scale set by correctness and source; 0 without calls."""
    if n_calls < 0 or not 0 <= n_success <= n_calls:
        raise ValueError(f"need 0 <= n_success <= n_calls, got {n_success} of {n_calls}")
    if n_calls == 0:
        return 0.0
    if math_source:
        scale = math_correct_scale if correct else math_incorrect_scale
    else:
        scale = correct_scale if correct else incorrect_scale
    return scale * n_success / n_calls


def group_advantages(
    rewards: Sequence[float], group_ids: Sequence[Hashable], eps: float = 1e-6
) -> np.ndarray:
    """GRPO advantages A = (r - mean_group) / (std_group + eps).

    The std is the unbiased one (as torch.std, which verl's GRPO uses). A group of one has no
    baseline to compare with, so its advantage is 0 rather than its raw reward.
    """
    values = np.asarray(rewards, dtype=float)
    if len(values) != len(group_ids):
        raise ValueError(f"{len(values)} rewards but {len(group_ids)} group ids")
    advantages = np.zeros_like(values)
    members: dict[Hashable, list[int]] = {}
    for index, group in enumerate(group_ids):
        members.setdefault(group, []).append(index)
    for indices in members.values():
        if len(indices) < 2:
            continue
        group_rewards = values[indices]
        advantages[indices] = (group_rewards - group_rewards.mean()) / (group_rewards.std(ddof=1) + eps)
    return advantages


def discounted_turn_values(
    statuses: Sequence[CallStatus], discount: float, fail_penalty: float
) -> list[float]:
    """c_i = s_i + discount * c_(i+1), backwards; s_i = fail_penalty for a failed call, else 0."""
    values = [0.0] * len(statuses)
    following = 0.0
    for index in range(len(statuses) - 1, -1, -1):
        status = statuses[index]
        step = fail_penalty if status is not None and status != STATUS_OK else 0.0
        following = step + discount * following
        values[index] = following
    return values


@dataclass(frozen=True)
class TurnStats:
    """Count, sum and sum of squares of non-final turn values: what z-normalising over a batch
    split across workers needs. Shards combine by adding (`+`, or an all_reduce of the three), so
    the mean and std of the whole batch come out whichever worker holds which trajectory."""

    count: float = 0.0
    total: float = 0.0
    total_sq: float = 0.0

    @classmethod
    def of(cls, values: Sequence[float]) -> TurnStats:
        array = np.asarray(values, dtype=np.float64)
        return cls(float(array.size), float(array.sum()), float(np.square(array).sum()))

    def __add__(self, other: TurnStats) -> TurnStats:
        return TurnStats(self.count + other.count, self.total + other.total, self.total_sq + other.total_sq)

    @property
    def mean(self) -> float:
        return self.total / self.count if self.count else 0.0

    @property
    def std(self) -> float:
        """The population std (as numpy's default); clamped at 0 against rounding."""
        if not self.count:
            return 0.0
        return float(np.sqrt(max(self.total_sq / self.count - self.mean**2, 0.0)))


def turn_value_stats(
    per_traj_call_statuses: Sequence[Sequence[CallStatus]], discount: float = 0.2, fail_penalty: float = -0.5
) -> TurnStats:
    """The statistics of the non-final c_i of these trajectories (one worker's share of a batch)."""
    raw = [discounted_turn_values(statuses, discount, fail_penalty) for statuses in per_traj_call_statuses]
    return TurnStats.of([value for values in raw for value in values[:-1]])


def turn_corrections(
    per_traj_call_statuses: Sequence[Sequence[CallStatus]],
    discount: float = 0.2,
    fail_penalty: float = -0.5,
    eps: float = 1e-6,
    stats: TurnStats | None = None,
) -> list[list[float]]:
    """Per trajectory, one value per assistant turn: the non-final c_i z-normalised over the batch.

    `stats` are the whole batch's (`turn_value_stats` of every worker's trajectories, summed);
    None normalises over these trajectories alone. The final turn of each trajectory gets 0: its
    outcome is what the sequence-level advantage already judges. When every non-final value in the
    batch is equal, all corrections are 0.
    """
    raw = [discounted_turn_values(statuses, discount, fail_penalty) for statuses in per_traj_call_statuses]
    if stats is None:
        stats = TurnStats.of([value for values in raw for value in values[:-1]])
    mean, std = stats.mean, stats.std
    corrections = []
    for values in raw:
        normalised = [float((value - mean) / (std + eps)) for value in values[:-1]]
        corrections.append(normalised + [0.0] * min(1, len(values)))
    return corrections


def token_advantages(
    seq_adv: float,
    turn_values: Sequence[float],
    turn_spans: Sequence[tuple[int, int]],
    length: int,
    weight: float = 0.2,
) -> np.ndarray:
    """Token-level advantages: seq_adv everywhere, plus weight * value on each assistant turn's tokens.

    `turn_spans[i]` is the half-open (start, end) token range of assistant turn i in a sequence
    of `length` tokens; tokens outside every span (prompt, tool observations) keep seq_adv and
    are expected to be masked out of the loss by the caller.
    """
    if len(turn_values) != len(turn_spans):
        raise ValueError(f"{len(turn_values)} turn values but {len(turn_spans)} turn spans")
    advantages = np.full(length, float(seq_adv), dtype=np.float32)
    previous_end = 0
    for value, (start, end) in zip(turn_values, turn_spans):
        if not previous_end <= start <= end <= length:
            raise ValueError(f"turn span ({start}, {end}) overlaps another or lies outside 0..{length}")
        advantages[start:end] += weight * value
        previous_end = end
    return advantages
