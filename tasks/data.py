"""Data tasks: synthesise the procedural suite, validate a dataset."""

from __future__ import annotations

from prefect import task

from codedance_core.config.data import DataConfig
from codedance_core.storage import ArtifactRef, ArtifactStore
from tasks.common import retry_on_infrastructure, stage_cache_key
from tasks.tracking import Tracking, log_outputs, stage_run


@task(cache_key_fn=stage_cache_key, persist_result=True, retries=2, retry_condition_fn=retry_on_infrastructure)
def synthesise_suite(data: DataConfig, split: str, store_root: str, tracking: Tracking | None = None) -> ArtifactRef:
    """Render the procedural task suite's split into the store (deterministic by seed)."""
    from codedance_core.data.suite.generator import write_suite

    store = ArtifactStore(store_root)
    spec = data.suite_spec(split)  # type: ignore[arg-type]
    with stage_run(tracking, f"suite-{split}", params=spec.model_dump(mode="json")) as run:
        ref = write_suite(spec, store.uri(f"data/suite/{spec.seed}/{split}.parquet"), workers=data.synth_workers)
        log_outputs(run, {f"suite-{split}": ref})
    return ref


@task(cache_key_fn=stage_cache_key, persist_result=True, retries=2, retry_condition_fn=retry_on_infrastructure)
def validate_dataset(ref: ArtifactRef, schema: str, data: DataConfig, store_root: str) -> dict:
    """Check every row; quarantine bad ones with a reason; return the report."""
    from codedance_core.data.validate import validate_file

    store = ArtifactStore(store_root)
    name = ref.uri.rstrip("/").rsplit("/", 1)[-1].removesuffix(".parquet")
    report = validate_file(ref.uri, schema, quarantine_out=store.uri(f"quarantine/{name}-{ref.short_digest}.parquet"), config=data)  # type: ignore[arg-type]
    if report.good_rows == 0:
        raise ValueError(f"{ref.uri}: no valid rows ({report.reasons}); see the quarantine file")
    return report.model_dump(mode="json")
