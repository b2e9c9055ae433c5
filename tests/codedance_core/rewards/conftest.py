"""A real OpenAI-compatible judge server on loopback, whose behaviour the test steers.

The server is `http.server` in a thread: it parses the chat request like any OpenAI endpoint
and decides its reply from the model answer being judged, so one test can mix good verdicts,
500s, 429s, garbled bodies and verdict-less replies. It counts every request, which is how the
tests prove that a cached verdict cost no call.

Steering words in the model answer: "flaky" (first request 500, then fine), "ratelimited"
(first request 429 with Retry-After: 0), "garbage" (always a non-JSON body), "rambling" (always
a reply with no verdict), "forbidden" (always 403). Otherwise the verdict is 1 when the answer
contains "right", else 0.
"""

from __future__ import annotations

import json
import threading
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


@dataclass
class JudgeServer:
    base_url: str
    calls: Counter = field(default_factory=Counter)  # path -> number of requests
    seen_answers: Counter = field(default_factory=Counter)  # model answer -> completions requested
    requests: list[dict] = field(default_factory=list)

    @property
    def completions(self) -> int:
        return self.calls["/v1/chat/completions"]


def _handler_for(server_state: JudgeServer, lock: threading.Lock) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:  # keep test output clean
            pass

        def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
            self.send_response(status)
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            with lock:
                server_state.calls[self.path] += 1
            if self.path == "/v1/models":
                self._send(200, json.dumps({"object": "list", "data": [{"id": "served-judge"}]}).encode())
            else:
                self._send(404, b"not found")

        def do_POST(self) -> None:
            payload = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            answer = payload["messages"][-1]["content"].split("Model answer: ", 1)[-1]
            with lock:
                server_state.calls[self.path] += 1
                server_state.seen_answers[answer] += 1
                server_state.requests.append(payload)
                attempt = server_state.seen_answers[answer]
            status, body, headers = _reply_for(answer, attempt, payload["model"])
            self._send(status, body, headers)

    return Handler


def _reply_for(answer: str, attempt: int, model: str) -> tuple[int, bytes, dict[str, str]]:
    if "flaky" in answer and attempt == 1:
        return 500, b"internal error", {}
    if "ratelimited" in answer and attempt == 1:
        return 429, b"slow down", {"Retry-After": "0"}
    if "garbage" in answer:
        return 200, b"<html>upstream proxy error</html>", {}
    if "forbidden" in answer:
        return 403, b"bad key", {}
    content = (
        "I think it looks plausible."
        if "rambling" in answer
        else ("Judgement: 1" if "right" in answer else "Judgement: 0")
    )
    completion = {
        "id": "cmpl-test",
        "object": "chat.completion",
        "model": model,
        "choices": [
            {"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}
        ],
    }
    return 200, json.dumps(completion).encode(), {"Content-Type": "application/json"}


def _start_judge_server() -> tuple[ThreadingHTTPServer, JudgeServer]:
    lock = threading.Lock()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    state = JudgeServer(base_url=f"http://127.0.0.1:{httpd.server_address[1]}/v1")
    httpd.RequestHandlerClass = _handler_for(state, lock)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    return httpd, state


@pytest.fixture
def judge_server() -> Iterator[JudgeServer]:
    httpd, state = _start_judge_server()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@pytest.fixture
def second_judge_server() -> Iterator[JudgeServer]:
    httpd, state = _start_judge_server()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
