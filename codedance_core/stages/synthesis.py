"""The synthesis stage: RL rows in, execution-verified multi-turn trajectories (SFT rows) out.

Every kept trajectory's code really ran in the sandbox and its final answer was scored correct;
items that could not be turned into one go to a rejects file beside the output, with the reason.
"""

from __future__ import annotations

from dataclasses import dataclass

from codedance_core.config.synthesis import SynthesisConfig
from codedance_core.stages.context import RunAddress, StageContext, log_outputs
from codedance_core.stages.keys import stage
from codedance_core.stages.launch import LaunchPlan
from codedance_core.stages.results import SynthesisOutcome
from codedance_core.storage import ArtifactRef, ArtifactStore


def synthesis_plan(config: SynthesisConfig) -> LaunchPlan:
    engine = "openai (teacher)" if config.teacher is not None else None
    return LaunchPlan.for_task("synthesize", "codedance_core.stages.synthesis:synthesize_worker", engine=engine,
                               details={"sandbox sessions": config.concurrency})


@stage("synthesize")
def synthesize(config: SynthesisConfig, rows: ArtifactRef, ctx: StageContext) -> SynthesisOutcome:
    """Verified trajectories for the items of `rows`; fails when not one could be made."""
    name = f"data/sft/{rows.short_digest}-{config.digest()[:8]}"
    with ctx.stage_run("synthesize", params=config.model_dump(mode="json"), inputs={"rl-rows": rows}) as run:
        outcome: SynthesisOutcome = ctx.launch(
            synthesis_plan(config), SynthesisCall(config, rows, ctx.store_root, name, RunAddress.of(ctx, run))
        )
        log_outputs(run, {"sft-rows": outcome.rows, "rejects": outcome.rejects})
    if not outcome.rows.rows:
        raise ValueError(f"synthesis kept no trajectory from {rows.uri}: see {name}.rejects.parquet")
    return outcome


@dataclass(frozen=True)
class SynthesisCall:
    config: SynthesisConfig
    rows: ArtifactRef
    store_root: str
    out: str
    run: RunAddress | None


def synthesize_worker(call: SynthesisCall) -> SynthesisOutcome:
    from codedance_core.synthesis.pipeline import synthesize_file

    store = ArtifactStore(call.store_root)
    report = synthesize_file(call.rows.uri, store.uri(f"{call.out}.parquet"), call.config,
                             rejects_uri=store.uri(f"{call.out}.rejects.parquet"))
    stats = report.stats.to_dict()
    if call.run is not None:
        tracker = call.run.tracker()
        tracker.log_dict(stats, "synthesis_stats.json")
        tracker.log_metrics({"kept": report.out.rows or 0, "rejected": report.rejects.rows if report.rejects else 0})
    return SynthesisOutcome(rows=report.out, rejects=report.rejects, stats=stats)
