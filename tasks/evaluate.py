"""Evaluation and promotion: score a checkpoint on the benchmark, register it, move the aliases."""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import task
from prefect.artifacts import create_link_artifact, create_table_artifact

from codedance_core.config.evaluation import EvalStageConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.storage import ArtifactRef, ArtifactStore, is_remote
from tasks.common import retry_on_infrastructure, run_on_ray, stage_cache_key
from tasks.tracking import Tracking, log_outputs, stage_run


def evaluate_on_worker(
    stage: EvalStageConfig, rewards: RewardConfig, sandbox: SandboxConfig, pixels: tuple[int, int],
    model: ArtifactRef, data: ArtifactRef, store_root: str, out_relpath: str,
) -> tuple[dict, ArtifactRef]:
    """Runs on a Ray worker: evaluate a stored checkpoint; store results, stats, viewer and plot."""
    from codedance_core.evaluation.entry import run_evaluation

    store = ArtifactStore(store_root)
    with tempfile.TemporaryDirectory() as tmp:
        data_path = _download(store, data, Path(tmp)) if is_remote(store.root) else data.uri
        config = stage.for_checkpoint(
            data_path, str(store.local_directory(model)), str(Path(tmp) / "out"), rewards, sandbox, *pixels, device="auto"
        )
        outputs = run_evaluation(config, show_progress=False)
        return outputs.stats, store.write_directory(out_relpath, Path(tmp) / "out")


def _download(store: ArtifactStore, ref: ArtifactRef, folder: Path) -> str:
    local = folder / "data.parquet"
    local.write_bytes(store.read_bytes(ref.uri))
    return str(local)


@task(cache_key_fn=stage_cache_key, persist_result=True, retries=2, retry_condition_fn=retry_on_infrastructure)
def evaluate_checkpoint_task(
    stage: EvalStageConfig, rewards: RewardConfig, sandbox: SandboxConfig, pixels: tuple[int, int],
    model: ArtifactRef, data: ArtifactRef, store_root: str, label: str, tracking: Tracking | None = None,
) -> dict:
    """Evaluate one checkpoint; returns its stats plus where the results (viewer included) are."""
    out = f"eval/{label}-{model.short_digest}-{data.short_digest}-{stage.digest()[:8]}"
    with stage_run(tracking, f"evaluate-{label}", params=stage.model_dump(mode="json"), inputs={"model": model, "benchmark": data}) as run:
        stats, results = run_on_ray(
            evaluate_on_worker, stage, rewards, sandbox, pixels, model, data, store_root, out,
            name=f"evaluate-{label}", num_cpus=1,
        )
        if run is not None:
            run.log_metrics({k: float(v) for k, v in stats.items() if isinstance(v, (int, float)) and not isinstance(v, bool)})
            local = ArtifactStore(store_root).local_directory(results)
            for path in sorted(local.glob("*")):
                if path.suffix in (".html", ".png", ".json"):
                    run.log_artifact(path, "evaluation")
        log_outputs(run, {"eval-results": results})
    create_table_artifact([{"checkpoint": label, **_scalars(stats)}], key=f"eval-{label}", description=f"Evaluation of {label}")
    create_link_artifact(results.uri, link_text=f"{label}: results, viewer and plot", key=f"eval-{label}-results")
    return {"label": label, "model": model, "stats": stats, "results": results}


def _scalars(stats: dict) -> dict:
    return {k: v for k, v in stats.items() if isinstance(v, (int, float, str))}


@task(cache_key_fn=stage_cache_key, persist_result=True, retries=2, retry_condition_fn=retry_on_infrastructure)
def register_and_promote(
    tracking: Tracking, registry_name: str, evaluation: dict, metric: str, profile_name: str, params_json: str = "{}"
) -> dict:
    """Register the checkpoint as `challenger`; make it `champion` when it beats the current one.
    Cached on the evaluated model's digest: rerunning an unchanged lifecycle registers nothing new.
    `params_json` (the lifecycle's parameters) travels in the event, so a triggered evaluation
    uses the same store and tracking server."""
    from mlflow import MlflowClient

    from codedance_core.tracking import CHAMPION, promote_if_better, register_checkpoint, version_for_alias

    score = float(evaluation["stats"].get(metric, 0.0))
    model: ArtifactRef = evaluation["model"]
    version = register_checkpoint(
        tracking.tracking_uri, registry_name, model.uri, tracking.parent_run_id or "",
        tags={"digest": model.digest, metric: str(score), "profile": profile_name},
    )
    champion = version_for_alias(tracking.tracking_uri, registry_name, CHAMPION)
    champion_score = None
    if champion is not None:
        tags = MlflowClient(tracking.tracking_uri).get_model_version(registry_name, champion).tags
        champion_score = float(tags.get(metric, "nan"))
    promoted = promote_if_better(tracking.tracking_uri, registry_name, version, score, champion_score)
    _announce(registry_name, version, profile_name, params_json)
    return {"version": version, "score": score, "champion_score": champion_score, "promoted": promoted}


def _announce(name: str, version: str, profile: str, params_json: str) -> None:
    """Emit the event the `evaluate-checkpoint` deployment's trigger listens for."""
    from prefect.events import emit_event

    emit_event(
        "codedance.model.registered",
        resource={"prefect.resource.id": f"codedance.model.{name}.{version}"},
        payload={"name": name, "version": version, "profile": profile, "params_json": params_json},
    )
