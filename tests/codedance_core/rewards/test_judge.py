"""The LLM judge against a real local OpenAI-compatible server (see conftest.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from codedance_core.config.rewards import JudgeConfig
from codedance_core.rewards.judge import (
    JudgeConfigError,
    JudgeRequest,
    LLMJudge,
    parse_judgement,
    resolve_base_urls,
)
from codedance_core.rewards.judge_cache import JudgeCache
from codedance_core.rewards.judge_prompt import JUDGE_PROMPT_VERSION


def make_judge(base_urls: list[str], tmp_path: Path, **overrides: object) -> LLMJudge:
    settings = {
        "model": "judge-model",
        "cache_path": str(tmp_path / "judge.sqlite"),
        "max_retries": 3,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "request_timeout_s": 5.0,
    } | overrides
    return LLMJudge(JudgeConfig(base_urls=base_urls, **settings))


@pytest.mark.parametrize(
    ("reply", "score"),
    [
        ("Judgement: 1", 1.0),
        ("judgment: 0", 0.0),
        ("Reasoning...\n**Judgement:** 1", 1.0),
        ("Judgement: **1**", 1.0),
        ("Judgement: 0\nJudgement: 1", 1.0),
        ("yes", None),
        ("Judgement: 2", None),
    ],
)
def test_parse_judgement(reply: str, score: float | None) -> None:
    assert parse_judgement(reply) == score


def test_verdicts_are_cached_so_a_rerun_costs_nothing(judge_server, tmp_path: Path) -> None:
    requests = [
        JudgeRequest("What is it?", "a dog", "right: a puppy"),
        JudgeRequest("What is it?", "a dog", "a cat"),
    ]
    first = make_judge([judge_server.base_url], tmp_path).judge_many_sync(requests)
    assert [(v.status, v.score, v.cached) for v in first] == [("ok", 1.0, False), ("ok", 0.0, False)]
    assert judge_server.completions == 2

    again = make_judge([judge_server.base_url], tmp_path).judge_many_sync(
        requests
    )  # a fresh process, same file
    assert [(v.score, v.cached) for v in again] == [(1.0, True), (0.0, True)]
    assert judge_server.completions == 2


def test_cache_key_changes_with_the_model(judge_server, tmp_path: Path) -> None:
    request = [JudgeRequest("q", "g", "right")]
    make_judge([judge_server.base_url], tmp_path).judge_many_sync(request)
    make_judge([judge_server.base_url], tmp_path, model="another-judge").judge_many_sync(request)
    assert judge_server.completions == 2


def test_request_is_a_temperature_zero_few_shot_chat(judge_server, tmp_path: Path) -> None:
    make_judge([judge_server.base_url], tmp_path).judge_many_sync([JudgeRequest("q", "gold", "right")])
    sent = judge_server.requests[0]
    assert sent["model"] == "judge-model" and sent["temperature"] == 0.0
    assert len(sent["messages"]) == 1 + 2 * 7 + 1
    assert "Reference answer: gold" in sent["messages"][-1]["content"]


def test_transient_failures_are_retried(judge_server, tmp_path: Path) -> None:
    verdicts = make_judge([judge_server.base_url], tmp_path).judge_many_sync(
        [JudgeRequest("q", "g", "flaky but right"), JudgeRequest("q", "g", "ratelimited, wrong")]
    )
    assert [(v.status, v.score) for v in verdicts] == [("ok", 1.0), ("ok", 0.0)]
    assert judge_server.completions == 4


@pytest.mark.parametrize(
    ("answer", "calls", "reason"),
    [("garbage", 4, "not JSON"), ("rambling", 1, "no verdict"), ("forbidden", 1, "HTTP 403")],
)
def test_failures_are_judge_errors_never_zero(
    judge_server, tmp_path: Path, answer: str, calls: int, reason: str
) -> None:
    judge = make_judge([judge_server.base_url], tmp_path)
    [verdict] = judge.judge_many_sync([JudgeRequest("q", "g", answer)])
    assert (verdict.status, verdict.score) == ("judge_error", None)
    assert reason in verdict.reason
    assert judge_server.completions == calls
    assert len(judge.cache) == 0  # an error is not cached: a rerun asks again


def test_connection_errors_move_to_the_next_endpoint(judge_server, tmp_path: Path) -> None:
    dead = "http://127.0.0.1:9/v1"  # the discard port: nothing listens there
    verdicts = make_judge([dead, judge_server.base_url], tmp_path).judge_many_sync(
        [JudgeRequest("q", "g", f"right {i}") for i in range(4)]
    )
    assert all(v.ok and v.score == 1.0 for v in verdicts)
    assert judge_server.completions == 4


def test_all_endpoints_down_is_a_judge_error(tmp_path: Path) -> None:
    [verdict] = make_judge(["http://127.0.0.1:9/v1"], tmp_path, max_retries=1).judge_many_sync(
        [JudgeRequest("q", "g", "right")]
    )
    assert verdict.status == "judge_error" and "gave up after 2 attempts" in verdict.reason


def test_endpoints_are_load_balanced(judge_server, second_judge_server, tmp_path: Path) -> None:
    judge = make_judge([judge_server.base_url, second_judge_server.base_url], tmp_path, concurrency=4)
    judge.judge_many_sync([JudgeRequest("q", "g", f"answer {i}") for i in range(10)])
    assert judge_server.completions == 5 and second_judge_server.completions == 5


def test_base_url_from_the_environment_and_model_from_the_server(
    judge_server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM_AS_A_JUDGE_BASE", f" {judge_server.base_url}/ ,")
    config = JudgeConfig(model="", cache_path=str(tmp_path / "c.sqlite"))
    assert resolve_base_urls(config) == [judge_server.base_url]
    judge = LLMJudge(config)
    judge.judge_many_sync([JudgeRequest("q", "g", "right"), JudgeRequest("q", "g", "wrong")])
    assert judge_server.calls["/v1/models"] == 1
    assert {r["model"] for r in judge_server.requests} == {"served-judge"}


def test_no_endpoint_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_AS_A_JUDGE_BASE", raising=False)
    with pytest.raises(JudgeConfigError, match="LLM_AS_A_JUDGE_BASE"):
        LLMJudge(JudgeConfig(cache_path=""))


def test_concurrency_is_bounded(judge_server, tmp_path: Path) -> None:
    judge = make_judge([judge_server.base_url], tmp_path, concurrency=3)
    in_flight = peak = 0
    original = judge.judge

    async def counting(client, request):
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        try:
            return await original(client, request)
        finally:
            in_flight -= 1

    judge.judge = counting  # type: ignore[method-assign]
    verdicts = judge.judge_many_sync([JudgeRequest("q", "g", f"right {i}") for i in range(12)])
    assert len(verdicts) == 12 and peak == 3


def test_cache_without_a_file_is_off(judge_server) -> None:
    judge = LLMJudge(JudgeConfig(base_urls=[judge_server.base_url], model="m", cache_path=""))
    judge.judge_many_sync([JudgeRequest("q", "g", "right")])
    judge.judge_many_sync([JudgeRequest("q", "g", "right")])
    assert judge.cache is None and judge_server.completions == 2


def test_prompt_version_is_in_the_cached_row(judge_server, tmp_path: Path) -> None:
    make_judge([judge_server.base_url], tmp_path).judge_many_sync([JudgeRequest("q", "g", "right")])
    cache = JudgeCache(tmp_path / "judge.sqlite")
    row = cache._connection.execute("SELECT model, prompt_version FROM verdicts").fetchone()
    assert row == ("judge-model", JUDGE_PROMPT_VERSION)
