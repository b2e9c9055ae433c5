"""Mini-CodeDance: the paper's three claims, reproduced in miniature on the procedural suite.

Five arms, each trained and evaluated for every seed:

    text_sft        SFT on the tool trajectories stripped to one code-free answer (text_only.py)
    tool_sft        SFT on the synthesised, execution-verified tool trajectories (the cold start)
    rl_bat          tool_sft + GRPO with the full reward (accuracy, format, BAT with its turn term)
    rl_no_bat       tool_sft + GRPO with accuracy + format only
    rl_bat_no_turn  tool_sft + GRPO with BAT's sequence term but no turn-level correction

The experiment runs as a Prefect flow (flows/experiment.py) over the lifecycle's own stages, so it
shares their launch, their cache and their MLflow runs. Work is shared where the design allows it,
because the budget (90 minutes on 2 cores for 3 seeds) allows nothing else: one pretrained tiny base
model serves every seed (as one released checkpoint serves every run in the paper); per seed, the
suite and the synthesised trajectories are made once, and the three RL arms all start from that
seed's tool_sft policy. Arms differ only in what the comparison needs, so a difference between two
arms is due to it. A rerun reuses every stage whose inputs, config and code are unchanged (an
RL-only change keeps the base model, trajectories and SFT policies); docs/mini-codedance/LOG.md
records the settings that were tried.

This module holds what the experiment is (arms, overrides, per-seed profiles) and turns the stages'
outputs into per-(arm, seed) results and the report.

    codedance experiment mini --seeds 3                 # the full experiment
    codedance experiment mini --smoke                   # 1 seed, tiny data, a few minutes
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import Field, field_validator

from codedance_core.config.base import StrictModel
from codedance_core.config.loader import load_profile
from codedance_core.config.profile import ProfileConfig
from codedance_core.config.rewards import RewardConfig
from codedance_core.experiments.report import family_metrics, item_records, write_report
from codedance_core.experiments.results import (
    copy_probe_record,
    current_commit,
    package_versions,
    result_path,
    rl_training_curve,
    save_result,
)


@dataclass(frozen=True)
class Arm:
    """One experimental condition: how its policy is trained from the seed's shared artifacts."""

    name: str
    title: str
    sft_data: str | None = None  # "text" or "tool" for SFT arms; None for RL arms (start from tool_sft)
    use_bat: bool = True
    use_turn_level: bool = True

    def rewards(self, base: RewardConfig) -> RewardConfig:
        """The profile's reward with this arm's BAT switches."""
        return base.model_copy(update={"use_bat": self.use_bat, "use_turn_level": self.use_turn_level})


ARMS: dict[str, Arm] = {
    arm.name: arm
    for arm in (
        Arm("text_sft", "text-only SFT", sft_data="text"),
        Arm("tool_sft", "tool SFT", sft_data="tool"),
        Arm("rl_bat", "tool SFT + RL (BAT)"),
        Arm("rl_no_bat", "tool SFT + RL without BAT", use_bat=False, use_turn_level=False),
        Arm("rl_bat_no_turn", "tool SFT + RL, BAT without turn-level term", use_turn_level=False),
    )
}

# The experiment's own scale on top of the tiny profile (which is sized for a quick demo), chosen so
# that 3 seeds fit 90 minutes on 2 cores. docs/mini-codedance/LOG.md has what else was tried, and why.
EXPERIMENT_OVERRIDES: tuple[str, ...] = (
    "data.train_size=400",
    "sft.epochs=8",
    "sft.learning_rate=3e-3",  # the demo's 1e-2 wipes out what pretraining taught
    "tiny_model.initializer_range=0.02",  # the demo's 0.2 saturates attention: copying never forms
    "tiny_model.pretrain_text_steps=7000",  # a cap: the copy probe ends pretraining once it passes
    "tiny_model.pretrain_probe_every=500",
    "tiny_model.pretrain_probe_target=0.8",
    "tiny_model.pretrain_steps=200",
    "tiny_model.pretrain_batch_size=8",
    "grpo.learning_rate=3e-4",  # 1e-3 broke the scripts within 8 steps; 3e-4 kept them
    "grpo.rollout.temperature=0.7",  # at 1.0 only 14% of the cold start's sampled calls ran
    "grpo.dynamic_sampling=true",  # only groups whose rewards differ carry a gradient
    "grpo.max_sampling_rounds=3",
    "grpo.max_steps=20",  # 8 before the decode loop made rollouts about 4x faster
    "grpo.eval_every_steps=5",  # the held-out curve: greedy accuracy on the test split's first items
    "grpo.eval_items=50",
    "data.test_size=150",  # 450 paired items over 3 seeds: enough to detect 0.08 at ~0.3 discordance
    "synthesis.needless_tool_rate=0.6",  # a cold start that over-calls on direct items, for BAT to correct
    "evaluation.write_viewer=false",  # 150 evaluations: the report is what people read
)

# Small enough for a few minutes on 2 cores; the numbers it gives only show that the machinery runs.
SMOKE_OVERRIDES: tuple[str, ...] = (
    "tiny_model.pretrain_text_steps=5",
    "tiny_model.pretrain_steps=5",
    "tiny_model.pretrain_rows=16",
    "tiny_model.pretrain_probe_rows=4",
    "tiny_model.corpus_rows=60",
    "tiny_model.vocab_size=1200",
    "data.train_size=20",
    "data.test_size=10",
    "sft.epochs=1",
    "grpo.max_steps=1",
    "grpo.prompts_per_step=2",
    "grpo.samples_per_prompt=2",
    "grpo.max_sampling_rounds=1",
    "grpo.eval_every_steps=1",
    "grpo.eval_items=4",
    "grpo.rollout.max_turns=2",
    "rollout.max_new_tokens=64",
    "evaluation.rollout.max_turns=2",
)


