"""The harness end to end: the taught tiny model served by `codedance serve` (in a thread), the
real sandbox, real scoring; then resumption, the judge path against a real local server, and
`codedance eval --model DIR` (a local checkpoint, no server)."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from codedance_core.cli.evaluate import app
from codedance_core.config.agent import RolloutSettings
from codedance_core.config.evaluation import EvalConfig
from codedance_core.config.rewards import JudgeConfig, RewardConfig
from codedance_core.config.sandbox import SandboxConfig
from codedance_core.engines.openai import OpenAIEngine
from codedance_core.evaluation.runner import EvalRunner
from codedance_core.serve import ServerThread, create_app

from .conftest import TAUGHT_QUESTION, eval_parquet

ROWS = [
    (TAUGHT_QUESTION, "50176", "red"),
    (TAUGHT_QUESTION, "12", "red"),
    ("What colour is it?", "blue", "blue"),
]


@pytest.fixture(scope="module")
def served(taught_model_dir):
    from codedance_core.models import load_model_bundle

    bundle = load_model_bundle(taught_model_dir, device="cpu", dtype="float32")
    with ServerThread(create_app(bundle, "taught")) as base_url:
        yield base_url


def evaluate(base_url: str, data: Path, save: Path, **overrides) -> object:
    config = EvalConfig(
        benchmark="parquet",
        data_path=str(data),
        api_urls=[base_url],
        save_path=str(save),
        num_workers=4,
        rollout={"max_new_tokens": 48},  # the harness's other defaults stay: 7 turns, greedy
        sandbox=SandboxConfig(workers=1),
        **overrides,
    )
    engine = OpenAIEngine([base_url], model="taught", concurrency=4, max_retries=1)

    async def go():
        try:
            return await EvalRunner(config, engine, "taught", show_progress=False).run()
        finally:
            await engine.aclose()

    return asyncio.run(go())


def test_the_loop_runs_with_the_configs_rollout_settings() -> None:
    settings = RolloutSettings(max_turns=3, max_context_tokens=4096, observation_max_chars=1000)
    url = "http://127.0.0.1:9/v1"  # never called: building the runner sends nothing
    config = EvalConfig(data_path="unused.parquet", api_urls=[url], samples=2, seed=5, rollout=settings)
    loop = EvalRunner(config, OpenAIEngine([url]), "m", show_progress=False).rollout_config
    assert (loop.max_turns, loop.max_context_tokens, loop.observation_max_chars) == (3, 4096, 1000)
    assert (loop.samples_per_prompt, loop.seed) == (2, 5)
    assert not loop.early_sessions  # a remote model: sandbox processes start on demand


def test_a_served_model_is_evaluated_with_every_item_written(served, tmp_path) -> None:
    data = eval_parquet(tmp_path / "pixels.parquet", ROWS)
    out = evaluate(served, data, tmp_path / "out", use_judge=False)
    rows = [json.loads(line) for line in out.paths["result"].read_text().splitlines()]
    assert [r["item_id"] for r in rows] == ["0", "1", "2"]  # every item, in benchmark order
    first = rows[0]
    assert first["prediction"] == "50176" and first["acc"] == 1.0 and first["status"] == "scored"
    assert first["tool_calls"] == 1 and first["tool_successes"] == 1 and first["turns"] == 2
    assert [m["role"] for m in first["conversation"]] == ["system", "user", "assistant", "tool", "assistant"]
    assert "50176" in first["conversation"][3]["content"]  # the sandbox's real output
    assert all((out.paths["result"].parent / p).is_file() for p in first["images"])
    assert rows[1]["prediction"] == "50176" and rows[1]["acc"] == 0.0  # the same answer, another gold
    stats = json.loads(out.paths["stats"].read_text())
    assert stats["items"] == 3 and stats["model"] == "taught" and stats["dataset"] == "pixels"
    assert stats["accuracy"] == pytest.approx(sum(r["acc"] for r in rows) / 3)
    assert stats["ci_method"] == "wilson"
    assert out.paths["viewer"].is_file() and out.paths["plot"].is_file()
    assert out.paths["stats"].name == "stats_taught_pixels.json"


def test_a_rerun_skips_scored_items_and_retries_failed_ones(served, tmp_path) -> None:
    data = eval_parquet(tmp_path / "pixels.parquet", ROWS[:2])
    save = tmp_path / "out"
    first = evaluate(served, data, save, use_judge=False)
    assert first.ran == 2 and first.skipped == 0
    # Simulate a crash: the second row is lost, the first is kept, and a torn line is left behind.
    lines = first.paths["result"].read_text().splitlines()
    first.paths["result"].write_text(lines[0] + "\n" + lines[1][:20])
    second = evaluate(served, data, save, use_judge=False)
    assert second.ran == 1 and second.skipped == 1
    rows = [json.loads(line) for line in second.paths["result"].read_text().splitlines()]
    assert [r["item_id"] for r in rows] == ["0", "1"]
    assert second.stats["items"] == 2


def test_a_dead_endpoint_is_a_counted_failure(tmp_path) -> None:
    from codedance_core.serve.server import free_port

    data = eval_parquet(tmp_path / "pixels.parquet", ROWS[:2])
    out = evaluate(f"http://127.0.0.1:{free_port()}/v1", data, tmp_path / "out", use_judge=False)
    assert out.stats["items"] == 2 and out.stats["failures"] == 2 and out.stats["accuracy"] == 0.0
    assert out.stats["statuses"] == {"rollout_error": 2}
    assert all(r["error"] for r in out.rows)


def test_free_form_answers_go_to_the_judge(served, tmp_path, judge_server) -> None:
    # A free-text gold answer needs the judge: no rule decides whether '50176' is 'the area of the picture'.
    data = eval_parquet(tmp_path / "pixels.parquet", [(TAUGHT_QUESTION, "the area of the picture", "red")])
    rewards = RewardConfig(judge=JudgeConfig(base_urls=[judge_server.url], model="judge", cache_path=""))
    out = evaluate(served, data, tmp_path / "out", rewards=rewards)
    [row] = out.rows
    assert judge_server.requests == 1
    assert row["rule"] == "judge" and row["judge_score"] == 1.0 and row["acc"] == 1.0
    assert out.stats["judge_score"] == 1.0


def test_without_a_judge_free_form_answers_are_judge_errors_not_zeros(served, tmp_path, monkeypatch) -> None:
    monkeypatch.delenv("LLM_AS_A_JUDGE_BASE", raising=False)
    data = eval_parquet(tmp_path / "pixels.parquet", [(TAUGHT_QUESTION, "the area of the picture", "red")])
    out = evaluate(served, data, tmp_path / "out")
    [row] = out.rows
    assert row["status"] == "judge_error" and row["acc"] == 0.0 and row["error"]
    assert out.stats["failures"] == 1 and out.stats["items"] == 1


def test_a_local_checkpoint_is_evaluated_with_avg_at_k(taught_model_dir, tmp_path) -> None:
    data = eval_parquet(
        tmp_path / "pixels.parquet", [(TAUGHT_QUESTION, "50176", "red"), ("Colour?", "red", "red")]
    )
    args = [
        "--model",
        str(taught_model_dir),
        "--data_path",
        str(data),
        "--save_path",
        str(tmp_path / "out"),
        "--samples",
        "2",
        "--max_turns",
        "3",
        "--max_new_tokens",
        "48",
        "--num_workers",
        "4",
        "--device",
        "cpu",
        "--sandbox_workers",
        "1",
        "--json",
    ]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    stats = json.loads(result.stdout.strip().splitlines()[-1])  # stdout alone: loaders log on stderr
    assert stats["model"] == "taught" and stats["items"] == 2 and stats["trajectories"] == 4
    assert stats["samples_per_item"] == 2 and "avg@2" in stats and stats["ci_method"].startswith("bootstrap")
    rows = [json.loads(line) for line in Path(stats["outputs"]["result"]).read_text().splitlines()]
    taught = [row for row in rows if row["item_id"] == "0"]
    assert [row["acc"] for row in taught] == [1.0, 1.0]  # greedy: both samples replay the taught trajectory
    assert stats["accuracy"] >= 0.5
