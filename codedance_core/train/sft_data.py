"""SFT trajectory rows -> training examples: token ids, labels on assistant tokens only, images.

How a row becomes tokens, and why:
- The chat template is applied turn by turn: the conversation is rendered for the first k
  messages, for k = 1..n, and each turn's text is the difference between consecutive renders.
  This works for our template and for a checkpoint's own (which may add a default system prompt
  to the first turn), and it tells exactly which characters belong to which turn.
- Each turn's text is tokenized on its own, and an assistant turn in three pieces: the header
  `<|im_start|>assistant\\n`, the body up to and including `<|im_end|>`, the rest. That is how the
  model meets those tokens when it generates: the prompt ends with the header and the model
  writes the body, so BPE merges never straddle the boundary the loss mask draws.
- Labels are the body's tokens (end-of-turn token included: the model must learn to stop);
  everything else -- system, user, tool observations, headers -- is -100.
- Each `<image>` marker, in order over the conversation, takes the next image of the row; a tool
  observation that already carries its `<tool_response>` wrapping is rendered as the plain user
  turn the template would otherwise make of it.
- Observations are first rewritten in the one text RL and evaluation show (`sft_observations`:
  the original's text reformatted, or its code replayed, as `SFTConfig.observations` says); the
  choice and what it did are in the data stats.
- Images are kept encoded until a batch is built (a 30k-row SFT set of decoded images does not
  fit in memory); only their sizes are read here, which fixes their token counts.

Bad rows (invalid row, marker/image mismatch, undecodable image, no assistant token left after
truncation) are never fatal and never vanish: each goes to the quarantine with its reason (the
layout every stage shares, `data.quarantine`), written beside the run and counted in its result.
Every image is decoded in full once here, so a truncated file is a quarantined row, not a crash
in the middle of training. A file with no usable row is `NoValidRowsError`.
"""

from __future__ import annotations

import io
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

from PIL import Image
from pydantic import ValidationError

from codedance_core.chat_format.messages import content_parts
from codedance_core.config.train import ObservationMode
from codedance_core.data.schemas import IMAGE_MARKER, ImageRef, SFTRow
from codedance_core.models.images import pixel_bounds, resize_for_model
from codedance_core.models.inputs import EncodedPrompt, encode_text_with_images
from codedance_core.models.tokenizer import IM_END, IMAGE_PAD
from codedance_core.train.sft_observations import ObservationRenderer

if TYPE_CHECKING:
    from codedance_core.data.quarantine import Quarantine

IGNORE_INDEX = -100
RESPONSE_OPEN = "<tool_response>"


class BadSFTRow(ValueError):
    """A row that cannot become a training example; `reason` is a short code for the counters."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


class _ImageSize(NamedTuple):
    """What `image_token_count` reads of an image: its size, without decoding pixels."""

    width: int
    height: int


@dataclass
class SFTExample:
    """One trajectory as the trainer reads it; `images` stay encoded until collation."""

    input_ids: list[int]
    labels: list[int]
    images: list[bytes] = field(default_factory=list)
    truncated: bool = False

    @property
    def label_tokens(self) -> int:
        return sum(1 for label in self.labels if label != IGNORE_INDEX)

    def __len__(self) -> int:
        return len(self.input_ids)


@dataclass
class SFTDataStats:
    """What became of the rows: examples made, truncations, quarantined rows by reason, token totals."""

    rows: int = 0
    examples: int = 0
    truncated: int = 0
    skipped: Counter = field(default_factory=Counter)  # quarantined rows per reason
    tokens: int = 0
    label_tokens: int = 0
    quarantine_file: str | None = None
    observations: dict[str, Any] | None = None  # how observations were rendered (`ObservationCounts`)

    @property
    def quarantined(self) -> int:
        return sum(self.skipped.values())

    def as_dict(self) -> dict[str, Any]:
        return {
            "rows": self.rows,
            "examples": self.examples,
            "truncated": self.truncated,
            "skipped": dict(self.skipped),
            "quarantined_rows": self.quarantined,
            "quarantine_file": self.quarantine_file,
            "tokens": self.tokens,
            "label_tokens": self.label_tokens,
            "observations": self.observations,
        }


@dataclass(frozen=True)
class Encoder:
    """The pieces of a model bundle that turn text into ids (picklable, no model weights)."""

    tokenizer: Any
    image_processor: Any
    chat_template: str

    @classmethod
    def from_bundle(cls, bundle: Any) -> Encoder:
        return cls(bundle.tokenizer, bundle.image_processor, bundle.chat_template)


def template_message(role: str, content: str) -> dict[str, Any]:
    """A row message as the chat template takes it; pre-wrapped observations become user turns."""
    if role == "tool" and content.lstrip().startswith(RESPONSE_OPEN):
        role = "user"
    return {"role": role, "content": content_parts(content)}


def render_turns(encoder: Encoder, messages: Sequence[dict[str, Any]]) -> list[str]:
    """The text each message adds to the rendered conversation, in order."""
    turns: list[str] = []
    previous = ""
    for end in range(1, len(messages) + 1):
        text = encoder.tokenizer.apply_chat_template(
            list(messages[:end]),
            chat_template=encoder.chat_template,
            tokenize=False,
            add_generation_prompt=False,
        )
        if not text.startswith(previous):
            raise BadSFTRow("template_not_incremental", f"rendering turn {end} changed earlier turns' text")
        turns.append(text[len(previous) :])
        previous = text
    return turns


def split_assistant_turn(turn: str, content: str) -> tuple[str, str, str]:
    """(header, body, rest) of a rendered assistant turn: body is the content through `<|im_end|>`."""
    start = turn.find(content) if content else turn.find(IM_END)
    if start < 0:
        raise BadSFTRow("assistant_not_verbatim", "the template changed the assistant's text")
    stop = turn.find(IM_END, start + len(content))
    end = stop + len(IM_END) if stop >= 0 else len(turn)
    return turn[:start], turn[start:end], turn[end:]


def image_size(data: bytes) -> _ImageSize:
    """Width and height of an image, decoded in full once (a truncated file fails here, not in a batch)."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            opened.load()
            return _ImageSize(*opened.size)
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise BadSFTRow("image_undecodable", str(error)) from None


