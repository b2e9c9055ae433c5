"""One trajectory's reward, and a batch's rewards and advantages: accuracy + format + BAT.

This is the one place that decides, per `data_source`, which accuracy scorer applies (chart
sources: relaxed numeric; counting: exact integer; math sources: the option chosen, numbers,
math-verify, then the judge; a benchmark's own rule when evaluation names one) and which
sources are "math sources" with their larger weights. Scoring runs in two passes: the rules
first, then one concurrent round of the judge for whatever the rules left undecided.

The answer-length cap is the original's: on sources other than maths, an answer of
`max_answer_chars` or more scores accuracy 0 and counts as a format error (-1); maths sources
have no cap (their long answers go to the judge, as math-verify skips them).

On maths sources the judge may overrule math-verify's "not equivalent" (the original's fallback);
a run without a judge keeps that verdict, so wrong maths answers still count against a group.

A trajectory the judge could not grade has status `judge_error`: its accuracy is unknown, so
it is left out of its group's mean accuracy and marked invalid, and the trainer drops it
instead of learning from a made-up 0 (the original's defect).
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from codedance_core.config.rewards import RewardConfig
from codedance_core.rewards.accuracy import AccuracyResult, AnswerKind, score_response
from codedance_core.rewards.bat import (
    CallStatus,
    TurnStats,
    count_tool_calls,
    difficulty_weight,
    group_advantages,
    token_advantages,
    tool_reward,
    turn_corrections,
)
from codedance_core.rewards.format import check_format
from codedance_core.rewards.judge import JudgeRequest, JudgeStatus, JudgeVerdict, LLMJudge

STATUS_SCORED = "scored"
STATUS_JUDGE_ERROR = JudgeStatus.JUDGE_ERROR.value


def is_math_source(data_source: str, config: RewardConfig) -> bool:
    """A listed math source, or a name containing one of the math substrings ('math' by default)."""
    name = data_source.lower()
    listed = {source.lower() for source in config.math_sources}
    return name in listed or any(part.lower() in name for part in config.math_source_substrings)


def scorer_for_source(data_source: str, config: RewardConfig) -> AnswerKind | str:
    """The accuracy scorer of a data_source: the configured one (an AnswerKind, or a benchmark's rule
    by name), math on math sources, else auto."""
    configured = config.scorer_by_source.get(data_source) or config.scorer_by_source.get(data_source.lower())
    if configured:
        return AnswerKind(configured) if configured in {kind.value for kind in AnswerKind} else configured
    return AnswerKind.MATH if is_math_source(data_source, config) else AnswerKind.AUTO


@dataclass(frozen=True)
class TrajectoryInput:
    """What scoring needs from one rollout: the model's own text (assistant turns joined) and its calls."""

    response_text: str
    gold: str
    data_source: str
    tool_statuses: Sequence[CallStatus] = ()
    question: str = ""
    options: Sequence[str] | Mapping[str, str] | None = None
    metadata: Mapping[str, Any] | None = None  # per-item facts a benchmark rule reads (precision, ...)


@dataclass(frozen=True)
class TrajectoryScore:
    """The reward parts of one trajectory; `base` = w_acc * accuracy + w_fmt * format_penalty."""

    accuracy: float
    format_penalty: float
    base: float
    r_tool: float
    rule: str
    status: str
    n_calls: int
    n_success: int
    math_source: bool
    extracted: str | None
    detail: str
    needs_judge: bool = False  # the rules left it to the judge (their verdict stands without one)

    @property
    def valid(self) -> bool:
        return self.status == STATUS_SCORED


def _accuracy_with_verdict(
    rule_result: AccuracyResult, verdict: JudgeVerdict | None
) -> tuple[float, str, str, str]:
    """(accuracy, rule, status, detail) once the judge, if it was needed, has spoken."""
    if not rule_result.needs_judge:
        return rule_result.score, rule_result.rule, STATUS_SCORED, rule_result.detail
    if verdict is None:
        if (ruled := rule_result.ruled) is not None:  # no judge to overrule the rule: its verdict stands
            return ruled.score, ruled.rule, STATUS_SCORED, ruled.detail + " (no judge configured to overrule it)"
        return 0.0, "judge", STATUS_JUDGE_ERROR, "no rule decides and no LLM judge is configured"
    if not verdict.ok or verdict.score is None:
        return 0.0, "judge", STATUS_JUDGE_ERROR, verdict.reason
    return (
        verdict.score,
        "judge",
        STATUS_SCORED,
        ("cached: " if verdict.cached else "") + verdict.reason[:200],
    )


def score_trajectory(
    response_text: str,
    gold: str,
    data_source: str,
    tool_statuses: Sequence[CallStatus] = (),
    *,
    config: RewardConfig | None = None,
    options: Sequence[str] | Mapping[str, str] | None = None,
    judge_verdict: JudgeVerdict | None = None,
    question: str = "",
    metadata: Mapping[str, Any] | None = None,
) -> TrajectoryScore:
    """Accuracy (rules, or the given judge verdict), format penalty, base score and r_tool."""
    config = config or RewardConfig()
    math_source = is_math_source(data_source, config)
    answer_cap = None if math_source else config.max_answer_chars
    rule_result = score_response(
        response_text,
        gold,
        kind=scorer_for_source(data_source, config),
        options=options,
        relative_tolerance=config.relaxed_tolerance,
        max_answer_chars=answer_cap,
        question=question,
        metadata=metadata,
    )
    accuracy, rule, status, detail = _accuracy_with_verdict(rule_result, judge_verdict)
    penalty = check_format(response_text, max_answer_chars=answer_cap).penalty
    accuracy_weight = config.math_accuracy_weight if math_source else config.accuracy_weight
    format_weight = config.math_format_weight if math_source else config.format_weight
    n_calls, n_success = count_tool_calls(tool_statuses)
    r_tool = tool_reward(
        n_calls,
        n_success,
        accuracy >= 0.5,
        math_source,
        correct_scale=config.tool_reward_correct,
        incorrect_scale=config.tool_reward_incorrect,
        math_correct_scale=config.math_tool_reward_correct,
        math_incorrect_scale=config.math_tool_reward_incorrect,
    )
    return TrajectoryScore(
        accuracy=accuracy,
        format_penalty=penalty,
        base=accuracy_weight * accuracy + format_weight * penalty,
        r_tool=r_tool,
        rule=rule,
        status=status,
        n_calls=n_calls,
        n_success=n_success,
        math_source=math_source,
        extracted=rule_result.extracted,
        detail=detail,
        needs_judge=rule_result.needs_judge,
    )


