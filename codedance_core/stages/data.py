"""The data stages: the procedural task suite as a data source, row validation, and the text-only
copy of trajectories that the Mini-CodeDance control arm trains on.

They are light, but they run as Ray tasks like every other stage: the same launch whoever calls
them, and at paper scale validation reads tens of thousands of images where the data is.
"""

from __future__ import annotations

from dataclasses import dataclass

from codedance_core.config.data import DataConfig, SplitName
from codedance_core.data.validate import ValidationReport
from codedance_core.stages.context import StageContext, log_outputs
from codedance_core.stages.keys import stage
from codedance_core.stages.launch import LaunchPlan
from codedance_core.storage import ArtifactRef, ArtifactStore, ref_uri

SUITE_PLAN = LaunchPlan.for_task("suite", "codedance_core.stages.data:suite_worker")
VALIDATE_PLAN = LaunchPlan.for_task("validate", "codedance_core.stages.data:validate_worker")
TEXT_ONLY_PLAN = LaunchPlan.for_task("text-only", "codedance_core.stages.data:text_only_worker")


@stage("suite")
def suite_split(data: DataConfig, split: SplitName, ctx: StageContext) -> ArtifactRef:
    """Render one split of the procedural task suite into the store (deterministic by seed)."""
    spec = data.suite_spec(split)
    out = f"data/suite/{spec.seed}/{split}.parquet"
    with ctx.stage_run(f"suite-{split}", params=spec.model_dump(mode="json")) as run:
        ref: ArtifactRef = ctx.launch(SUITE_PLAN, DataCall(data, ctx.store_root, out, split=split))
        log_outputs(run, {f"suite-{split}": ref})
    return ref


@stage("validate")
def validate_rows(rows: ArtifactRef, schema: str, data: DataConfig, ctx: StageContext) -> ValidationReport:
    """Check every row against its schema (rl, sft or eval); bad rows go to a quarantine file with a
    reason. Fails when no row is usable: nothing downstream could run on them."""
    name = rows.uri.rstrip("/").rsplit("/", 1)[-1].removesuffix(".parquet")
    out = f"quarantine/{name}-{rows.short_digest}.parquet"
    report: ValidationReport = ctx.launch(VALIDATE_PLAN, DataCall(data, ctx.store_root, out, rows=rows, schema=schema))
    if report.good_rows == 0:
        raise ValueError(f"{rows.uri}: no valid rows ({report.reasons}); see the quarantine file {out}")
    return report


@stage("text-only")
def text_only_copy(sft_rows: ArtifactRef, ctx: StageContext) -> ArtifactRef:
    """The trajectories stripped to one code-free answer each (experiments/text_only.py)."""
    out = f"data/sft-text-only/{sft_rows.short_digest}.parquet"
    return ctx.launch(TEXT_ONLY_PLAN, DataCall(None, ctx.store_root, out, rows=sft_rows))


@dataclass(frozen=True)
class DataCall:
    data: DataConfig | None
    store_root: str
    out: str
    split: SplitName | None = None
    rows: ArtifactRef | None = None
    schema: str = "rl"


def suite_worker(call: DataCall) -> ArtifactRef:
    from codedance_core.data.suite.generator import write_suite

    assert call.data is not None and call.split is not None
    spec = call.data.suite_spec(call.split)
    return write_suite(spec, ArtifactStore(call.store_root).uri(call.out), workers=call.data.synth_workers)


def validate_worker(call: DataCall) -> ValidationReport:
    from codedance_core.data.validate import validate_file

    assert call.rows is not None and call.data is not None
    quarantine = ArtifactStore(call.store_root).uri(call.out)
    return validate_file(call.rows.uri, call.schema, quarantine_out=quarantine, config=call.data)  # type: ignore[arg-type]


def text_only_worker(call: DataCall) -> ArtifactRef:
    from codedance_core.experiments.text_only import write_text_only

    assert call.rows is not None
    return write_text_only(ref_uri(call.rows), ArtifactStore(call.store_root).uri(call.out))
