"""`codedance model`: build the tiny Qwen2.5-VL locally and inspect model directories.

`tiny` needs no network: the tokenizer is trained on the task suite's text plus CodeDance-style
code, the weights are random, and the result is a `save_pretrained` directory that every stage
(and `codedance serve`) loads like a real checkpoint. `--json` prints one JSON object.
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

app = typer.Typer(help="Build the tiny local model; inspect model directories.", no_args_is_help=True)
console = Console()

JsonOpt = Annotated[bool, typer.Option("--json", help="Print one JSON object instead of text.")]


@app.command("tiny")
def tiny(
    out: Annotated[Path, typer.Option("--out", help="Directory to write the model into (created).")],
    rows: Annotated[int, typer.Option(help="Task-suite rows whose text trains the tokenizer.")] = 2000,
    vocab_size: Annotated[int, typer.Option(help="Target vocabulary size.")] = 3000,
    max_pixels: Annotated[int, typer.Option(help="Largest image area after resizing (pixels).")] = 256
    * 28
    * 28,
    seed: Annotated[int, typer.Option(help="Seed of the corpus and of the random weights.")] = 0,
    workers: Annotated[int, typer.Option(help="Processes rendering suite rows.")] = 2,
    as_json: JsonOpt = False,
) -> None:
    """Build a tiny Qwen2.5-VL-architecture model (random weights) with a locally trained tokenizer."""
    from codedance_core.config.model import TinyModelConfig
    from codedance_core.models import build_tiny_model, load_model_bundle
    from codedance_core.models.tiny import parameter_count, suite_corpus

    try:
        config = TinyModelConfig(vocab_size=vocab_size, max_pixels=max_pixels, seed=seed)
    except ValidationError as exc:
        from codedance_core.cli.exits import exit_message

        raise exit_message(exc.errors()[0]["msg"]) from None
    started = time.perf_counter()
    build_tiny_model(out, suite_corpus(rows, seed=seed, workers=workers), config)
    bundle = load_model_bundle(out, device="cpu")
    summary = {
        "out": str(out),
        "parameters": parameter_count(bundle.model),
        "vocab_size": len(bundle.tokenizer),
        "seconds": round(time.perf_counter() - started, 2),
    }
    if as_json:
        print(json.dumps(summary))
        return
    console.print(
        f"[green]tiny model written to {out}[/green]: {summary['parameters']:,} parameters, "
        f"vocabulary {summary['vocab_size']}, {summary['seconds']} s"
    )


@app.command("info")
def info(
    model_dir: Annotated[
        Path, typer.Argument(help="A model directory (tiny or a real Qwen2.5-VL checkpoint).")
    ],
    as_json: JsonOpt = False,
) -> None:
    """Describe a model directory: architecture sizes, parameters, vocabulary, image bounds."""
    from codedance_core.cli.exits import exit_with
    from codedance_core.models.check import check_model_dir

    try:
        check_model_dir(model_dir)  # before torch is imported: a bad directory is told at once
        from codedance_core.models import load_model_bundle

        bundle = load_model_bundle(model_dir, device="cpu")
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise exit_with(exc) from None
    from codedance_core.models.images import pixel_bounds
    from codedance_core.models.tiny import parameter_count

    text, vision = bundle.model.config.text_config, bundle.model.config.vision_config
    min_pixels, max_pixels = pixel_bounds(bundle.image_processor)
    details = {
        "path": str(model_dir),
        "parameters": parameter_count(bundle.model),
        "vocab_size": len(bundle.tokenizer),
        "text_layers": text.num_hidden_layers,
        "hidden_size": text.hidden_size,
        "vision_depth": vision.depth,
        "vision_hidden_size": vision.hidden_size,
        "min_pixels": min_pixels,
        "max_pixels": max_pixels,
        "eos_token_ids": bundle.eos_token_ids,
    }
    if as_json:
        print(json.dumps(details))
        return
    table = Table(title=str(model_dir), show_header=False)
    for key, value in details.items():
        table.add_row(key, f"{value:,}" if isinstance(value, int) else str(value))
    console.print(table)
