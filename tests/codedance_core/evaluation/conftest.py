"""Shared pieces of the evaluation tests: small benchmark files and a tiny model taught to use a tool.

The taught model (built once per session) has seen one conversation by heart: for the question
"How many pixels?" about a red 224x224 image it writes code measuring the image, reads the
sandbox's real output, and answers 50176. Evaluations against it therefore exercise the whole
path (prompt, code, sandbox, observation, answer, scoring) with a known right answer.
"""

from __future__ import annotations

import asyncio
import io
import shutil
from pathlib import Path

import polars as pl
import pytest
from PIL import Image

CODE = "w, h = input_image.size\nprint(w * h)\n"
TURN_1 = f"<think>measure</think><code>\n```python\n{CODE}```\n</code>"
TURN_2 = "<think>done</think><answer>50176</answer>"
TAUGHT_QUESTION = "How many pixels?"


def png_bytes(colour: str = "red", size: tuple[int, int] = (224, 224)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, format="PNG")
    return buffer.getvalue()


def eval_parquet(path: Path, rows: list[tuple[str, str, str]]) -> Path:
    """An eval-layout parquet of (question, answer, colour) rows, data_source 'pixels'."""
    frame = pl.DataFrame(
        {
            "id": [str(i) for i in range(len(rows))],
            "question": [q for q, _, _ in rows],
            "answer": [a for _, a, _ in rows],
            "images": [[{"bytes": png_bytes(c), "path": None}] for _, _, c in rows],
            "data_source": ["pixels"] * len(rows),
        }
    )
    frame.write_parquet(path)
    return path


@pytest.fixture(scope="session")
def taught_model_dir(tiny_model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the tiny model taught the two-turn pixel-counting trajectory, saved to disk."""
    from codedance_core.chat_format.messages import to_model_messages
    from codedance_core.chat_format.observation import format_observation
    from codedance_core.evaluation.registry import get_benchmark, load_items
    from codedance_core.models import load_model_bundle
    from codedance_core.models.images import pixel_bounds
    from codedance_core.models.imprint import imprint_conversation
    from codedance_core.sandbox import SandboxConfig, SandboxPool

    out = tmp_path_factory.mktemp("taught") / "taught"
    shutil.copytree(tiny_model_dir, out)
    bundle = load_model_bundle(out, device="cpu", dtype="float32")
    data = eval_parquet(out.parent / "one.parquet", [(TAUGHT_QUESTION, "50176", "red")])
    [item] = load_items(get_benchmark("parquet"), data, *pixel_bounds(bundle.image_processor))

    async def observe() -> str:
        async with SandboxPool(SandboxConfig(workers=1)) as pool:
            return format_observation(await pool.run_once(item.images[0], CODE)).text

    observation = asyncio.run(observe())
    turns = [(TURN_1, observation), (TURN_2, None)]
    loss = imprint_conversation(bundle, to_model_messages(item.messages), item.images, turns)
    assert loss < 0.05
    bundle.model.save_pretrained(str(out))
    return out


class _JudgeState:
    def __init__(self, url: str) -> None:
        self.url = url
        self.requests = 0


@pytest.fixture
def judge_server():
    """A real OpenAI-compatible judge on loopback that says 'Judgement: 1' and counts its calls."""
    import json
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    state = _JudgeState("")

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_POST(self) -> None:
            json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            state.requests += 1
            reply = {"choices": [{"message": {"role": "assistant", "content": "Same value.\nJudgement: 1"}}]}
            body = json.dumps(reply).encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.url = f"http://127.0.0.1:{server.server_address[1]}/v1"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()
