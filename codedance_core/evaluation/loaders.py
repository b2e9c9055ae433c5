"""Benchmark files as rows: parquet, JSON lines, and VLMEvalKit-style TSV, all read from local disk.

Public benchmarks ship in a handful of layouts, and the same benchmark often in several (HF
parquet, a VLMEvalKit TSV, a jsonl beside an image folder). Rather than one parser per
benchmark, every file is read as plain dict rows (`read_table`) and one normaliser
(`to_eval_row`) maps the column names found in the wild onto our `EvalItem` layout, with
per-benchmark hints (`ColumnHints`) only where a benchmark's columns mean something unusual.

Images are resolved here, to bytes: an inline struct, raw bytes, base64 text (VLMEvalKit), a
VLMEvalKit reference to another row's image (a short index string), or a path relative to the
data file's folder. Downstream code then never has to know where a file lay.

An item keeps its images *encoded* (`LazyImages`) until its rollout reads them: a benchmark's
pixels would otherwise sit in memory for the whole run (a 1024 px RGB image is 3 MiB decoded,
a tenth of that as JPEG), growing with the dataset instead of with the items in flight. A
decoded image that needed no resizing remembers its file (`EncodedImage`), so a data URL or the
PNG written beside the results can reuse those bytes instead of encoding the pixels again.
"""

from __future__ import annotations

import ast
import base64
import binascii
import csv
import io
import json
import os
import sys
import weakref
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, overload

from PIL import Image

from codedance_core.models.images import ImageDecodeError, decode_image, resize_for_model, smart_resize

OPTION_LETTERS = "ABCDEFGHIJ"
QUESTION_COLUMNS = ("question", "query", "problem", "text")
ANSWER_COLUMNS = ("answer", "label", "number", "count", "ground_truth", "gt_answer")
IMAGE_COLUMNS = ("images", "image", "decoded_image", "image_path", "image_bytes")
OPTION_COLUMNS = ("options", "choices", "option")
ID_COLUMNS = ("id", "index", "pid", "question_id", "ID", "sample_index")
HINT_COLUMNS = ("hint",)


class BenchmarkFormatError(ValueError):
    """The file is not in the layout its benchmark expects; the message says what was expected."""


RL_COLUMNS = ("prompt (or messages)", "images", "reward_model.ground_truth", "data_source")


def expected_columns(layout: str, hints: ColumnHints) -> list[str]:
    """The columns a benchmark's rows need, for the message when none of a file's rows has them."""
    eval_columns = [
        "question: one of " + "/".join(hints.question) if hints.question_template is None else "the template's fields",
        "answer: one of " + "/".join(hints.answer),
        "image: one of " + "/".join(IMAGE_COLUMNS),
    ]
    if layout == "rl":
        return list(RL_COLUMNS)
    if layout == "auto":
        return [f"RL rows ({', '.join(RL_COLUMNS)}) or eval rows ({'; '.join(eval_columns)})"]
    return eval_columns


def read_table(path: Path) -> Iterator[dict[str, Any]]:
    """Rows of a .parquet, .jsonl/.json or .tsv file, as dicts, in file order."""
    suffix = path.suffix.lower()
    if not path.is_file():
        raise BenchmarkFormatError(f"{path}: no such file")
    if suffix == ".parquet":
        yield from _parquet_rows(path)
    elif suffix in (".jsonl", ".json"):
        yield from _json_rows(path)
    elif suffix == ".tsv":
        yield from _tsv_rows(path)
    else:
        raise BenchmarkFormatError(
            f"{path}: expected .parquet, .jsonl, .json or .tsv, got {suffix or 'no suffix'}"
        )


def _parquet_rows(path: Path) -> Iterator[dict[str, Any]]:
    import pyarrow.parquet as pq

    # Row group by row group: a benchmark of large images need not fit in memory twice.
    for batch in pq.ParquetFile(path).iter_batches(batch_size=64):
        yield from batch.to_pylist()


def _json_rows(path: Path) -> Iterator[dict[str, Any]]:
    text = path.read_text(encoding="utf-8")
    if text.lstrip().startswith("["):
        yield from json.loads(text)
        return
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                yield json.loads(line)
            except json.JSONDecodeError as error:
                raise BenchmarkFormatError(f"{path}:{number}: not JSON: {error}") from None


def _tsv_rows(path: Path) -> Iterator[dict[str, Any]]:
    # Base64 images are far longer than csv's default 128 KiB field limit.
    csv.field_size_limit(sys.maxsize)
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle, delimiter="\t"):
            yield {key: (None if value == "" else value) for key, value in row.items() if key is not None}


@dataclass(frozen=True)
class ColumnHints:
    """What a benchmark's columns mean where the defaults would guess wrong."""

    question: tuple[str, ...] = QUESTION_COLUMNS
    answer: tuple[str, ...] = ANSWER_COLUMNS
    question_template: str | None = None  # e.g. "How many {label} are in the image?"
    options_are_letters: bool = True  # letter columns A, B, ... hold the options (VLMEvalKit)
    metadata: tuple[str, ...] = (
        "category",
        "l2-category",
        "split",
        "question_type",
        "answer_type",
        "subject",
    )
    extra: dict[str, str] = field(default_factory=dict)


