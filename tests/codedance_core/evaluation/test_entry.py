"""Which engine evaluates a local checkpoint: transformers in-process, or vLLM when the engine says so."""

from __future__ import annotations

from pathlib import Path

import pytest

from codedance_core.config.evaluation import EvalConfig
from codedance_core.config.model import EngineConfig
from codedance_core.evaluation.entry import run_evaluation
from tests.codedance_core.evaluation.conftest import eval_parquet


def test_a_vllm_engine_is_asked_for_and_says_where_vllm_belongs(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = eval_parquet(tmp_path / "bench.parquet", [("What colour is it?", "red", "red")])
    config = EvalConfig(benchmark="parquet", data_path=str(data), model_dir=str(tiny_model_dir),
                        save_path=str(tmp_path / "out"))
    # This machine has no vLLM (it runs on GPU workers only): the paper profile's path reaches it.
    with pytest.raises(RuntimeError, match="vLLM is not installed"):
        run_evaluation(config, show_progress=False, engine=EngineConfig(kind="vllm", model="unused"))


def test_the_hf_engine_evaluates_in_process(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = eval_parquet(tmp_path / "bench.parquet", [("What colour is it?", "red", "red"), ("And this one?", "blue", "blue")])
    config = EvalConfig(benchmark="parquet", data_path=str(data), model_dir=str(tiny_model_dir),
                        save_path=str(tmp_path / "out"), rollout={"max_turns": 1, "max_new_tokens": 8},
                        write_viewer=False)
    outputs = run_evaluation(config, show_progress=False, engine=EngineConfig(kind="hf", model="unused"))
    assert outputs.stats["items"] == 2 and len(outputs.rows) == 2


def test_a_file_whose_columns_are_all_wrong_is_an_error_not_zero_percent(tiny_model_dir: Path, tmp_path: Path) -> None:
    import polars as pl

    from codedance_core.data.quarantine import NoValidRowsError

    data = tmp_path / "wrong.parquet"
    pl.DataFrame({"prompt_text": ["How many?", "Which one?"], "solution": ["3", "B"]}).write_parquet(data)
    config = EvalConfig(benchmark="parquet", data_path=str(data), model_dir=str(tiny_model_dir),
                        save_path=str(tmp_path / "out"))
    with pytest.raises(NoValidRowsError) as error:
        run_evaluation(config, show_progress=False)
    message = str(error.value)
    assert str(data) in message and "columns found: prompt_text, solution" in message
    assert "layouts known:" in message and "answer: one of answer/label" in message
    assert not list((tmp_path / "out").glob("stats_*"))  # no report of 0.0%


def test_the_event_loop_closes_without_waiting_for_a_busy_executor_thread() -> None:
    import asyncio
    import time

    from codedance_core.evaluation.entry import run_bounded

    async def fails_while_a_thread_still_works() -> None:
        asyncio.get_running_loop().run_in_executor(None, time.sleep, 4)
        await asyncio.sleep(0.05)
        raise RuntimeError("the run failed")

    started = time.monotonic()
    with pytest.raises(RuntimeError, match="the run failed"):
        run_bounded(fails_while_a_thread_still_works(), shutdown_timeout_s=0.5)
    assert time.monotonic() - started < 2  # asyncio.run would wait the thread's 4 s out


def test_pending_tasks_are_cancelled_when_the_run_ends() -> None:
    import asyncio

    from codedance_core.evaluation.entry import run_bounded

    cancelled: list[bool] = []

    async def forever() -> None:
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            cancelled.append(True)
            raise

    async def main() -> str:
        asyncio.get_running_loop().create_task(forever())
        await asyncio.sleep(0)
        return "done"

    assert run_bounded(main(), shutdown_timeout_s=1) == "done" and cancelled == [True]


def test_a_second_run_on_the_same_outputs_is_refused_naming_the_first(
    tiny_model_dir: Path, tiny_bundle, tmp_path: Path
) -> None:
    import asyncio
    import os

    from codedance_core.engines.hf import HFEngine
    from codedance_core.evaluation.entry import results_lock_uri, run_locked
    from codedance_core.evaluation.runner import EvalRunner
    from codedance_core.storage.locks import FileLock, LockHeldError

    data = eval_parquet(tmp_path / "bench.parquet", [("What colour is it?", "red", "red")])
    config = EvalConfig(benchmark="parquet", data_path=str(data), model_dir=str(tiny_model_dir),
                        save_path=str(tmp_path / "out"))
    runner = EvalRunner(config, HFEngine(tiny_bundle), "tiny", bundle=tiny_bundle, show_progress=False)
    lock_path = results_lock_uri(config, "tiny")
    assert lock_path == tmp_path / "out" / "result_tiny_bench.jsonl.lock"
    holder = f"result_tiny_bench.jsonl is in use by pid {os.getpid()} on"
    with FileLock(lock_path), pytest.raises(LockHeldError, match=holder):  # the first run, still writing
        asyncio.run(run_locked(runner, wait_s=0.2))
    assert not list((tmp_path / "out").glob("result_*.jsonl"))  # the refused run wrote nothing


def test_rl_rows_get_the_original_prompt_by_default_and_their_own_on_request(tiny_model_dir: Path, tmp_path: Path) -> None:
    import polars as pl

    from codedance_core.chat_format.prompts import get_prompts

    from .conftest import png_bytes

    row = {
        "data_source": "suite_count", "ability": "count",
        "prompt": [{"role": "system", "content": "own system"}, {"role": "user", "content": "<image>\nCount."}],
        "images": [{"bytes": png_bytes(), "path": None}],
        "reward_model": {"style": "rule", "ground_truth": "4"},
        "extra_info": {"index": 0, "question": "Count."},
    }
    data = tmp_path / "rl.parquet"
    pl.DataFrame([row]).write_parquet(data)

    def run(prompt: str):
        config = EvalConfig(benchmark="parquet", data_path=str(data), model_dir=str(tiny_model_dir), prompt=prompt,
                            save_path=str(tmp_path / "out"), rollout={"max_turns": 1, "max_new_tokens": 4},
                            write_viewer=False)
        return run_evaluation(config, show_progress=False)

    own = run("row")
    assert own.stats["prompt"] == "row" and own.rows[0]["prompt"] == "row"
    assert own.rows[0]["conversation"][0]["content"] == "own system"
    original = run("original")  # same files: the row written with the other prompt is done again
    assert original.ran == 1 and original.stats["prompt"] == "original"
    assert original.rows[0]["conversation"][0]["content"] == get_prompts().system
