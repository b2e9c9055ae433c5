"""One model evaluated on a list of benchmarks: per-benchmark reports, one summary table, MLflow runs.

    outputs = evaluate_benchmarks(base_config, [BenchmarkSpec(name="vstar", path="vstar_bench/"), ...])
    log_benchmark_runs(outputs, tracking_uri, experiment)   # a parent run, a child per benchmark

Every benchmark file is checked (exists, layout) before the model loads, so a wrong path or layout
costs seconds, not a model load. The engine is built once for all benchmarks (entry.py). Each
benchmark writes what `codedance eval` writes (results, stats, predictions TSV, viewer, plot) into
the one save folder; the summary (summary.py) goes beside them.
"""

from __future__ import annotations

import tempfile
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codedance_core.config.evaluation import BenchmarkSpec, EvalConfig
from codedance_core.config.model import EngineConfig
from codedance_core.errors import UserError
from codedance_core.evaluation.layouts import check_file
from codedance_core.evaluation.registry import dataset_name, get_benchmark
from codedance_core.evaluation.runner import EvalOutputs
from codedance_core.evaluation.summary import (
    REPORT_FILES,
    build_summary,
    log_summary,
    summary_entry,
    write_summary,
)
from codedance_core.storage import is_remote


@dataclass
class SuiteOutputs:
    """What a multi-benchmark evaluation produced: each benchmark's outputs and the summary."""

    specs: list[BenchmarkSpec]
    runs: list[EvalOutputs]
    summary: dict[str, Any]
    paths: dict[str, Path]


def local_benchmark(path: str, cache: Path) -> str:
    """A local path for a benchmark's file or folder; a remote one (s3://, hf://) is copied to `cache`."""
    if not is_remote(path):
        return path
    from codedance_core.storage.uris import filesystem

    fs, remote = filesystem(path)
    target = cache / remote.strip("/").replace("/", "_")
    if not target.exists():
        fs.get(remote, str(target), recursive=fs.isdir(remote))
    return str(target)


def check_benchmarks(specs: Sequence[BenchmarkSpec]) -> None:
    """Each benchmark's file exists and is in a layout its entry reads; output names do not collide."""
    if not specs:
        raise UserError("no benchmarks to evaluate", "list {name, path} entries in evaluation.benchmarks")
    names = []
    for spec in specs:
        benchmark = get_benchmark(spec.name)
        path = Path(spec.path)
        if not path.exists():
            raise UserError(
                f"benchmark data {path} does not exist",
                f"check the path of {spec.name} ({benchmark.expects})",
            )
        check_file(benchmark, path)
        names.append(dataset_name(benchmark, path))
    if repeated := [name for name, count in Counter(names).items() if count > 1]:
        raise UserError(
            f"two benchmarks would write the same files ({', '.join(repeated)})", "list each benchmark once"
        )


def benchmark_configs(base: EvalConfig, specs: Sequence[BenchmarkSpec]) -> list[EvalConfig]:
    """`base` once per benchmark: its entry, its file, its limit (else the base's)."""
    return [
        base.model_copy(
            update={
                "benchmark": spec.name,
                "data_path": spec.path,
                "data_source": "",
                "limit": spec.limit if spec.limit is not None else base.limit,
            }
        )
        for spec in specs
    ]


def evaluate_benchmarks(
    base: EvalConfig,
    specs: Sequence[BenchmarkSpec],
    engine: EngineConfig | None = None,
    show_progress: bool = True,
) -> SuiteOutputs:
    """Evaluate `base`'s model on every benchmark; write each one's reports and the summary table."""
    from codedance_core.evaluation.entry import run_evaluations

    with tempfile.TemporaryDirectory(prefix="codedance-benchmarks-") as cache:
        local = [spec.model_copy(update={"path": local_benchmark(spec.path, Path(cache))}) for spec in specs]
        check_benchmarks(local)
        runs = run_evaluations(benchmark_configs(base, local), show_progress, engine)
    entries = [summary_entry(run.stats, run.paths) for run in runs]
    summary = build_summary(str(runs[0].stats["model"]), base.prompt, entries)
    paths = write_summary(summary, Path(base.save_path))
    return SuiteOutputs(list(specs), runs, summary, paths)


def log_benchmark_runs(
    outputs: SuiteOutputs,
    tracking_uri: str,
    experiment: str,
    parent_run_id: str | None = None,
    artifact_root: str | None = None,
) -> str:
    """One parent MLflow run (the summary) with a child run per benchmark (its stats and files);
    returns the parent's id."""
    from codedance_core.tracking import tracked_run

    model = str(outputs.summary["model"])
    tags = {"codedance.flow": "eval-suite", "codedance.model": model}
    with tracked_run(
        tracking_uri, experiment, f"eval-suite {model}", parent_run_id, tags, artifact_root
    ) as parent:
        parent.log_params(
            {
                "model": model,
                "prompt": outputs.summary["prompt"],
                "benchmarks": {spec.name: spec.model_dump(mode="json") for spec in outputs.specs},
            }
        )
        log_summary(parent, outputs.summary, outputs.paths)
        for spec, run in zip(outputs.specs, outputs.runs, strict=True):
            child_tags = {"codedance.stage": "evaluate", "codedance.benchmark": spec.name}
            dataset = str(run.stats["dataset"])
            with tracked_run(
                tracking_uri, experiment, f"evaluate-{dataset}", parent.run_id, child_tags, artifact_root
            ) as child:
                child.log_params(
                    {
                        "benchmark": spec.name,
                        "path": spec.path,
                        "limit": spec.limit,
                        "prompt": run.stats.get("prompt"),
                    }
                )
                child.log_metrics(numeric_stats(run.stats))
                for key in REPORT_FILES:
                    if run.paths[key].exists():
                        child.log_artifact(run.paths[key], "evaluation")
        return parent.run_id


def numeric_stats(stats: dict[str, Any]) -> dict[str, float]:
    """The stats that are numbers (MLflow metrics), the interval's bounds included."""
    metrics = {
        k: float(v) for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)
    }
    low, high = stats.get("accuracy_ci95") or (None, None)
    if low is not None:
        metrics["accuracy_ci95_low"], metrics["accuracy_ci95_high"] = float(low), float(high)
    return metrics
