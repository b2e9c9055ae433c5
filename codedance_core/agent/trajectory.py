"""A trajectory: the conversation, its tokens with a loss mask, and a record of every turn.

Token-in/token-out: the ids the model generated are kept exactly as generated, never
re-tokenised from text, so the trainer computes log-probs on the very tokens that were
sampled. Everything the model did not generate (the prompt, turn closers it did not write,
observations) has loss mask 0 and log-prob 0.
"""

from __future__ import annotations

import io
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from PIL import Image

if TYPE_CHECKING:
    from codedance_core.rewards.score import TrajectoryInput


@dataclass
class RolloutItem:
    """One prompt to roll out: its messages (with `<image>` markers), images, and gold answer."""

    item_id: str
    messages: list[dict[str, Any]]
    images: list[Image.Image]
    gold: str = ""
    data_source: str = ""
    question: str = ""
    options: list[str] | None = None
    metadata: dict[str, Any] = field(default_factory=dict)  # per-item scoring facts (MathVista's precision)


@dataclass
class TurnRecord:
    """What happened in one assistant turn."""

    index: int
    text: str
    token_start: int = 0
    token_end: int = 0
    code: str | None = None
    code_form: str | None = None
    parse_error: str | None = None
    status: str | None = None  # ExecResult status, "parse_error", or None when no tool was called
    exec_wall_s: float = 0.0
    gen_wall_s: float = 0.0
    generated_tokens: int = 0  # as the engine reports them (an HTTP engine may report none)
    images_out: int = 0
    answer: str | None = None


@dataclass
class Trajectory:
    """A finished (or ended) multi-turn episode for one item and sample."""

    item: RolloutItem
    sample_index: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    images: list[Image.Image] = field(default_factory=list)
    token_ids: list[int] = field(default_factory=list)
    loss_mask: list[int] = field(default_factory=list)
    logprobs: list[float] = field(default_factory=list)
    prompt_length: int = 0
    turns: list[TurnRecord] = field(default_factory=list)
    answer: str | None = None
    finish_reason: str = "running"
    error: str | None = None
    wall_s: float = 0.0  # from the start of its batch to its end

    # -- building ---------------------------------------------------------------------------------
    def extend(self, token_ids: list[int], trained: bool, logprobs: list[float] | None = None) -> tuple[int, int]:
        """Append tokens; returns their (start, end) span."""
        start = len(self.token_ids)
        self.token_ids.extend(token_ids)
        self.loss_mask.extend([1 if trained else 0] * len(token_ids))
        self.logprobs.extend(logprobs if logprobs is not None else [0.0] * len(token_ids))
        return start, len(self.token_ids)

    def finish(self, reason: str, error: str | None = None) -> None:
        self.finish_reason = reason
        self.error = error

    # -- reading ----------------------------------------------------------------------------------
    @property
    def tool_statuses(self) -> list[str | None]:
        """Per assistant turn: the call's status, or None when the turn called no tool (BAT's input)."""
        return [turn.status for turn in self.turns]

    @property
    def tool_calls(self) -> int:
        return sum(1 for status in self.tool_statuses if status is not None)

    @property
    def tool_successes(self) -> int:
        return sum(1 for status in self.tool_statuses if status == "ok")

    @property
    def response_tokens(self) -> int:
        """Tokens the model generated over all turns (what `max_response_tokens` bounds)."""
        return sum(turn.generated_tokens for turn in self.turns)

    @property
    def response_text(self) -> str:
        """All assistant turns' text, in order (what format and accuracy rewards read)."""
        return "\n".join(turn.text for turn in self.turns)

    @property
    def turn_spans(self) -> list[tuple[int, int]]:
        return [(turn.token_start, turn.token_end) for turn in self.turns]

    def scoring_input(self) -> TrajectoryInput:
        """What the rewards module scores: the response, the item's gold answer and the tool calls."""
        from codedance_core.rewards.score import TrajectoryInput

        item = self.item
        return TrajectoryInput(
            response_text=self.response_text,
            gold=item.gold,
            data_source=item.data_source,
            tool_statuses=self.tool_statuses,
            question=item.question,
            options=item.options,
            metadata=item.metadata,
        )

    def to_row(self) -> dict[str, Any]:
        """A flat, parquet-friendly record (images as PNG bytes)."""
        return {
            "item_id": self.item.item_id,
            "sample_index": self.sample_index,
            "data_source": self.item.data_source,
            "question": self.item.question,
            "gold": self.item.gold,
            "answer": self.answer,
            "finish_reason": self.finish_reason,
            "error": self.error,
            "n_turns": len(self.turns),
            "tool_calls": self.tool_calls,
            "tool_successes": self.tool_successes,
            "tool_statuses": json.dumps(self.tool_statuses),
            "messages": json.dumps(self.messages),
            "turns": json.dumps([asdict(turn) for turn in self.turns]),
            "images": [_png(image) for image in self.images],
            "token_ids": self.token_ids,
            "loss_mask": self.loss_mask,
            "logprobs": self.logprobs,
            "prompt_length": self.prompt_length,
        }


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
