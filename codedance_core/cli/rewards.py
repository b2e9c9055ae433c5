"""`codedance rewards`: score one response by hand, and see the BAT difficulty curve.

For people checking why a trajectory got the reward it got: `score` prints every part (the
rule that decided accuracy, the format penalty, r_tool) exactly as training computes it.
Answers no rule can decide are sent to the judge only with `--judge`; an answer left ungraded
(`judge_error`) makes the command exit 1, so a script never takes it for a score.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

app = typer.Typer(
    help="Inspect rewards: score a response, print the BAT difficulty weight d(mu).", no_args_is_help=True
)
console = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a table.")]


@app.command("score")
def score(
    response: Annotated[str, typer.Option(help="The model's text, with its <think> and <answer> tags.")],
    gold: Annotated[str, typer.Option(help="The gold answer.")],
    data_source: Annotated[
        str, typer.Option(help="The row's data_source (selects scorer and weights).")
    ] = "",
    tool_status: Annotated[
        list[str] | None,
        typer.Option(help="A tool call's sandbox status (ok, error, timeout, ...); repeatable."),
    ] = None,
    option: Annotated[
        list[str] | None, typer.Option(help="A choice option, in order A, B, ...; repeatable.")
    ] = None,
    question: Annotated[str, typer.Option(help="The question (only the judge reads it).")] = "",
    judge: Annotated[
        bool, typer.Option(help="Ask the LLM judge (LLM_AS_A_JUDGE_BASE) when no rule decides.")
    ] = False,
    judge_timeout: Annotated[
        float | None, typer.Option(help="Seconds one judge request may take (judge.request_timeout_s).")
    ] = None,
    judge_retries: Annotated[
        int | None, typer.Option(help="Judge retries after the first attempt (judge.max_retries).")
    ] = None,
    judge_budget: Annotated[
        float | None,
        typer.Option(help="Seconds to spend waiting on a failing judge in all (judge.budget_s)."),
    ] = None,
    as_json: JsonOpt = False,
) -> None:
    """Score one response: accuracy (with its rule), format penalty, base score, r_tool."""
    from pydantic import ValidationError

    from codedance_core.config.rewards import RewardConfig, judge_limits
    from codedance_core.rewards.judge import JudgeConfigError, LLMJudge
    from codedance_core.rewards.score import STATUS_JUDGE_ERROR, TrajectoryInput, score_trajectories

    item = TrajectoryInput(response, gold, data_source, list(tool_status or []), question, option or None)
    try:
        config = RewardConfig()
        config.judge = judge_limits(
            config.judge, timeout_s=judge_timeout, max_retries=judge_retries, budget_s=judge_budget
        )
        scorer = LLMJudge(config.judge) if judge else None
    except (JudgeConfigError, ValidationError) as error:
        typer.echo(f"error: {_one_line(error)}", err=True)
        raise typer.Exit(2) from None
    [result] = asyncio.run(score_trajectories([item], config, scorer))
    if as_json:
        print(json.dumps(asdict(result)))
    else:
        table = Table(show_header=False)
        for name, value in asdict(result).items():
            table.add_row(name, str(value))
        console.print(table)
    if result.status == STATUS_JUDGE_ERROR:
        typer.echo(f"error: 1 of 1 answers not judged (judge_error): {_one_line(result.detail)}", err=True)
        raise typer.Exit(1)


def _one_line(error: object) -> str:
    """A message on one line: pydantic's and some servers' span several."""
    return " ".join(str(error).split())


@app.command("difficulty")
def difficulty(
    gamma: Annotated[float, typer.Option(help="Steepness of d(mu).")] = 4.0,
    beta: Annotated[float, typer.Option(help="Offset of d(mu).")] = 0.2,
    steps: Annotated[int, typer.Option(min=2, help="Number of mu values from 0 to 1.")] = 9,
    as_json: JsonOpt = False,
) -> None:
    """Print d(mu) = (1 + tanh(gamma (0.5 - mu))) / 2 - beta for mu from 0 to 1."""
    from codedance_core.rewards.bat import difficulty_weight

    rows = [(i / (steps - 1), float(difficulty_weight(i / (steps - 1), gamma, beta))) for i in range(steps)]
    if as_json:
        print(json.dumps({"gamma": gamma, "beta": beta, "d": [{"mu": mu, "d": d} for mu, d in rows]}))
        return
    table = Table("mu (group accuracy)", "d(mu)")
    for mu, d in rows:
        table.add_row(f"{mu:.3f}", f"{d:+.3f}")
    console.print(table)
