"""Where the mini experiment keeps its models and outputs: one folder name per stage variant.

Each stage's folder is named by a digest of the settings that stage (and the stages before it)
read, so a changed setting redoes its own stage and the ones after it, never the ones before: an
RL-only change reuses the base model, the suites, the trajectories and both SFT policies (with
their evaluations): about 30 of a full 3-seed run's 46 minutes on 2 cores (the nine RL arms,
trained and evaluated, take the other 16).

    <work>/base-models/<base>/                 the pretrained tiny base model (every seed)
    <work>/<cold>/seed-N/suite/                the seed's train and test suites
    <work>/<cold>/seed-N/sft/                  its verified tool trajectories and the text-only copy
    <work>/<cold>/seed-N/runs/tool_sft/        SFT policies
    <work>/<cold>/seed-N/runs/rl_bat-<rl>/     RL policies
    <work>/<cold>/seed-N/eval/<run>-<eval>/    evaluation outputs of one policy
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from codedance_core.config.base import canonical_json
from codedance_core.config.profile import ProfileConfig


def _digest(value: object) -> str:
    return hashlib.sha256(canonical_json(value).encode()).hexdigest()


@dataclass(frozen=True)
class WorkLayout:
    """The work folder of one experiment config; `base`, `cold`, `rl` and `evaluation` are digests."""

    root: Path
    base: str  # the tiny model's settings and the tokenizer corpus
    cold: str  # base + suite, synthesis and SFT settings: everything before RL
    rl: str  # the RL stage's sections (profile.STAGE_SECTIONS["rl"])
    evaluation: str  # the evaluation stage's sections and the device

    @classmethod
    def of(cls, root: str | Path, profile: ProfileConfig, corpus_rows: int) -> WorkLayout:
        """The layout for `profile` (the experiment's, before any seed is applied)."""
        base = _digest({"tiny_model": profile.tiny_model.model_dump(mode="json"), "corpus_rows": corpus_rows})
        cold = _digest({"base": base, **{stage: profile.stage_digest(stage) for stage in ("data", "synthesis", "sft")}})
        evaluation = _digest({"evaluation": profile.stage_digest("evaluation"), "device": profile.device})
        return cls(Path(root).resolve(), base[:12], cold[:12], profile.stage_digest("rl")[:8], evaluation[:8])

    def base_model(self) -> Path:
        return self.root / "base-models" / self.base

    def seed_dir(self, seed: int) -> Path:
        return self.root / self.cold / f"seed-{seed}"

    def run_name(self, arm: str, rl: bool) -> str:
        """An SFT arm's run is named by the arm; an RL arm's also by the RL settings."""
        return f"{arm}-{self.rl}" if rl else arm

    def run_dir(self, seed: int, arm: str, rl: bool) -> Path:
        return self.seed_dir(seed) / "runs" / self.run_name(arm, rl)

    def eval_dir(self, seed: int, arm: str, rl: bool) -> Path:
        return self.seed_dir(seed) / "eval" / f"{self.run_name(arm, rl)}-{self.evaluation}"
