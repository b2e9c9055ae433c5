"""The sources stage: a stage's input rows merged from the sources its profile section lists.

`filter.sources` names the RL rows (the procedural suite, the released CodeDance-RL parquet files,
anything in that layout) and `synthesis.sources` the SFT rows (the synthesised trajectories, the
released CodeDance-SFT rows). A list that is only what the lifecycle made itself is used as is;
any other list is merged by this stage into one parquet in the store, each row keeping its
`data_source`. Its MLflow run records every file read (URI and digest: the lineage) and the rows
each source gave.

The sources are resolved to files with digests before the stage runs (`resolve_inputs`), so its
cache key covers their content: a source file that changes reruns the merge and what follows.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from codedance_core.config.base import canonical_json
from codedance_core.config.data import MADE_BY_LIFECYCLE
from codedance_core.data.sources import SourceFiles, resolve_source
from codedance_core.stages.context import StageContext, log_outputs
from codedance_core.stages.keys import stage
from codedance_core.stages.launch import LaunchPlan
from codedance_core.storage import ArtifactRef

SOURCES_PLAN = LaunchPlan.for_task("sources", "codedance_core.stages.sources:merge_worker")


def merges(sources: list[str]) -> bool:
    """Whether the stage runs: not for one source the lifecycle made itself, which is the input as is."""
    return not (len(sources) == 1 and sources[0] in MADE_BY_LIFECYCLE)


def resolve_inputs(sources: list[str], made: Mapping[str, Callable[[], ArtifactRef]]) -> list[SourceFiles]:
    """Each source with its files: `made` gives the artifacts of the sources the lifecycle makes
    (called only for the sources listed), the rest are looked up where they are."""
    return [
        SourceFiles.of_artifact(text, made[text]()) if text in made else resolve_source(text)
        for text in sources
    ]


@stage("sources")
def merge_sources(
    sources: list[SourceFiles], schema: str, batch_rows: int, row_group_rows: int, ctx: StageContext
) -> ArtifactRef:
    """The sources' rows (`schema`: rl or sft) in one parquet in the store."""
    key = hashlib.sha256(canonical_json([schema, [s.digest() for s in sources]]).encode()).hexdigest()
    out = f"data/sources/{schema}-{key[:16]}.parquet"
    inputs = {_dataset_name(source, ref): ref for source in sources for ref in source.files}
    params = {"schema": schema, "sources": [source.source for source in sources]}
    with ctx.stage_run(f"sources-{schema}", params=params, inputs=inputs) as run:
        merged: ArtifactRef
        merged, counts = ctx.launch(
            SOURCES_PLAN, MergeCall(sources, schema, ctx.store_root, out, batch_rows, row_group_rows)
        )
        if run is not None:
            run.log_metrics({f"rows/{_metric_name(label)}": float(rows) for label, rows in counts.items()})
            run.log_dict(counts, "rows_per_source.json")
        log_outputs(run, {f"{schema}-rows": merged})
    ctx.log(f"{schema} rows from {len(sources)} sources: " + ", ".join(f"{k} {v}" for k, v in counts.items()))
    if not merged.rows:
        raise ValueError(f"the sources of the {schema} rows hold no row: {', '.join(params['sources'])}")
    return merged


@dataclass(frozen=True)
class MergeCall:
    sources: list[SourceFiles]
    schema: str
    store_root: str
    out: str
    batch_rows: int
    row_group_rows: int


def merge_worker(call: MergeCall) -> tuple[ArtifactRef, dict[str, int]]:
    from codedance_core.data.sources import merge_sources as merge
    from codedance_core.storage import ArtifactStore

    out = ArtifactStore(call.store_root).uri(call.out)
    return merge(call.sources, call.schema, out, call.batch_rows, call.row_group_rows)  # type: ignore[arg-type]


def _dataset_name(source: SourceFiles, ref: ArtifactRef) -> str:
    """`label/file` (one source may name many files)."""
    return f"{source.label}/{ref.uri.rstrip('/').rsplit('/', 1)[-1]}"


def _metric_name(label: str) -> str:
    """MLflow metric names allow letters, digits, and _ - . / and space."""
    return re.sub(r"[^A-Za-z0-9_\-./ ]+", "_", label)
