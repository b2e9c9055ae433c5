"""`codedance rewards`: the commands people use to see why a response got its reward."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from typer.testing import CliRunner

from codedance_core.cli.rewards import app

runner = CliRunner()


def test_score_prints_every_part_as_json() -> None:
    result = runner.invoke(
        app,
        [
            "score",
            "--response",
            "<think>a</think><answer>1,000</answer>",
            "--gold",
            "1000",
            "--data-source",
            "suite_count",
            "--tool-status",
            "ok",
            "--tool-status",
            "error",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    parts = json.loads(result.stdout)
    assert (parts["accuracy"], parts["rule"], parts["r_tool"], parts["format_penalty"]) == (
        1.0,
        "count",
        0.75,
        0.0,
    )


def test_score_with_options_as_a_table() -> None:
    result = runner.invoke(
        app,
        ["score", "--response", "<answer>cat</answer>", "--gold", "B", "--option", "dog", "--option", "cat"],
    )
    assert result.exit_code == 0 and "choice" in result.stdout


def test_judge_without_an_endpoint_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_AS_A_JUDGE_BASE", raising=False)
    result = runner.invoke(app, ["score", "--response", "<answer>x</answer>", "--gold", "y", "--judge"])
    assert result.exit_code == 2 and "LLM_AS_A_JUDGE_BASE" in result.output


FREE_FORM = ["score", "--response", "<answer>a picture of a cat</answer>", "--gold", "the cat"]


@pytest.fixture
def hanging_judge_url() -> Iterator[str]:
    """A real HTTP server on loopback that takes every request and never replies."""
    release = threading.Event()

    class Hang(BaseHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            release.wait(30)

        do_POST = do_GET

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Hang)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    finally:
        release.set()
        httpd.shutdown()
        httpd.server_close()


def test_an_answer_no_rule_decides_is_not_a_score_exit_1(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LLM_AS_A_JUDGE_BASE", raising=False)
    result = runner.invoke(app, [*FREE_FORM, "--json"])
    assert result.exit_code == 1
    assert json.loads(result.stdout)["status"] == "judge_error"  # the parts are still printed
    [message] = result.stderr.splitlines()
    assert message.startswith("error: 1 of 1 answers not judged (judge_error)")


def test_a_hanging_judge_is_bounded_by_the_judge_options(
    hanging_judge_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path
) -> None:
    monkeypatch.chdir(tmp_path)  # the judge's verdict cache is a file under the working directory
    monkeypatch.setenv("LLM_AS_A_JUDGE_BASE", hanging_judge_url)
    options = ["--judge", "--judge-timeout", "0.5", "--judge-retries", "20", "--judge-budget", "1"]
    started = time.monotonic()
    result = runner.invoke(app, [*FREE_FORM, *options, "--json"])
    assert time.monotonic() - started < 5.0  # unbounded: 21 attempts of 0.5 s plus their backoff
    assert result.exit_code == 1 and "not judged (judge_error)" in result.stderr
    assert "judge not asked" in json.loads(result.stdout)["detail"]


def test_a_bad_judge_option_is_a_one_line_error() -> None:
    result = runner.invoke(app, [*FREE_FORM, "--judge-timeout", "0"])
    assert result.exit_code == 2 and len(result.stderr.splitlines()) == 1
    assert "request_timeout_s" in result.stderr


def test_difficulty_curve() -> None:
    result = runner.invoke(app, ["difficulty", "--steps", "3", "--json"])
    curve = json.loads(result.stdout)["d"]
    assert [round(point["d"], 2) for point in curve] == [0.78, 0.30, -0.18]
    assert runner.invoke(app, ["difficulty", "--help"]).exit_code == 0
