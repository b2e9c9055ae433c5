"""The open-ended path: a teacher behind a real HTTP endpoint writes the turns; the sandbox runs them.

One server is scripted (a real HTTP server on 127.0.0.1 that answers with prepared turns and
reads the observations it is sent); the other is `codedance serve` with the tiny model.
"""

from __future__ import annotations

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from codedance_core.config.model import EngineConfig
from codedance_core.config.synthesis import TeacherConfig
from codedance_core.engines.openai import OpenAIEngine
from tests.codedance_core.synthesis.conftest import suite_rows


class ScriptedTeacher(BaseHTTPRequestHandler):
    """Answers /v1/chat/completions with `script[n]`, n = assistant turns already in the conversation."""

    script: ClassVar[list[str]] = []
    seen: ClassVar[list[dict]] = []

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append(body)
        turn = sum(message["role"] == "assistant" for message in body["messages"])
        reply = {"choices": [{"index": 0, "message": {"role": "assistant", "content": self.script[turn]},
                              "finish_reason": "stop"}]}
        data = json.dumps(reply).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def scripted_teacher():
    server = ThreadingHTTPServer(("127.0.0.1", 0), ScriptedTeacher)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    ScriptedTeacher.seen = []
    yield f"http://127.0.0.1:{server.server_address[1]}/v1"
    server.shutdown()
    server.server_close()


def teach(pool, rows, url: str, model: str = "teacher", **teacher):
    config = TeacherConfig(engine=EngineConfig(kind="openai", base_urls=[url], model=model, max_retries=0),
                           **teacher)
    engine = OpenAIEngine.from_config(config.engine)
    from codedance_core.config.synthesis import SynthesisConfig
    from codedance_core.synthesis import synthesize_rows

    async def run():
        try:
            return await synthesize_rows(rows, pool.pool, SynthesisConfig(teacher=config), engine)
        finally:
            await engine.aclose()

    return pool.call(run(), timeout_s=120)


def open_world_row() -> dict:
    """A count item stripped of its generator record: no program can write it."""
    row = suite_rows(["count"], 1)[0]
    row["extra_info"]["generator"] = None
    row["extra_info"]["family"] = row["ability"] = "open_world"
    return row


def test_teacher_turns_run_in_the_sandbox_and_a_correct_answer_is_kept(pool, scripted_teacher):
    row = open_world_row()
    gold = row["reward_model"]["ground_truth"]
    ScriptedTeacher.script = [
        "<think>Check the size first.</think>\n<code>\n```python\nprint(input_image.size)\nprint(undefined)\n```\n</code>",
        "<think>Fix it.</think>\n<code>\n```python\nprint('size', input_image.size)\ninput_image.crop((0, 0, 64, 64))\n```\n</code>",
        f"<think>I counted them.</think>\n<answer>{gold}</answer>",
    ]
    (outcome,) = teach(pool, [row], scripted_teacher)
    assert outcome.kept, (outcome.reason, outcome.detail)
    assert outcome.trajectory.source == "teacher" and outcome.trajectory.tool_calls == 2
    tools = [m["content"] for m in outcome.row["messages"] if m["role"] == "tool"]
    assert "NameError" in tools[0] and "(448, 448)" in tools[0]  # the REAL resized size and error
    assert "size (448, 448)" in tools[1] and "<image>" in tools[1]
    assert len(outcome.row["images"]) == 2
    # The teacher read our prompt and the real observation (as a <tool_response> user turn).
    last_request = ScriptedTeacher.seen[-1]["messages"]
    assert last_request[0]["content"].startswith("You are a helpful assistant")
    assert any("NameError" in json.dumps(m) and m["role"] == "user" for m in last_request)


def test_a_teacher_with_a_wrong_answer_is_rejected(pool, scripted_teacher):
    row = open_world_row()
    ScriptedTeacher.script = [f"<think>Easy.</think>\n<answer>{int(row['reward_model']['ground_truth']) + 5}</answer>"]
    (outcome,) = teach(pool, [row], scripted_teacher)
    assert (outcome.kept, outcome.reason) == (False, "answer_incorrect")


def test_teacher_path_against_codedance_serve(pool, tiny_model_dir):
    from codedance_core.serve.server import ServerThread, build_server_app

    app = build_server_app(tiny_model_dir, model_name="tiny", device="cpu", dtype="float32")
    with ServerThread(app) as url:
        outcomes = teach(pool, [open_world_row()], url, model="", max_new_tokens=32)  # "": the served model
    (outcome,) = outcomes
    # A random tiny model rarely solves anything: what matters is that the real round trip
    # (our prompt over HTTP, its turns parsed, any code run) ends in a verdict with a reason.
    assert outcome.reason != "teacher_error", outcome.detail
    assert outcome.kept or outcome.reason in {"answer_incorrect", "teacher_no_answer", "teacher_bad_code",
                                              "too_many_turns", "bad_format", "needs_judge"}
    assert outcome.kept or outcome.messages[-1]["role"] in ("assistant", "tool")
