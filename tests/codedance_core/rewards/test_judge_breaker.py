"""A dead judge costs a bounded wait per run: the breaker, the once-per-judge model lookup, and
rules-only scoring without an endpoint, against real servers on loopback that hang or fail."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from codedance_core.agent.trajectory import RolloutItem, Trajectory, TurnRecord
from codedance_core.config.rewards import JudgeConfig, RewardConfig
from codedance_core.rewards.judge import JudgeRequest, LLMJudge, judge_if_configured
from codedance_core.rewards.judge_breaker import JudgeBreaker
from codedance_core.rewards.score import TrajectoryInput, score_trajectories
from codedance_core.train.grpo_step import score_batch

FREE_FORM = "<think>look</think><answer>a picture of a cat</answer>"


@dataclass
class DeadJudge:
    """A server that answers every request with `mode`: 'hang' (never replies) or 'fail' (503)."""

    base_url: str
    calls: Counter = field(default_factory=Counter)


@pytest.fixture(params=["hang", "fail"])
def dead_judge(request: pytest.FixtureRequest) -> Iterator[DeadJudge]:
    yield from _serve_dead_judge(request.param)


@pytest.fixture
def hanging_judge() -> Iterator[DeadJudge]:
    yield from _serve_dead_judge("hang")


def _serve_dead_judge(mode: str) -> Iterator[DeadJudge]:
    release = threading.Event()  # set at teardown, so that hanging handler threads end
    lock = threading.Lock()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = DeadJudge(base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def _reply(self) -> None:
            with lock:
                state.calls[self.path] += 1
            if mode == "hang":
                release.wait(30)
                return
            body = b"upstream unavailable"
            self.send_response(503)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._reply()

        def do_POST(self) -> None:
            self.rfile.read(int(self.headers["Content-Length"]))
            self._reply()

    httpd.RequestHandlerClass = Handler
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield state
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()


def dead_judge_config(base_url: str, tmp_path: Path, **overrides: object) -> JudgeConfig:
    settings = {
        "base_urls": [base_url],
        "model": "judge-model",
        "cache_path": str(tmp_path / "judge.sqlite"),
        "max_retries": 5,
        "backoff_initial_s": 0.01,
        "backoff_max_s": 0.05,
        "request_timeout_s": 1.0,
        "budget_s": 2.0,
    } | overrides
    return JudgeConfig(**settings)


# -- the breaker on its own ---------------------------------------------------------------------
class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_the_breaker_opens_when_the_budget_is_spent_and_a_reply_closes_it() -> None:
    breaker = JudgeBreaker(budget_s=10.0, probe_after_s=60.0, clock=(clock := FakeClock()))
    first = breaker.admit()
    assert first is not None and first.wait_s == 10.0
    breaker.failed(first, 4.0)
    assert breaker.admit().wait_s == 6.0  # no attempt may wait longer than what is left
    breaker.failed(breaker.admit(), 6.0)
    assert breaker.is_open and breaker.admit() is None
    assert "10 s" not in breaker.reason() and "judge.budget_s = 10" in breaker.reason()

    clock.now = 61.0  # one probe after probe_after_s, and only one
    probe = breaker.admit()
    assert probe is not None and probe.probe and breaker.admit() is None
    breaker.failed(probe, 1.0)  # still dead: open again for another probe_after_s
    assert breaker.admit() is None
    clock.now = 122.0
    breaker.answered(breaker.admit())  # back: the account starts again
    assert not breaker.is_open and breaker.spent_s == 0.0 and breaker.admit().wait_s == 10.0


def test_a_reply_resets_the_account_so_an_occasional_failure_never_adds_up() -> None:
    breaker = JudgeBreaker(budget_s=10.0, probe_after_s=0.0)
    for _ in range(20):
        breaker.failed(breaker.admit(), 9.0)
        breaker.answered(breaker.admit())
    assert not breaker.is_open


def test_probe_after_zero_means_never_again_in_this_run() -> None:
    breaker = JudgeBreaker(budget_s=1.0, probe_after_s=0.0, clock=(clock := FakeClock()))
    breaker.failed(breaker.admit(), 1.0)
    clock.now = 1e6
    assert breaker.admit() is None


# -- a dead judge costs the budget, not the retries of every answer -------------------------------
@pytest.mark.parametrize("concurrency", [1, 32])
def test_a_dead_judge_costs_the_budget_not_every_answers_retries(
    dead_judge: DeadJudge, tmp_path: Path, concurrency: int
) -> None:
    # Backoff as a real run has it (the waiting between retries is what a fast 503 costs), smaller.
    config = dead_judge_config(
        dead_judge.base_url, tmp_path, concurrency=concurrency, backoff_initial_s=0.5, backoff_max_s=0.5
    )
    judge = LLMJudge(config)
    started = time.monotonic()
    verdicts = judge.judge_many_sync([JudgeRequest("q", "g", f"answer {i}") for i in range(10)])
    elapsed = time.monotonic() - started
    # Unbounded: 10 answers x (6 attempts x 1 s timeout + 5 x 0.5 s backoff) = 85 s when hanging.
    assert elapsed < 4.0
    assert [v.status for v in verdicts] == ["judge_error"] * 10
    assert any("judge not asked" in v.reason for v in verdicts)
    if concurrency == 1 and dead_judge.calls:  # the later answers were never sent
        assert dead_judge.calls["/v1/chat/completions"] < 10


def test_once_open_the_breaker_sends_nothing_for_the_rest_of_the_run(hanging_judge, tmp_path: Path) -> None:
    judge = LLMJudge(dead_judge_config(hanging_judge.base_url, tmp_path, budget_s=1.0))
    judge.judge_many_sync([JudgeRequest("q", "g", "first")])
    sent = hanging_judge.calls["/v1/chat/completions"]
    started = time.monotonic()
    [later] = judge.judge_many_sync([JudgeRequest("q", "g", "later")])  # another loop, same run
    assert time.monotonic() - started < 2.0  # no attempt: one would wait its 1 s timeout and more
    assert later.status == "judge_error" and "judge not asked" in later.reason
    assert hanging_judge.calls["/v1/chat/completions"] == sent


def test_cached_verdicts_are_still_served_when_the_judge_is_dead(
    judge_server, hanging_judge, tmp_path: Path
) -> None:
    request = JudgeRequest("What is it?", "a dog", "right: a puppy")
    LLMJudge(dead_judge_config(judge_server.base_url, tmp_path, request_timeout_s=30.0)).judge_many_sync([request])
    [cached] = LLMJudge(dead_judge_config(hanging_judge.base_url, tmp_path)).judge_many_sync([request])
    assert cached.ok and cached.cached and cached.score == 1.0


# -- the model name is looked up once per judge -------------------------------------------------
def test_the_model_lookup_happens_once_for_concurrent_callers(judge_server, tmp_path: Path) -> None:
    # A live judge: limits loose enough that a loaded machine's slow replies are not failures.
    config = dead_judge_config(judge_server.base_url, tmp_path, model="", request_timeout_s=30.0, budget_s=120.0)
    judge = LLMJudge(config)

    async def like_an_eval_run() -> list:  # each finished item scores its own batch, concurrently
        batches = [judge.judge_many([JudgeRequest("q", "g", f"right {i}")]) for i in range(8)]
        return await asyncio.gather(*batches)

    verdicts = asyncio.run(like_an_eval_run()) + [judge.judge_many_sync([JudgeRequest("q", "g", "again")])]
    assert all(v.ok for batch in verdicts for v in batch)
    assert judge_server.calls["/v1/models"] == 1
    assert {r["model"] for r in judge_server.requests} == {"served-judge"}


def test_a_failed_model_lookup_is_made_once_and_reported_once(
    dead_judge: DeadJudge, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    config = dead_judge_config(dead_judge.base_url, tmp_path, model="", max_retries=2, budget_s=30.0)
    judge = LLMJudge(config)

    async def four_items() -> list:
        return await asyncio.gather(*(judge.judge_many([JudgeRequest("q", "g", f"a{i}")]) for i in range(4)))

    with caplog.at_level(logging.WARNING, logger="codedance_core.rewards"):
        started = time.monotonic()
        batches = asyncio.run(four_items())
        batches.append(judge.judge_many_sync([JudgeRequest("q", "g", "later")]))
        elapsed = time.monotonic() - started
    verdicts = [v for batch in batches for v in batch]
    assert all(v.status == "judge_error" and "could not list models" in v.reason for v in verdicts)
    assert dead_judge.calls["/v1/models"] <= 3  # one lookup: the first attempt and two retries
    assert dead_judge.calls["/v1/chat/completions"] == 0
    assert elapsed < 5.0  # hanging: 3 attempts of 1 s, once, not once per item
    assert sum("could not list models" in r.getMessage() for r in caplog.records) == 1


# -- no endpoint: rules only, one warning ---------------------------------------------------------
def test_without_an_endpoint_scoring_is_rules_only_with_one_warning(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.delenv("LLM_AS_A_JUDGE_BASE", raising=False)
    config = RewardConfig()
    items = [TrajectoryInput(FREE_FORM, "the cat", "vqa")] * 5 + [
        TrajectoryInput("<think>n</think><answer>3</answer>", "3", "suite_count")
    ]
    with caplog.at_level(logging.WARNING, logger="codedance_core.rewards"):
        judge = judge_if_configured(config.judge)
        first = asyncio.run(score_trajectories(items, config, judge))
        second = asyncio.run(score_trajectories(items, config, judge))
    assert judge is None
    assert [s.status for s in first] == ["judge_error"] * 5 + ["scored"] and first == second
    assert first[-1].accuracy == 1.0
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "LLM_AS_A_JUDGE_BASE" in warnings[0] and "judge_error" in warnings[0]


def _trajectory(index: int, text: str, gold: str) -> Trajectory:
    trajectory = Trajectory(
        item=RolloutItem(f"item-{index // 2}", [], [], gold=gold, data_source="vqa"), sample_index=index
    )
    trajectory.extend([1, 2, 3], trained=False)
    start, end = trajectory.extend([4, 5, 6, 7], trained=True)
    trajectory.turns.append(TurnRecord(index=0, text=text, token_start=start, token_end=end))
    return trajectory


def test_the_grpo_reward_path_without_a_judge_drops_free_form_answers(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # What `rl_worker` does on the tiny profile with no LLM_AS_A_JUDGE_BASE: no judge, no crash.
    monkeypatch.delenv("LLM_AS_A_JUDGE_BASE", raising=False)
    config = RewardConfig()
    trajectories = [
        _trajectory(0, FREE_FORM, "the cat"),
        _trajectory(1, FREE_FORM, "the cat"),
        _trajectory(2, "<think>n</think><answer>3</answer>", "3"),
        _trajectory(3, "<think>n</think><answer>4</answer>", "3"),
    ]
    scored = asyncio.run(score_batch(trajectories, 2, config, judge_if_configured(config.judge)))
    assert [s.status for s in scored.scores] == ["judge_error", "judge_error", "scored", "scored"]
    assert scored.keep.tolist() == [False, False, True, True]  # ungraded ones stay out of the loss
    assert not np.any(scored.advantages[0]) and np.any(scored.advantages[2])
