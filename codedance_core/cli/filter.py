"""`codedance data filter`: weak-to-strong filtering of an RL parquet.

    codedance data filter --input rl.parquet --out filtered.parquet --weak-model .codedance/models/weak \\
        --k 8 --no-tools --report reports/filter
    codedance data filter --input rl.parquet --out filtered.parquet --weak-url http://127.0.0.1:8000/v1

Scored shards are kept in the work dir (`--work-dir`), so running the same command again, or
after an interruption, only generates for the shards not yet scored.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markdown import Markdown
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

console = Console(stderr=True)

app = typer.Typer(help="Weak-to-strong filtering of RL data.")


@app.command("filter")
def filter_command(
    input_uri: Annotated[str, typer.Option("--input", help="RL-format parquet to filter (local path or s3://).")],
    out: Annotated[str, typer.Option(help="Where to write the kept rows (parquet, with pass_rate and bucket).")],
    weak_model: Annotated[
        Path | None, typer.Option(help="Weak model checkpoint directory (in-process engine).")
    ] = None,
    weak_url: Annotated[
        str | None, typer.Option(help="OpenAI-compatible base URL (…/v1) serving the weak model.")
    ] = None,
    weak_name: Annotated[str, typer.Option(help="Served model name at --weak-url ('' = the server's first).")] = "",
    k: Annotated[int, typer.Option(help="Sampled answers per item.")] = 8,
    tools: Annotated[
        bool, typer.Option("--tools/--no-tools", help="Let the weak model run code (--no-tools: one turn).")
    ] = True,
    temperature: Annotated[float, typer.Option(help="Sampling temperature.")] = 1.0,
    max_new_tokens: Annotated[int, typer.Option(help="Tokens per weak-model turn.")] = 512,
    trivial_threshold: Annotated[float, typer.Option(help="Pass rate at or above which an item is dropped.")] = 1.0,
    hard_max: Annotated[float, typer.Option(help="Pass rate at or below which a kept item is 'hard'.")] = 0.25,
    shard_rows: Annotated[int, typer.Option(help="Rows scored and checkpointed together.")] = 256,
    report: Annotated[Path | None, typer.Option(help="Folder for the report (JSON, markdown, PNG).")] = None,
    work_dir: Annotated[str, typer.Option(help="Where scored shards are kept for reuse.")] = ".codedance/filter-work",
    quarantine: Annotated[str | None, typer.Option(help="Where bad rows go (default: beside --out).")] = None,
    device: Annotated[str, typer.Option(help="Device of a local weak model: cpu, cuda or auto.")] = "auto",
    workers: Annotated[int, typer.Option(help="Sandbox template processes.")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the summary as JSON on stdout.")] = False,
) -> None:
    """Drop the items a weak model always solves; bucket the rest (medium / hard) by pass rate."""
    from codedance_core.cli.exits import check_reachable
    from codedance_core.config.agent import RolloutOverrides
    from codedance_core.config.filtering import FilterConfig
    from codedance_core.config.sandbox import SandboxConfig
    from codedance_core.data.columns import require_columns
    from codedance_core.models.check import check_model_dir

    if (weak_model is None) == (weak_url is None):
        raise typer.BadParameter("give exactly one of --weak-model DIR or --weak-url URL")
    rollout = RolloutOverrides(max_turns=None if tools else 1, temperature=temperature, max_new_tokens=max_new_tokens)
    config = FilterConfig(
        k=k, rollout=rollout, trivial_threshold=trivial_threshold, hard_max_pass_rate=hard_max, shard_rows=shard_rows,
    )
    # The rows and the weak model's files are checked before the model load (seconds).
    total_rows = require_columns(input_uri, "rl")
    if weak_model is not None:
        check_model_dir(weak_model)
    if weak_url is not None:
        check_reachable(weak_url, "weak model's server")
    from codedance_core.filtering import endpoint_weak_model, filter_dataset, local_weak_model

    weak = local_weak_model(weak_model, device=device) if weak_model else endpoint_weak_model(weak_url, weak_name)
    with Progress(
        TextColumn("filtering"), BarColumn(), MofNCompleteColumn(), TextColumn("rows"), TimeElapsedColumn(),
        console=console, disable=as_json,
    ) as progress:
        task = progress.add_task("rows", total=total_rows)
        result = filter_dataset(
            input_uri, out, weak, config, work_root=work_dir, quarantine_uri=quarantine,
            report_dir=str(report) if report else None, sandbox_config=SandboxConfig(workers=workers),
            on_shard=lambda _shard, rows, _reused: progress.advance(task, rows),
        )
    weak.engine.close()
    summary = {
        "out": result.output.uri,
        "digest": result.output.digest,
        "kept": result.output.rows,
        "quarantine": result.quarantine.uri if result.quarantine else None,
        "work_dir": result.work_dir,
        "shards_scored": result.shards_scored,
        "shards_reused": result.shards_reused,
        "report_files": result.report_files,
        "report": result.report.to_dict(),
    }
    if as_json:
        print(json.dumps(summary))
        return
    Console().print(Markdown(result.report.markdown()))
    Console().print(
        f"kept {result.output.rows} rows -> {result.output.uri}; shards scored {result.shards_scored}, "
        f"reused {result.shards_reused}"
    )
