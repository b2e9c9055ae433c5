"""SFT rows' tool observations in the one text RL and evaluation show (docs/method.md §2).

The released SFT rows hold observations in the original's own words, which differ from what
our rollout loop writes: a model fine-tuned on them would meet another text in RL and in
evaluation, the very defect of the original. So before a row is encoded, each observation is
rewritten by `chat_format.observation.format_observation`, in one of three ways (`SFTConfig.observations`):

- `reformat` (default): the original's text is parsed (stdout, stderr, error, images) and
  rendered by our formatter. No code runs; a final expression the original printed shows as
  stdout (our sandbox shows it as a value), the only place the two can differ.
- `replay`: the row's code is run again in the sandbox, turn by turn in one session, on the row's
  first image resized as the model sees it, and the real results are formatted; the images the
  replay produced replace the row's. A row whose code cannot be found, or whose replay does not
  succeed (or fail) where the original did, is reformatted instead and counted.
- `keep`: the row's text is left as is; training then shows other text than RL and evaluation,
  and a warning says so.

Observations already in our words (rows from our synthesis stage) are kept in every mode.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from PIL import Image

from codedance_core.agent.parsing import parse_turn
from codedance_core.chat_format.observation import (
    RESPONSE_OPEN,
    format_observation,
    is_our_observation,
    parse_original_observation,
    reformat_observation,
    unwrap_tool_response,
)
from codedance_core.config.agent import RolloutSettings
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.config.train import ObservationMode
from codedance_core.data.schemas import IMAGE_MARKER, ImageRef, SFTRow
from codedance_core.models.images import resize_for_model

logger = logging.getLogger(__name__)
KEEP_WARNING = (
    "sft.observations is 'keep': SFT trains on the rows' own observation text, which differs from the "
    "text RL and evaluation show (docs/method.md §2); use 'reformat' or 'replay' to train on the same text"
)


@dataclass
class ObservationCounts:
    """What became of the rows' observations (logged with the run's data stats)."""

    mode: ObservationMode
    messages: int = 0  # observation messages seen
    ours: int = 0  # already in our words
    reformatted: int = 0  # mapped from the original's text
    replayed: int = 0  # re-run in the sandbox
    kept: int = 0  # left in the original's text (`keep`)
    replay_fallback_rows: int = 0  # rows reformatted because their replay could not stand in

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def is_observation(messages: list[dict[str, Any]], index: int) -> bool:
    """A tool message, or a user turn after an assistant turn that holds a `<tool_response>`."""
    message = messages[index]
    if message["role"] == "tool":
        return True
    return (
        message["role"] == "user"
        and index > 0
        and messages[index - 1]["role"] == "assistant"
        and message["content"].lstrip().startswith(RESPONSE_OPEN)
    )


def succeeded(text: str) -> bool:
    """Whether an observation (ours or the original's) reports a run that ended well."""
    inner = unwrap_tool_response(text)
    if is_our_observation(inner):
        return inner.lstrip().startswith("Execution succeeded.")
    return parse_original_observation(inner).status == "ok"


@dataclass
class ObservationRenderer:
    """Rewrites one row's observations as `mode` says; `close` ends the replay's sandbox."""

    mode: ObservationMode = "reformat"
    max_chars: int = RolloutSettings.model_fields["observation_max_chars"].default  # as the loop caps it
    timeout_s: float | None = SandboxConfig.model_fields["timeout_s"].default  # as the loop states it
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    pixel_bounds: tuple[int, int] | None = None  # the model's (min, max) pixels: the replay's input_image
    counts: ObservationCounts = field(init=False)
    _pool: Any = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        self.counts = ObservationCounts(self.mode)
        if self.mode == "keep":
            logger.warning(KEEP_WARNING)

    def render(self, row: SFTRow, load_image: Callable[[ImageRef], bytes]) -> SFTRow:
        """The row with its observations in our words (a new row; `row` is left alone)."""
        messages = [message.model_dump() for message in row.messages]
        indices = [i for i in range(len(messages)) if is_observation(messages, i)]
        self.counts.messages += len(indices)
        if self.mode == "replay" and indices:
            replayed = self._replay(row, messages, indices, load_image)
            if replayed is not None:
                return replayed
            self.counts.replay_fallback_rows += 1
        for index in indices:
            messages[index] = {"role": "tool", "content": self._reformat(messages[index]["content"])}
        return _with(row, messages, row.images)

    def _reformat(self, text: str) -> str:
        if is_our_observation(unwrap_tool_response(text)):
            self.counts.ours += 1
            return unwrap_tool_response(text)
        if self.mode == "keep":
            self.counts.kept += 1
            return text
        self.counts.reformatted += 1
        return reformat_observation(text, self.max_chars, self.timeout_s)

    def _replay(
        self,
        row: SFTRow,
        messages: list[dict[str, Any]],
        indices: list[int],
        load_image: Callable[[ImageRef], bytes],
    ) -> SFTRow | None:
        """The row with each observation replaced by a real run of the code before it; None when
        the code cannot be found or a run does not end as the original's did."""
        codes = [parse_turn(messages[i - 1]["content"]).code if i > 0 else None for i in indices]
        if not row.images or any(code is None for code in codes):
            return None
        with Image.open(io.BytesIO(load_image(row.images[0]))) as opened:
            image = (
                resize_for_model(opened, *self.pixel_bounds) if self.pixel_bounds else opened.convert("RGB")
            )
        produced: dict[int, list[bytes]] = {}
        rendered: dict[int, str] = {}
        with self._sandbox().open_session(image) as session:
            for index, code in zip(indices, codes, strict=True):
                result = session.execute(code)  # type: ignore[arg-type]
                if (result.status == "ok") != succeeded(messages[index]["content"]):
                    return None
                rendered[index] = format_observation(
                    result, max_chars=self.max_chars, timeout_s=self.timeout_s
                ).text
                produced[index] = list(result.images)
        images = _images_after_replay(messages, row.images, produced)
        for index, text in rendered.items():
            messages[index] = {"role": "tool", "content": text}
        self.counts.replayed += len(indices)
        return _with(row, messages, images)

    def _sandbox(self) -> Any:
        if self._pool is None:
            from codedance_core.sandbox import SandboxPool

            self._pool = SandboxPool.sync(self.sandbox).start()
        return self._pool

    def close(self) -> None:
        if self._pool is not None:
            self._pool.close()
            self._pool = None


def _images_after_replay(
    messages: list[dict[str, Any]], images: list[ImageRef], produced: dict[int, list[bytes]]
) -> list[ImageRef]:
    """The row's images in marker order, each replayed observation's own in place of the original's."""
    originals = iter(images)
    result: list[ImageRef] = []
    for index, message in enumerate(messages):
        taken = [next(originals, None) for _ in range(message["content"].count(IMAGE_MARKER))]
        if index in produced:
            result += [ImageRef(bytes=png) for png in produced[index]]
        else:
            result += [ref for ref in taken if ref is not None]
    return result


def _with(row: SFTRow, messages: list[dict[str, Any]], images: list[ImageRef]) -> SFTRow:
    """A copy of `row` (extra columns included) with these messages and images."""
    values = row.model_dump()
    values.update(messages=messages, images=[image.model_dump() for image in images])
    return SFTRow.model_validate(values)
