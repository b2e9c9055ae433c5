"""`codedance experiment`: experiments that check the method's claims end to end.

    codedance experiment mini                        # 5 arms x 3 seeds on the tiny profile (< 60 min, 2 cores)
    codedance experiment mini --smoke                # 1 seed, tiny data, few steps: checks the machinery
    codedance experiment mini --seeds 1 --set grpo.max_steps=16 --out /tmp/mini
    codedance experiment mini --tracking-uri sqlite:///.codedance/mlflow.db   # also log to MLflow

Rerunning the same command resumes: each finished (arm, seed) result in OUT/results is reused.
"""

from __future__ import annotations

import json
import shlex
from typing import TYPE_CHECKING, Annotated

import typer
from rich.console import Console
from rich.table import Table

if TYPE_CHECKING:
    from codedance_core.experiments.mini import MiniConfig

app = typer.Typer(help="Experiments that test the paper's claims (Mini-CodeDance).", no_args_is_help=True)
console = Console()
err_console = Console(stderr=True)


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
    work_dir: Annotated[
        str, typer.Option("--work-dir", help="Models, data and evaluation outputs (large; not committed).")
    ] = ".codedance/experiments/mini",
    tracking_uri: Annotated[
        str | None, typer.Option("--tracking-uri", help="MLflow tracking URI; nothing is logged without it.")
    ] = None,
    artifact_root: Annotated[
        str, typer.Option("--artifact-root", help="Where MLflow stores the report and plots it logs.")
    ] = ".codedance/mlartifacts",
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")] = False,
) -> None:
    """Train and evaluate the five arms for each seed, then write the markdown report and plots."""
    from pydantic import ValidationError

    from codedance_core.config.loader import ConfigError
    from codedance_core.experiments.mini import ARMS, MiniConfig, run_mini

    try:
        config = MiniConfig(
            profile=profile, overrides=overrides or [], seeds=list(range(1 if smoke else seeds)),
            arms=arms or list(ARMS), smoke=smoke, out_dir=out, work_dir=work_dir, tracking_uri=tracking_uri,
            artifact_root=artifact_root,
            corpus_rows=60 if smoke else 400,
        )
        config.base_profile()  # a bad override fails here, before any work
    except (ConfigError, ValidationError) as exc:
        err_console.print(f"[red]{exc}[/red]")
        raise typer.Exit(2) from None
    progress = err_console if as_json else console

    def log(line: str) -> None:
        # Not markup: "[seed 0]" would be read as a style tag and vanish.
        progress.print(line, markup=False, highlight=False)

    outcome = run_mini(config, command=command_line(config, seeds), log=log)
    summary = json.loads((outcome.out_dir / "summary.json").read_text())
    if as_json:
        print(json.dumps({"report": str(outcome.report), "seconds": outcome.seconds, "claims": summary["claims"],
                          "arms": summary["arms"]}))
        return
    table = Table(title="Mini-CodeDance claims")
    for column in ("claim", "verdict", "numbers"):
        table.add_column(column)
    for claim in summary["claims"]:
        table.add_row(claim["claim"], claim["verdict"], claim["numbers"])
    console.print(table)
    console.print(f"Report: {outcome.report} ({outcome.seconds / 60:.1f} min)")


def command_line(config: MiniConfig, seeds: int) -> str:
    """The exact command that reproduces `config` (recorded in the report)."""
    from codedance_core.experiments.mini import ARMS

    parts = ["codedance", "experiment", "mini", "--smoke" if config.smoke else f"--seeds={seeds}",
             f"--out={config.out_dir}", f"--profile={config.profile}", f"--work-dir={config.work_dir}"]
    parts += [f"--set={override}" for override in config.overrides]
    if config.arms != list(ARMS):
        parts += [f"--arm={arm}" for arm in config.arms]
    if config.tracking_uri:
        parts += [f"--tracking-uri={config.tracking_uri}", f"--artifact-root={config.artifact_root}"]
    return shlex.join(parts)

