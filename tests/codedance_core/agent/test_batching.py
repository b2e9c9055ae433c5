"""The generation batcher against the real tiny-model engine: when a batch leaves, what it holds,
and how turns with different token limits are sent."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from codedance_core.agent.batching import GenerationBatcher, RolloutStats
from codedance_core.engines.base import Completion, GenerationEngine, GenerationRequest, SamplingParams
from codedance_core.engines.hf import HFEngine

PARAMS = SamplingParams(max_new_tokens=8, temperature=0)


class RecordingEngine(GenerationEngine):
    """The real engine, with a record of every call: how many requests, and their token cap."""

    def __init__(self, inner: HFEngine) -> None:
        self.inner = inner
        self.max_batch_size = inner.max_batch_size
        self.calls: list[tuple[int, int]] = []

    def generate(self, requests: Sequence[GenerationRequest], params: SamplingParams) -> list[Completion]:
        self.calls.append((len(requests), params.max_new_tokens))
        return self.inner.generate(requests, params)


def request(text: str) -> GenerationRequest:
    return GenerationRequest(messages=[{"role": "user", "content": text}])


async def submit_later(batcher: GenerationBatcher, delay_s: float, text: str, limit: int | None = None) -> Completion:
    await asyncio.sleep(delay_s)
    try:
        return await batcher.submit(request(text), limit)
    finally:
        batcher.leave()


def run_batch(engine: GenerationEngine, submissions: list[tuple[float, str, int | None]], **options) -> list[Completion]:
    """Start a batcher for these submissions (delay, text, token limit); each leaves once answered."""

    async def go() -> list[Completion]:
        batcher = GenerationBatcher(engine, PARAMS, RolloutStats(), **options)
        batcher.start(live=len(submissions))
        try:
            return list(await asyncio.gather(*(submit_later(batcher, *s) for s in submissions)))
        finally:
            await batcher.stop()

    return asyncio.run(go())


def test_continuous_batches_send_what_is_ready_without_waiting_for_a_late_turn(tiny_bundle) -> None:
    engine = RecordingEngine(HFEngine(tiny_bundle))
    late = [(0.0, "a", None), (0.0, "b", None), (0.6, "c", None)]
    run_batch(engine, late, wait_s=0.02)
    assert engine.calls == [(2, 8), (1, 8)]


def test_lockstep_batches_wait_for_every_live_trajectory(tiny_bundle) -> None:
    engine = RecordingEngine(HFEngine(tiny_bundle))
    late = [(0.0, "a", None), (0.0, "b", None), (0.6, "c", None)]
    run_batch(engine, late, wait_s=0.02, lockstep=True)
    assert engine.calls == [(3, 8)]


def test_continuous_batches_hold_at_most_the_engines_batch_size(tiny_bundle) -> None:
    engine = RecordingEngine(HFEngine(tiny_bundle, max_batch_size=2))
    completions = run_batch(engine, [(0.0, text, None) for text in "abcde"], wait_s=0.02, max_batch_size=2)
    assert engine.calls == [(2, 8), (2, 8), (1, 8)]
    assert all(completion.finish_reason != "error" for completion in completions)


def test_turns_with_their_own_limit_go_out_as_one_call_per_limit_largest_first(tiny_bundle) -> None:
    engine = RecordingEngine(HFEngine(tiny_bundle))
    completions = run_batch(engine, [(0.0, "a", None), (0.0, "b", 3), (0.0, "c", None)], wait_s=0.02)
    assert engine.calls == [(2, 8), (1, 3)]
    assert [len(c.token_ids) <= limit for c, limit in zip(completions, (8, 3, 8), strict=True)] == [True] * 3


def test_an_engine_fault_fails_that_calls_turns_and_the_batcher_goes_on(tiny_bundle) -> None:
    class FailingOnce(RecordingEngine):
        def generate(self, requests, params):
            if not self.calls:
                self.calls.append((len(requests), params.max_new_tokens))
                raise RuntimeError("device lost")
            return super().generate(requests, params)

    engine = FailingOnce(HFEngine(tiny_bundle))
    first, second = run_batch(engine, [(0.0, "a", None), (0.5, "b", None)], wait_s=0.02)
    assert first.finish_reason == "error" and "device lost" in (first.error or "")
    assert second.finish_reason != "error"
