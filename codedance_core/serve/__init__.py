"""The OpenAI-compatible model server (`codedance serve`) over the in-process `hf` engine."""

from __future__ import annotations

from codedance_core.serve.app import create_app
from codedance_core.serve.server import ServerThread, build_server_app, serve_forever

__all__ = ["ServerThread", "build_server_app", "create_app", "serve_forever"]
