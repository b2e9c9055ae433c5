"""The vLLM engine module: importable without vLLM, clear when vLLM is missing, and its prompt form."""

from __future__ import annotations

import importlib.util

import pytest

from codedance_core.config.model import EngineConfig
from codedance_core.engines import make_engine
from codedance_core.engines.vllm import collapse_image_pads

VLLM_INSTALLED = importlib.util.find_spec("vllm") is not None


def test_image_pad_runs_collapse_to_one_pad_per_image():
    assert collapse_image_pads([1, 9, 9, 9, 2, 9, 9, 3], image_token_id=9) == [1, 9, 2, 9, 3]
    assert collapse_image_pads([1, 2], image_token_id=9) == [1, 2]


@pytest.mark.skipif(VLLM_INSTALLED, reason="checks the message shown where vLLM is absent (CPU machines)")
def test_asking_for_vllm_without_it_says_where_it_belongs(tiny_model_dir):
    with pytest.raises(RuntimeError, match="GPU workers only"):
        make_engine(EngineConfig(kind="vllm", model=str(tiny_model_dir)))
