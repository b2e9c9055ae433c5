"""Trajectory synthesis: RL rows in, execution-verified SFT trajectories out."""

from __future__ import annotations

from prefect import task
from prefect.artifacts import create_table_artifact

from codedance_core.config.synthesis import SynthesisConfig
from codedance_core.storage import ArtifactRef, ArtifactStore
from tasks.common import retry_on_infrastructure, stage_cache_key
from tasks.tracking import Tracking, log_outputs, stage_run


@task(cache_key_fn=stage_cache_key, persist_result=True, retries=2, retry_condition_fn=retry_on_infrastructure)
def synthesize_trajectories(
    config: SynthesisConfig, rl_rows: ArtifactRef, store_root: str, tracking: Tracking | None = None
) -> ArtifactRef:
    """Write verified multi-turn trajectories for the items; rejects go beside them with a reason."""
    from codedance_core.synthesis.pipeline import synthesize_file

    store = ArtifactStore(store_root)
    name = f"data/sft/{rl_rows.short_digest}-{config.digest()[:8]}"
    with stage_run(tracking, "synthesize", params=config.model_dump(mode="json"), inputs={"rl-rows": rl_rows}) as run:
        report = synthesize_file(rl_rows.uri, store.uri(f"{name}.parquet"), config, rejects_uri=store.uri(f"{name}.rejects.parquet"))
        stats = report.stats.to_dict()
        if run is not None:
            run.log_dict(stats, "synthesis_stats.json")
            run.log_metrics({"kept": report.out.rows or 0, "rejected": report.rejects.rows if report.rejects else 0})
        log_outputs(run, {"sft-rows": report.out})
    rows = [{"family": family, **_flat(values)} for family, values in stats["families"].items()]
    create_table_artifact(rows, key="synthesis-stats", description="Kept and rejected trajectories per family")
    if not report.out.rows:
        raise ValueError(f"synthesis kept no trajectory from {rl_rows.uri}: see {name}.rejects.parquet")
    return report.out


def _flat(values: dict) -> dict:
    """Table cells must be scalars: nested values become their text."""
    return {k: v if isinstance(v, (int, float, str)) else str(v) for k, v in values.items()}
