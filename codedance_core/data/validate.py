"""Validation with a quarantine: every row is either kept or set aside with exactly one reason.

Bad rows must never crash a stage nor vanish: `validate_file` streams a parquet file batch
by batch, checks each row (schema, then semantics, then every image decoded in full), and
writes two files: the good rows, and the quarantine (the bad rows unchanged, plus `reason`,
one code from `Reason`, and `reason_detail`, a human explanation). good + quarantined ==
input rows, always; the report says so and the tests hold it to that.

A row with several problems gets the most fundamental one (a missing field before an empty
answer before a broken image), so counts per reason are stable and fixes can go in order.
Images are decoded in a small thread pool: Pillow releases the GIL while decoding, so two
cores check twice the images, and memory stays bounded by the batch size.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

import pyarrow as pa
from pydantic import BaseModel, Field, ValidationError

from codedance_core.config.data import DataConfig, ImageLimits
from codedance_core.data.images import ImageProblem, inspect_image
from codedance_core.data.io import NotParquetError, ParquetSink, ParquetSource, open_parquet
from codedance_core.data.quarantine import (
    QUARANTINE_COLUMNS,
    NoValidRowsError,
    Quarantine,
    columns_of,
    with_reasons,
)
from codedance_core.data.schemas import (
    SCHEMA_MODELS,
    EvalItem,
    ImageRef,
    RowModel,
    SchemaName,
    image_marker_count,
    row_messages,
)
from codedance_core.storage import ArtifactRef, filesystem, join_uri


class Reason(StrEnum):
    """Why a row was quarantined, most fundamental first."""

    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    BAD_MESSAGES = "bad_messages"
    NO_IMAGE = "no_image"
    EMPTY_ANSWER = "empty_answer"
    IMAGE_TOKEN_MISMATCH = "image_token_mismatch"
    IMAGE_UNREADABLE = "image_unreadable"
    IMAGE_TOO_LARGE = "image_too_large"
    IMAGE_TOO_SMALL = "image_too_small"
    IMAGE_TRUNCATED = "image_truncated"
    IMAGE_UNDECODABLE = "image_undecodable"


REASON_ORDER = {reason.value: rank for rank, reason in enumerate(Reason)}


@dataclass(frozen=True)
class RowProblem:
    reason: Reason
    detail: str


def problem_from_validation_error(error: ValidationError) -> RowProblem:
    """The most fundamental of a pydantic error's problems, as a reason and a detail."""
    candidates = []
    for item in error.errors(include_url=False, include_input=False):
        kind = item["type"]
        if kind in REASON_ORDER:
            reason = Reason(kind)
        else:
            reason = Reason.MISSING_FIELD if kind == "missing" else Reason.WRONG_TYPE
        location = ".".join(str(part) for part in item["loc"]) or "row"
        candidates.append((REASON_ORDER[reason.value], reason, f"{location}: {item['msg']}"))
    _, reason, detail = min(candidates, key=lambda candidate: candidate[0])
    return RowProblem(reason, detail)


class RowChecker:
    """Checks one row (a dict as read from parquet) against a schema; thread-safe."""

    def __init__(
        self,
        schema: SchemaName = "rl",
        limits: ImageLimits | None = None,
        base_uri: str | None = None,
        check_image_tokens: bool = True,
    ):
        self.model = SCHEMA_MODELS[schema]
        self.limits = limits or ImageLimits()
        self.base_uri = base_uri
        self.check_image_tokens = check_image_tokens

    def check(self, row: dict[str, Any]) -> RowProblem | None:
        """None when the row is good, else the one reason it is not."""
        try:
            parsed: RowModel = self.model.model_validate(row)
        except ValidationError as error:
            return problem_from_validation_error(error)
        images: list[ImageRef] = parsed.images  # type: ignore[attr-defined]
        if self.check_image_tokens and not isinstance(parsed, EvalItem):
            markers = image_marker_count(row_messages(parsed))
            if markers != len(images):
                detail = f"{markers} <image> markers for {len(images)} images"
                return RowProblem(Reason.IMAGE_TOKEN_MISMATCH, detail)
        for index, image in enumerate(images):
            problem = self._check_image(index, image)
            if problem is not None:
                return problem
        return None

    def _check_image(self, index: int, image: ImageRef) -> RowProblem | None:
        try:
            data = image.bytes or self._read_path(image.path or "")
            inspect_image(data, self.limits)
        except ImageProblem as problem:
            return RowProblem(Reason(problem.reason), f"images[{index}]: {problem.detail}")
        except OSError as exc:
            return RowProblem(Reason.IMAGE_UNREADABLE, f"images[{index}]: {image.path}: {type(exc).__name__}")
        return None

    def _read_path(self, path: str) -> bytes:
        """An image stored by path: absolute, a URI, or relative to the dataset's folder."""
        if "://" not in path and not path.startswith("/") and self.base_uri:
            path = join_uri(self.base_uri, path)
        fs, fs_path = filesystem(path)
        with fs.open(fs_path, "rb") as handle:
            return handle.read()


class ValidationReport(BaseModel):
    """What `validate_file` found; good_rows + bad_rows == total_rows."""

    uri: str = Field(description="The file that was validated.")
    schema_name: str = Field(description="rl, sft or eval.")
    total_rows: int
    good_rows: int
    bad_rows: int
    reasons: dict[str, int] = Field(description="Quarantined rows per reason code.")
    examples: dict[str, str] = Field(description="The first detail seen for each reason.")
    good_ref: ArtifactRef | None = None
    quarantine_ref: ArtifactRef | None = None
    seconds: float = 0.0

    @property
    def rows_per_s(self) -> float:
        return self.total_rows / self.seconds if self.seconds > 0 else 0.0


