"""`codedance serve`: an OpenAI-compatible server over a local model directory (transformers engine).

Where production runs `vllm serve`, evaluation and tests run this: same endpoints, same client.
Bound to 127.0.0.1 unless told otherwise; with --api-key (or $CODEDANCE_API_KEY) every /v1 call
needs `Authorization: Bearer KEY`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

app = typer.Typer(help="Serve a model over an OpenAI-compatible HTTP API.")
console = Console()


@app.command()
def serve(
    model: Annotated[Path, typer.Option("--model", help="Model directory (tiny or a real checkpoint).")],
    port: Annotated[int, typer.Option("--port", help="TCP port to listen on.")] = 8000,
    host: Annotated[
        str, typer.Option("--host", help="Interface to bind (default: loopback only).")
    ] = "127.0.0.1",
    api_key: Annotated[
        str | None, typer.Option("--api-key", envvar="CODEDANCE_API_KEY", help="Require this Bearer token.")
    ] = None,
    name: Annotated[
        str | None, typer.Option("--name", help="Served model name (default: directory name).")
    ] = None,
    device: Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N.")] = "auto",
    dtype: Annotated[str, typer.Option(help="auto, float32, bfloat16, float16.")] = "auto",
    max_batch_size: Annotated[int, typer.Option(help="Sequences generated together.")] = 32,
) -> None:
    """Serve /v1/models and /v1/chat/completions for MODEL until interrupted."""
    from codedance_core.cli.exits import exit_message, exit_with
    from codedance_core.models.check import check_model_dir

    if max_batch_size < 1:
        raise exit_message(f"--max-batch-size must be at least 1, not {max_batch_size}")
    try:
        check_model_dir(model)  # before the model load and the server's imports: seconds
        from codedance_core.serve import build_server_app, serve_forever

        app_ = build_server_app(
            model, name, api_key, device=device, dtype=dtype, max_batch_size=max_batch_size
        )
    except (FileNotFoundError, ValueError, OSError) as exc:
        raise exit_with(exc) from None
    console.print(f"serving [bold]{name or model.name}[/bold] at http://{host}:{port}/v1")
    serve_forever(app_, host=host, port=port)
