"""Training tasks: SFT (and RL rounds) submitted to Ray with the stage's resources."""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import task

from codedance_core.config.train import SFTConfig
from codedance_core.storage import ArtifactRef, ArtifactStore
from tasks.common import retry_on_infrastructure, run_on_ray, stage_cache_key
from tasks.tracking import Tracking, log_outputs, stage_run


def sft_on_worker(
    config: SFTConfig, data: ArtifactRef, model: ArtifactRef, store_root: str, out_relpath: str,
    tracking_uri: str | None, run_id: str | None,
) -> ArtifactRef:
    """Runs on a Ray worker: fetch the model, train, store the result (imports codedance_core only)."""
    from codedance_core.tracking import RunTracker
    from codedance_core.train.sft import train_sft

    store = ArtifactStore(store_root)
    model_dir = store.local_directory(model)
    tracker = RunTracker(tracking_uri, run_id) if tracking_uri and run_id else None
    callback = (lambda metrics, step: tracker.log_metrics(metrics, step)) if tracker else None
    # The run folder is keyed by the output path, so a retried task resumes from its checkpoints.
    run_dir = Path(tempfile.gettempdir()) / "codedance-runs" / out_relpath.replace("/", "_")
    result = train_sft(config, data.uri, model_dir, run_dir, checkpoint_uri=store.uri(f"{out_relpath}-checkpoints"),
                       metrics_callback=callback, progress=False)
    if tracker:
        tracker.log_metrics({"final_loss": result.final_loss, "tokens_per_s": result.tokens_per_s}, result.steps)
        tracker.log_dict(result.data, "sft_data_stats.json")
    return store.write_directory(out_relpath, result.model_dir)


@task(cache_key_fn=stage_cache_key, persist_result=True, retries=2, retry_condition_fn=retry_on_infrastructure)
def train_sft_stage(
    config: SFTConfig, data: ArtifactRef, model: ArtifactRef, store_root: str, tracking: Tracking | None = None
) -> ArtifactRef:
    """Supervised fine-tuning on trajectory rows; the trained model folder as an artifact."""
    out = f"models/sft-{data.short_digest}-{model.short_digest}-{config.digest()[:8]}"
    with stage_run(tracking, "sft", params=config.model_dump(mode="json"), inputs={"sft-data": data, "base-model": model}) as run:
        ref = run_on_ray(
            sft_on_worker, config, data, model, store_root, out,
            tracking.tracking_uri if tracking else None, run.run_id if run else None,
            name="sft", num_cpus=1, num_gpus=config.gpus_per_worker,
        )
        log_outputs(run, {"sft-model": ref})
    return ref