class ImageResolver:
    """Turns whatever a row holds for an image into bytes; remembers VLMEvalKit's shared images."""

    def __init__(self, base_dir: Path) -> None:
        self.base_dir = base_dir
        self._by_index: dict[str, bytes] = {}

    def resolve(self, row: Mapping[str, Any]) -> list[bytes]:
        value = _first(row, IMAGE_COLUMNS)
        if value is None:
            return []
        images = [self.image_bytes(item) for item in _as_list(value)]
        if (index := row.get("index")) is not None:
            self._by_index[str(index)] = images[0]
        return images

    def image_bytes(self, value: Any) -> bytes:
        """One image value (struct, bytes, base64, index reference or path) as bytes."""
        if isinstance(value, Mapping):
            return bytes(value["bytes"]) if value.get("bytes") else self._from_path(str(value["path"]))
        if isinstance(value, (bytes, bytearray)):
            return bytes(value)
        text = str(value)
        if text in self._by_index:  # VLMEvalKit stores a repeated image once and refers to its index
            return self._by_index[text]
        if (self.base_dir / text).is_file() or Path(text).is_file():
            return self._from_path(text)
        try:
            return base64.b64decode(text, validate=True)
        except (binascii.Error, ValueError):
            raise BenchmarkFormatError(
                f"image {text[:60]!r} is neither a file under {self.base_dir} nor base64"
            ) from None

    def _from_path(self, text: str) -> bytes:
        path = Path(text) if Path(text).is_absolute() else self.base_dir / text
        if not path.is_file():
            raise BenchmarkFormatError(f"image file {path} not found")
        return path.read_bytes()


def to_eval_row(
    row: Mapping[str, Any],
    index: int,
    data_source: str,
    images: ImageResolver,
    hints: ColumnHints = ColumnHints(),
) -> dict[str, Any]:
    """A row in any common benchmark layout as an `EvalItem` dict (images as bytes)."""
    options = _options(row, hints)
    question = _question(row, hints)
    answer = _first(row, hints.answer)
    if isinstance(answer, (list, tuple)):
        answer = answer[0] if answer else None
    if question is None or answer is None:
        raise BenchmarkFormatError(
            f"row {index}: needs a question ({'/'.join(hints.question)}) and an answer ({'/'.join(hints.answer)})"
        )
    item_id = _first(row, ID_COLUMNS)
    return {
        "id": str(item_id) if item_id is not None else str(index),
        "question": question,
        "answer": str(answer).strip(),
        "images": [{"bytes": data} for data in images.resolve(row)],
        "data_source": data_source,
        "options": options,
        "metadata": {key: _jsonable(row[key]) for key in hints.metadata if row.get(key) is not None},
    }


def _question(row: Mapping[str, Any], hints: ColumnHints) -> str | None:
    if hints.question_template is not None:
        return hints.question_template.format(
            **{k: v for k, v in row.items() if isinstance(v, (str, int, float))}
        )
    question = _first(row, hints.question)
    if question is None:
        return None
    hint = _first(row, HINT_COLUMNS)
    return f"Hint: {hint}\nQuestion: {question}" if hint else str(question)


def _options(row: Mapping[str, Any], hints: ColumnHints) -> list[str]:
    value = _first(row, OPTION_COLUMNS)
    if value is not None:
        return [str(option) for option in _as_list(value)]
    if not hints.options_are_letters:
        return []
    options = []
    for letter in OPTION_LETTERS:  # VLMEvalKit: one column per option, stop at the first empty one
        if row.get(letter) is None or str(row[letter]).strip().lower() == "nan":
            break
        options.append(str(row[letter]))
    return options


def _first(row: Mapping[str, Any], columns: tuple[str, ...]) -> Any:
    for column in columns:
        value = row.get(column)
        if value is not None and not (isinstance(value, str) and not value.strip()):
            return value
    return None


def _as_list(value: Any) -> list[Any]:
    """A list value, a list written as Python/JSON text (VLMEvalKit multi-image), or one value."""
    if isinstance(value, str) and value[:1] == "[" and value[-1:] == "]":
        try:
            parsed = ast.literal_eval(value)
            return list(parsed) if isinstance(parsed, (list, tuple)) else [value]
        except (ValueError, SyntaxError):
            return [value]
    if isinstance(value, (list, tuple)):
        return list(value)
    if hasattr(value, "tolist") and not isinstance(value, (bytes, bytearray)):
        return list(value.tolist())
    return [value]


def _jsonable(value: Any) -> Any:
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        return str(value)


def resolve_rl_images(row: dict[str, Any], images: ImageResolver) -> dict[str, Any]:
    """An RL-layout row with any image paths replaced by their bytes (the rollout decodes bytes)."""
    value = row.get("images")
    if value is None:
        return row
    return {**row, "images": [{"bytes": images.image_bytes(item)} for item in _as_list(value)]}


