"""The profile: one validated config for every stage of the lifecycle.

Each stage's digest (`profile.stage_digest("data")`) covers only the sections that stage
reads, so changing the RL learning rate re-runs RL and evaluation, never data synthesis.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import Field, model_validator

from codedance_core.config.agent import RolloutConfig
from codedance_core.config.base import StrictModel, canonical_json
from codedance_core.config.data import DataConfig
from codedance_core.config.evaluation import EvalStageConfig
from codedance_core.config.filtering import FilterConfig
from codedance_core.config.model import EngineConfig, ModelConfig, TinyModelConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.config.synthesis import SynthesisConfig
from codedance_core.config.train import GRPOConfig, SFTConfig
from codedance_core.storage import DEFAULT_STORE

# The sections each stage reads; its cache key changes when one of them does.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "data": ("data",),
    "rewards": ("rewards",),
    "filter": ("filter", "rewards", "sandbox"),
    "synthesis": ("synthesis", "sandbox", "rewards", "tiny_model", "model"),
    "sft": ("sft", "model", "tiny_model"),
    "rl": ("grpo", "rollout", "rewards", "sandbox", "engine", "model"),
    "evaluation": ("evaluation", "rewards", "sandbox", "model", "tiny_model"),
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
    tiny_model: TinyModelConfig = Field(
        default_factory=TinyModelConfig, description="How the tiny profile builds its model (unused with a real checkpoint)."
    )
    model: ModelConfig = Field(default_factory=ModelConfig, description="The policy's starting checkpoint.")
    engine: EngineConfig = Field(
        default_factory=lambda: EngineConfig(model=ModelConfig().path), description="How the policy generates."
    )
    sandbox: SandboxConfig = Field(default_factory=SandboxConfig, description="Where model code runs.")
    rollout: RolloutConfig = Field(default_factory=RolloutConfig, description="The multi-turn tool loop.")
    rewards: RewardConfig = Field(default_factory=RewardConfig)
    filter: FilterConfig = Field(default_factory=FilterConfig, description="Weak-to-strong filtering.")
    synthesis: SynthesisConfig = Field(
        default_factory=SynthesisConfig, description="Verified trajectory synthesis (sandbox, rewards and pixels come from the profile)."
    )
    sft: SFTConfig = Field(default_factory=SFTConfig, description="Supervised fine-tuning (the cold start).")
    grpo: GRPOConfig = Field(default_factory=GRPOConfig, description="RL: GRPO with the BAT reward.")
    evaluation: EvalStageConfig = Field(
        default_factory=EvalStageConfig, description="How each checkpoint is evaluated and promoted."
    )
    registry_name: str = Field("codedance", description="MLflow registered model name of the final policy.")

    @model_validator(mode="before")
    @classmethod
    def _policy_engine_serves_the_policy(cls, values: Any) -> Any:
        """A local engine with no model of its own generates with the policy (model.path)."""
        if isinstance(values, dict):
            engine = values.get("engine")
            if isinstance(engine, dict) and engine.get("kind", "hf") in ("hf", "vllm") and not engine.get("model"):
                model = values.get("model") if isinstance(values.get("model"), dict) else {}
                values["engine"] = {**engine, "model": model.get("path", ModelConfig().path)}
        return values

    def synthesis_config(self) -> SynthesisConfig:
        """The synthesis section with the profile's sandbox, rewards and the model's pixel bounds,
        so trajectories are checked exactly as the model will see and be scored on them."""
        low, high = self.pixel_bounds()
        return self.synthesis.model_copy(
            update={"sandbox": self.sandbox, "rewards": self.rewards, "min_pixels": low, "max_pixels": high}
        )

    def pixel_bounds(self) -> tuple[int, int]:
        """(min, max) pixels of images shown to the model: the checkpoint's overrides, else the tiny model's."""
        low = self.model.min_pixels or self.tiny_model.min_pixels
        high = self.model.max_pixels or self.tiny_model.max_pixels
        return low, high

    def stage_digest(self, stage: str) -> str:
        """sha256 of the seed and the sections `stage` reads (see STAGE_SECTIONS)."""
        if stage not in STAGE_SECTIONS:
            raise KeyError(f"unknown stage {stage!r}; known: {', '.join(STAGE_SECTIONS)}")
        values = {name: getattr(self, name).model_dump(mode="json") for name in STAGE_SECTIONS[stage]}
        payload = canonical_json({"seed": self.seed, "stage": stage, "sections": values})
        return hashlib.sha256(payload.encode()).hexdigest()
