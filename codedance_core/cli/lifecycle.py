"""`codedance lifecycle`: the whole lifecycle for a profile, or with --dry-run what it would launch.

    codedance lifecycle --profile paper --dry-run      # per stage: workers, GPUs, engine, entry point, job or task
    codedance lifecycle --profile tiny                 # runs the `lifecycle` Prefect flow (what `make demo` runs)

The dry run needs no data, no model and no cluster: each row is the launch plan the stage itself
computes from the profile, described for the Ray address in RAY_ADDRESS.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

console = Console(width=200)


def lifecycle_command(
    profile: Annotated[str, typer.Option("--profile", "-p", help="Profile name (configs/NAME.yaml) or a YAML path.")] = "tiny",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Override by dotted path, e.g. --set sft.num_workers=2.")
    ] = None,
    rl_rounds: Annotated[int, typer.Option("--rl-rounds", min=0, max=20, help="RL rounds, each from the last.")] = 1,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print what each stage would launch; run nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="With --dry-run: print the plan as JSON.")] = False,
) -> None:
    """Run the lifecycle (data, filtering, synthesis, SFT, RL, evaluation, registration), or plan it."""
    from codedance_core.cli.exits import exit_message, exit_with
    from codedance_core.config import ConfigError, load_profile

    try:
        config = load_profile(profile, overrides or [])
    except ConfigError as exc:
        raise exit_with(exc) from None
    if dry_run:
        from codedance_core.stages.plan import plan_rows, print_plan

        if as_json:
            print(json.dumps(plan_rows(config, rl_rounds), default=str))
        else:
            print_plan(config, rl_rounds, console)
        return
    try:
        from flows.common import LifecycleParameters
        from flows.lifecycle import lifecycle
    except ImportError as error:
        raise exit_message(f"the lifecycle runs as a Prefect flow: install the orchestrator ({error})") from None
    lifecycle(LifecycleParameters(profile=profile, overrides=overrides or [], rl_rounds=rl_rounds))
