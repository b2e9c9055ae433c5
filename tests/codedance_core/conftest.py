"""Model fixtures shared by the library's tests: ONE tiny Qwen2.5-VL per test session.

Built from real suite text (a few dozen rows) plus CodeDance-style code, saved with
`save_pretrained` and loaded back by `load_model_bundle`: every test that needs a model runs the
real build-and-load path. About 2 s for the session.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

# deepspeed (imported by transformers) prints an accelerator warning on stdout unless told it is CPU.
os.environ.setdefault("DS_ACCELERATOR", "cpu")


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A directory holding the tiny model, its tokenizer and image processor (read-only for tests)."""
    from codedance_core.config.model import TinyModelConfig
    from codedance_core.models import build_tiny_model
    from codedance_core.models.tiny import suite_corpus

    out = tmp_path_factory.mktemp("tiny_model")
    return build_tiny_model(out, suite_corpus(rows=40, seed=0), TinyModelConfig(vocab_size=1500))


@pytest.fixture(scope="session")
def tiny_bundle(tiny_model_dir: Path):
    """The tiny model loaded on CPU in float32; tests must not change its weights."""
    from codedance_core.models import load_model_bundle

    return load_model_bundle(tiny_model_dir, device="cpu", dtype="float32")
