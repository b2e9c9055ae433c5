"""Held-out accuracy during RL: the policy's greedy answers on rows it never trains on.

Every `eval_every_steps` steps the policy answers the held-out items greedily (temperature 0, one
sample, the RL loop's turn budget), as the original validated, and the step's metrics row gets
`heldout/accuracy`, `heldout/tool_call_rate` (share of items with a tool call) and a few more. The
rollouts are the run's own (`RolloutRunner`: its engine, sandbox pool and event loop) and the
scoring is the reward's (`score_trajectories`), so a held-out item is judged as a training one is;
an item the judge could not grade counts as wrong, as in evaluation. The rollout is seeded, which
makes the hf engine fork and restore the RNG: evaluating changes nothing that training samples.

Under several workers each evaluates every world_size-th item and the counts are summed over ranks
(a collective: every rank evaluates at the same steps).

The held-out rows are `eval_data` (its first `eval_items` good rows) or, without it, `eval_items`
rows of the RL data chosen with the run's seed and taken out of training.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from codedance_core.agent.trajectory import RolloutItem
from codedance_core.config.agent import RolloutSettings
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.train import GRPOConfig
from codedance_core.rewards.judge import LLMJudge
from codedance_core.rewards.score import score_trajectories
from codedance_core.train.distributed import DistContext
from codedance_core.train.grpo_rollout import RolloutRunner, step_rollout_config

_HOLDOUT_STREAM = 7  # the held-out choice's own random stream, apart from the epoch orders


def heldout_split(
    config: GRPOConfig, rows: list[dict[str, Any]], eval_data: str | Sequence[dict[str, Any]] | None
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(the rows training draws from, the held-out rows); no held-out rows when evaluation is off."""
    if config.eval_every_steps is None:
        return rows, []
    if eval_data is not None:
        from codedance_core.data.validate import split_rows

        good, _ = split_rows(eval_data, "rl")
        return rows, good[: config.eval_items]
    if len(rows) - config.eval_items < config.prompts_per_step:
        raise ValueError(
            f"holding out eval_items={config.eval_items} of {len(rows)} RL rows leaves less than one step of "
            f"prompts_per_step={config.prompts_per_step}: lower eval_items or give eval_data"
        )
    rng = np.random.default_rng([config.seed, _HOLDOUT_STREAM])
    held = {int(i) for i in rng.choice(len(rows), config.eval_items, replace=False)}
    return [row for i, row in enumerate(rows) if i not in held], [rows[i] for i in sorted(held)]


def evaluation_due(config: GRPOConfig, step: int) -> bool:
    return config.eval_every_steps is not None and step % config.eval_every_steps == 0


def evaluate_heldout(
    runner: RolloutRunner,
    items: Sequence[RolloutItem],
    rollout: RolloutSettings,
    rewards: RewardConfig,
    judge: LLMJudge | None,
    seed: int,
    lockstep: bool,
    dist: DistContext,
) -> dict[str, float]:
    """Greedy rollouts of this worker's share of `items`, scored; the figures over all workers."""
    mine = list(items[dist.rank :: dist.world_size])
    greedy = rollout.model_copy(update={"temperature": 0.0})
    trajectories = runner.rollout(mine, step_rollout_config(greedy, 1, seed, lockstep))[0] if mine else []
    scores = (
        runner.run(score_trajectories([t.scoring_input() for t in trajectories], rewards, judge))
        if mine
        else []
    )
    local = (
        len(trajectories),
        sum(s.accuracy for s in scores),
        sum(t.tool_calls > 0 for t in trajectories),
        sum(t.tool_calls for t in trajectories),
        sum(t.tool_successes for t in trajectories),
        sum(t.finish_reason == "answered" for t in trajectories),
    )
    count, correct, calling, calls, successes, answered = np.sum(dist.gather_objects(local), axis=0)
    count = max(float(count), 1.0)
    return {
        "heldout/accuracy": float(correct) / count,
        "heldout/tool_call_rate": float(calling) / count,
        "heldout/tool_calls_per_item": float(calls) / count,
        "heldout/exec_success_rate": float(successes) / float(calls) if calls else 0.0,
        "heldout/answered_rate": float(answered) / count,
        "heldout/items": float(len(items)),
    }
