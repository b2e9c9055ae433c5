"""Weak-to-strong filtering: a weak model answers each item k times; items it always solves are dropped.

At paper scale the weak model is the base checkpoint (Qwen2.5-VL-7B, as in the paper) served by the
profile's engine (vLLM) on a GPU worker; the tiny profile trains its own weak model briefly, without
tools (`weak_model`). Scored shards are kept in the store, so a retried stage resumes where it stopped.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from codedance_core.config.agent import RolloutSettings
from codedance_core.config.filtering import FilterConfig
from codedance_core.config.model import EngineConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.stages.context import StageContext, log_outputs
from codedance_core.stages.keys import stage
from codedance_core.stages.launch import LaunchPlan
from codedance_core.stages.results import FilterOutcome
from codedance_core.storage import ArtifactRef, ArtifactStore, ref_uri

WEAK_MODEL_PLAN = LaunchPlan.for_task("weak-model", "codedance_core.stages.filtering:weak_model_worker")


@stage("weak-model")
def weak_model(config: FilterConfig, rows: ArtifactRef, seed: int, ctx: StageContext) -> ArtifactRef:
    """The tiny profile's weak model: a tiny model trained briefly to answer without tools."""
    out = f"models/weak-{rows.short_digest}-{config.weak_train_steps}-{seed}"
    return ctx.launch(WEAK_MODEL_PLAN, WeakModelCall(rows, config.weak_train_steps, seed, ctx.store_root, out))


def filter_plan(config: FilterConfig, engine: EngineConfig) -> LaunchPlan:
    return LaunchPlan.for_task(
        "filter", "codedance_core.stages.filtering:filter_worker", cpus=config.cpus, gpus=config.gpus,
        engine=engine.kind, details={"answers per item": config.k},
    )


@stage("filter")
def filter_rows(
    config: FilterConfig, rollout: RolloutSettings, rewards: RewardConfig, sandbox: SandboxConfig,
    engine: EngineConfig, rows: ArtifactRef, weak: ArtifactRef, ctx: StageContext,
) -> FilterOutcome:
    """Drop the items the weak model always solves; keep the rest with their pass rate and bucket."""
    out = f"data/filtered/{rows.short_digest}-{weak.short_digest}-{config.digest()[:8]}"
    params = {"filter": config.model_dump(mode="json"), "rollout": rollout.model_dump(mode="json")}
    with ctx.stage_run("filter", params=params, inputs={"rl-rows": rows, "weak-model": weak}) as run:
        call = FilterCall(config, rollout, rewards, sandbox, engine, rows, weak, ctx.store_root, out)
        outcome: FilterOutcome = ctx.launch(filter_plan(config, engine), call)
        if run is not None:
            run.log_dict(outcome.report, "filter_report.json")
            run.log_text(outcome.markdown, "filter_report.md")
        log_outputs(run, {"filtered-rows": outcome.kept})
    if not outcome.kept.rows:
        raise ValueError(f"filtering kept no item of {rows.uri}: every item was trivial for the weak model")
    return outcome


@dataclass(frozen=True)
class WeakModelCall:
    rows: ArtifactRef
    steps: int
    seed: int
    store_root: str
    out: str


@dataclass(frozen=True)
class FilterCall:
    config: FilterConfig
    rollout: RolloutSettings
    rewards: RewardConfig
    sandbox: SandboxConfig
    engine: EngineConfig
    rows: ArtifactRef
    weak: ArtifactRef
    store_root: str
    out: str


def weak_model_worker(call: WeakModelCall) -> ArtifactRef:
    from codedance_core.data.io import read_rows
    from codedance_core.filtering.weak_model import train_weak_model

    with tempfile.TemporaryDirectory() as tmp:
        train_weak_model(read_rows(ref_uri(call.rows)).to_dicts(), tmp, steps=call.steps, seed=call.seed)
        return ArtifactStore(call.store_root).write_directory(call.out, tmp)


def filter_worker(call: FilterCall) -> FilterOutcome:
    from codedance_core.filtering.pipeline import filter_dataset
    from codedance_core.rewards.judge import judge_if_configured

    store = ArtifactStore(call.store_root)
    weak = load_weak_model(store.local_directory(call.weak), call.engine)
    with tempfile.TemporaryDirectory() as tmp:
        result = filter_dataset(
            call.rows.uri, store.uri(f"{call.out}.parquet"), weak, call.config, work_root=store.uri("filter-work"),
            reward_config=call.rewards, sandbox_config=call.sandbox, report_dir=tmp, rollout=call.rollout,
            judge=judge_if_configured(call.rewards.judge),
        )
    return FilterOutcome(kept=result.output, report=result.report.to_dict(), markdown=result.report.markdown())


def load_weak_model(model_dir: Path, engine: EngineConfig):
    """The weak model behind the profile's engine: in-process transformers (hf), or vLLM on the
    worker's GPU, which encodes conversations itself (no local bundle)."""
    from codedance_core.filtering.scoring import WeakModel, checkpoint_id, local_weak_model

    if engine.kind == "vllm":
        from codedance_core.engines import make_engine

        served = make_engine(engine.model_copy(update={"model": str(model_dir)}))
        return WeakModel(served, checkpoint_id(model_dir))
    return local_weak_model(model_dir, device=engine.device, max_batch_size=engine.max_batch_size)
