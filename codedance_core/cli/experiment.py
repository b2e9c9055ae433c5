"""`codedance experiment`: experiments that check the method's claims end to end.

    codedance experiment mini                        # 5 arms x 3 seeds on the tiny profile (about 90 min, 2 cores)
    codedance experiment mini --smoke                # 1 seed, tiny data, few steps: checks the machinery
    codedance experiment mini --seeds 1 --set grpo.max_steps=16 --out /tmp/mini
    codedance experiment mini --tracking-uri sqlite:///elsewhere.db         # log to another MLflow

It runs the `mini-codedance` Prefect flow (flows/experiment.py) over the lifecycle's stages, so it
needs the orchestrator's install (`make setup`). Rerunning the same command resumes: every stage whose
inputs, settings and code did not change is a cache hit.
"""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from codedance_core.experiments.mini import MiniConfig

app = typer.Typer(help="Experiments that test the paper's claims (Mini-CodeDance).", no_args_is_help=True)
console = Console()


@app.callback()
def experiment() -> None:
    """Experiments that test the paper's claims end to end."""


@app.command("mini")
def mini(
    seeds: Annotated[int, typer.Option("--seeds", min=1, help="Number of seeds (0, 1, ... N-1).")] = 3,
    smoke: Annotated[bool, typer.Option("--smoke", help="1 seed, tiny data, few steps (a few minutes).")] = False,
    out: Annotated[str, typer.Option("--out", help="Folder of the report, plots and per-arm results.")] = "docs/mini-codedance",
    profile: Annotated[str, typer.Option("--profile", "-c", help="Profile name or YAML path.")] = "tiny",
    overrides: Annotated[
        list[str] | None, typer.Option("--set", "-s", help="Profile override by dotted path, e.g. grpo.max_steps=16.")
    ] = None,
    arms: Annotated[
        list[str] | None, typer.Option("--arm", help="Run only these arms (repeatable); default all five.")
    ] = None,
    store: Annotated[
        str | None, typer.Option("--store", help="Artifact store of every stage's outputs (default: the profile's).")
    ] = None,
    tracking_uri: Annotated[
        str | None, typer.Option("--tracking-uri", help="MLflow tracking URI (default: the profile's).")
    ] = None,
    artifact_root: Annotated[
        str | None, typer.Option("--artifact-root", help="Where MLflow stores the runs' artifacts (default: the profile's).")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Train and evaluate the five arms for each seed, then write the markdown report and plots."""
    from pydantic import ValidationError

    from codedance_core.cli.exits import exit_message, exit_with
    from codedance_core.config.loader import ConfigError
    from codedance_core.experiments.mini import ARMS

    try:
        from flows.experiment import MiniParameters, mini_experiment
    except ImportError as error:
        raise exit_message(f"the experiment runs as a Prefect flow: install the orchestrator ({error})") from None
    try:
        params = MiniParameters(
            profile=profile, overrides=overrides or [], seeds=seeds, arms=arms or list(ARMS), smoke=smoke,
            out_dir=out, store_root=store, tracking_uri=tracking_uri, artifact_root=artifact_root,
        )
        config = params.config()
        config.base_profile()  # a bad override fails here, before any work
    except (ConfigError, ValidationError) as exc:
        raise exit_with(exc) from None
    outcome = mini_experiment(params, command=command_line(config, seeds))
    report = Path(outcome["report"])
    summary = json.loads((report.parent / "summary.json").read_text())
    if as_json:
        print(json.dumps({"report": str(report), "seconds": outcome["seconds"], "claims": summary["claims"],
                          "arms": summary["arms"]}))
        return
    table = Table(title="Mini-CodeDance claims")
    for column in ("claim", "verdict", "numbers"):
        table.add_column(column)
    for claim in summary["claims"]:
        table.add_row(claim["claim"], claim["verdict"], claim["numbers"])
    console.print(table)
    console.print(f"Report: {report} ({outcome['seconds'] / 60:.1f} min)")


def command_line(config: MiniConfig, seeds: int) -> str:
    """The exact command that reproduces `config` (recorded in the report)."""
    from codedance_core.experiments.mini import ARMS

    parts = ["codedance", "experiment", "mini", "--smoke" if config.smoke else f"--seeds={seeds}",
             f"--out={config.out_dir}", f"--profile={config.profile}"]
    parts += [f"--set={override}" for override in config.overrides]
    if config.arms != list(ARMS):
        parts += [f"--arm={arm}" for arm in config.arms]
    for flag, value in (("--store", config.store_root), ("--tracking-uri", config.tracking_uri),
                        ("--artifact-root", config.artifact_root)):
        if value:
            parts.append(f"{flag}={value}")
    return shlex.join(parts)