def image_bytes(ref: ImageRef, base_uri: str | None) -> bytes:
    """An ImageRef's encoded bytes; a `path` is read relative to the dataset's folder."""
    if ref.bytes:
        return ref.bytes
    from codedance_core.storage import filesystem, join_uri

    uri = (
        ref.path
        if base_uri is None or "://" in str(ref.path) or str(ref.path).startswith("/")
        else join_uri(base_uri, str(ref.path))
    )
    fs, path = filesystem(uri)
    try:
        with fs.open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        raise BadSFTRow("image_missing", f"no image at {uri}") from None


def _encode_piece(encoder: Encoder, text: str, sizes: Iterator[_ImageSize]) -> list[int]:
    """Ids of a piece of rendered text, its image pads expanded for the next images in `sizes`."""
    pads = text.count(IMAGE_PAD)
    piece_sizes = [next(sizes) for _ in range(pads)]
    return encode_text_with_images(encoder.tokenizer, encoder.image_processor, text, piece_sizes)


def encode_row(encoder: Encoder, row: SFTRow, max_length: int, base_uri: str | None = None) -> SFTExample:
    """One SFT row as ids and labels (see the module docstring); raises BadSFTRow."""
    markers = sum(message.content.count(IMAGE_MARKER) for message in row.messages)
    if markers != len(row.images):
        raise BadSFTRow("image_count_mismatch", f"{markers} <image> markers but {len(row.images)} images")
    images = [image_bytes(ref, base_uri) for ref in row.images]
    sizes = iter([image_size(data) for data in images])
    messages = [template_message(message.role, message.content) for message in row.messages]
    input_ids: list[int] = []
    labels: list[int] = []
    for message, turn in zip(row.messages, render_turns(encoder, messages), strict=True):
        if message.role != "assistant":
            ids = _encode_piece(encoder, turn, sizes)
            input_ids += ids
            labels += [IGNORE_INDEX] * len(ids)
            continue
        if IMAGE_MARKER in message.content:
            raise BadSFTRow("image_in_assistant_turn", "an assistant turn holds an <image> marker")
        header, body, rest = split_assistant_turn(turn, message.content)
        for text, trained in ((header, False), (body, True), (rest, False)):
            ids = _encode_piece(encoder, text, sizes)
            input_ids += ids
            labels += ids if trained else [IGNORE_INDEX] * len(ids)
    example = SFTExample(input_ids, labels, images)
    if len(example) > max_length:
        example = truncate_example(example, max_length, image_pad_id(encoder))
    if example.label_tokens == 0:
        raise BadSFTRow("no_assistant_tokens", "no assistant token left (truncated away or none)")
    return example


def image_pad_id(encoder: Encoder) -> int:
    return int(encoder.tokenizer.convert_tokens_to_ids(IMAGE_PAD))


def truncate_example(example: SFTExample, max_length: int, pad_id: int) -> SFTExample:
    """Keep the first `max_length` tokens; an image whose pads the cut would split is dropped whole.

    A partial image cannot be fed to the model (its pixels fix its pad count), so the cut moves
    back to just before that image's `<|vision_start|>`, and later images are dropped.
    """
    cut = max_length
    kept_images = 0
    index = 0
    ids = example.input_ids
    while index < len(ids):
        if ids[index] != pad_id:
            index += 1
            continue
        span_end = index
        while span_end < len(ids) and ids[span_end] == pad_id:
            span_end += 1
        if span_end > cut:
            cut = min(cut, max(index - 1, 0))  # the token before the pads is <|vision_start|>
            break
        kept_images += 1
        index = span_end
    return SFTExample(ids[:cut], example.labels[:cut], example.images[:kept_images], truncated=True)


