"""The lifecycle's launch plan, stage by stage: what a dry run prints.

Each row is the plan the stage itself will launch (the same functions the stages call), so a dry
run of the `paper` profile on a laptop shows exactly what the cluster will be asked for: how many
workers, GPUs, which engine, which entry point, and whether it goes as a Ray job or a Ray task; the
training stages add one GPU's peak memory (train/memory_plan.py), which they check again before
they start. No data and no model are needed (a model directory's config.json is read if it is here).
"""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from codedance_core.config.data import SUITE_TRAIN, SYNTHESIZED
from codedance_core.config.profile import ProfileConfig
from codedance_core.stages.data import SUITE_PLAN, VALIDATE_PLAN
from codedance_core.stages.evaluation import evaluation_plan
from codedance_core.stages.filtering import WEAK_MODEL_PLAN, filter_plan
from codedance_core.stages.launch import LaunchPlan
from codedance_core.stages.models import base_model_plan
from codedance_core.stages.ray_address import RayAddress, ray_address_from_env
from codedance_core.stages.registry import REGISTER_PLAN
from codedance_core.stages.sources import SOURCES_PLAN, merges
from codedance_core.stages.synthesis import synthesis_plan
from codedance_core.stages.training import rl_plan, sft_plan
from codedance_core.train.memory_plan import MemoryPlan, grpo_memory, sft_memory
from codedance_core.train.model_shape import model_shape

COLUMNS = ("step", "launch", "submitted as", "workers", "gpus", "engine", "memory per GPU", "entry point")


def lifecycle_plan(profile: ProfileConfig, rl_rounds: int = 1) -> list[tuple[str, LaunchPlan]]:
    """(step name, plan) for every step the lifecycle flow runs, in order."""
    tiny = profile.tiny_model if profile.builds_tiny_model else None
    steps: list[tuple[str, LaunchPlan]] = [("base model", base_model_plan(tiny))]
    if SUITE_TRAIN in profile.filter.sources:
        steps.append(("suite: train", SUITE_PLAN))
    if merges(profile.filter.sources):
        steps.append(("RL sources", SOURCES_PLAN))
    steps += [("suite: test", SUITE_PLAN), ("validate train", VALIDATE_PLAN), ("validate test", VALIDATE_PLAN)]
    if tiny is not None:
        steps.append(("weak model", WEAK_MODEL_PLAN))
    steps.append(("weak-to-strong filter", filter_plan(profile.filter, profile.engine)))
    if SYNTHESIZED in profile.synthesis.sources:
        steps.append(("synthesize trajectories", synthesis_plan(profile.synthesis_config())))
    if merges(profile.synthesis.sources):
        steps.append(("SFT sources", SOURCES_PLAN))
    steps += [
        ("SFT", sft_plan(profile.sft)),
        ("evaluate SFT", evaluation_plan(profile.evaluation, profile.engine)),
    ]
    for index in range(1, rl_rounds + 1):
        steps += [
            (f"RL round {index}", rl_plan(profile.grpo, profile.engine)),
            (f"evaluate RL {index}", evaluation_plan(profile.evaluation, profile.engine)),
        ]
    steps.append(("register + promote", REGISTER_PLAN))
    return steps


def training_memory(profile: ProfileConfig) -> dict[str, MemoryPlan]:
    """One GPU's memory of the SFT and RL stages (by LaunchPlan stage name), for the profile's model."""
    shape = model_shape(profile.model.path, tiny=profile.tiny_model if profile.builds_tiny_model else None)
    return {"sft": sft_memory(profile.sft, shape),
            "rl": grpo_memory(profile.grpo, profile.engine, shape, profile.rollout_for("rl").max_context_tokens)}


def memory_cell(plan: MemoryPlan | None) -> str:
    if plan is None or plan.not_planned is not None:
        return "-" if plan is None else "n/a"
    return f"{plan.peak:.0f} of {plan.gpu_gib:g} GiB" + ("" if plan.fits else " (DOES NOT FIT)")


def plan_rows(profile: ProfileConfig, rl_rounds: int = 1, address: RayAddress | None = None) -> list[dict[str, Any]]:
    """The dry run as rows: each step's plan described for the given Ray address (default: RAY_ADDRESS)."""
    address = address or ray_address_from_env()
    memory = training_memory(profile)
    return [{"step": name, **plan.describe(address), "memory per GPU": memory_cell(memory.get(plan.stage))}
            for name, plan in lifecycle_plan(profile, rl_rounds)]


def print_plan(profile: ProfileConfig, rl_rounds: int = 1, console: Console | None = None) -> list[dict[str, Any]]:
    """Print the dry run as a table (and each step's details below it); returns the rows."""
    rows = plan_rows(profile, rl_rounds)
    table = Table(title=f"What the lifecycle would launch ({profile.name}, {rl_rounds} RL round(s))")
    for column in COLUMNS:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(row[column]) for column in COLUMNS))
    console = console or Console(width=200)
    console.print(table)
    for row in rows:
        details = {k: v for k, v in row.items() if k not in COLUMNS and k != "cpus"}
        if details:
            console.print(f"  {row['step']}: " + "; ".join(f"{k} {v}" for k, v in details.items()))
    for plan in training_memory(profile).values():
        if not plan.fits:
            console.print(f"  {plan.refusal()}", style="red", markup=False, highlight=False)
    return rows
