"""Running the server: in the foreground for `codedance serve`, or in a thread for tests and flows.

Bound to 127.0.0.1 by default: a model server with no API key must not face a network by accident.
"""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import uvicorn
from fastapi import FastAPI

from codedance_core.models.bundle import load_model_bundle
from codedance_core.serve.app import create_app


def build_server_app(
    model_dir: str | Path,
    model_name: str | None = None,
    api_key: str | None = None,
    device: str = "auto",
    dtype: str = "auto",
    max_batch_size: int = 32,
) -> FastAPI:
    """Load the model directory and wrap it in the OpenAI-compatible app (name: the directory's name)."""
    bundle = load_model_bundle(model_dir, device=device, dtype=dtype)
    return create_app(
        bundle, model_name or Path(model_dir).name, api_key=api_key, max_batch_size=max_batch_size
    )


def serve_forever(app: FastAPI, host: str = "127.0.0.1", port: int = 8000) -> None:
    """Serve until interrupted."""
    uvicorn.run(app, host=host, port=port, log_level="info")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


class ServerThread:
    """An app served by uvicorn in a background thread; a context manager yielding its base URL (…/v1)."""

    def __init__(self, app: FastAPI, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self.server = uvicorn.Server(uvicorn.Config(app, host=host, port=self.port, log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/v1"

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError(f"server on {self.host}:{self.port} did not start")
            time.sleep(0.02)
        return self.base_url

    def __exit__(self, *exc_info) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
