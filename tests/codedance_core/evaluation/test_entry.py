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
