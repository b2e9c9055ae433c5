"""`codedance data`: synthesise the procedural suite and validate row files.

Both commands take any store URI (local path, s3://..., and for reading hf://datasets/...).
Errors the user can fix (a file that is not parquet, a bad option) print one line and exit
with status 2; they never show a traceback. `--json` prints one JSON object for machines.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

app = typer.Typer(help="Make and check datasets: the procedural task suite, schema validation with quarantine.",
                  no_args_is_help=True)
console = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


def _fail(message: str) -> typer.Exit:
    from codedance_core.cli.exits import exit_message

    return exit_message(message)


@app.command("synth")
def synth(
    out: Annotated[str, typer.Option("--out", help="Output parquet: a local path or s3://bucket/key.parquet.")],
    n: Annotated[int, typer.Option("--n", help="Number of items.")] = 100,
    seed: Annotated[int, typer.Option("--seed", help="Dataset seed (same seed, same bytes).")] = 0,
    families: Annotated[str, typer.Option(help="Comma-separated families: count,search,chart,math,direct.")] = (
        "count,search,chart,math,direct"
    ),
    split: Annotated[str, typer.Option(help="train or test (test items come from disjoint seeds).")] = "train",
    difficulty: Annotated[str, typer.Option(help="easy, hard or mixed.")] = "mixed",
    hard_fraction: Annotated[float, typer.Option(help="Share of hard items when mixed.")] = 0.5,
    workers: Annotated[int, typer.Option(help="Rendering processes (1 = in-process).")] = 2,
    shard_rows: Annotated[int, typer.Option(help="Rows per parquet row group.")] = 256,
    as_json: JsonOpt = False,
) -> None:
    """Write N procedural visual tasks as an RL-format parquet (deterministic by seed)."""
    from codedance_core.config.data import SuiteSpec
    from codedance_core.data.suite import write_suite

    try:
        spec = SuiteSpec(
            families=[name.strip() for name in families.split(",") if name.strip()],
            n=n, seed=seed, split=split, difficulty=difficulty, hard_fraction=hard_fraction,
        )
    except ValidationError as exc:
        first = exc.errors()[0]
        raise _fail(f"{'.'.join(map(str, first['loc']))}: {first['msg']}") from None
    started = time.perf_counter()
    ref = write_suite(spec, out, workers=workers, shard_rows=shard_rows)
    seconds = time.perf_counter() - started
    summary = {"uri": ref.uri, "digest": ref.digest, "rows": ref.rows, "bytes": ref.size,
               "seconds": round(seconds, 3), "spec": spec.model_dump()}
    if as_json:
        print(json.dumps(summary))
        return
    console.print(f"[green]wrote {ref.rows} items[/green] to {ref.uri} ({ref.size / 1e6:.1f} MB, {seconds:.1f} s)")
    console.print(f"  digest {ref.digest}")


@app.command("validate")
def validate(
    path: Annotated[str, typer.Argument(help="Parquet to check: local path, s3://... or hf://datasets/...")],
    schema: Annotated[str, typer.Option("--schema", help="Row schema: rl, sft or eval.")] = "rl",
    quarantine: Annotated[str | None, typer.Option(
        "--quarantine", help="Where to write bad rows (with a `reason` column); default "
        ".codedance/quarantine/<name>.quarantine.parquet.")] = None,
    good: Annotated[str | None, typer.Option("--good", help="Also write the good rows here.")] = None,
    batch_rows: Annotated[int, typer.Option(help="Rows read per batch (bounds memory).")] = 256,
    workers: Annotated[int, typer.Option(help="Image-decoding threads.")] = 2,
    check_image_tokens: Annotated[bool, typer.Option(
        help="Require one <image> marker in the messages per image.")] = True,
    fail_on_bad: Annotated[bool, typer.Option(help="Exit with status 1 when any row is bad.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Check every row against a schema; quarantine bad rows, each with one reason; print counts."""
    from codedance_core.config.data import DataConfig
    from codedance_core.data.io import NotParquetError
    from codedance_core.data.validate import validate_file

    if schema not in ("rl", "sft", "eval"):
        raise _fail(f"--schema must be rl, sft or eval, not {schema!r}")
    if quarantine is None:
        stem = Path(path.rstrip("/").rsplit("/", 1)[-1]).stem
        quarantine = str(Path(".codedance/quarantine") / f"{stem}.quarantine.parquet")
    config = DataConfig(batch_rows=batch_rows, validate_workers=workers, check_image_tokens=check_image_tokens)
    try:
        report = validate_file(path, schema, good_out=good, quarantine_out=quarantine, config=config)  # type: ignore[arg-type]
    except NotParquetError as exc:
        raise _fail(str(exc)) from None
    if as_json:
        print(json.dumps({**report.model_dump(mode="json"), "rows_per_s": round(report.rows_per_s, 1)}))
    else:
        _print_report(report)
    if fail_on_bad and report.bad_rows:
        raise typer.Exit(1)


def _print_report(report) -> None:
    colour = "green" if report.bad_rows == 0 else "yellow"
    console.print(f"[{colour}]{report.good_rows} good, {report.bad_rows} quarantined[/{colour}] "
                  f"of {report.total_rows} rows in {report.uri} ({report.seconds:.1f} s, schema {report.schema_name})")
    if report.reasons:
        table = Table("reason", "rows", "first example")
        for reason, count in sorted(report.reasons.items(), key=lambda item: -item[1]):
            table.add_row(reason, str(count), report.examples.get(reason, ""))
        console.print(table)
    if report.quarantine_ref:
        console.print(f"  quarantine: {report.quarantine_ref.uri}")
    if report.good_ref:
        console.print(f"  good rows:  {report.good_ref.uri}")
