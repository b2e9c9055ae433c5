"""The multi-turn tool loop: generate, run the code in the sandbox, show the result, repeat.

One loop serves synthesis checks, RL and evaluation. Its shape follows verl's agent loop: each
trajectory is a small state machine (generating -> running its code -> generating ... ->
terminated), and all of them share one generation engine through a batcher:

- every live trajectory that wants tokens submits a request; the batcher sends them to the
  engine together (one batched forward pass), so the model is never called one conversation
  at a time;
- generation stops at `</code>`, so code runs the moment it is written, in the sandbox pool,
  while the engine is busy with the other trajectories' next turns: sandbox time is hidden
  behind generation instead of added to it;
- a trajectory that ends (answer, turn limit, error) leaves the batch at once.

Nothing a model writes or an endpoint returns can crash the batch: a malformed code block, a
missing answer, an overlong context, an engine error or a sandbox fault ends *that*
trajectory with a recorded `finish_reason`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from PIL import Image

from codedance_core.agent.parsing import parse_turn
from codedance_core.agent.trajectory import RolloutItem, Trajectory, TurnRecord
from codedance_core.chat_format.messages import to_model_messages
from codedance_core.chat_format.observation import Observation, format_observation, format_parse_error
from codedance_core.chat_format.prompts import PromptSet, get_prompts
from codedance_core.config.agent import RolloutConfig
from codedance_core.engines.base import Completion, GenerationEngine, GenerationRequest, SamplingParams
from codedance_core.sandbox import SandboxPool, Session

if TYPE_CHECKING:  # a bundle means torch is loaded already; HTTP-only rollouts never import it
    from codedance_core.models.bundle import ModelBundle

CODE_STOP = "</code>"


@dataclass
class RolloutStats:
    """Where a batch's time went: the engine, the sandbox, and the wall clock."""

    wall_s: float = 0.0
    engine_s: float = 0.0
    sandbox_s: float = 0.0
    engine_calls: int = 0

    @property
    def sandbox_hidden_fraction(self) -> float:
        """Share of sandbox time that overlapped generation instead of adding to the wall time."""
        if self.sandbox_s <= 0:
            return 1.0
        exposed = max(0.0, self.wall_s - self.engine_s)
        return max(0.0, min(1.0, 1.0 - exposed / self.sandbox_s))