async def score_trajectories(
    items: Sequence[TrajectoryInput], config: RewardConfig | None = None, judge: LLMJudge | None = None
) -> list[TrajectoryScore]:
    """Score a batch: rules for all, then one concurrent judge round for the undecided ones."""
    config = config or RewardConfig()
    first_pass = [_score_item(item, config, None) for item in items]
    pending = [index for index, score in enumerate(first_pass) if score.needs_judge]
    if not pending or judge is None:
        return first_pass
    requests = [
        JudgeRequest(items[i].question, items[i].gold, first_pass[i].extracted or "") for i in pending
    ]
    verdicts = await judge.judge_many(requests)
    final = list(first_pass)
    for index, verdict in zip(pending, verdicts):
        final[index] = _score_item(items[index], config, verdict)
    return final


def _score_item(item: TrajectoryInput, config: RewardConfig, verdict: JudgeVerdict | None) -> TrajectoryScore:
    return score_trajectory(
        item.response_text,
        item.gold,
        item.data_source,
        item.tool_statuses,
        config=config,
        options=item.options,
        judge_verdict=verdict,
        question=item.question,
        metadata=item.metadata,
    )


@dataclass(frozen=True)
class BatchRewards:
    """Final-token rewards, which trajectories are usable, and per group mu (mean accuracy) and d(mu)."""

    rewards: np.ndarray
    valid: np.ndarray
    group_mean_accuracy: dict[Hashable, float] = field(default_factory=dict)
    difficulty: dict[Hashable, float] = field(default_factory=dict)


def batch_rewards(
    scores: Sequence[TrajectoryScore], group_ids: Sequence[Hashable], config: RewardConfig | None = None
) -> BatchRewards:
    """r = base + d(mu_group) * r_tool (the BAT term only when config.use_bat).

    mu is the mean ACCURACY of the group's valid trajectories. A group with none has no mu: its
    d is NaN and its trajectories get no BAT term (they are all invalid anyway).
    """
    config = config or RewardConfig()
    if len(scores) != len(group_ids):
        raise ValueError(f"{len(scores)} scores but {len(group_ids)} group ids")
    accuracies: dict[Hashable, list[float]] = {}
    for score, group in zip(scores, group_ids):
        accuracies.setdefault(group, [])
        if score.valid:
            accuracies[group].append(score.accuracy)
    mean_accuracy = {
        group: float(np.mean(values)) if values else float("nan") for group, values in accuracies.items()
    }
    difficulty = {
        group: float(difficulty_weight(mu, config.gamma, config.beta)) for group, mu in mean_accuracy.items()
    }
    rewards = np.array([score.base for score in scores], dtype=float)
    if config.use_bat:
        for index, (score, group) in enumerate(zip(scores, group_ids)):
            if not np.isnan(difficulty[group]):
                rewards[index] += difficulty[group] * score.r_tool
    valid = np.array([score.valid for score in scores], dtype=bool)
    return BatchRewards(
        rewards=rewards, valid=valid, group_mean_accuracy=mean_accuracy, difficulty=difficulty
    )


def batch_token_advantages(
    batch: BatchRewards,
    group_ids: Sequence[Hashable],
    per_traj_call_statuses: Sequence[Sequence[CallStatus]],
    per_traj_turn_spans: Sequence[Sequence[tuple[int, int]]],
    lengths: Sequence[int],
    config: RewardConfig | None = None,
    turn_stats: TurnStats | None = None,
) -> list[np.ndarray]:
    """Per trajectory, token advantages: GRPO over valid trajectories plus the turn-level term.

    Invalid trajectories (judge errors) get all-zero advantages and do not enter any statistic.
    `turn_stats`: the turn values' statistics over the whole batch when it is split across workers
    (the trainer sums them over ranks); None takes them from these trajectories.
    """
    config = config or RewardConfig()
    valid_indices = [i for i, ok in enumerate(batch.valid) if ok]
    sequence_advantages = np.zeros(len(batch.rewards))
    sequence_advantages[valid_indices] = group_advantages(
        batch.rewards[valid_indices], [group_ids[i] for i in valid_indices], config.advantage_eps
    )
    turn_values = [[0.0] * len(spans) for spans in per_traj_turn_spans]
    if config.use_turn_level and valid_indices:
        corrections = turn_corrections(
            [per_traj_call_statuses[i] for i in valid_indices],
            config.turn_discount,
            config.fail_penalty,
            config.advantage_eps,
            turn_stats,
        )
        for index, values in zip(valid_indices, corrections):
            turn_values[index] = values
    return [
        token_advantages(
            sequence_advantages[i], turn_values[i], per_traj_turn_spans[i], lengths[i], config.turn_weight
        )
        if batch.valid[i]
        else np.zeros(lengths[i], dtype=np.float32)
        for i in range(len(batch.rewards))
    ]
