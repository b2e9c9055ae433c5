"""What a stage call carries besides its config and inputs: where artifacts go, where it logs.

A stage is called the same way by a Prefect task, the `codedance` CLI and an experiment flow; what
differs between them travels here and never changes a stage's result, so it never enters a cache
key: the store root (artifacts are addressed by digest, wherever they live), the MLflow run the
stage's child run hangs under, labels that tell runs of the same stage apart (an experiment's seed
and arm), and the function progress lines go to (the Prefect run logger inside a task).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from codedance_core.storage import ArtifactRef, ArtifactStore
from codedance_core.storage.uris import normalize_uri

_logger = logging.getLogger("codedance")


class Tracking(BaseModel):
    """Where a stage logs: the tracking server, experiment, and the parent (flow) run."""

    tracking_uri: str
    experiment: str
    artifact_root: str | None = None
    parent_run_id: str | None = None

    @classmethod
    def of(cls, tracking_uri: str, experiment: str, artifact_root: str | None = None,
           parent_run_id: str | None = None) -> Tracking:
        """A Tracking whose local paths are absolute, so Ray workers (other working
        directories, other machines with a shared disk) reach the same database and folder."""
        return cls(
            tracking_uri=absolute_tracking_uri(tracking_uri), experiment=experiment,
            artifact_root=normalize_uri(artifact_root) if artifact_root else None, parent_run_id=parent_run_id,
        )


def absolute_tracking_uri(uri: str) -> str:
    """`sqlite:///relative.db` -> `sqlite:////abs/relative.db`; other URIs as they are."""
    prefix = "sqlite:///"
    if uri.startswith(prefix) and not uri.startswith(prefix + "/"):
        return prefix + str(Path(uri.removeprefix(prefix)).resolve())
    return uri


@dataclass(frozen=True)
class CallId:
    """One stage call: its stage, its key (inputs + code), and the code version in that key."""

    stage: str
    key: str
    code: str

    @property
    def name(self) -> str:
        """Short, unique per call: the job id prefix and the call's folder in the store."""
        return f"{self.stage}-{self.key[:16]}"

    @property
    def folder(self) -> str:
        return f"calls/{self.name}"


@dataclass(frozen=True)
class StageContext:
    """Where a stage's artifacts go and where it reports; never part of a cache key."""

    store_root: str
    tracking: Tracking | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    log: Callable[[str], None] = _logger.info
    call: CallId | None = None  # set by the `stage` decorator for the call under way

    def __post_init__(self) -> None:  # a local root made absolute: workers run in other directories
        object.__setattr__(self, "store_root", normalize_uri(self.store_root))

    def store(self) -> ArtifactStore:
        return ArtifactStore(self.store_root)

    def with_labels(self, **labels: str) -> StageContext:
        """The same context, its runs tagged (and named) with more labels, e.g. seed and arm."""
        return replace(self, labels={**self.labels, **labels})

    def with_log(self, log: Callable[[str], None]) -> StageContext:
        return replace(self, log=log)

    def for_call(self, call: CallId) -> StageContext:
        return replace(self, call=call)

    def launch(self, plan: Any, call: Any) -> Any:
        """Run a stage's launch plan on its worker call (launch.py); the entry point's result."""
        from codedance_core.stages.launch import launch

        if self.call is None:
            raise RuntimeError("launch() outside a stage call: decorate the stage function with @stage")
        return launch(plan, call, self.store(), self.call, self.log)

    def run_name(self, stage: str) -> str:
        suffix = " ".join(f"{key}={value}" for key, value in self.labels.items())
        return f"{stage} [{suffix}]" if suffix else stage

    @contextmanager
    def stage_run(
        self, stage: str, params: Mapping[str, Any] | None = None, inputs: Mapping[str, ArtifactRef] | None = None
    ) -> Iterator[Any]:
        """A child MLflow run for one stage: its config as params, its inputs as datasets (lineage).
        Yields the RunTracker, or None when the context tracks nothing."""
        if self.tracking is None:
            yield None
            return
        from codedance_core.tracking import tracked_run  # MLflow only once a run starts

        tracking = self.tracking
        tags = {"codedance.stage": stage, **{f"codedance.{key}": value for key, value in self.labels.items()}}
        with tracked_run(
            tracking.tracking_uri, tracking.experiment, self.run_name(stage),
            parent_run_id=tracking.parent_run_id, tags=tags, artifact_root=tracking.artifact_root,
        ) as run:
            if params:
                run.log_params(params)
            for name, ref in (inputs or {}).items():
                run.log_dataset(name, ref, context="input")
            yield run


def log_outputs(run: Any, outputs: Mapping[str, ArtifactRef | None]) -> None:
    """Record what a stage wrote as output datasets of its run (the other half of lineage)."""
    if run is None:
        return
    for name, ref in outputs.items():
        if ref is not None:
            run.log_dataset(name, ref, context="output")


@dataclass(frozen=True)
class RunAddress:
    """The MLflow run a worker logs its metrics into: what travels to Ray instead of a client."""

    tracking_uri: str
    run_id: str

    @classmethod
    def of(cls, context: StageContext, run: Any) -> RunAddress | None:
        if run is None or context.tracking is None:
            return None
        return cls(context.tracking.tracking_uri, run.run_id)

    def tracker(self) -> Any:
        from codedance_core.tracking import RunTracker

        return RunTracker(self.tracking_uri, self.run_id)
