"""The base model stage: the tiny model built from its config, or a real checkpoint folder stored.

Both end as a model folder in the artifact store, addressed by digest, so every later stage reads
its starting point the same way. Both run as a Ray task: a real checkpoint's folder (15 GB for the
7B) is read where the cluster mounts it, never copied through the orchestrator.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from codedance_core.config.model import ModelConfig, TinyModelConfig
from codedance_core.stages.context import StageContext, log_outputs
from codedance_core.stages.keys import stage
from codedance_core.stages.launch import LaunchPlan
from codedance_core.storage import ArtifactRef, ArtifactStore


def base_model_plan(tiny: TinyModelConfig | None) -> LaunchPlan:
    entry = "build_tiny_worker" if tiny is not None else "store_checkpoint_worker"
    return LaunchPlan.for_task("base-model", f"codedance_core.stages.models:{entry}")


@stage("base-model")
def base_model(model: ModelConfig, tiny: TinyModelConfig | None, ctx: StageContext) -> ArtifactRef:
    """The tiny model built from `tiny` (with a tokenizer trained on the suite's text, pretrained as it
    asks), or, with `tiny=None`, the checkpoint folder at `model.path` (e.g. Qwen2.5-VL-7B-Instruct)."""
    if tiny is not None:
        out = f"models/tiny-{tiny.digest()[:12]}"
        params = tiny.model_dump(mode="json")
    else:
        out = f"models/base-{Path(model.path).name}"
        params = {"path": model.path}
    with ctx.stage_run("base-model", params=params) as run:
        ref: ArtifactRef = ctx.launch(base_model_plan(tiny), BaseModelCall(model, tiny, ctx.store_root, out))
        log_outputs(run, {"base-model": ref})
    return ref


@dataclass(frozen=True)
class BaseModelCall:
    model: ModelConfig
    tiny: TinyModelConfig | None
    store_root: str
    out: str


def build_tiny_worker(call: BaseModelCall) -> ArtifactRef:
    from codedance_core.models import build_tiny_model
    from codedance_core.models.tiny import suite_corpus

    assert call.tiny is not None
    tiny = call.tiny
    with tempfile.TemporaryDirectory() as tmp:
        build_tiny_model(tmp, suite_corpus(rows=tiny.corpus_rows, seed=tiny.seed, workers=2), tiny)
        return ArtifactStore(call.store_root).write_directory(call.out, tmp)


def store_checkpoint_worker(call: BaseModelCall) -> ArtifactRef:
    path = Path(call.model.path)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"{path} is not a model folder (no config.json): set model.path")
    return ArtifactStore(call.store_root).write_directory(call.out, path)