def build_examples(
    encoder: Encoder,
    rows: Iterable[dict[str, Any] | SFTRow],
    max_length: int,
    base_uri: str | None = None,
    quarantine: Quarantine | None = None,
    observations: ObservationRenderer | None = None,
) -> tuple[list[SFTExample], SFTDataStats]:
    """Examples from rows (dicts are validated as SFTRow), with counts of what was kept; each bad
    row is counted by reason and, given a `quarantine`, set aside in it with its detail. With
    `observations`, each row's tool observations are rewritten by it first."""
    stats = SFTDataStats()
    examples: list[SFTExample] = []
    for raw in rows:
        stats.rows += 1
        try:
            row = raw if isinstance(raw, SFTRow) else SFTRow.model_validate(raw)
            if observations is not None:
                row = observations.render(row, lambda ref: image_bytes(ref, base_uri))
            example = encode_row(encoder, row, max_length, base_uri)
        except (ValidationError, BadSFTRow) as error:
            problem = _problem(error)
            stats.skipped[problem.reason] += 1
            if quarantine is not None:
                quarantine.add(raw.model_dump() if isinstance(raw, SFTRow) else raw, problem.reason, problem.detail)
            continue
        examples.append(example)
        stats.examples += 1
        stats.truncated += int(example.truncated)
        stats.tokens += len(example)
        stats.label_tokens += example.label_tokens
    if observations is not None:
        stats.observations = observations.counts.as_dict()
    return examples, stats


def _problem(error: ValidationError | BadSFTRow) -> BadSFTRow:
    """A bad row's reason: the validator's code for a row that is not an SFT row at all."""
    if isinstance(error, BadSFTRow):
        return error
    from codedance_core.data.validate import problem_from_validation_error

    problem = problem_from_validation_error(error)
    return BadSFTRow(problem.reason.value, problem.detail)


def load_examples(
    encoder: Encoder,
    uri: str,
    max_length: int,
    batch_rows: int = 256,
    quarantine: Quarantine | None = None,
    observations: ObservationRenderer | None = None,
) -> tuple[list[SFTExample], SFTDataStats]:
    """Examples from an SFT parquet at any URI, streamed batch by batch (bad rows as in `build_examples`,
    quarantined with the file's own column types)."""
    from codedance_core.data.io import open_parquet

    base_uri = uri.rsplit("/", 1)[0] if "/" in uri else None
    with open_parquet(uri) as source:
        if quarantine is not None and quarantine.schema is None:
            quarantine.schema = source.schema
        batches = source.file.iter_batches(batch_size=batch_rows, use_threads=False)
        rows = (row for batch in batches for row in batch.to_pylist())
        return build_examples(encoder, rows, max_length, base_uri, quarantine, observations)


def load_training_examples(
    encoder: Encoder,
    data: str | Iterable[dict[str, Any]],
    max_length: int,
    run_dir: Path,
    write: bool = True,
    observations: ObservationMode = "reformat",
) -> tuple[list[SFTExample], SFTDataStats]:
    """The examples of a run's data (a parquet URI or rows); bad rows go to `run_dir`/quarantine.parquet
    when `write` (the main worker). Observations are rendered as `observations` says (module
    docstring). Raises NoValidRowsError when no row makes an example."""
    from codedance_core.data.quarantine import QUARANTINE_FILE, NoValidRowsError, Quarantine, columns_of
    from codedance_core.data.validate import expected_columns

    quarantine = Quarantine()
    renderer = ObservationRenderer(observations, pixel_bounds=pixel_bounds(encoder.image_processor))
    try:
        if isinstance(data, str):
            examples, stats = load_examples(encoder, data, max_length, quarantine=quarantine, observations=renderer)
        else:
            examples, stats = build_examples(encoder, data, max_length, quarantine=quarantine, observations=renderer)
    finally:
        renderer.close()
    target = Path(run_dir) / QUARANTINE_FILE
    if write:
        target.unlink(missing_ok=True)  # a resumed run's file is rewritten, never left stale
        if quarantine.write(str(target)) is not None:
            stats.quarantine_file = str(target)
    if not examples:
        name = data if isinstance(data, str) else "the rows given"
        example = next(iter(quarantine.examples().values()), "")
        found = columns_of(quarantine.rows, quarantine.schema)
        raise NoValidRowsError(name, found, expected_columns("sft"), dict(stats.skipped), example, stats.rows)
    return examples, stats


def decode_for_model(data: bytes, image_processor: Any) -> Image.Image:
    """The RGB image resized Qwen-style within the processor's bounds (what its token count assumed)."""
    with Image.open(io.BytesIO(data)) as opened:
        return resize_for_model(opened, *pixel_bounds(image_processor))


def as_prompt(example: SFTExample, image_processor: Any) -> EncodedPrompt:
    """The example as an `EncodedPrompt` for `ModelBundle.model_inputs` (images decoded now)."""
    return EncodedPrompt(
        example.input_ids, [decode_for_model(data, image_processor) for data in example.images]
    )


__all__ = [
    "IGNORE_INDEX",
    "BadSFTRow",
    "Encoder",
    "SFTDataStats",
    "SFTExample",
    "as_prompt",
    "build_examples",
    "encode_row",
    "load_examples",
    "load_training_examples",
    "render_turns",
    "split_assistant_turn",
    "truncate_example",
]
