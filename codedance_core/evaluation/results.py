"""Result rows and the result file: one JSON line per trajectory, EVERY trajectory, appended as it ends.

The original wrote rows only for some items (those with few turns were dropped) and lost
everything on a crash. Here a row is appended (and flushed) the moment its item is scored, so
a killed run resumes where it stopped: rows with status `scored` are kept and skipped; rows
that failed for a reason worth retrying (a rollout or judge error) are run again and the newer
row wins. At the end the file is rewritten in benchmark order, one row per trajectory.

Images are not inlined in the jsonl (a 7B run over HR-Bench 8K would be gigabytes of base64):
they are written as PNG files in a folder beside it and referenced by relative path, in the
order of the `<image>` markers of the conversation.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image

from codedance_core.agent.trajectory import RolloutItem, Trajectory
from codedance_core.evaluation.registry import LoadFailure
from codedance_core.rewards.score import TrajectoryScore

STATUS_SCORED = "scored"
ROLLOUT_FAILURES = {"engine_error", "internal_error"}
RowKey = tuple[str, int]


def safe_name(text: str) -> str:
    """A string usable in a file name (model names carry slashes, item ids colons)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "x"


def output_paths(save_path: Path, model: str, dataset: str) -> dict[str, Path]:
    """Where a run's outputs go; every name carries both the model and the dataset."""
    stem = f"{safe_name(model)}_{safe_name(dataset)}"
    return {
        "result": save_path / f"result_{stem}.jsonl",
        "stats": save_path / f"stats_{stem}.json",
        "viewer": save_path / f"viewer_{stem}.html",
        "plot": save_path / f"plot_{stem}.png",
        "predictions": save_path / f"predictions_{stem}.tsv",
        "images": save_path / f"images_{stem}",
    }


def row_key(row: Mapping[str, Any]) -> RowKey:
    return str(row["item_id"]), int(row["sample_index"])


def row_status(trajectory: Trajectory, score: TrajectoryScore) -> str:
    """scored, rollout_error (infrastructure: retried on resume) or judge_error (also retried)."""
    if trajectory.finish_reason in ROLLOUT_FAILURES:
        return "rollout_error"
    return score.status


def trajectory_row(
    trajectory: Trajectory, score: TrajectoryScore, image_paths: Sequence[str], model: str
) -> dict[str, Any]:
    """One trajectory with its score, as a JSON-ready result row."""
    item = trajectory.item
    status = row_status(trajectory, score)
    accuracy = score.accuracy if status == STATUS_SCORED else 0.0
    return {
        "item_id": item.item_id,
        "sample_index": trajectory.sample_index,
        "data_source": item.data_source,
        "model": model,
        "question": item.question,
        "options": item.options,
        "gold": item.gold,
        "prediction": trajectory.answer if trajectory.answer is not None else score.extracted,
        "acc": accuracy,
        "judge_score": score.accuracy if score.rule == "judge" and score.status == STATUS_SCORED else None,
        "rule": score.rule,
        "score_detail": score.detail,
        "status": status,
        "finish_reason": trajectory.finish_reason,
        "error": trajectory.error if status != "judge_error" else score.detail,
        "turns": len(trajectory.turns),
        "tool_calls": trajectory.tool_calls,
        "tool_successes": trajectory.tool_successes,
        "tool_statuses": trajectory.tool_statuses,
        "conversation": trajectory.messages,
        "images": list(image_paths),
        "turn_records": [asdict(turn) for turn in trajectory.turns],
    }


def failure_row(failure: LoadFailure, model: str, samples: int) -> list[dict[str, Any]]:
    """Rows for an item that could not be loaded: in the results, and 0 in every denominator."""
    return [
        {
            "item_id": failure.item_id,
            "sample_index": sample,
            "data_source": failure.data_source,
            "model": model,
            "question": "",
            "options": None,
            "gold": "",
            "prediction": None,
            "acc": 0.0,
            "judge_score": None,
            "rule": "load_error",
            "score_detail": failure.reason,
            "status": "load_error",
            "finish_reason": "load_error",
            "error": failure.reason,
            "turns": 0,
            "tool_calls": 0,
            "tool_successes": 0,
            "tool_statuses": [],
            "conversation": [],
            "images": [],
            "turn_records": [],
        }
        for sample in range(samples)
    ]


def write_images(trajectory: Trajectory, images_dir: Path, relative_to: Path) -> list[str]:
    """Save the trajectory's images (input ones once per item) and return their relative paths."""
    item_stem = safe_name(trajectory.item.item_id)
    images_dir.mkdir(parents=True, exist_ok=True)
    n_input = len(trajectory.item.images)
    paths = []
    for index, image in enumerate(trajectory.images):
        if index < n_input:
            path = images_dir / f"{item_stem}_input{index}.png"
        else:
            path = images_dir / f"{item_stem}_s{trajectory.sample_index}_out{index - n_input}.png"
        if index >= n_input or not path.exists():
            _save_png(image, path)
        paths.append(path.relative_to(relative_to).as_posix())
    return paths


def staged_name(path: Path) -> Path:
    """A temporary name beside `path`, unique to this process and call: two writers never share one."""
    return path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Write through a unique staged file, then rename it over `path`; no staged file is left behind."""
    staged = staged_name(path)
    try:
        write(staged)
        os.replace(staged, path)
    finally:
        staged.unlink(missing_ok=True)


def _save_png(image: Image.Image, path: Path) -> None:
    replace_atomically(path, lambda staged: image.save(staged, format="PNG"))


class ResultFile:
    """The append-only jsonl of a run; the newest row of a (item, sample) wins."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[RowKey, dict[str, Any]]:
        """Rows already written (a torn last line from a crash is ignored)."""
        rows: dict[RowKey, dict[str, Any]] = {}
        if not self.path.exists():
            return rows
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                continue
            rows[row_key(row)] = row
        return rows

    def append(self, rows: Iterable[Mapping[str, Any]]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a+", encoding="utf-8") as handle:
            if handle.tell() > 0:  # a torn last line from a crash must not swallow the next row
                handle.seek(handle.tell() - 1)
                if handle.read(1) != "\n":
                    handle.write("\n")
            for row in rows:
                handle.write(json.dumps(row, ensure_ascii=False) + "\n")
            handle.flush()
            os.fsync(handle.fileno())

    def rewrite(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Replace the file atomically with exactly `rows` (one per trajectory, benchmark order)."""

        def write(staged: Path) -> None:
            with staged.open("w", encoding="utf-8") as handle:
                for row in rows:
                    handle.write(json.dumps(row, ensure_ascii=False) + "\n")

        replace_atomically(self.path, write)


def scored_keys(rows: Mapping[RowKey, Mapping[str, Any]]) -> set[RowKey]:
    return {key for key, row in rows.items() if row.get("status") == STATUS_SCORED}


def item_keys(item: RolloutItem | LoadFailure, samples: int) -> list[RowKey]:
    return [(item.item_id, sample) for sample in range(samples)]
