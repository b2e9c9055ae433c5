"""Evaluation with a judge that hangs: the run pays the judge's budget once, looks the judge's
model up once, and its headline says how many items were not judged."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codedance_core.cli.evaluate import app
from codedance_core.evaluation.runner import accuracy_headline, not_judged_items
from codedance_core.serve import ServerThread, create_app

from .conftest import TAUGHT_QUESTION, eval_parquet


@pytest.fixture(scope="module")
def served(taught_model_dir):
    from codedance_core.models import load_model_bundle

    bundle = load_model_bundle(taught_model_dir, device="cpu", dtype="float32")
    with ServerThread(create_app(bundle, "taught")) as base_url:
        yield base_url


@pytest.fixture
def hanging_judge() -> Iterator[tuple[str, Counter]]:
    """A real HTTP server on loopback that counts every request and never replies."""
    release, calls, lock = threading.Event(), Counter(), threading.Lock()

    class Hang(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            with lock:
                calls[self.path] += 1
            release.wait(30)

        do_POST = do_GET

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hang)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", calls
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()


def test_the_headline_counts_the_items_not_judged() -> None:
    rows = [
        {"item_id": "0", "status": "scored"},
        {"item_id": "1", "status": "judge_error"},
        {"item_id": "1", "status": "judge_error"},  # a second sample of the same item
        {"item_id": "2", "status": "rollout_error"},
    ]
    assert not_judged_items(rows) == 1
    stats = {"accuracy": 0.125, "items": 40, "not_judged": 8}
    assert accuracy_headline(stats) == "accuracy 12.5% (40 items; 8 not judged: judge_error)"
    assert accuracy_headline(stats | {"not_judged": 0}) == "accuracy 12.5% (40 items)"


def test_a_hanging_judge_costs_the_run_its_budget_once(served, hanging_judge, tmp_path: Path) -> None:
    judge_url, calls = hanging_judge
    # Free-text gold answers: no rule decides them, each needs the judge.
    golds = ["the area of the picture", "its area", "the picture's size", "how big it is"]
    rows = [(TAUGHT_QUESTION, gold, "red") for gold in golds]
    data = eval_parquet(tmp_path / "pixels.parquet", rows)
    command = [
        "--data_path", str(data), "--api_url", served, "--model_name", "taught", "--save_path", str(tmp_path / "out"),
        "--max_new_tokens", "48", "--sandbox_workers", "1", "--no-viewer", "--no-progress", "--judge_url", judge_url,
        "--judge-timeout", "1", "--judge-retries", "5", "--judge-budget", "2",
    ]  # fmt: skip
    started = time.monotonic()
    result = CliRunner().invoke(app, command)
    elapsed = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert "accuracy 0.0% (4 items; 4 not judged: judge_error)" in result.stdout
    # One lookup of the judge's model for the run (the first attempt and at most one retry fit in
    # the 2 s budget), never a chat request; unbounded it was 4 items x 6 attempts x 1 s.
    assert 1 <= calls["/v1/models"] <= 2 and calls["/v1/chat/completions"] == 0
    assert elapsed < 15.0
