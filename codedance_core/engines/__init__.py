"""Generation engines behind one interface (`GenerationEngine`): hf, vllm, openai.

`make_engine(config)` builds the one a stage's `EngineConfig` names; vLLM is imported only then.
"""

from __future__ import annotations

from codedance_core.config.model import EngineConfig
from codedance_core.engines.base import (
    Completion,
    GenerationEngine,
    GenerationRequest,
    SamplingParams,
    cut_at_stop,
    first_stop,
)


def make_engine(config: EngineConfig) -> GenerationEngine:
    """The engine `config.kind` names, built from the rest of the config."""
    if config.kind == "hf":
        from codedance_core.engines.hf import HFEngine

        return HFEngine.from_config(config)
    if config.kind == "vllm":
        from codedance_core.engines.vllm import VLLMEngine

        return VLLMEngine.from_config(config)
    from codedance_core.engines.openai import OpenAIEngine

    return OpenAIEngine.from_config(config)


__all__ = [
    "Completion",
    "GenerationEngine",
    "GenerationRequest",
    "SamplingParams",
    "cut_at_stop",
    "first_stop",
    "make_engine",
]
