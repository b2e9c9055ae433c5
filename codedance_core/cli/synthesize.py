"""`codedance data synthesize`: RL items in, verified SFT trajectories out (plus rejects and stats).

The lead mounts `synthesize` as a command of the `data` group. `--json` prints the statistics
as one JSON object; otherwise a progress bar while it runs and a table per family at the end.
"""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

app = typer.Typer(help="Verified trajectory synthesis: RL items become SFT trajectories whose code really ran.")
console = Console()


@app.command("synthesize")
def synthesize(
    input_uri: Annotated[str, typer.Option("--input", help="RL parquet to synthesise from (local path or s3://).")],
    out: Annotated[str, typer.Option("--out", help="Where to write the SFT parquet (kept trajectories).")],
    rejects: Annotated[str | None, typer.Option("--rejects", help="Where to write rejected items with reasons.")] = None,
    teacher_url: Annotated[str | None, typer.Option(
        "--teacher-url", help="OpenAI-compatible base URL (…/v1) of a teacher for items with no program writer.")] = None,
    teacher_model: Annotated[str, typer.Option(help="Teacher model name ('' = the endpoint's first model).")] = "",
    teacher_families: Annotated[str, typer.Option(
        help="Comma-separated families sent to the teacher even though a program exists.")] = "",
    failure_rate: Annotated[float, typer.Option(help="Share of tool trajectories with a failed first attempt.")] = 0.2,
    max_pixels: Annotated[int, typer.Option(help="Largest image area after resizing (the policy's).")] = 256 * 784,
    seed: Annotated[int, typer.Option(help="Seed of the failure draws.")] = 0,
    concurrency: Annotated[int, typer.Option(help="Trajectories synthesised at once.")] = 8,
    workers: Annotated[int, typer.Option(help="Sandbox template processes.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the statistics as one JSON object.")] = False,
) -> None:
    """Write verified SFT trajectories for the items of an RL parquet; print kept/rejected per family."""
    from pydantic import ValidationError

    from codedance_core.cli.exits import check_reachable, exit_message, exit_with
    from codedance_core.config.model import EngineConfig
    from codedance_core.config.sandbox import SandboxConfig
    from codedance_core.config.synthesis import SynthesisConfig, TeacherConfig
    from codedance_core.data.io import NotParquetError, open_parquet
    from codedance_core.synthesis import synthesize_file

    try:
        teacher = None
        if teacher_url:
            families = [name.strip() for name in teacher_families.split(",") if name.strip()]
            teacher = TeacherConfig(engine=EngineConfig(kind="openai", base_urls=[teacher_url], model=teacher_model),
                                    families=families)
        config = SynthesisConfig(failure_rate=failure_rate, max_pixels=max_pixels, seed=seed, concurrency=concurrency,
                                 sandbox=SandboxConfig(workers=workers), teacher=teacher)
        with open_parquet(input_uri) as source:
            total = source.num_rows
        if teacher_url:
            check_reachable(teacher_url, "teacher")
    except ValidationError as error:
        first = error.errors()[0]
        raise exit_message(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    except NotParquetError as error:
        raise exit_with(error) from None
    if as_json:
        report = synthesize_file(input_uri, out, config, rejects_uri=rejects)
        print(json.dumps({"out": report.out.uri, "rows": report.out.rows,
                          "rejects": report.rejects.uri if report.rejects else None, **report.stats.to_dict()}))
        return
    columns = (TextColumn("synthesising"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("items", total=total)
        report = synthesize_file(input_uri, out, config, rejects_uri=rejects,
                                 on_progress=lambda n: progress.advance(task, n))
    console.print(report.stats.table())
    console.print(f"[green]kept {report.stats.kept}[/green], rejected {report.stats.rejected} "
                  f"({report.stats.seconds:.1f} s) -> {report.out.uri}")
    if report.rejects:
        console.print(f"  rejects: {report.rejects.uri}")
