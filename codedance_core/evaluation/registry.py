"""The benchmark registry: each entry names the file layout it reads and the scorer its answers need.

Nothing is downloaded: the user points `--data_path` at a file they already have, and the
entry says what it expects, so a wrong file fails with a message naming the right layout.
Loading never stops at a bad row: the row becomes a `LoadFailure` that the runner writes to
the results and counts in every denominator (a benchmark of 191 items stays 191 items).
Items hold their images encoded (`loaders.LazyImages`): each image is checked to decode when
the file is loaded, and decoded for good only when its item is rolled out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from codedance_core.agent.items import item_from_eval_row, item_from_rl_row
from codedance_core.agent.trajectory import RolloutItem
from codedance_core.data.quarantine import NoValidRowsError
from codedance_core.evaluation.layouts import check_layout, with_original_prompt
from codedance_core.evaluation.loaders import (
    BenchmarkFormatError,
    ColumnHints,
    ImageResolver,
    LazyImages,
    check_image,
    expected_columns,
    read_table,
    resolve_rl_images,
    to_eval_row,
)

Layout = Literal["eval", "rl", "auto"]
TSV_LAYOUT = "VLMEvalKit TSV (index, image as base64, question, answer, options in columns A, B, ...)"


@dataclass(frozen=True)
class Benchmark:
    """A loader (file layout + column hints) and a scorer choice."""

    name: str
    expects: str
    data_source: str
    # An AnswerKind value or a benchmark's own rule (rewards/benchmark_rules.py: its authors' scoring);
    # None: the reward config's choice for the data_source.
    scorer: str | None = None
    layout: Layout = "eval"
    hints: ColumnHints = field(default_factory=ColumnHints)
    folder_file: str | None = None  # a folder is accepted: this file inside it holds the rows


@dataclass(frozen=True)
class LoadFailure:
    """A row that could not become an item, and why."""

    item_id: str
    reason: str
    data_source: str


def _entries() -> list[Benchmark]:
    return [
        Benchmark(
            "suite",
            "the task suite's held-out split: RL-layout parquet (`codedance data synth --split test`)",
            "",
            layout="rl",
        ),
        Benchmark(
            "parquet",
            "parquet/jsonl in the original's evaluation layout: RL rows (prompt, images, "
            "reward_model.ground_truth, data_source) or eval rows (question, answer, image(s), data_source)",
            "",
            layout="auto",
        ),
        Benchmark("tsv", TSV_LAYOUT, "tsv"),
        Benchmark(
            "vstar",
            "V*Bench folder holding test_questions.jsonl (image path relative to the folder, "
            "text, label, category), or its VLMEvalKit TSV",
            "vstar",
            scorer="vstar",
            hints=ColumnHints(question=("text", "question"), answer=("label", "answer")),
            folder_file="test_questions.jsonl",
        ),
        Benchmark(
            "hrbench_4k", "HR-Bench 4K: " + TSV_LAYOUT + " (hr_bench_4k.tsv)", "hrbench_4k", scorer="hrbench"
        ),
        Benchmark(
            "hrbench_8k", "HR-Bench 8K: " + TSV_LAYOUT + " (hr_bench_8k.tsv)", "hrbench_8k", scorer="hrbench"
        ),
        Benchmark(
            "countbench",
            "CountBenchQA parquet (image, question, number)",
            "countbench",
            scorer="count",
            hints=ColumnHints(question=("question",), answer=("number", "answer")),
        ),
        Benchmark(
            "pixmo_count",
            "PixMo-Count parquet/jsonl with local images (image or image_path, label, count)",
            "pixmo_count",
            scorer="count",
            hints=ColumnHints(question_template="How many {label} are in the image?", answer=("count",)),
        ),
        Benchmark(
            "chartqa",
            "ChartQA parquet (image, query, label)",
            "chartqa",
            scorer="chartqa",
            hints=ColumnHints(question=("query", "question"), answer=("label", "answer")),
        ),
        Benchmark(
            "mathvista",
            "MathVista parquet (question, decoded_image or image, choices, answer), or its TSV",
            "mathvista",
            scorer="mathvista",
            hints=ColumnHints(metadata=("question_type", "answer_type", "precision", "unit", "task", "category")),
        ),
        Benchmark(
            "mathverse",
            "MathVerse parquet (question, image, answer, question_type), or its TSV",
            "mathverse",
            scorer="mathverse",
            hints=ColumnHints(question=("question", "query_wo")),
        ),
        Benchmark(
            "mathvision",
            "MathVision parquet (question, options, decoded_image or image, answer), or its TSV",
            "mathvision",
            scorer="mathvision",
            hints=ColumnHints(metadata=("level", "subject")),
        ),
        Benchmark(
            "wemath",
            "WeMath: " + TSV_LAYOUT + ", or its parquet (question, option, answer, image_path)",
            "wemath",
            scorer="wemath",
        ),
    ]


BENCHMARKS: dict[str, Benchmark] = {entry.name: entry for entry in _entries()}


def get_benchmark(name: str) -> Benchmark:
    try:
        return BENCHMARKS[name]
    except KeyError:
        raise ValueError(f"unknown benchmark {name!r}; known: {', '.join(BENCHMARKS)}") from None


def data_file(benchmark: Benchmark, path: Path) -> Path:
    """The file holding the rows: the path itself, or the benchmark's file inside a folder."""
    if path.is_dir():
        if benchmark.folder_file is None or not (path / benchmark.folder_file).is_file():
            raise BenchmarkFormatError(f"{path} is a folder; {benchmark.name} expects {benchmark.expects}")
        return path / benchmark.folder_file
    return path


