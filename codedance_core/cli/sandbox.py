"""`codedance sandbox`: run a snippet against an image the way the model's code runs, and benchmark.

`run` is for looking at exactly what a model would get back from a tool call (status, output,
error line, images); the images are saved beside the code file. `bench` measures the sandbox
against its performance targets (the same as `benchmarks/sandbox.py`).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from PIL import Image
from rich.console import Console
from rich.table import Table

from codedance_core.config.sandbox import SandboxConfig

app = typer.Typer(help="Run model-style Python against an image in the sandbox; benchmark it.", no_args_is_help=True)
console = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of a human summary.")]
IsolationOpt = Annotated[
    str, typer.Option("--isolation", help="'bwrap' (default) or 'none' (debugging trusted code only).")
]


@app.command("run")
def run(
    image: Annotated[Path, typer.Option("--image", help="Image file to preload as input_image.", exists=True)],
    code: Annotated[Path, typer.Option("--code", help="Python file to run (as one tool call).", exists=True)],
    timeout_s: Annotated[float, typer.Option("--timeout", help="Wall-clock limit in seconds.")] = 15.0,
    isolation: IsolationOpt = "bwrap",
    as_json: JsonOpt = False,
) -> None:
    """Run one snippet in a fresh session; print the result; save images as CODE.image-N.png."""
    from codedance_core.sandbox import IsolationUnavailable, SandboxPool

    config = SandboxConfig(isolation=isolation, timeout_s=timeout_s, workers=1)
    try:
        with SandboxPool.sync(config) as pool:
            result = pool.run_once(Image.open(image).convert("RGB"), code.read_text())
    except IsolationUnavailable as error:
        from codedance_core.cli.exits import exit_with

        raise exit_with(error) from None
    saved = []
    for index, png in enumerate(result.images):
        path = code.with_name(f"{code.stem}.image-{index}.png")
        path.write_bytes(png)
        saved.append(str(path))
    if as_json:
        data = result.to_dict()
        data["images"] = saved
        typer.echo(json.dumps(data, indent=2))
    else:
        print_result(result, saved)
    raise typer.Exit(0 if result.ok else 1)


def print_result(result, saved: list[str]) -> None:
    colour = "green" if result.ok else "red"
    console.print(f"status: [{colour}]{result.status}[/{colour}]  ({1000 * result.wall_time_s:.1f} ms)")
    if result.stdout:
        console.rule("stdout")
        console.print(result.stdout, markup=False, highlight=False, end="")
    if result.stderr:
        console.rule("stderr")
        console.print(result.stderr, markup=False, highlight=False, end="")
    if result.error_type:
        console.rule("error")
        console.print(f"{result.error_type} (line {result.error_line}): {result.error_message}", markup=False)
    for path in saved:
        console.print(f"image saved: {path}")


@app.command("bench")
def bench(
    runs: Annotated[int, typer.Option(help="Timed executions for the sandbox and in-process runs.")] = 200,
    naive_runs: Annotated[int, typer.Option(help="Timed fresh `python -c` runs.")] = 10,
    workers: Annotated[int, typer.Option(help="Sandbox workers.")] = 2,
    isolation: IsolationOpt = "bwrap",
    as_json: JsonOpt = False,
) -> None:
    """Measure latency vs `python -c` and in-process exec, throughput and session start."""
    from codedance_core.sandbox.bench import run_benchmark

    report = run_benchmark(SandboxConfig(workers=workers, isolation=isolation), runs, naive_runs)
    if as_json:
        typer.echo(json.dumps(report, indent=2))
        return
    table = Table(title=f"sandbox benchmark (isolation {report['isolation']}, {report['workers']} workers)")
    for column in ("measure", "p50 ms", "p90 ms"):
        table.add_column(column)
    for name, figures in {**report["latency"], "new session": report["new_session"]}.items():
        table.add_row(name, f"{figures['p50_ms']:.2f}", f"{figures['p90_ms']:.2f}")
    console.print(table)
    console.print(f"throughput: {report['throughput_exec_per_s']:.0f} exec/s; "
                  f"speed-up vs python -c: {report['speedup_vs_naive_p50']:.0f}x; "
                  f"overhead vs in-process: {report['overhead_vs_in_process_p50_ms']:.2f} ms")
    for target, met in report["targets_met"].items():
        console.print(f"  {'[green]met[/green]' if met else '[red]missed[/red]'}  {target}")
