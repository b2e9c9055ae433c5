"""Where the Mini-CodeDance results live, and what each records about the code that made it.

Each (arm, seed) result is one JSON file, written whole or not at all, beside the report that is
made from them. They are outputs, not a cache: a rerun recomputes them from the stages' cached
outputs (the Prefect cache decides what reruns).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any

PACKAGES = ("torch", "transformers", "prefect", "ray", "mlflow", "polars")


def package_versions() -> dict[str, str]:
    """The installed versions of the packages whose behaviour the numbers depend on."""
    from importlib.metadata import PackageNotFoundError, version

    found = {}
    for name in PACKAGES:
        try:
            found[name] = version(name)
        except PackageNotFoundError:
            found[name] = "not installed"
    return found


def current_commit() -> str | None:
    """The checkout's commit ("-dirty" when tracked files changed); None outside a checkout."""
    from codedance_core.tracking.runs import source_commit  # imports MLflow: only once a run starts

    return source_commit()


def result_path(out_dir: Path, arm: str, seed: int) -> Path:
    return out_dir / "results" / f"{arm}-seed{seed}.json"


def save_result(path: Path, result: Mapping[str, Any]) -> None:
    """Write `result` so that the file is complete or absent, never half written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.{uuid.uuid4().hex[:8]}.tmp")  # unique per writer
    temporary.write_text(json.dumps(result, indent=1))
    temporary.replace(path)


def copy_probe_record(model_dir: Path) -> dict[str, Any] | None:
    """The base model's copy-probe record (models/pretrain.py), if its pretraining left one."""
    from codedance_core.models.pretrain import PROBE_FILE

    path = model_dir / PROBE_FILE
    return json.loads(path.read_text()) if path.exists() else None


# The per-step figures of a GRPO run that the report plots: its training rollouts' accuracy, how
# often they call the tool, how often the calls run, and the mean reward.
# Per RL step: the training rollouts, the held-out evaluation (at its steps; step 0 is the start),
# and what says whether a step could teach anything (informative groups, their reward spread, the
# update's size and the policy's drift).
RL_CURVE_KEYS = (
    "accuracy", "tool_call_rate", "exec_success_rate", "reward_mean", "reward_std",
    "heldout/accuracy", "heldout/tool_call_rate", "heldout/exec_success_rate",
    "sampling/informative_share", "sampling/group_reward_std", "sampling/groups_trained", "sampling/cap_hit",
    "clip_frac", "ratio_mean", "grad_norm", "entropy", "kl_ref", "d_mu_mean",
)


def rl_training_curve(metrics_jsonl: str) -> list[dict[str, float]]:
    """One GRPO run's per-step RL_CURVE_KEYS from the text of its metrics.jsonl, by step.

    A step logged twice (a run resumed from a checkpoint before it) counts once, as last logged."""
    by_step: dict[int, dict[str, float]] = {}
    for line in metrics_jsonl.splitlines():
        if line.strip():
            row = json.loads(line)
            by_step[int(row["step"])] = {"step": row["step"], **{key: row[key] for key in RL_CURVE_KEYS if key in row}}
    return [by_step[step] for step in sorted(by_step)]
