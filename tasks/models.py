"""Model tasks: build the tiny model (tiny profile) or register a real checkpoint's folder."""

from __future__ import annotations

import tempfile
from pathlib import Path

from prefect import task

from codedance_core.config.model import ModelConfig, TinyModelConfig
from codedance_core.storage import ArtifactRef, ArtifactStore
from tasks.common import retry_on_infrastructure, stage_cache_key


@task(cache_key_fn=stage_cache_key, persist_result=True, retries=2, retry_condition_fn=retry_on_infrastructure)
def build_tiny_model(tiny: TinyModelConfig, corpus_rows: int, seed: int, store_root: str) -> ArtifactRef:
    """A tiny Qwen2.5-VL-architecture model with a tokenizer trained on the suite's text."""
    from codedance_core.models import build_tiny_model as build
    from codedance_core.models.tiny import suite_corpus

    store = ArtifactStore(store_root)
    with tempfile.TemporaryDirectory() as tmp:
        build(tmp, suite_corpus(rows=corpus_rows, seed=seed, workers=2), tiny)
        return store.write_directory(f"models/tiny-{tiny.digest()[:12]}", tmp)


@task(cache_key_fn=stage_cache_key, persist_result=True, retries=2, retry_condition_fn=retry_on_infrastructure)
def register_checkpoint_folder(model: ModelConfig, store_root: str) -> ArtifactRef:
    """A real checkpoint folder (e.g. Qwen2.5-VL-7B-Instruct) as a store artifact, by digest."""
    path = Path(model.path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a model folder (no config.json): set model.path")
    return ArtifactStore(store_root).write_directory(f"models/base-{path.name}", path)