def quarantine_schema(schema: pa.Schema) -> pa.Schema:
    """The input's schema with the reason columns appended (replacing any from an earlier pass)."""
    kept = pa.schema([f for f in schema if f.name not in QUARANTINE_COLUMNS], metadata=schema.metadata)
    return kept.append(pa.field("reason", pa.string())).append(pa.field("reason_detail", pa.string()))


def validate_file(
    uri: str,
    schema: SchemaName = "rl",
    good_out: str | None = None,
    quarantine_out: str | None = None,
    config: DataConfig | None = None,
) -> ValidationReport:
    """Check every row of a parquet file; write good rows and quarantined rows where asked."""
    config = config or DataConfig()
    started = time.perf_counter()
    report = ValidationReport(
        uri=uri, schema_name=schema, total_rows=0, good_rows=0, bad_rows=0, reasons={}, examples={}
    )
    base_uri = uri.rsplit("/", 1)[0] if "/" in uri else "."
    checker = RowChecker(schema, config.image_limits, base_uri, config.check_image_tokens)
    with open_parquet(uri) as source, ExitStack() as sinks, ThreadPoolExecutor(config.validate_workers) as pool:
        good_sink = bad_sink = None
        if good_out:
            good_sink = sinks.enter_context(ParquetSink.open(good_out, source.schema, config.shard_rows))
        if quarantine_out:
            bad_schema = quarantine_schema(source.schema)
            bad_sink = sinks.enter_context(ParquetSink.open(quarantine_out, bad_schema, config.shard_rows))
        for batch in _batches(source, config.batch_rows):
            problems = list(pool.map(checker.check, batch.to_pylist()))
            _record(report, problems)
            if good_sink is not None:
                good_sink.write(batch.filter(pa.array([p is None for p in problems])))
            if bad_sink is not None:
                bad_sink.write(_quarantine_batch(batch, problems))
    report.good_ref = good_sink.ref if good_sink else None
    report.quarantine_ref = bad_sink.ref if bad_sink else None
    report.seconds = time.perf_counter() - started
    return report


def _batches(source: ParquetSource, batch_rows: int) -> Iterator[pa.RecordBatch]:
    """Record batches; a file that breaks mid-way is an unreadable file, not a crash."""
    try:
        yield from source.file.iter_batches(batch_size=batch_rows, use_threads=False)
    except (pa.ArrowException, OSError) as exc:
        first_line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise NotParquetError(f"{source.uri}: corrupt parquet data ({first_line})") from None


def _record(report: ValidationReport, problems: list[RowProblem | None]) -> None:
    for problem in problems:
        report.total_rows += 1
        if problem is None:
            report.good_rows += 1
            continue
        report.bad_rows += 1
        report.reasons[problem.reason.value] = report.reasons.get(problem.reason.value, 0) + 1
        report.examples.setdefault(problem.reason.value, problem.detail)


def _quarantine_batch(batch: pa.RecordBatch, problems: list[RowProblem | None]) -> pa.Table:
    bad = [i for i, problem in enumerate(problems) if problem is not None]
    table = pa.Table.from_batches([batch]).take(pa.array(bad, type=pa.int64()))
    reasons = [problems[i].reason.value for i in bad]  # type: ignore[union-attr]
    details = [problems[i].detail for i in bad]  # type: ignore[union-attr]
    return with_reasons(table, reasons, details)


def expected_columns(schema: SchemaName) -> list[str]:
    """The columns a row of `schema` must have (RL rows may spell `prompt` as `messages`)."""
    names = [name for name, info in SCHEMA_MODELS[schema].model_fields.items() if info.is_required()]
    return [f"{name} (or messages)" if schema == "rl" and name == "prompt" else name for name in names]


def split_rows(
    data: str | Iterable[dict[str, Any]], schema: SchemaName = "rl", config: DataConfig | None = None
) -> tuple[list[dict[str, Any]], Quarantine]:
    """The good rows of a parquet URI (or of rows given), kept in memory, and the quarantine of the
    bad ones, each with the validator's reason. Raises NoValidRowsError when no row is good."""
    config = config or DataConfig()
    good: list[dict[str, Any]] = []
    name = data if isinstance(data, str) else "the rows given"
    base_uri = data.rsplit("/", 1)[0] if isinstance(data, str) and "/" in data else None
    checker = RowChecker(schema, config.image_limits, base_uri, config.check_image_tokens)
    with ExitStack() as stack:
        pool = stack.enter_context(ThreadPoolExecutor(config.validate_workers))
        if isinstance(data, str):
            source = stack.enter_context(open_parquet(data))
            quarantine = Quarantine(schema=source.schema)
            batches: Iterable[list[dict[str, Any]]] = (b.to_pylist() for b in _batches(source, config.batch_rows))
            columns = columns_of([], source.schema)
        else:
            rows = list(data)
            quarantine, batches, columns = Quarantine(), [rows], columns_of(rows)
        for rows in batches:
            for row, problem in zip(rows, pool.map(checker.check, rows), strict=True):
                if problem is None:
                    good.append(row)
                else:
                    quarantine.add(row, problem.reason.value, problem.detail)
    if not good:
        example = next(iter(quarantine.examples().values()), "")
        raise NoValidRowsError(name, columns, expected_columns(schema), quarantine.counts(), example, len(quarantine))
    return good, quarantine
