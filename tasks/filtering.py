"""Weak-to-strong filtering: a weak model answers each item k times; trivial items are dropped."""

from __future__ import annotations

import tempfile

from prefect import task
from prefect.artifacts import create_markdown_artifact

from codedance_core.config.filtering import FilterConfig
from codedance_core.config.model import TinyModelConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.storage import ArtifactRef, ArtifactStore
from tasks.common import retry_on_infrastructure, run_on_ray, stage_cache_key
from tasks.tracking import Tracking, log_outputs, stage_run


def weak_model_on_worker(rows: ArtifactRef, steps: int, seed: int, store_root: str, out: str) -> ArtifactRef:
    """Runs on a Ray worker: a tiny model trained briefly to answer without tools."""
    from codedance_core.data.io import read_rows
    from codedance_core.filtering.weak_model import train_weak_model

    store = ArtifactStore(store_root)
    with tempfile.TemporaryDirectory() as tmp:
        train_weak_model(read_rows(rows.uri).to_dicts(), tmp, steps=steps, seed=seed)
        return store.write_directory(out, tmp)


@task(cache_key_fn=stage_cache_key, persist_result=True, retries=2, retry_condition_fn=retry_on_infrastructure)
def train_weak_model_task(config: FilterConfig, tiny: TinyModelConfig, rows: ArtifactRef, seed: int, store_root: str) -> ArtifactRef:
    """The tiny profile's weak model (a real checkpoint plays this part at paper scale)."""
    out = f"models/weak-{rows.short_digest}-{config.weak_train_steps}-{seed}"
    return run_on_ray(weak_model_on_worker, rows, config.weak_train_steps, seed, store_root, out, name="weak-model", num_cpus=1)


def filter_on_worker(
    config: FilterConfig, rewards: RewardConfig, sandbox: SandboxConfig, rows: ArtifactRef, weak: ArtifactRef,
    store_root: str, out: str,
) -> tuple[ArtifactRef, dict, str]:
    """Runs on a Ray worker: score every row with the weak model; write the kept rows."""
    from codedance_core.filtering.pipeline import filter_dataset
    from codedance_core.filtering.scoring import local_weak_model

    store = ArtifactStore(store_root)
    weak_model = local_weak_model(store.local_directory(weak), device="auto")
    with tempfile.TemporaryDirectory() as tmp:
        result = filter_dataset(
            rows.uri, store.uri(f"{out}.parquet"), weak_model, config, work_root=str(store.uri("filter-work")),
            reward_config=rewards, sandbox_config=sandbox, report_dir=tmp,
        )
        return result.output, result.report.to_dict(), result.report.markdown()


@task(cache_key_fn=stage_cache_key, persist_result=True, retries=2, retry_condition_fn=retry_on_infrastructure)
def filter_rows(
    config: FilterConfig, rewards: RewardConfig, sandbox: SandboxConfig, rows: ArtifactRef, weak: ArtifactRef,
    store_root: str, tracking: Tracking | None = None,
) -> ArtifactRef:
    """Drop the items the weak model always solves; keep the rest with pass rate and bucket."""
    out = f"data/filtered/{rows.short_digest}-{weak.short_digest}-{config.digest()[:8]}"
    with stage_run(tracking, "filter", params=config.model_dump(mode="json"), inputs={"rl-rows": rows, "weak-model": weak}) as run:
        kept, report, markdown = run_on_ray(
            filter_on_worker, config, rewards, sandbox, rows, weak, store_root, out, name="filter", num_cpus=1,
        )
        if run is not None:
            run.log_dict(report, "filter_report.json")
            run.log_text(markdown, "filter_report.md")
        log_outputs(run, {"filtered-rows": kept})
    create_markdown_artifact(markdown, key="filter-report", description="Pass rates and buckets per data_source")
    if not kept.rows:
        raise ValueError(f"filtering kept no item of {rows.uri}: every item was trivial for the weak model")
    return kept
