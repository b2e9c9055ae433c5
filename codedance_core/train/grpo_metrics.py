"""What a GRPO step reports: reward parts, tool use, difficulty, lengths, and sample trajectories.

The per-source figures (`tool_rate/<data_source>`, `accuracy/<data_source>`) are what BAT is
about: on easy sources (the suite's `direct` family) the tool-call rate should fall, on hard ones
it should hold. Every value is a float so MLflow and the jsonl take it as is; a quantity that
does not exist in a step (no tool call, no valid group) is reported as 0 rather than NaN.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np

from codedance_core.train.distributed import DistContext


def _mean(values: list[float]) -> float:
    return float(np.mean(values)) if values else 0.0


def batch_metrics(scored: Any) -> dict[str, float]:
    """Means over a scored batch (a `grpo_step.ScoredBatch`)."""
    trajectories, scores = scored.trajectories, scored.scores
    rewards = scored.rewards
    calls = sum(t.tool_calls for t in trajectories)
    successes = sum(t.tool_successes for t in trajectories)
    difficulty = [d for d in rewards.difficulty.values() if not np.isnan(d)]
    mu = [m for m in rewards.group_mean_accuracy.values() if not np.isnan(m)]
    metrics = {
        "reward_mean": _mean(list(rewards.rewards)),
        "reward_std": float(np.std(rewards.rewards)) if len(rewards.rewards) else 0.0,
        "accuracy": _mean([s.accuracy for s in scores]),
        "format_penalty": _mean([s.format_penalty for s in scores]),
        "base_score": _mean([s.base for s in scores]),
        "r_tool": _mean([s.r_tool for s in scores]),
        "tool_calls_per_trajectory": calls / max(len(trajectories), 1),
        "tool_call_rate": _mean([float(t.tool_calls > 0) for t in trajectories]),
        "exec_success_rate": successes / calls if calls else 0.0,
        "d_mu_mean": _mean(difficulty),
        "d_mu_min": float(min(difficulty)) if difficulty else 0.0,
        "d_mu_max": float(max(difficulty)) if difficulty else 0.0,
        "mu_mean": _mean(mu),
        "response_tokens": _mean([float(sum(t.loss_mask)) for t in trajectories]),
        "turns": _mean([float(len(t.turns)) for t in trajectories]),
        "answered_rate": _mean([float(t.finish_reason == "answered") for t in trajectories]),
        "response_budget_rate": _mean([float(t.finish_reason == "response_budget") for t in trajectories]),
        "context_overflow_rate": _mean([float(t.finish_reason == "context_overflow") for t in trajectories]),
        "valid_fraction": _mean([float(v) for v in rewards.valid]),
        "kept_fraction": _mean([float(k) for k in scored.keep]),
        "groups_filtered": float(scored.groups_filtered),
        "trajectories": float(len(trajectories)),
    }
    by_source: dict[str, list[int]] = defaultdict(list)
    for index, trajectory in enumerate(trajectories):
        by_source[trajectory.item.data_source or "unknown"].append(index)
    for source, indices in sorted(by_source.items()):
        metrics[f"tool_rate/{source}"] = _mean([float(trajectories[i].tool_calls > 0) for i in indices])
        metrics[f"accuracy/{source}"] = _mean([scores[i].accuracy for i in indices])
    return metrics


def combine_ranks(metrics: dict[str, float], dist: DistContext) -> dict[str, float]:
    """Every worker's metrics merged: minima and maxima as such, sums for counts, means otherwise.

    Workers hold equal numbers of prompts, so the mean of their means is the batch mean (a
    per-source figure averages over the workers that saw that source).
    """
    if not dist.distributed:
        return metrics
    gathered = dist.gather_objects(metrics)
    combined: dict[str, float] = {}
    for key in sorted({k for m in gathered for k in m}):
        values = [m[key] for m in gathered if key in m]
        if key.endswith("_min"):
            combined[key] = min(values)
        elif key.endswith("_max"):
            combined[key] = max(values)
        elif key in ("trajectories", "groups_filtered", "skipped_rows"):
            combined[key] = float(sum(values))
        else:
            combined[key] = float(np.mean(values))
    return combined


def trajectory_samples(scored: Any, count: int) -> list[dict[str, Any]]:
    """The first `count` groups' first trajectory each, as JSON-ready records (images counted, not kept)."""
    samples = []
    seen_groups: set[int] = set()
    for index, trajectory in enumerate(scored.trajectories):
        group = scored.group_ids[index]
        if group in seen_groups:
            continue
        seen_groups.add(group)
        score = scored.scores[index]
        samples.append(
            {
                "item_id": trajectory.item.item_id,
                "data_source": trajectory.item.data_source,
                "sample_index": trajectory.sample_index,
                "gold": trajectory.item.gold,
                "answer": trajectory.answer,
                "finish_reason": trajectory.finish_reason,
                "reward": float(scored.rewards.rewards[index]),
                "accuracy": score.accuracy,
                "format_penalty": score.format_penalty,
                "r_tool": score.r_tool,
                "d_mu": scored.rewards.difficulty.get(group),
                "sequence_advantage": float(scored.advantages[index][-1]) if len(scored.advantages[index]) else 0.0,
                "tool_statuses": trajectory.tool_statuses,
                "images": len(trajectory.images),
                "messages": trajectory.messages,
            }
        )
        if len(samples) >= count:
            break
    return samples