class GenerationBatcher:
    """Collects the live trajectories' requests and sends them to the engine as one batch."""

    def __init__(self, engine: GenerationEngine, params: SamplingParams, wait_s: float, stats: RolloutStats):
        self.engine = engine
        self.params = params
        self.wait_s = wait_s
        self.stats = stats
        self.live = 0
        self._pending: list[tuple[GenerationRequest, asyncio.Future[Completion]]] = []
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    def start(self, live: int) -> None:
        self.live = live
        self._task = asyncio.create_task(self._loop())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def submit(self, request: GenerationRequest) -> Completion:
        future: asyncio.Future[Completion] = asyncio.get_running_loop().create_future()
        self._pending.append((request, future))
        self._wake.set()
        return await future

    def leave(self) -> None:
        """A trajectory ended: the next batch no longer waits for it."""
        self.live -= 1
        self._wake.set()

    async def _loop(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._wake.wait()
            self._wake.clear()
            if not self._pending:
                continue
            # Trajectories still running code may join this batch if they finish within wait_s.
            deadline = loop.time() + self.wait_s
            while len(self._pending) < self.live and loop.time() < deadline:
                await asyncio.sleep(0.001)
            batch, self._pending = self._pending, []
            started = time.perf_counter()
            try:
                completions = await self.engine.agenerate([request for request, _ in batch], self.params)
            except Exception as exc:  # noqa: BLE001 -- an engine fault fails this batch's turns, not the loop
                completions = [Completion.failed(f"engine error: {type(exc).__name__}: {exc}") for _ in batch]
            self.stats.engine_s += time.perf_counter() - started
            self.stats.engine_calls += 1
            for (_, future), completion in zip(batch, completions, strict=True):
                if not future.done():
                    future.set_result(completion)
            if self._pending:
                self._wake.set()


class Rollout:
    """Runs batches of multi-turn trajectories with one engine and one sandbox pool.

    With a `bundle` (local engines: hf, vllm) trajectories are token-in/token-out: they keep
    token ids, a loss mask and log-probs. Without one (HTTP engines) they keep text and messages.
    """

    def __init__(
        self,
        engine: GenerationEngine,
        pool: SandboxPool,
        config: RolloutConfig,
        bundle: ModelBundle | None = None,
        prompts: PromptSet | None = None,
    ):
        self.engine = engine
        self.pool = pool
        self.config = config
        self.bundle = bundle
        self.prompts = prompts or get_prompts(config.prompt_version)
        self.stats = RolloutStats()
        if bundle is not None:
            from codedance_core.models.tokenizer import IM_END  # transformers: only with a local model

            tokenizer = bundle.tokenizer
            self._im_end = tokenizer.convert_tokens_to_ids(IM_END)
            self._newline = tokenizer.encode("\n", add_special_tokens=False)

    def sampling_params(self) -> SamplingParams:
        return SamplingParams(
            max_new_tokens=self.config.max_new_tokens,
            temperature=self.config.temperature,
            top_p=self.config.top_p,
            seed=self.config.seed,
            stop=(CODE_STOP,),
        )

    async def run(self, items: Sequence[RolloutItem]) -> list[Trajectory]:
        """Roll out `samples_per_prompt` trajectories for every item; results in item, sample order."""
        trajectories = [
            Trajectory(item=item, sample_index=s, messages=[dict(m) for m in item.messages], images=list(item.images))
            for item in items
            for s in range(self.config.samples_per_prompt)
        ]
        self.stats = RolloutStats()
        batcher = GenerationBatcher(self.engine, self.sampling_params(), self.config.batch_wait_ms / 1000, self.stats)
        started = time.perf_counter()
        batcher.start(live=len(trajectories))
        try:
            await asyncio.gather(*(self._drive(trajectory, batcher) for trajectory in trajectories))
        finally:
            await batcher.stop()
        self.stats.wall_s = time.perf_counter() - started
        return trajectories

    # -- one trajectory ---------------------------------------------------------------------------
    async def _drive(self, trajectory: Trajectory, batcher: GenerationBatcher) -> None:
        # With early sessions, the sandbox process (a fork of a pre-imported template, a few ms of
        # CPU) starts while the first turn generates, so it is ready when the code is. Without,
        # it starts at the first code block: fewer live processes when generation is remote.
        opening = asyncio.create_task(self._open_session(trajectory))
        try:
            if self.bundle is not None:
                prompt = self.bundle.encode_messages(to_model_messages(trajectory.messages), trajectory.images)
                trajectory.extend(prompt.token_ids, trained=False)
                trajectory.prompt_length = len(prompt.token_ids)
            for turn_index in range(self.config.max_turns):
                if self._context_full(trajectory):
                    trajectory.finish("context_overflow", f"{len(trajectory.token_ids)} tokens before turn {turn_index}")
                    return
                completion, record = await self._generate_turn(trajectory, turn_index, batcher)
                if completion.finish_reason == "error":
                    trajectory.finish("engine_error", completion.error)
                    return
                parsed = parse_turn(completion.text)
                record.answer = parsed.answer
                if parsed.answer is not None:
                    trajectory.answer = parsed.answer
                    trajectory.finish("answered")
                    return
                if turn_index == self.config.max_turns - 1:
                    trajectory.finish("turn_limit")
                    return
                if not parsed.wants_tool:
                    trajectory.finish("length" if completion.finish_reason == "length" else "no_answer")
                    return
                if parsed.parse_error is not None:
                    record.parse_error = parsed.parse_error
                    record.status = "parse_error"
                    observation = format_parse_error(parsed.parse_error)
                else:
                    record.code, record.code_form = parsed.code, parsed.code_form
                    observation = await self._run_code(await opening, parsed.code or "", record)
                self._append_observation(trajectory, observation, answer_now=turn_index + 1 == self.config.max_turns - 1)
        except Exception as exc:  # noqa: BLE001 -- never let one trajectory take the batch down; say what happened
            trajectory.finish("internal_error", f"{type(exc).__name__}: {exc}")
        finally:
            batcher.leave()
            await _close_session(opening)

    async def _open_session(self, trajectory: Trajectory) -> Session:
        session = await self.pool.open_session(_sandbox_image(trajectory.item))
        if self.config.early_sessions:
            await session.start()
        return session

    def _context_full(self, trajectory: Trajectory) -> bool:
        if self.bundle is None:
            return False
        return len(trajectory.token_ids) + self.config.max_new_tokens > self.config.max_context_tokens

    async def _generate_turn(
        self, trajectory: Trajectory, turn_index: int, batcher: GenerationBatcher
    ) -> tuple[Completion, TurnRecord]:
        request = GenerationRequest(
            token_ids=list(trajectory.token_ids) if self.bundle is not None else None,
            images=list(trajectory.images),
            messages=to_model_messages(trajectory.messages),
        )
        started = time.perf_counter()
        completion = await batcher.submit(request)
        record = TurnRecord(index=turn_index, text=completion.text, gen_wall_s=time.perf_counter() - started)
        if completion.finish_reason == "error":
            return completion, record
        trajectory.messages.append({"role": "assistant", "content": completion.text})
        if self.bundle is not None:
            record.token_start, record.token_end = trajectory.extend(
                completion.token_ids, trained=True, logprobs=completion.logprobs
            )
            self._close_turn(trajectory, completion)
        trajectory.turns.append(record)
        return completion, record

    def _close_turn(self, trajectory: Trajectory, completion: Completion) -> None:
        """End the assistant turn as the chat template would (`<|im_end|>\\n`), untrained where the
        model did not write it (a turn cut at `</code>` or at the length limit)."""
        ended = bool(completion.token_ids) and completion.token_ids[-1] == self._im_end
        closer = ([] if ended else [self._im_end]) + self._newline
        trajectory.extend(closer, trained=False)

    async def _run_code(self, session: Session, code: str, record: TurnRecord) -> Observation:
        result = await session.execute(code)
        self.stats.sandbox_s += result.wall_time_s
        record.status = result.status
        record.exec_wall_s = result.wall_time_s
        record.images_out = len(result.images)
        observation = format_observation(
            result, max_chars=self.config.observation_max_chars, timeout_s=self.pool.config.timeout_s
        )
        return Observation(text=observation.text, images=result.pil_images())

    def _append_observation(self, trajectory: Trajectory, observation: Observation, answer_now: bool) -> None:
        new_messages = [{"role": "tool", "content": observation.text}]
        if answer_now:
            new_messages.append({"role": "user", "content": self.prompts.answer_now})
        trajectory.messages.extend(new_messages)
        images = [image.convert("RGB") for image in observation.images]
        trajectory.images.extend(images)
        if self.bundle is not None:
            encoded = self.bundle.encode_messages(to_model_messages(new_messages), images, add_generation_prompt=True)
            trajectory.extend(encoded.token_ids, trained=False)


async def _close_session(opening: asyncio.Task[Session]) -> None:
    """Close a session whether or not it ran code (one that never did has no process to end)."""
    try:
        session = await opening
    except Exception:  # noqa: BLE001 -- a session that failed to open has nothing to close
        return
    await session.close()


def _sandbox_image(item: RolloutItem) -> Image.Image:
    """The image the code sees: the item's first image (already resized like the model's), or a
    blank canvas for text-only items so `input_image` always exists."""
    if item.images:
        return item.images[0]
    return Image.new("RGB", (224, 224), "white")
