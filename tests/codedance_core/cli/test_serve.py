"""`codedance serve`: a real server process answering the stock `openai` client."""

from __future__ import annotations

import socket
import subprocess
import sys
import time

import openai
from typer.testing import CliRunner

from codedance_core.cli.serve import app


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_process_answers_on_loopback(tiny_model_dir):
    port = free_port()
    command = [
        sys.executable,
        "-c",
        "from codedance_core.cli.serve import app; app()",
        "--model",
        str(tiny_model_dir),
        "--port",
        str(port),
        "--api-key",
        "k",
        "--name",
        "tiny",
    ]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="k", max_retries=0)
        deadline = time.monotonic() + 60
        while True:
            try:
                models = client.models.list()
                break
            except openai.APIConnectionError:
                assert process.poll() is None, process.stderr.read().decode()
                assert time.monotonic() < deadline, "server did not start in 60 s"
                time.sleep(0.2)
        assert models.data[0].id == "tiny"
        reply = client.chat.completions.create(
            model="tiny", messages=[{"role": "user", "content": "hi"}], max_tokens=4, temperature=0
        )
        assert reply.choices[0].finish_reason == "length"
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_missing_model_directory_exits_2(tmp_path):
    result = CliRunner().invoke(app, ["--model", str(tmp_path / "nothing")])
    assert result.exit_code == 2 and "no config.json" in result.output


def test_help_names_the_defaults():
    result = CliRunner().invoke(app, ["--help"])
    assert result.exit_code == 0 and "127.0.0.1" in result.output and "--api-key" in result.output