class MiniConfig(StrictModel):
    """What one Mini-CodeDance run does and where it writes."""

    profile: str = Field("tiny", description="Profile name (configs/NAME.yaml) or YAML path.")
    overrides: list[str] = Field(default_factory=list, description="Dotted profile overrides, e.g. sft.epochs=2.")
    seeds: list[int] = Field(default_factory=lambda: [0, 1, 2], min_length=1, description="Seeds; each gets its own suite, model and trajectories.")
    arms: list[str] = Field(default_factory=lambda: list(ARMS), min_length=1, description="Arms to run (see ARMS).")
    smoke: bool = Field(False, description="Apply SMOKE_OVERRIDES before `overrides` (tiny data, few steps).")
    out_dir: str = Field("docs/mini-codedance", description="Report, plots and per-arm result JSON.")
    store_root: str | None = Field(None, description="Artifact store of every stage's outputs; None: the profile's.")
    tracking_uri: str | None = Field(None, description="MLflow tracking URI; None: the profile's.")
    artifact_root: str | None = Field(None, description="Where MLflow stores run artifacts; None: the profile's.")
    experiment: str = Field("mini-codedance", description="MLflow experiment name.")

    @field_validator("arms")
    @classmethod
    def _known_arms(cls, arms: list[str]) -> list[str]:
        unknown = [arm for arm in arms if arm not in ARMS]
        if unknown:
            raise ValueError(f"unknown arms {unknown}; known: {', '.join(ARMS)}")
        return arms

    def all_overrides(self) -> list[str]:
        """EXPERIMENT_OVERRIDES, then SMOKE_OVERRIDES for a smoke run, then where it writes and logs,
        then the user's: later wins."""
        places = [f"tracking.experiment={self.experiment}"]
        places += [f"store.root={self.store_root}"] if self.store_root else []
        places += [f"tracking.tracking_uri={self.tracking_uri}"] if self.tracking_uri else []
        places += [f"tracking.artifact_root={self.artifact_root}"] if self.artifact_root else []
        return [*EXPERIMENT_OVERRIDES, *(SMOKE_OVERRIDES if self.smoke else ()), *places, *self.overrides]

    def base_profile(self) -> ProfileConfig:
        """The experiment's profile before any seed is applied (what the shared base model reads)."""
        return load_profile(self.profile, self.all_overrides())

    def seed_profile(self, seed: int) -> ProfileConfig:
        """The profile of one seed: every stage's seed set to it, so seeds are independent replicas of
        everything after the base model (which, like a released checkpoint, all seeds share)."""
        stages = ("seed", "data.seed", "synthesis.seed", "sft.seed", "grpo.seed")
        return load_profile(self.profile, [*self.all_overrides(), *(f"{key}={seed}" for key in stages)])

    def ordered_arms(self) -> list[Arm]:
        """The arms to run, SFT arms first: the RL arms start from tool_sft's policy."""
        return sorted((ARMS[name] for name in self.arms), key=lambda arm: arm.sft_data is None)


def arm_result(
    arm: Arm, seed: int, rows: Sequence[Mapping[str, Any]], stats: Mapping[str, Any], seconds: float,
    rl_curve: list[dict[str, float]] | None = None,
) -> dict[str, Any]:
    """One (arm, seed) result as the report reads it: overall stats, per-family metrics, per-item records."""
    records = item_records(rows)
    keep = ("items", "accuracy", "accuracy_ci95", "turns", "tool_calls_per_trajectory", "tool_call_rate",
            "code_success_rate", "failures", "by_data_source")
    return {
        "arm": arm.name, "title": arm.title, "seed": seed, "commit": current_commit(), "seconds": seconds,
        "stats": {key: stats.get(key) for key in keep}, "families": family_metrics(records), "items": records,
        "rl_training": rl_curve or [],
    }


def flat_metrics(result: Mapping[str, Any]) -> dict[str, float]:
    """accuracy, tool calls, code success and turns overall and per family, as MLflow metrics."""
    metrics: dict[str, float] = {}
    for key in ("accuracy", "turns", "tool_calls_per_trajectory", "code_success_rate"):
        value = result["stats"].get(key)
        if isinstance(value, (int, float)):
            metrics[key] = float(value)
    for family, values in result["families"].items():
        for key, value in values.items():
            if isinstance(value, (int, float)):
                metrics[f"{family}.{key}"] = float(value)
    return metrics


def finish(
    config: MiniConfig, results: Sequence[Mapping[str, Any]], base_model_dir: Path, command: str, seconds: float
) -> Path:
    """Save each (arm, seed) result and write the report; returns the report's path."""
    out_dir = Path(config.out_dir)
    for result in results:
        save_result(result_path(out_dir, result["arm"], result["seed"]), result)
    meta = {
        "command": command,
        "versions": package_versions(),
        "commit": current_commit(),
        "seeds": list(config.seeds),
        "arms": list(config.arms),
        "config_digest": config.base_profile().digest(),
        "profile": config.profile,
        "overrides": [*EXPERIMENT_OVERRIDES, *(SMOKE_OVERRIDES if config.smoke else ()), *config.overrides],
        "smoke": config.smoke,
        "seconds": seconds,
        "copy_probe": copy_probe_record(base_model_dir),
        "rl_training": {
            name: {str(r["seed"]): r["rl_training"] for r in results if r["arm"] == name}
            for name in config.arms if ARMS[name].sft_data is None
        },
    }
    return write_report(results, meta, out_dir)


__all__ = ["ARMS", "Arm", "MiniConfig", "arm_result", "finish", "flat_metrics", "rl_training_curve"]
