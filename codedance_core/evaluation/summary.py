"""The table of a multi-benchmark evaluation: each benchmark's accuracy and 95% interval beside the
paper's number, as JSON (for tools) and markdown (for people), and in MLflow.

The numbers come from each benchmark's stats file (stats.py: Wilson with one sample per item, a
bootstrap over items with k), so the table and the per-benchmark reports never disagree. Items that
failed to load or roll out are in `items` and count as wrong; `failed` says how many there were.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from codedance_core.evaluation.paper_results import PAPER_MODEL, PAPER_SOURCE, paper_accuracy
from codedance_core.evaluation.results import safe_name

# Per-benchmark files logged with each benchmark's MLflow run.
REPORT_FILES = ("stats", "predictions", "viewer", "plot")


def summary_entry(stats: Mapping[str, Any], files: Mapping[str, str | Path] | None = None) -> dict[str, Any]:
    """One benchmark's line of the table, from its stats."""
    low, high = stats["accuracy_ci95"]
    samples = max(int(stats.get("samples_per_item") or 1), 1)
    failed = sum(count for status, count in (stats.get("statuses") or {}).items() if status != "scored")
    accuracy = 100 * float(stats["accuracy"])
    paper = paper_accuracy(str(stats["benchmark"]))
    return {
        "benchmark": stats["benchmark"],
        "dataset": stats["dataset"],
        "items": stats["items"],
        "samples_per_item": samples,
        "failed_items": -(-failed // samples),  # trajectories not scored, as items (rounded up)
        "accuracy": round(accuracy, 2),
        "ci95": [round(100 * low, 2), round(100 * high, 2)],
        "ci_method": stats.get("ci_method", ""),
        "paper": paper,
        "delta": None if paper is None else round(accuracy - paper, 2),
        "paper_in_ci95": None if paper is None else bool(100 * low <= paper <= 100 * high),
        "files": {key: Path(value).name for key, value in (files or {}).items() if key in REPORT_FILES},
    }


def build_summary(model: str, prompt: str, entries: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    return {
        "model": model,
        "prompt": prompt,
        "accuracy_unit": "percent",
        "paper_model": PAPER_MODEL,
        "paper_source": PAPER_SOURCE,
        "benchmarks": [dict(entry) for entry in entries],
    }


def summary_markdown(summary: Mapping[str, Any]) -> str:
    """The table as markdown: one row per benchmark, ours with its interval beside the paper's."""
    lines = [
        f"# {summary['model']} on {len(summary['benchmarks'])} benchmarks (prompt: {summary['prompt']})",
        "",
        f"| benchmark | items | failed | accuracy % | 95% CI | {summary['paper_model']} (paper) % | delta | paper in CI |",
        "| --- | ---: | ---: | ---: | --- | ---: | ---: | --- |",
    ]
    for entry in summary["benchmarks"]:
        low, high = entry["ci95"]
        paper = "n/a" if entry["paper"] is None else f"{entry['paper']:.1f}"
        delta = "" if entry["delta"] is None else f"{entry['delta']:+.1f}"
        inside = {None: "", True: "yes", False: "no"}[entry["paper_in_ci95"]]
        name = (
            entry["benchmark"]
            if entry["dataset"] == entry["benchmark"]
            else f"{entry['benchmark']} ({entry['dataset']})"
        )
        lines.append(
            f"| {name} | {entry['items']} | {entry['failed_items']} | {entry['accuracy']:.1f} | "
            f"[{low:.1f}, {high:.1f}] | {paper} | {delta} | {inside} |"
        )
    lines += ["", f"Paper numbers: {summary['paper_source']}. Failed items count as wrong."]
    return "\n".join(lines) + "\n"


def summary_paths(folder: Path, model: str) -> dict[str, Path]:
    return {
        "summary_md": folder / f"summary_{safe_name(model)}.md",
        "summary_json": folder / f"summary_{safe_name(model)}.json",
    }


def write_summary(summary: Mapping[str, Any], folder: Path) -> dict[str, Path]:
    """summary_{model}.md and .json in `folder`; returns their paths."""
    paths = summary_paths(folder, str(summary["model"]))
    folder.mkdir(parents=True, exist_ok=True)
    paths["summary_json"].write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    paths["summary_md"].write_text(summary_markdown(summary), encoding="utf-8")
    return paths


def summary_metrics(summary: Mapping[str, Any]) -> dict[str, float]:
    """`{dataset}.accuracy` and its interval, in percent: the parent run's metrics."""
    metrics: dict[str, float] = {}
    for entry in summary["benchmarks"]:
        name = entry["dataset"]
        metrics[f"{name}.accuracy"] = entry["accuracy"]
        metrics[f"{name}.ci95_low"], metrics[f"{name}.ci95_high"] = entry["ci95"]
        metrics[f"{name}.failed_items"] = entry["failed_items"]
    return metrics


def log_summary(run: Any, summary: Mapping[str, Any], paths: Mapping[str, Path]) -> None:
    """The table on a (parent) MLflow run (a `RunTracker`): metrics per benchmark and both files."""
    run.log_metrics(summary_metrics(summary))
    run.set_tags({"codedance.prompt": str(summary["prompt"])})
    for path in paths.values():
        run.log_artifact(path, "evaluation")
