"""The multi-turn tool loop: generate, run the code in the sandbox, show the result, repeat.

One loop serves synthesis checks, RL and evaluation. Its shape follows verl's agent loop: each
trajectory is a small state machine (generating -> running its code -> generating ... ->
terminated), and all of them share one generation engine through a batcher (`batching`):

- every live trajectory that wants tokens submits a request; the batcher sends them to the
  engine together, and by default a trajectory's next turn is queued the moment its tool result
  is back (continuous), so a slow snippet stalls only its own trajectory; `lockstep` makes every
  turn wait for all live trajectories instead (reproducible batches, for GRPO's exact resume);
- generation stops at `</code>`, so code runs the moment it is written, in the sandbox pool,
  while the engine is busy with the other trajectories' next turns: sandbox time is hidden
  behind generation instead of added to it;
- a trajectory that ends (answer, turn limit, budget, error) leaves the batch at once.

Token budgets: a turn may generate `max_new_tokens`, a trajectory `max_response_tokens` over all
its turns, and prompt plus everything after it must fit `max_context_tokens`. Each turn asks for
the least of the three that is left; a turn that spends the response budget ends the trajectory
("response_budget"), one cut at the end of the context ends it too ("context_overflow").

Nothing a model writes or an endpoint returns can crash the batch: a malformed code block, a
missing answer, an overlong context, an engine error or a sandbox fault ends *that*
trajectory with a recorded `finish_reason`.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Literal

from PIL import Image

from codedance_core.agent.batching import GenerationBatcher, RolloutStats
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

# Which budget limits a turn; a turn cut by the last two ends its trajectory for that reason.
TurnBound = Literal["turn", "response_budget", "context_overflow"]


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
        batcher = GenerationBatcher(
            self.engine, self.sampling_params(), self.stats, wait_s=self.config.batch_wait_ms / 1000,
            lockstep=self.config.lockstep,
            # A local engine's own batch size: more requests would run as several chunks in one call.
            max_batch_size=getattr(self.engine, "max_batch_size", None),
        )
        started = time.perf_counter()
        batcher.start(live=len(trajectories))
        try:
            with self.pool.serving(len(trajectories)):
                await asyncio.gather(*(self._drive(trajectory, batcher, started) for trajectory in trajectories))
        finally:
            await batcher.stop()
        self.stats.wall_s = time.perf_counter() - started
        self.stats.count_finishes([trajectory.finish_reason for trajectory in trajectories])
        return trajectories

    # -- one trajectory ---------------------------------------------------------------------------
    async def _drive(self, trajectory: Trajectory, batcher: GenerationBatcher, started: float) -> None:
        # With early sessions, the sandbox process (a fork of a pre-imported template, a few ms of
        # CPU) starts while the first turn generates, so it is ready when the code is. Without,
        # it starts at the first code block: fewer live processes when generation is remote.
        opening = asyncio.create_task(self._open_session(trajectory))
        try:
            if self.bundle is not None:
                prompt = self.bundle.encode_messages(to_model_messages(trajectory.messages), trajectory.images)
                trajectory.extend(prompt.token_ids, trained=False)
                trajectory.prompt_length = len(prompt.token_ids)
            await self._take_turns(trajectory, batcher, opening)
        except Exception as exc:  # noqa: BLE001 -- never let one trajectory take the batch down; say what happened
            trajectory.finish("internal_error", f"{type(exc).__name__}: {exc}")
        finally:
            trajectory.wall_s = time.perf_counter() - started
            batcher.leave()
            await _close_session(opening)

    async def _take_turns(
        self, trajectory: Trajectory, batcher: GenerationBatcher, opening: asyncio.Task[Session]
    ) -> None:
        """Generate, run code, observe, until the trajectory ends; its `finish_reason` says why."""
        last_turn = self.config.max_turns - 1
        for turn_index in range(self.config.max_turns):
            limit, bound = self.turn_token_limit(trajectory)
            if limit < 1:  # observations filled the context (a turn that spends the budget ends at once)
                trajectory.finish(bound, f"{len(trajectory.token_ids)} tokens before turn {turn_index}")
                return
            completion, record = await self._generate_turn(trajectory, turn_index, batcher, limit)
            if completion.finish_reason == "error":
                trajectory.finish("engine_error", completion.error)
                return
            parsed = parse_turn(completion.text)
            record.answer = parsed.answer
            if parsed.answer is not None:
                trajectory.answer = parsed.answer
                trajectory.finish("answered")
                return
            ended = self._ended_by_budget(trajectory, completion, bound)
            if ended is not None:
                trajectory.finish(ended, f"{trajectory.response_tokens} response tokens after turn {turn_index}")
                return
            if turn_index == last_turn:
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
            self._append_observation(trajectory, observation, answer_now=turn_index + 1 == last_turn)

    async def _open_session(self, trajectory: Trajectory) -> Session:
        session = await self.pool.open_session(_sandbox_image(trajectory.item))
        if self.config.early_sessions:
            await session.start()
        return session

    def turn_token_limit(self, trajectory: Trajectory) -> tuple[int, TurnBound]:
        """Tokens the next turn may generate, and which budget sets that: the per-turn cap, what is
        left of the response budget, or the room left in the context (token-level rollouts only,
        keeping room for the turn's closing tokens)."""
        limits: list[tuple[int, TurnBound]] = [(self.config.max_new_tokens, "turn")]
        if self.config.max_response_tokens is not None:
            limits.append((self.config.max_response_tokens - trajectory.response_tokens, "response_budget"))
        if self.bundle is not None:
            closer = 1 + len(self._newline)
            room = self.config.max_context_tokens - len(trajectory.token_ids) - closer
            limits.append((room, "context_overflow"))
        return min(limits, key=lambda limit: limit[0])

    def _ended_by_budget(self, trajectory: Trajectory, completion: Completion, bound: TurnBound) -> TurnBound | None:
        """'response_budget' when this turn spent the budget (no tokens are left for another), or
        'context_overflow' when it was cut at the end of the context; None when the trajectory may go on."""
        budget = self.config.max_response_tokens
        if budget is not None and trajectory.response_tokens >= budget:
            return "response_budget"
        if bound == "context_overflow" and completion.finish_reason == "length":
            return "context_overflow"
        return None

    async def _generate_turn(
        self, trajectory: Trajectory, turn_index: int, batcher: GenerationBatcher, max_new_tokens: int
    ) -> tuple[Completion, TurnRecord]:
        request = GenerationRequest(
            token_ids=list(trajectory.token_ids) if self.bundle is not None else None,
            images=list(trajectory.images),
            messages=to_model_messages(trajectory.messages),
            sample_key=(trajectory.item.item_id, trajectory.sample_index, turn_index),
        )
        started = time.perf_counter()
        completion = await batcher.submit(request, max_new_tokens)
        record = TurnRecord(
            index=turn_index, text=completion.text, gen_wall_s=time.perf_counter() - started,
            generated_tokens=len(completion.token_ids),
        )
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
