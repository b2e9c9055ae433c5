"""The profile: one validated config for every stage of the lifecycle.

Each stage's digest (`profile.stage_digest("data")`) covers only the sections that stage
reads, so changing the RL learning rate re-runs RL and evaluation, never data synthesis.
The `sources` of the filter and synthesis sections (the rows those stages and SFT read) are
inputs, not settings: they enter no digest here, and reach the stages through the content
digest of the rows merged from them.

The tool loop is configured once, in the `rollout` section; filtering, synthesis, RL and
evaluation inherit it and change what they need in their own section's `rollout`
(`profile.rollout_for("evaluation")` is what evaluation runs with). Their digests cover those
effective settings, so a shared change re-runs exactly the stages it reaches.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from pydantic import Field, model_validator

from codedance_core.config.agent import InheritsRollout, RolloutOverrides, RolloutSettings
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

# The sections each stage reads; its cache key changes when one of them does. For a stage that
# runs the tool loop, "rollout" stands for its effective settings (`rollout_for`), not the raw
# section: a shared change that the stage overrides does not reach it, nor re-runs it.
STAGE_SECTIONS: dict[str, tuple[str, ...]] = {
    "data": ("data",),
    "rewards": ("rewards",),
    "filter": ("filter", "rollout", "rewards", "sandbox"),
    "synthesis": ("synthesis", "rollout", "sandbox", "rewards", "tiny_model", "model"),
    "sft": ("sft", "model", "tiny_model"),
    "rl": ("grpo", "rollout", "rewards", "sandbox", "engine", "model"),
    "evaluation": ("evaluation", "rollout", "rewards", "sandbox", "model", "tiny_model"),
}

RolloutStage = Literal["filter", "synthesis", "rl", "evaluation"]
# The section holding each tool-loop stage's overrides.
ROLLOUT_STAGE_SECTIONS: dict[str, str] = {
    "filter": "filter", "synthesis": "synthesis", "rl": "grpo", "evaluation": "evaluation",
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
    rollout: RolloutSettings = Field(
        default_factory=RolloutSettings,
        description="The multi-turn tool loop, shared by filtering, synthesis, RL and evaluation (each may "
        "change fields in its own section's `rollout`).",
    )
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

    @model_validator(mode="after")
    def _rl_temperature_above_zero(self) -> ProfileConfig:
        if self.rollout_for("rl").temperature <= 0:
            raise ValueError(
                "grpo.rollout.temperature (or the rollout.temperature it inherits) must be above 0: "
                "the RL loss re-scores sampled tokens at that temperature"
            )
        return self

    def rollout_for(self, stage: RolloutStage) -> RolloutSettings:
        """The tool loop's settings `stage` runs with: the rollout section with that stage's overrides."""
        if stage not in ROLLOUT_STAGE_SECTIONS:
            raise KeyError(f"stage {stage!r} runs no tool loop; those that do: {', '.join(ROLLOUT_STAGE_SECTIONS)}")
        section: InheritsRollout = getattr(self, ROLLOUT_STAGE_SECTIONS[stage])
        return section.rollout_settings(self.rollout)

    def synthesis_config(self) -> SynthesisConfig:
        """The synthesis section with the profile's sandbox, rewards, the model's pixel bounds and
        synthesis's effective loop settings, so trajectories are checked exactly as the model will
        see them (turn budget, observation cap) and be scored on them."""
        low, high = self.pixel_bounds()
        rollout = RolloutOverrides.pinning(self.rollout_for("synthesis"))
        return self.synthesis.model_copy(
            update={"sandbox": self.sandbox, "rewards": self.rewards, "min_pixels": low, "max_pixels": high,
                    "rollout": rollout}
        )

    @property
    def builds_tiny_model(self) -> bool:
        """A CPU profile builds and trains the tiny model (and its own weak model); others start from
        the checkpoint at `model.path`, which is also the weak model, as in the paper."""
        return self.device == "cpu"

    def pixel_bounds(self) -> tuple[int, int]:
        """(min, max) pixels of images shown to the model: the checkpoint's overrides, else the tiny model's."""
        low = self.model.min_pixels or self.tiny_model.min_pixels
        high = self.model.max_pixels or self.tiny_model.max_pixels
        return low, high

    def stage_digest(self, stage: str) -> str:
        """sha256 of the seed and the sections `stage` reads (see STAGE_SECTIONS), its effective
        loop settings standing for the rollout section."""
        if stage not in STAGE_SECTIONS:
            raise KeyError(f"unknown stage {stage!r}; known: {', '.join(STAGE_SECTIONS)}")
        values = {name: _settings(self._read_by(stage, name)) for name in STAGE_SECTIONS[stage]}
        payload = canonical_json({"seed": self.seed, "stage": stage, "sections": values})
        return hashlib.sha256(payload.encode()).hexdigest()

    def _read_by(self, stage: str, section: str) -> StrictModel:
        """What `stage` reads of `section`: the section, or for the rollout section its effective settings."""
        if section == "rollout" and stage in ROLLOUT_STAGE_SECTIONS:
            return self.rollout_for(stage)  # type: ignore[arg-type]
        return getattr(self, section)


def _settings(section: StrictModel) -> dict[str, Any]:
    """A section's values less the inputs it names (`sources`): their content reaches a stage's key
    through the digest of the rows merged from them, not through the config."""
    return section.model_dump(mode="json", exclude=getattr(section, "INPUT_FIELDS", None))