# Formats that OpenAI-compatible servers accept in a data URL, by Pillow's format name.
DATA_URL_FORMATS = {"PNG": "png", "JPEG": "jpeg", "WEBP": "webp", "GIF": "gif"}


class EncodedImage(Image.Image):
    """A decoded RGB image that is exactly the decoding of `encoded`, the file it was read from.

    Whatever needs the picture as a file can send those bytes instead of encoding the pixels
    again: `data_url()` for a served model, and `save` in the file's own format (PNG for the
    input images written beside the results) writes them as they are. Pillow's operations
    return plain `Image.Image`s, so a crop, a resize or a conversion never claims these bytes.
    """

    encoded: bytes
    encoded_format: str

    @classmethod
    def adopt(cls, image: Image.Image, encoded: bytes, encoded_format: str) -> EncodedImage:
        """`image`'s pixels (shared, not copied) with the file they were decoded from."""
        adopted = cls()
        # What Pillow's own Image._new does: attach the pixel core and its mode and size.
        adopted.im = image.im
        adopted._mode, adopted._size = image.im.mode, image.im.size
        adopted.info = dict(image.info)
        adopted.encoded, adopted.encoded_format = encoded, encoded_format
        return adopted

    def data_url(self) -> str:
        """A data URL of the original file: no encoding work, and exactly these pixels."""
        mime = DATA_URL_FORMATS[self.encoded_format]
        return f"data:image/{mime};base64," + base64.b64encode(self.encoded).decode("ascii")

    def save(self, fp: str | os.PathLike[str] | IO[bytes], format: str | None = None, **params: Any) -> None:
        """Pillow's save; asked for the original's format with no options, writes the original."""
        wanted = format or _format_from_name(fp)
        if params or wanted is None or wanted.upper() != self.encoded_format:
            super().save(fp, format, **params)
            return
        if isinstance(fp, (str, os.PathLike)):
            Path(fp).write_bytes(self.encoded)
        else:
            fp.write(self.encoded)


def _format_from_name(fp: object) -> str | None:
    if not isinstance(fp, (str, os.PathLike)):
        return None
    return Image.registered_extensions().get(Path(fp).suffix.lower())


def check_image(data: bytes, min_pixels: int, max_pixels: int) -> None:
    """Raise ImageDecodeError unless `data` decodes to an image the model can take.

    Run at load time, so that a corrupt image is a counted load failure as it always was, not a
    crash in the middle of a run; the pixels are dropped at once. A JPEG is decoded at 1/8 scale
    (`draft`): its whole stream is still read, for a fraction of the work."""
    try:
        with Image.open(io.BytesIO(data)) as opened:
            smart_resize(opened.height, opened.width, min_pixels, max_pixels)
            if opened.format == "JPEG":
                opened.draft("RGB", (max(1, opened.width // 8), max(1, opened.height // 8)))
            opened.load()
    except (OSError, ValueError, Image.DecompressionBombError) as error:
        raise ImageDecodeError(f"cannot decode image ({len(data)} bytes): {error}") from error


def decode_for_model(data: bytes, min_pixels: int, max_pixels: int) -> Image.Image:
    """The image as the model and the sandbox see it (RGB, resized Qwen-style); an `EncodedImage`
    when the file's own bytes already hold exactly those pixels."""
    with Image.open(io.BytesIO(data)) as opened:
        file_format, file_mode = opened.format, opened.mode
    decoded = decode_image(data)
    image = resize_for_model(decoded, min_pixels, max_pixels)
    if image.size != decoded.size or file_mode != "RGB" or file_format not in DATA_URL_FORMATS:
        return image
    return EncodedImage.adopt(image, data, file_format)


class LazyImages(Sequence[Image.Image]):
    """An item's images, held encoded and decoded when read.

    A decoded image is remembered only while something else holds it (a weak reference): the
    rollout's engine requests, the sandbox and the written results all get the same object,
    decoded once, and its pixels are freed when the trajectory that used them is gone."""

    def __init__(self, encoded: Sequence[bytes], min_pixels: int, max_pixels: int) -> None:
        self.encoded = list(encoded)
        self.min_pixels, self.max_pixels = min_pixels, max_pixels
        self._decoded: list[weakref.ref[Image.Image] | None] = [None] * len(self.encoded)

    def __len__(self) -> int:
        return len(self.encoded)

    @overload
    def __getitem__(self, index: int) -> Image.Image: ...
    @overload
    def __getitem__(self, index: slice) -> list[Image.Image]: ...
    def __getitem__(self, index: int | slice) -> Image.Image | list[Image.Image]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        reference = self._decoded[index]
        image = reference() if reference is not None else None
        if image is None:
            image = decode_for_model(self.encoded[index], self.min_pixels, self.max_pixels)
            self._decoded[index] = weakref.ref(image)
        return image

    def decoded_count(self) -> int:
        """How many of these images are decoded in memory right now."""
        return sum(1 for reference in self._decoded if reference is not None and reference() is not None)

    def __repr__(self) -> str:
        sizes = ", ".join(f"{len(data)} B" for data in self.encoded)
        return f"LazyImages([{sizes}], decoded={self.decoded_count()})"
