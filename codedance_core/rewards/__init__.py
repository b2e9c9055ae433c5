"""Rewards: accuracy by rule or LLM judge, the format penalty, and BAT (docs/method.md §4).

`score.py` combines the parts; each other module is one part and usable on its own.
"""

from codedance_core.rewards.accuracy import AccuracyResult, AnswerKind, Rule, score_answer, score_response
from codedance_core.rewards.answers import extract_answer
from codedance_core.rewards.bat import (
    difficulty_weight,
    group_advantages,
    token_advantages,
    tool_reward,
    turn_corrections,
)
from codedance_core.rewards.format import check_format, format_penalty
from codedance_core.rewards.score import (
    BatchRewards,
    TrajectoryInput,
    TrajectoryScore,
    batch_rewards,
    batch_token_advantages,
    score_trajectories,
    score_trajectory,
)

__all__ = [
    "AccuracyResult",
    "AnswerKind",
    "BatchRewards",
    "Rule",
    "TrajectoryInput",
    "TrajectoryScore",
    "batch_rewards",
    "batch_token_advantages",
    "check_format",
    "difficulty_weight",
    "extract_answer",
    "format_penalty",
    "group_advantages",
    "score_answer",
    "score_response",
    "score_trajectories",
    "score_trajectory",
    "token_advantages",
    "tool_reward",
    "turn_corrections",
]
