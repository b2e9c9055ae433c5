"""The evaluation stage: one checkpoint scored on one benchmark, on a worker with the stage's resources.

The worker runs the profile's engine over the checkpoint (transformers in-process on the tiny
profile, vLLM on a GPU at paper scale) through the same tool loop and sandbox as training, and
stores the results folder (per-item results, stats, the trajectory viewer and a plot) in the store.
The stage logs the stats and the human-facing files to its MLflow run.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from codedance_core.config.agent import RolloutSettings
from codedance_core.config.evaluation import BenchmarkSpec, EvalStageConfig
from codedance_core.config.model import EngineConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.stages.context import StageContext, log_outputs
from codedance_core.stages.keys import stage
from codedance_core.stages.launch import LaunchPlan
from codedance_core.stages.results import Evaluation
from codedance_core.storage import ArtifactRef, ArtifactStore, is_remote

# What of an evaluation's results folder goes to MLflow: the viewer, the plot, the stats and the
# VLMEvalKit-style predictions.
LOGGED_SUFFIXES = (".html", ".png", ".json", ".tsv")


def evaluation_plan(config: EvalStageConfig, engine: EngineConfig) -> LaunchPlan:
    return LaunchPlan.for_task(
        "evaluate", "codedance_core.stages.evaluation:evaluate_worker", cpus=config.cpus, gpus=config.gpus,
        engine=engine.kind, details={"benchmark": config.benchmark, "samples per item": config.samples},
    )


@stage("evaluate")
def evaluate(
    config: EvalStageConfig, rollout: RolloutSettings, rewards: RewardConfig, sandbox: SandboxConfig,
    engine: EngineConfig, pixels: tuple[int, int], model: ArtifactRef, benchmark: ArtifactRef, label: str,
    ctx: StageContext,
) -> Evaluation:
    """Evaluate one checkpoint; its stats and where the results (viewer included) are."""
    out = f"eval/{label}-{model.short_digest}-{benchmark.short_digest}-{config.digest()[:8]}"
    params = {"evaluation": config.model_dump(mode="json"), "rollout": rollout.model_dump(mode="json")}
    with ctx.stage_run(f"evaluate-{label}", params=params, inputs={"model": model, "benchmark": benchmark}) as run:
        call = EvalCall(config, rollout, rewards, sandbox, engine, tuple(pixels), model, benchmark, ctx.store_root, out)
        stats, results = ctx.launch(evaluation_plan(config, engine), call)
        if run is not None:
            run.log_metrics({k: float(v) for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
            for path in sorted(ctx.store().local_directory(results).glob("*")):
                if path.suffix in LOGGED_SUFFIXES:
                    run.log_artifact(path, "evaluation")
        log_outputs(run, {"eval-results": results})
    return Evaluation(label=label, model=model, benchmark=benchmark, stats=stats, results=results)


def result_rows(store: ArtifactStore, evaluation: Evaluation) -> list[dict[str, Any]]:
    """The per-item result rows of an evaluation, read back from its stored results folder."""
    folder = store.local_directory(evaluation.results)
    [path] = sorted(folder.glob("result_*.jsonl"))
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@dataclass(frozen=True)
class EvalCall:
    config: EvalStageConfig
    rollout: RolloutSettings
    rewards: RewardConfig
    sandbox: SandboxConfig
    engine: EngineConfig
    pixels: tuple[int, int]
    model: ArtifactRef
    benchmark: ArtifactRef
    store_root: str
    out: str


def evaluate_worker(call: EvalCall) -> tuple[dict[str, Any], ArtifactRef]:
    """Evaluate a stored checkpoint; store results, stats, viewer and plot."""
    from codedance_core.evaluation.entry import run_evaluation

    store = ArtifactStore(call.store_root)
    with tempfile.TemporaryDirectory() as tmp:
        data_path = _local_copy(store, call.benchmark, Path(tmp)) if is_remote(store.root) else call.benchmark.uri
        config = call.config.for_checkpoint(
            data_path, str(store.local_directory(call.model)), str(Path(tmp) / "out"), call.rewards, call.sandbox,
            *call.pixels, device=call.engine.device, rollout=call.rollout,
        )
        outputs = run_evaluation(config, show_progress=False, engine=call.engine)
        return outputs.stats, store.write_directory(call.out, Path(tmp) / "out")


def _local_copy(store: ArtifactStore, ref: ArtifactRef, folder: Path) -> str:
    """A local copy of a stored benchmark: a file under its own name (its suffix says how to read
    it), or a folder (V*Bench's)."""
    name = ref.uri.rstrip("/").rsplit("/", 1)[-1]
    if not Path(name).suffix:
        return str(store.local_directory(ref))
    local = folder / name
    local.write_bytes(store.read_bytes(ref.uri))
    return str(local)


def benchmark_ref(store: ArtifactStore, spec: BenchmarkSpec) -> ArtifactRef:
    """A benchmark's file or folder as an artifact of the store (by content digest, so evaluations
    of it are cached on what it holds, not on where it lies)."""
    from codedance_core.evaluation.multi import local_benchmark

    with tempfile.TemporaryDirectory() as tmp:
        local = Path(local_benchmark(spec.path, Path(tmp)))
        relpath = f"benchmarks/{spec.name}/{local.name}"
        return store.write_directory(relpath, local) if local.is_dir() else store.write_bytes(relpath, local.read_bytes())


def summarize_benchmarks(store: ArtifactStore, evaluations: list[Evaluation], label: str) -> tuple[dict[str, Any], dict[str, Path]]:
    """The summary table of one checkpoint's evaluations (evaluation/summary.py), written to the store
    and to a local folder (for MLflow); returns it and the local files."""
    from codedance_core.evaluation.summary import build_summary, summary_entry, write_summary

    entries = []
    for evaluation in evaluations:
        folder = store.local_directory(evaluation.results)
        files = {path.name.split("_", 1)[0]: path for path in folder.glob("*") if path.is_file()}
        entries.append(summary_entry(evaluation.stats, files))
    model = str(evaluations[0].stats.get("model", label)) if evaluations else label
    summary = build_summary(model, str(evaluations[0].stats.get("prompt", "")) if evaluations else "", entries)
    folder = Path(tempfile.mkdtemp(prefix="codedance-summary-"))
    paths = write_summary(summary, folder)
    store.write_directory(f"eval/summary-{label}-{evaluations[0].model.short_digest if evaluations else 'none'}", folder)
    return summary, paths
