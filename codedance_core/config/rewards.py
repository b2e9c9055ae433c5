"""Configuration of the reward: accuracy rules, the LLM judge, format, and BAT.

Every number of docs/method.md §4 lives here rather than in the code, because experiments
compare arms that differ only in these values (BAT on or off, the turn-level term on or
off, beta 0.2 or 0.1). The defaults are the paper's.
"""

from __future__ import annotations

from pydantic import Field

from codedance_core.config.base import StrictModel

# Scorer names understood by `codedance_core.rewards.accuracy.score_answer` (see `AnswerKind`).
DEFAULT_SCORER_BY_SOURCE: dict[str, str] = {
    "chart": "relaxed_numeric",
    "chartqa": "relaxed_numeric",
    "suite_chart": "numeric",  # the suite asks for exact integers: no tolerance
    "suite_count": "count",
    "countbench": "count",
    "pixmo_count": "count",
}


class JudgeConfig(StrictModel):
    """Where the LLM judge is served and how hard we try before recording a `judge_error`."""

    base_urls: list[str] = Field(
        default_factory=list,
        description="OpenAI-compatible base URLs (e.g. http://host:8000/v1), load-balanced round-robin. "
        "Empty: read the comma-separated list from the environment variable named by base_url_env.",
    )
    base_url_env: str = Field(
        default="LLM_AS_A_JUDGE_BASE",
        description="Environment variable holding comma-separated judge base URLs (the original's name).",
    )
    model: str = Field(
        default="",
        description="Judge model name sent in each request. Empty: the first id listed by the "
        "endpoint's /models route (what a single-model vLLM or sglang server reports).",
    )
    api_key_env: str = Field(
        default="LLM_AS_A_JUDGE_API_KEY",
        description="Environment variable holding the judge's API key; 'EMPTY' is sent when unset.",
    )
    cache_path: str = Field(
        default=".codedance/judge_cache.sqlite",
        description="SQLite file caching verdicts by (model, prompt version, question, gold, prediction). "
        "Empty string disables the cache.",
    )
    max_retries: int = Field(
        default=5,
        ge=0,
        description="Retries after the first attempt on 429, 5xx, timeouts and connection errors.",
    )
    backoff_initial_s: float = Field(
        default=1.0, gt=0, description="First retry delay in seconds; doubles on each further retry."
    )
    backoff_max_s: float = Field(default=30.0, gt=0, description="Upper bound of one retry delay in seconds.")
    request_timeout_s: float = Field(
        default=60.0, gt=0, description="Timeout of one HTTP request in seconds."
    )
    budget_s: float = Field(
        default=120.0,
        gt=0,
        description="Seconds a run may spend waiting on a failing judge (timeouts, connection errors, "
        "5xx, 429 and the backoff between them, summed over concurrent requests) before it stops "
        "asking: later answers are judge_error at once. A good reply resets it; no single request "
        "waits longer than what is left of it.",
    )
    probe_after_s: float = Field(
        default=600.0,
        ge=0,
        description="Once the budget is spent, seconds before one request probes the judge again (a "
        "long training run recovers from an outage); 0: never again in this run.",
    )
    concurrency: int = Field(default=32, ge=1, description="Most judge requests in flight at once.")
    max_tokens: int = Field(default=256, ge=8, description="Completion token budget of one verdict.")


def judge_limits(
    base: JudgeConfig, *, timeout_s: float | None, max_retries: int | None, budget_s: float | None
) -> JudgeConfig:
    """`base` with the limits a command line sets (None: keep base's), validated like the config."""
    given = {"request_timeout_s": timeout_s, "max_retries": max_retries, "budget_s": budget_s}
    return JudgeConfig.model_validate(
        base.model_dump() | {name: value for name, value in given.items() if value is not None}
    )


class RewardConfig(StrictModel):
    """The reward of one trajectory and the BAT advantages of a batch (docs/method.md §4)."""

    accuracy_weight: float = Field(default=1.0, description="Weight of accuracy in the base score.")
    math_accuracy_weight: float = Field(default=1.2, description="Weight of accuracy on math sources.")
    format_weight: float = Field(default=0.2, description="Weight of the format penalty (-1 or 0).")
    math_format_weight: float = Field(
        default=0.4, description="Weight of the format penalty on math sources."
    )
    tool_reward_correct: float = Field(
        default=1.5, description="r_tool scale when the answer is correct: r_tool = scale * success ratio."
    )
    tool_reward_incorrect: float = Field(default=0.5, description="r_tool scale when the answer is wrong.")
    math_tool_reward_correct: float = Field(default=2.0, description="r_tool scale, correct, math sources.")
    math_tool_reward_incorrect: float = Field(default=1.0, description="r_tool scale, wrong, math sources.")
    gamma: float = Field(default=4.0, description="Steepness of the difficulty weight d(mu).")
    beta: float = Field(default=0.2, description="Offset of d(mu); 0.1 was also studied in the paper.")
    use_bat: bool = Field(
        default=True, description="Add the sequence-level term d(mu) * r_tool to each reward."
    )
    use_turn_level: bool = Field(
        default=True, description="Add the turn-level correction to each assistant turn's token advantages."
    )
    turn_discount: float = Field(
        default=0.2, description="Backward discount: c_i = s_i + discount * c_(i+1)."
    )
    fail_penalty: float = Field(default=-0.5, description="s_i of a tool call whose status is not 'ok'.")
    turn_weight: float = Field(
        default=0.2, description="Weight of a turn's correction in its tokens' advantage."
    )
    advantage_eps: float = Field(default=1e-6, gt=0, description="Added to the group std in GRPO advantages.")
    relaxed_tolerance: float = Field(
        default=0.05, ge=0, description="Relative tolerance of the relaxed numeric rule (ChartQA: 5%)."
    )
    max_answer_chars: int = Field(
        default=1000,
        ge=1,
        description="On sources other than maths, answers this long or longer score accuracy 0 and "
        "format -1 (the original's cap); maths sources have none.",
    )
    math_sources: list[str] = Field(
        default_factory=lambda: ["suite_math", "thinklite_eureka", "xince"],
        description="data_source values that get the math weights, the math scorer and no answer-length "
        "cap (besides any name containing a math_source_substrings entry). The original's are "
        "thinklite_eureka and xince; suite_math is the procedural suite's.",
    )
    math_source_substrings: list[str] = Field(
        default_factory=lambda: ["math"],
        description="A data_source containing one of these (case-insensitive) is a math source.",
    )
    scorer_by_source: dict[str, str] = Field(
        default_factory=lambda: dict(DEFAULT_SCORER_BY_SOURCE),
        description="Accuracy scorer per data_source (auto, choice, count, numeric, relaxed_numeric, "
        "math, word, free_form); sources not listed use auto, math sources use math.",
    )
    judge: JudgeConfig = Field(
        default_factory=JudgeConfig, description="The LLM judge for free-form answers."
    )
