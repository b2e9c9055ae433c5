"""Stage runs in MLflow: each stage a child of the lifecycle's run, its parent named explicitly."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from typing import Any

from pydantic import BaseModel

from codedance_core.storage import ArtifactRef
from codedance_core.tracking import RunTracker, tracked_run


class Tracking(BaseModel):
    """Where a stage logs: the tracking server, experiment, and the parent (lifecycle) run.

    It travels as a task parameter but never enters a cache key: where results are logged does
    not change what they are.
    """

    tracking_uri: str
    experiment: str
    artifact_root: str | None = None
    parent_run_id: str | None = None


@contextmanager
def stage_run(
    tracking: Tracking | None,
    stage: str,
    params: Mapping[str, Any] | None = None,
    inputs: Mapping[str, ArtifactRef] | None = None,
) -> Iterator[RunTracker | None]:
    """A child MLflow run for one stage with its config as params and its inputs as datasets."""
    if tracking is None:
        yield None
        return
    with tracked_run(
        tracking.tracking_uri,
        tracking.experiment,
        stage,
        parent_run_id=tracking.parent_run_id,
        tags={"codedance.stage": stage},
        artifact_root=tracking.artifact_root,
    ) as run:
        if params:
            run.log_params(params)
        for name, ref in (inputs or {}).items():
            run.log_dataset(name, ref, context="input")
        yield run


def log_outputs(run: RunTracker | None, outputs: Mapping[str, ArtifactRef]) -> None:
    if run is None:
        return
    for name, ref in outputs.items():
        run.log_dataset(name, ref, context="output")
