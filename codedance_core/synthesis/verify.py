"""Running a trajectory for real, checking it, and writing it as an SFT row.

Nothing in a kept row is invented: each code turn ran in a sandbox session (state carried
across turns, as at rollout time), each tool message is the one formatter's rendering of the
real result, each produced image is appended to the row in order (so `<image>` markers and
images match), and the final answer scored correct with the same rules the RL reward uses.

A tool message holds `format_observation(result).text` as is: the chat template (and the
OpenAI engine) wrap the tool role in `<tool_response>` when rendering, as the rollout loop does.
"""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from typing import Any

from codedance_core.chat_format.observation import Observation, format_observation
from codedance_core.config.rewards import RewardConfig
from codedance_core.data.schemas import IMAGE_MARKER
from codedance_core.rewards import check_format, score_response
from codedance_core.rewards.score import scorer_for_source
from codedance_core.sandbox import ExecResult, Session
from codedance_core.synthesis.failures import PlannedFailureDidNotFail
from codedance_core.synthesis.items import SynthesisItem
from codedance_core.synthesis.steps import (
    AnswerStep,
    ToolStep,
    UnreadableOutput,
    Writer,
    answer_turn_text,
    tool_turn_text,
)


class Rejected(Exception):
    """A trajectory that cannot be kept; `reason` is a short code counted in the statistics."""

    def __init__(self, reason: str, detail: str = "", turns: list[Turn] | None = None) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail
        self.turns = turns or []


@dataclass
class Turn:
    """One assistant turn and, when it ran code, what came back."""

    text: str
    result: ExecResult | None = None
    observation: Observation | None = None
    planned_failure: bool = False


@dataclass
class Trajectory:
    """A verified trajectory: its turns and the answer's score detail."""

    turns: list[Turn]
    answer: str
    score_rule: str
    source: str = "program"
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def tool_calls(self) -> int:
        return sum(turn.result is not None for turn in self.turns)

    @property
    def failed_calls(self) -> int:
        return sum(turn.result is not None and not turn.result.ok for turn in self.turns)


async def execute(
    session: Session, code: str, timeout_s: float, max_chars: int
) -> tuple[ExecResult, Observation]:
    """Run one snippet and render its observation with the one formatter, cut at `max_chars`
    (the rollout's `observation_max_chars`, so a row shows what the loop would show)."""
    result = await session.execute(code)
    return result, format_observation(result, max_chars=max_chars, timeout_s=timeout_s)


async def run_program(
    writer: Writer, session: Session, max_turns: int, timeout_s: float, observation_max_chars: int
) -> Trajectory:
    """Drive a program writer turn by turn against a live session; Rejected when it cannot be kept."""
    turns: list[Turn] = []
    to_send: ExecResult | None = None
    while True:
        try:
            step = writer.send(to_send) if turns else next(writer)
        except StopIteration as stop:
            answer: AnswerStep = stop.value
            turns.append(Turn(answer_turn_text(answer)))
            break
        except UnreadableOutput as error:
            raise Rejected("unreadable_output", str(error), turns) from None
        except PlannedFailureDidNotFail as error:
            raise Rejected("planned_failure_did_not_fail", str(error), turns) from None
        if len(turns) + 1 >= max_turns:  # the answer still needs a turn of its own
            raise Rejected("too_many_turns", f"more than {max_turns} assistant turns", turns)
        assert isinstance(step, ToolStep)
        result, observation = await execute(session, step.code, timeout_s, observation_max_chars)
        turns.append(Turn(tool_turn_text(step), result, observation, planned_failure=step.expect_error))
        if not result.ok and not step.expect_error:
            detail = f"{result.status}: {result.error_type}: {result.error_message} (line {result.error_line})"
            raise Rejected("code_failed", detail, turns)
        to_send = result
    return Trajectory(turns=turns, answer=answer.answer, score_rule="")


def response_text(turns: list[Turn]) -> str:
    """The model's side of a trajectory (what format and accuracy are scored on)."""
    return "\n".join(turn.text for turn in turns)


def check_answer(item: SynthesisItem, trajectory: Trajectory, rewards: RewardConfig) -> Trajectory:
    """Score the final answer with the RL reward's rules; Rejected unless it is correct and well formed."""
    text = response_text(trajectory.turns)
    form = check_format(text)
    if form.penalty:
        raise Rejected("bad_format", form.reason, trajectory.turns)
    scored = score_response(
        text,
        item.gold,
        kind=scorer_for_source(item.data_source, rewards),
        options=item.options or None,
        relative_tolerance=rewards.relaxed_tolerance,
        max_answer_chars=rewards.max_answer_chars,
    )
    if scored.rule == "needs_judge":
        raise Rejected("needs_judge", f"no rule decides {scored.extracted!r} vs {item.gold!r}", trajectory.turns)
    if scored.score < 1.0:
        raise Rejected("answer_incorrect", f"answered {scored.extracted!r}, gold {item.gold!r} ({scored.rule})",
                       trajectory.turns)
    trajectory.score_rule = scored.rule
    return trajectory


def png_bytes(image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def assemble_row(item: SynthesisItem, trajectory: Trajectory) -> dict[str, Any]:
    """The SFT row: prompt, then assistant and tool turns; the input image, then every observed image."""
    stem = f"{item.data_source}_{item.index:06d}"
    images = [{"bytes": png_bytes(item.image), "path": f"{stem}.png"}]
    messages = [dict(message) for message in item.prompt]
    for turn in trajectory.turns:
        messages.append({"role": "assistant", "content": turn.text})
        if turn.observation is not None:
            messages.append({"role": "tool", "content": turn.observation.text})
            for image in turn.observation.images:
                images.append({"bytes": bytes(image), "path": f"{stem}_obs{len(images):02d}.png"})
    markers = sum(message["content"].count(IMAGE_MARKER) for message in messages)
    if markers != len(images):
        raise Rejected("image_mismatch", f"{markers} <image> markers for {len(images)} images", trajectory.turns)
    return {"messages": messages, "images": images}


def transcript(item: SynthesisItem, turns: list[Turn]) -> list[dict[str, str]]:
    """The conversation so far (for a reject record): prompt, assistant and tool turns, no images."""
    messages = [dict(message) for message in item.prompt]
    for turn in turns:
        messages.append({"role": "assistant", "content": turn.text})
        if turn.observation is not None:
            messages.append({"role": "tool", "content": turn.observation.text})
    return messages
