"""`codedance`: the command line of the pipeline.

Every stage can be run from here without Prefect (the flows call the same library functions);
`codedance --help` lists the command groups and each has its own `--help`.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console

from codedance_core.config import ConfigError, dump_profile, load_profile

app = typer.Typer(
    help="CodeDance: train a vision-language model to answer visual questions by writing and running Python.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show and validate profile configs (configs/*.yaml).", no_args_is_help=True)
app.add_typer(config_app, name="config")


def _mount_subcommands() -> None:
    """Mount each part's sub-app; each imports its heavy dependencies lazily, inside commands."""
    from codedance_core.cli import (
        data,
        evaluate,
        experiment,
        filter,
        lifecycle,
        model,
        rewards,
        rollout,
        sandbox,
        serve,
        synthesize,
        train,
    )

    data.app.command("filter")(filter.filter_command)
    data.app.command("synthesize")(synthesize.synthesize)
    app.add_typer(data.app, name="data")

    app.add_typer(model.app, name="model")
    app.command("serve")(serve.serve)
    app.command("rollout")(rollout.rollout)
    app.command("eval")(evaluate.eval_command)
    app.add_typer(rewards.app, name="rewards")
    app.add_typer(sandbox.app, name="sandbox")
    app.add_typer(train.app, name="train")
    app.add_typer(experiment.app, name="experiment")
    app.command("lifecycle")(lifecycle.lifecycle_command)


_mount_subcommands()
console = Console()
err_console = Console(stderr=True)

ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Profile name (configs/NAME.yaml) or a YAML path.")]
OverrideOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a field by dotted path, e.g. --set sandbox.timeout_s=5 (repeatable)."),
]


def load_or_exit(profile: str, overrides: list[str] | None):
    """Load a profile or print what is wrong with it and exit 2 (no traceback)."""
    try:
        return load_profile(profile, overrides or [])
    except ConfigError as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None


@config_app.command("show")
def config_show(profile: ProfileOpt = "tiny", overrides: OverrideOpt = None) -> None:
    """Print the full profile (every default included) as YAML."""
    console.print(dump_profile(load_or_exit(profile, overrides)), markup=False, highlight=False)


@config_app.command("validate")
def config_validate(
    profile: ProfileOpt = "tiny",
    overrides: OverrideOpt = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON object instead of text.")] = False,
) -> None:
    """Check a profile; print its stage digests (the cache keys' config part)."""
    from codedance_core.config.profile import STAGE_SECTIONS

    config = load_or_exit(profile, overrides)
    digests = {stage: config.stage_digest(stage)[:16] for stage in STAGE_SECTIONS}
    if as_json:
        print(json.dumps({"profile": config.name, "valid": True, "stage_digests": digests}))
        return
    console.print(f"[green]profile {config.name!r} is valid[/green]")
    for stage, digest in digests.items():
        console.print(f"  {stage:<12} {digest}")


if __name__ == "__main__":
    app()
