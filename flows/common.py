"""What every flow shares: its parameters (a form in the Prefect UI), its MLflow parent run and the
stage context its steps run in, and the table of what it did."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from prefect import Task
from prefect.artifacts import create_table_artifact
from pydantic import BaseModel, Field
from rich.console import Console
from rich.table import Table

from codedance_core.config import ProfileConfig, dump_profile, load_profile
from codedance_core.stages import StageContext, Tracking
from codedance_core.stages.results import describe
from codedance_core.tracking import RunTracker, tracked_run
from tasks.common import configured

# The form's example overrides: each changes what the lifecycle does (tests/flows check it).
EXAMPLE_OVERRIDES = ["rollout.max_turns=4", "sft.epochs=2"]


class ProfileParameters(BaseModel):
    """Which profile to run, with field overrides: the form every deployment shows."""

    profile: str = Field("tiny", description="Profile name (configs/NAME.yaml) or a YAML path.")
    overrides: list[str] = Field(
        default_factory=list, description=f"Dotted overrides, e.g. {EXAMPLE_OVERRIDES}.", examples=[EXAMPLE_OVERRIDES]
    )

    def load(self) -> ProfileConfig:
        """The validated profile; a bad config fails here, before any task runs."""
        return load_profile(self.profile, self.overrides)


class LifecycleParameters(ProfileParameters):
    """The lifecycle's form: the profile, how many RL rounds, and whether to only show the plan."""

    rl_rounds: int = Field(1, ge=0, le=20, description="RL rounds; each starts from the previous round's model.")
    dry_run: bool = Field(False, description="Print what each stage would launch (workers, GPUs, engine) and stop.")


@contextmanager
def flow_run(profile: ProfileConfig, name: str) -> Iterator[tuple[RunTracker, StageContext]]:
    """The parent MLflow run of a flow, and the stage context its steps log under."""
    tracking = Tracking.of(profile.tracking.tracking_uri, profile.tracking.experiment, profile.tracking.artifact_root)
    with tracked_run(
        tracking.tracking_uri, tracking.experiment, name,
        tags={"codedance.profile": profile.name, "codedance.flow": name}, artifact_root=tracking.artifact_root,
    ) as run:
        run.log_params({"profile": profile.model_dump(mode="json")})
        run.log_text(dump_profile(profile), "config/profile.yaml")
        yield run, StageContext(profile.store.root, tracking.model_copy(update={"parent_run_id": run.run_id}))


@dataclass
class Steps:
    """Runs a flow's steps as configured tasks and keeps the table of what each did."""

    ctx: StageContext
    rows: list[tuple[str, float, str]] = field(default_factory=list)
    cached: set[str] = field(default_factory=set)

    def __call__(self, name: str, stage: Task, *args: Any, ctx: StageContext | None = None) -> Any:
        started = time.perf_counter()
        state = configured(stage, self.ctx.store_root)(*args, ctx=ctx or self.ctx, return_state=True)
        result = state.result()
        if state.name == "Cached":
            self.cached.add(name)
        self.rows.append((name, time.perf_counter() - started, describe(result) + (" (cached)" if name in self.cached else "")))
        return result

    def report(self, title: str, run_id: str, profile: ProfileConfig) -> None:
        """What the flow did, as a table in the log and in the Prefect UI, and where to look."""
        create_table_artifact(
            [{"step": name, "seconds": round(seconds, 1), "result": result} for name, seconds, result in self.rows],
            key=f"{title}-steps", description=f"{title} steps; MLflow run {run_id}",
        )
        table = Table(title=f"CodeDance {title} ({profile.name})")
        for column in ("step", "seconds", "result"):
            table.add_column(column)
        for name, seconds, result in self.rows:
            table.add_row(name, f"{seconds:.1f}", result)
        console = Console(width=160)
        console.print(table)
        console.print(f"MLflow: run {run_id} in experiment {profile.tracking.experiment!r} ({profile.tracking.tracking_uri})")
        console.print("Look at it: `make ui`, then the Prefect UI (flow runs, artifacts) and the MLflow UI (runs, models).")


def announce_registered(promotion: Any, profile_name: str, params_json: str) -> None:
    """Emit the event the `evaluate-checkpoint` deployment's trigger listens for; `params_json`
    (the flow's parameters) travels with it, so the triggered evaluation uses the same store and
    tracking server."""
    from prefect.events import emit_event

    emit_event(
        "codedance.model.registered",
        resource={"prefect.resource.id": f"codedance.model.{promotion.name}.{promotion.version}"},
        payload={"name": promotion.name, "version": promotion.version, "profile": profile_name,
                 "params_json": params_json},
    )