def dataset_name(benchmark: Benchmark, path: Path, data_source: str = "") -> str:
    """The name used in output files: the override, the benchmark's source, or the file's stem."""
    return data_source or benchmark.data_source or path.stem


def load_items(
    benchmark: Benchmark,
    path: str | Path,
    min_pixels: int,
    max_pixels: int,
    *,
    limit: int | None = None,
    data_source: str = "",
    prompt: str = "original",
) -> list[RolloutItem | LoadFailure]:
    """The benchmark's items in file order (at most `limit`); bad rows as LoadFailure.

    `prompt`: "original" (the original evaluation script's prompt for every row) or "row" (a row's
    own prompt where it has one); a file in no layout the benchmark reads is refused (layouts.py)."""
    source = data_file(benchmark, Path(path))
    images = ImageResolver(source.parent)
    loaded: list[RolloutItem | LoadFailure] = []
    columns: dict[str, None] = {}
    for index, row in _limited(read_table(source), limit):
        if index == 0:
            check_layout(benchmark, str(source), row)
        columns.update(dict.fromkeys(row))
        loaded.append(_load_one(benchmark, row, index, images, min_pixels, max_pixels, data_source, prompt))
    if not loaded:
        raise BenchmarkFormatError(f"{source}: no rows; {benchmark.name} expects {benchmark.expects}")
    failures = [item for item in loaded if isinstance(item, LoadFailure)]
    if len(failures) == len(loaded):  # the wrong file or layout: an error, never a score of 0
        reasons = Counter(failure.reason.split(":", 1)[0] for failure in failures)
        expected = expected_columns(benchmark.layout, benchmark.hints)
        raise NoValidRowsError(str(source), list(columns), expected, reasons, failures[0].reason, len(failures))
    return loaded


def _limited(rows: Iterator[dict[str, Any]], limit: int | None) -> Iterator[tuple[int, dict[str, Any]]]:
    for index, row in enumerate(rows):
        if limit is not None and index >= limit:
            return
        yield index, row


def _load_one(
    benchmark: Benchmark,
    row: dict[str, Any],
    index: int,
    images: ImageResolver,
    min_pixels: int,
    max_pixels: int,
    data_source: str,
    prompt: str = "original",
) -> RolloutItem | LoadFailure:
    source_name = data_source or str(row.get("data_source") or benchmark.data_source or "eval")
    try:
        if _is_rl_row(benchmark, row):
            resolved = resolve_rl_images(row, images)
            encoded = _encoded_images(resolved, min_pixels, max_pixels)
            item = item_from_rl_row(resolved, index, min_pixels, max_pixels, images=encoded)
            if data_source:
                item.data_source = data_source
            if prompt == "original":
                item = with_original_prompt(item)
        else:
            eval_row = to_eval_row(row, index, source_name, images, benchmark.hints)
            encoded = _encoded_images(eval_row, min_pixels, max_pixels)
            item = item_from_eval_row(eval_row, index, min_pixels, max_pixels, images=encoded)
        return item
    except (ValueError, KeyError, TypeError, OSError) as error:  # pydantic errors are ValueErrors
        item_id = str(row.get("id") or row.get("index") or index)
        return LoadFailure(
            f"{source_name}:{item_id}", f"{type(error).__name__}: {str(error)[:300]}", source_name
        )


def _encoded_images(row: dict[str, Any], min_pixels: int, max_pixels: int) -> LazyImages:
    """The row's images (already resolved to bytes) kept encoded, each checked to decode."""
    encoded = [ref["bytes"] for ref in row.get("images") or []]
    for data in encoded:
        check_image(data, min_pixels, max_pixels)
    return LazyImages(encoded, min_pixels, max_pixels)


def _is_rl_row(benchmark: Benchmark, row: dict[str, Any]) -> bool:
    if benchmark.layout != "auto":
        return benchmark.layout == "rl"
    return "reward_model" in row and ("prompt" in row or "messages" in row)
