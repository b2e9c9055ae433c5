"""The profile: one validated config for every stage of the lifecycle.

Each stage's digest (`profile.stage_digest("data")`) covers only the sections that stage
reads, so changing the RL learning rate re-runs RL and evaluation, never data synthesis.
"""

from __future__ import annotations

import hashlib
from typing import Literal

from pydantic import Field

from codedance_core.config.base import StrictModel, canonical_json
from codedance_core.config.data import DataConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.storage import DEFAULT_STORE

# The sections each stage reads; its cache key changes when one of them does.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "data": ("data",),
    "rewards": ("rewards",),
}


class StoreConfig(StrictModel):
    root: str = Field(DEFAULT_STORE, description="Artifact store: a local folder or s3://bucket/prefix.")


class TrackingConfig(StrictModel):
    tracking_uri: str = Field(
        "sqlite:///.codedance/mlflow.db", description="MLflow tracking URI (sqlite:///... or http://host:port)."
    )
    artifact_root: str = Field(".codedance/mlartifacts", description="Where MLflow stores run artifacts.")
    experiment: str = Field("codedance", description="MLflow experiment name.")


class ProfileConfig(StrictModel):
    """Every section of the lifecycle's configuration."""

    name: str = Field(description="Profile name, e.g. tiny or paper.")
    device: Literal["cpu", "cuda", "auto"] = Field("auto", description="Where models run.")
    seed: int = Field(0, description="Global seed; stages derive their own seeds from it.")
    store: StoreConfig = Field(default_factory=StoreConfig)
    tracking: TrackingConfig = Field(default_factory=TrackingConfig)
    data: DataConfig = Field(default_factory=DataConfig)
    rewards: RewardConfig = Field(default_factory=RewardConfig)

    def stage_digest(self, stage: str) -> str:
        """sha256 of the seed and the sections `stage` reads (see STAGE_SECTIONS)."""
        if stage not in STAGE_SECTIONS:
            raise KeyError(f"unknown stage {stage!r}; known: {', '.join(STAGE_SECTIONS)}")
        values = {name: getattr(self, name).model_dump(mode="json") for name in STAGE_SECTIONS[stage]}
        payload = canonical_json({"seed": self.seed, "stage": stage, "sections": values})
        return hashlib.sha256(payload.encode()).hexdigest()
