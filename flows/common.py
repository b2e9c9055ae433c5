"""What every flow shares: its parameters (a form in the Prefect UI) and the lifecycle's run."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from pydantic import BaseModel, Field

from codedance_core.config import ProfileConfig, dump_profile, load_profile
from codedance_core.tracking import RunTracker, tracked_run
from tasks.tracking import Tracking


class ProfileParameters(BaseModel):
    """Which profile to run, with field overrides: the form every deployment shows."""

    profile: str = Field("tiny", description="Profile name (configs/NAME.yaml) or a YAML path.")
    overrides: list[str] = Field(
        default_factory=list, description="Dotted overrides, e.g. ['rollout.max_turns=4', 'sft.epochs=2']."
    )

    def load(self) -> ProfileConfig:
        """The validated profile; a bad config fails here, before any task runs."""
        return load_profile(self.profile, self.overrides)


class LifecycleParameters(ProfileParameters):
    """The lifecycle's form: the profile plus how many RL rounds to run."""

    rl_rounds: int = Field(1, ge=0, le=20, description="RL rounds; each starts from the previous round's model.")


@contextmanager
def lifecycle_run(profile: ProfileConfig, name: str) -> Iterator[tuple[RunTracker, Tracking]]:
    """The parent MLflow run of a flow; yields it and the Tracking its stages log under."""
    tracking = profile.tracking
    with tracked_run(
        tracking.tracking_uri, tracking.experiment, name,
        tags={"codedance.profile": profile.name, "codedance.flow": name},
        artifact_root=tracking.artifact_root,
    ) as run:
        run.log_params({"profile": profile.model_dump(mode="json")})
        run.log_text(dump_profile(profile), "config/profile.yaml")
        yield run, Tracking(
            tracking_uri=tracking.tracking_uri, experiment=tracking.experiment,
            artifact_root=tracking.artifact_root, parent_run_id=run.run_id,
        )
