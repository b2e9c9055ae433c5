"""`codedance`: the command line of the pipeline.

Every stage can be run from here without Prefect (the flows call the same library functions);
`codedance --help` lists the command groups and each has its own `--help`.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.console import Console

from codedance_core.config import ConfigError, dump_profile, load_profile
from codedance_core.errors import (
    EXIT_USER_ERROR,
    debug_enabled,
    describe,
    enable_debug,
    one_line,
    print_error,
)


class CodeDanceApp(typer.Typer):
    """The `codedance` app: an error the user can fix ends the command with one line and status 2.

    Bad arguments too: click's usage errors are printed as that line rather than as a usage panel.
    What `describe` does not know is a bug and keeps its traceback; --debug shows every traceback."""

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        try:
            # Not standalone: click's own errors come back here instead of being printed and exited on.
            outcome = super().__call__(*args, **{**kwargs, "standalone_mode": False})
        except Exception as exc:
            if _is_click(exc, "ClickException"):
                raise SystemExit(_show_click_error(exc)) from None
            if _is_click(exc, "Abort"):
                print_error("aborted")
                raise SystemExit(1) from None
            line = None if debug_enabled() else describe(exc)
            if line is None:
                raise
            print_error(line)
            raise SystemExit(EXIT_USER_ERROR) from None
        # Not standalone, a command's `typer.Exit(code)` (and --help's) comes back as its code.
        raise SystemExit(outcome if isinstance(outcome, int) and not isinstance(outcome, bool) else 0)


def _is_click(exc: BaseException, name: str) -> bool:
    """Whether `exc` is click's (typer vendors click, so this is matched by name rather than imported)."""
    return any(cls.__name__ == name and cls.__module__.startswith(("typer", "click")) for cls in type(exc).__mro__)


def _show_click_error(exc: Any) -> int:
    """A usage error as one line naming the command's --help; the exit code click gives it."""
    if type(exc).__name__ == "NoArgsIsHelpError":  # `codedance data` alone: the help, as click shows it
        exc.show()
        return int(exc.exit_code)
    ctx = getattr(exc, "ctx", None)
    see = f"; see `{ctx.command_path} --help`" if ctx is not None else ""
    print_error(one_line(exc.format_message()).rstrip(".") + see)
    return int(exc.exit_code)


app = CodeDanceApp(
    help="CodeDance: train a vision-language model to answer visual questions by writing and running Python.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
config_app = typer.Typer(help="Show and validate profile configs (configs/*.yaml).", no_args_is_help=True)
app.add_typer(config_app, name="config")


@app.callback()
def main_options(
    debug: Annotated[bool, typer.Option(
        "--debug", help="Show the full traceback of an error instead of one line (also CODEDANCE_DEBUG=1).")] = False,
) -> None:
    """CodeDance: train a vision-language model to answer visual questions by writing and running Python."""
    if debug:
        enable_debug()


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
    app.command("eval-suite")(evaluate.eval_suite_command)
    app.add_typer(rewards.app, name="rewards")
    app.add_typer(sandbox.app, name="sandbox")
    app.add_typer(train.app, name="train")
    app.add_typer(experiment.app, name="experiment")
    app.command("lifecycle")(lifecycle.lifecycle_command)


_mount_subcommands()
console = Console()

ProfileOpt = Annotated[str, typer.Option("--profile", "-p", help="Profile name (configs/NAME.yaml) or a YAML path.")]
OverrideOpt = Annotated[
    list[str] | None,
    typer.Option("--set", "-s", help="Override a field by dotted path, e.g. --set sandbox.timeout_s=5 (repeatable)."),
]


def load_or_exit(profile: str, overrides: list[str] | None):
    """Load a profile or print what is wrong with it and exit 2 (no traceback)."""
    from codedance_core.cli.exits import exit_with

    try:
        return load_profile(profile, overrides or [])
    except ConfigError as exc:
        raise exit_with(exc) from None


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
